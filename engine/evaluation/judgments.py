"""Relevance judgments and query sets for offline evaluation: TREC qrels, TSV queries, ESCI JSON.

Grades are kept as the integers the source file uses; each Judgments carries the mapping from
grade to NDCG gain and the smallest grade that binary metrics (MRR, recall) count as relevant.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parents[2] / "data" / "esci-us-sample"
DEMO_JUDGMENTS = DEMO_DIR / "esci_us_judgments.json"

# ESCI ratings are the paper's gains times 100 (Reddy et al. 2022): Exact, Substitute, Complement, Irrelevant.
ESCI_GAINS: Mapping[int, float] = {100: 1.0, 10: 0.1, 1: 0.01, 0: 0.0}
ESCI_EXACT = 100
# trec_eval's default: any grade of 1 or more is relevant.
TREC_REL_LEVEL = 1


class EvaluationDataError(ValueError):
    """A judgments or queries file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Query:
    qid: str
    text: str


@dataclass(frozen=True)
class Judgments:
    """Graded judgments: qid -> docid -> grade, with the grade's NDCG gain and the binary threshold."""

    grades: dict[str, dict[str, int]]
    rel_level: int = TREC_REL_LEVEL
    gain_map: Mapping[int, float] | None = None  # None: the grade itself is the gain (trec_eval's nDCG)

    def gain(self, grade: int) -> float:
        """NDCG gain of a grade; negative grades gain nothing, as in trec_eval."""
        value = self.gain_map.get(grade, 0.0) if self.gain_map is not None else float(grade)
        return max(value, 0.0)

    def gains(self, qid: str) -> dict[str, float]:
        """Docid -> gain for one query (unjudged documents are absent, i.e. gain 0)."""
        return {doc: self.gain(grade) for doc, grade in self.grades.get(qid, {}).items()}

    def relevant(self, qid: str) -> set[str]:
        """Docids that binary metrics count as relevant for one query."""
        return {doc for doc, grade in self.grades.get(qid, {}).items() if grade >= self.rel_level}


def esci_qid(text: str) -> str:
    """A stable query id derived from the query text, independent of file order."""
    return "esci-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


def _read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvaluationDataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationDataError(f"{path}: cannot read ({exc})") from None


def read_trec_qrels(path: str | Path, rel_level: int = TREC_REL_LEVEL) -> Judgments:
    """Read a TREC qrels file: one `qid iteration docid grade` line per judgment."""
    grades: dict[str, dict[str, int]] = {}
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 4:
            raise EvaluationDataError(
                f"{path} line {number}: expected 'qid iteration docid grade', got {len(parts)} fields: {line!r}"
            )
        qid, _, doc, raw = parts
        try:
            grade = int(raw)
        except ValueError:
            raise EvaluationDataError(f"{path} line {number}: grade must be a whole number, got {raw!r}") from None
        seen = grades.setdefault(qid, {})
        if doc in seen and seen[doc] != grade:
            raise EvaluationDataError(f"{path} line {number}: {qid} {doc} judged twice with different grades")
        seen[doc] = grade
    if not grades:
        raise EvaluationDataError(f"{path}: no judgments found")
    return Judgments(grades=grades, rel_level=rel_level)


def _esci_grade(raw: object, where: str) -> int:
    try:
        value = float(raw)  # the file writes ratings as strings like "100.000"
    except (TypeError, ValueError):
        raise EvaluationDataError(f"{where}: rating must be a number, got {raw!r}") from None
    grade = round(value) if math.isfinite(value) else -1
    if grade != value or grade not in ESCI_GAINS:
        raise EvaluationDataError(f"{where}: rating must be one of 100, 10, 1, 0, got {raw!r}")
    return grade


def _esci_entries(path: str | Path) -> list[dict]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise EvaluationDataError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg})") from None
    entries = data.get("judgmentRatings") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise EvaluationDataError(f"{path}: expected an object with a non-empty 'judgmentRatings' list")
    return entries


def _esci_parse(path: str | Path) -> tuple[list[Query], Judgments]:
    queries: list[Query] = []
    grades: dict[str, dict[str, int]] = {}
    for index, entry in enumerate(_esci_entries(path)):
        where = f"{path} judgmentRatings[{index}]"
        text = entry.get("query") if isinstance(entry, dict) else None
        ratings = entry.get("ratings") if isinstance(entry, dict) else None
        if not isinstance(text, str) or not text.strip() or not isinstance(ratings, list):
            raise EvaluationDataError(f"{where}: expected {{'query': text, 'ratings': [...]}}")
        qid = esci_qid(text)
        if qid in grades:
            raise EvaluationDataError(f"{where}: query {text!r} appears twice")
        docs: dict[str, int] = {}
        for rating in ratings:
            doc = rating.get("docId") if isinstance(rating, dict) else None
            if not isinstance(doc, str) or not doc:
                raise EvaluationDataError(f"{where} ({text!r}): a rating has no docId")
            docs[doc] = _esci_grade(rating.get("rating"), f"{where} ({text!r}) {doc}")
        queries.append(Query(qid=qid, text=text))
        grades[qid] = docs
    return queries, Judgments(grades=grades, rel_level=ESCI_EXACT, gain_map=ESCI_GAINS)


def read_esci_judgments(path: str | Path = DEMO_JUDGMENTS) -> Judgments:
    """Read ESCI judgments JSON: Exact 1.0, Substitute 0.1, Complement 0.01, Irrelevant 0; Exact is relevant."""
    return _esci_parse(path)[1]


def read_esci_queries(path: str | Path = DEMO_JUDGMENTS) -> list[Query]:
    """The queries of an ESCI judgments JSON file, in file order, each with its stable esci_qid."""
    return _esci_parse(path)[0]


def read_query_tsv(path: str | Path) -> list[Query]:
    """Read queries from a `qid<TAB>text` file (blank lines and # comments skipped)."""
    queries: list[Query] = []
    seen: set[str] = set()
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        qid, tab, text = line.partition("\t")
        qid, text = qid.strip(), text.strip()
        if not tab or not qid or not text or any(c.isspace() for c in qid):
            raise EvaluationDataError(f"{path} line {number}: expected 'qid<TAB>query text', got {line!r}")
        if qid in seen:
            raise EvaluationDataError(f"{path} line {number}: query id {qid!r} appears twice")
        seen.add(qid)
        queries.append(Query(qid=qid, text=text))
    if not queries:
        raise EvaluationDataError(f"{path}: no queries found")
    return queries


def is_esci_json(path: str | Path) -> bool:
    """Whether a judgments path is ESCI JSON (by its .json suffix) rather than TREC qrels."""
    return Path(path).suffix.lower() == ".json"
