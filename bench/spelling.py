"""Spelling correction on the demo's train queries with injected typos: NDCG@10 with and without.

    .venv/bin/python bench/spelling.py [--seed 7] [--split train]

Each query of the split gets one typo (seeded): in one random word of at least 4 letters, a
random deletion, insertion, substitution or adjacent transposition. Queries are searched with
lexical retrieval (BM25 with its near-spelling fallback, the path a shop without a model
version serves) over the demo catalog, as typed and after correction by the catalog's
vocabulary (engine.serving.spelling; the bench has no query log, so the log's words, which
the shop adds, are absent). It prints NDCG@10 on the clean queries, the clean queries through
the corrector (what correction costs queries that needed none), the typo'd queries without and
with correction, and how many corrections restored the query exactly. The test half is not
read: pass --split test only to report.
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from engine.catalog.readers import read_catalog  # noqa: E402
from engine.evaluation.judgments import DEMO_JUDGMENTS, read_esci_judgments, read_esci_queries  # noqa: E402
from engine.evaluation.metrics import ndcg_at_k  # noqa: E402
from engine.evaluation.split import load_split  # noqa: E402
from engine.serving.searcher import ProductCard, Searcher  # noqa: E402
from engine.serving.spelling import Speller, catalog_vocabulary  # noqa: E402

CATALOG = ROOT / "data" / "esci-us-sample" / "esci_us_ecommerce_shrunk.ndjson.zip"


def load_cards() -> list[ProductCard]:
    records = [line.record for line in read_catalog(CATALOG) if line.record is not None]
    return [
        ProductCard(
            id=n,
            external_id=r.external_id,
            title=r.title,
            brand=r.brand or "",
            price=r.price,
            rating=r.rating,
            rating_count=r.rating_count or 0,
            category=r.category_path or "",
            bullet_points=r.bullet_points or "",
            description=r.description or "",
        )
        for n, r in enumerate(records, start=1)
    ]


def with_typo(text: str, rng: random.Random) -> str:
    """One random edit in one random word of 4+ letters (the text unchanged when it has none)."""
    words = text.split()
    eligible = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not eligible:
        return text
    i = rng.choice(eligible)
    word, at = words[i], rng.randrange(len(words[i]))
    kind = rng.choice(("delete", "insert", "substitute", "transpose"))
    letter = rng.choice(string.ascii_lowercase)
    if kind == "delete":
        word = word[:at] + word[at + 1 :]
    elif kind == "insert":
        word = word[:at] + letter + word[at:]
    elif kind == "substitute":
        word = word[:at] + rng.choice([c for c in string.ascii_lowercase if c != word[at].lower()]) + word[at + 1 :]
    else:
        at = min(at, len(word) - 2)
        word = word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    words[i] = word
    return " ".join(words)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--split", default="train", choices=("train", "test"))
    args = parser.parse_args()
    started = time.perf_counter()
    cards = load_cards()
    searcher = Searcher(candidates=100)
    searcher.apply_changes(cards, [])
    speller = Speller([catalog_vocabulary(cards)])
    built = time.perf_counter() - started
    judgments = read_esci_judgments(DEMO_JUDGMENTS)
    wanted = load_split().texts(args.split)
    queries = [q for q in read_esci_queries(DEMO_JUDGMENTS) if q.text in wanted]
    rng = random.Random(args.seed)

    def ndcg(qid: str, text: str) -> float:
        hits, _, _ = searcher.retrieve(text, limit=100, mode="lexical")
        return ndcg_at_k([searcher.cards[pid].external_id for pid, _ in hits], judgments.gains(qid))

    def corrected(text: str) -> str:
        fix = speller.correct(text)
        return fix.text if fix else text

    rows = {"clean": [], "clean corrected": [], "typo": [], "typo corrected": []}
    typo_count = restored = false_fixes = 0
    for query in queries:
        typo = with_typo(query.text, rng)
        typo_count += typo != query.text
        fixed = corrected(typo)
        restored += typo != query.text and fixed.lower() == query.text.lower()
        false_fixes += corrected(query.text).lower() != query.text.lower()
        rows["clean"].append(ndcg(query.qid, query.text))
        rows["clean corrected"].append(ndcg(query.qid, corrected(query.text)))
        rows["typo"].append(ndcg(query.qid, typo))
        rows["typo corrected"].append(ndcg(query.qid, fixed))
    print(
        f"# {len(cards)} products, vocabulary {len(speller.parts[0])} words, built in {built:.1f} s; seed {args.seed}"
    )
    print(
        f"# {args.split}: {len(queries)} queries, {typo_count} given a typo; lexical retrieval (BM25 + near spellings)"
    )
    print(f"{'queries':<16} {'NDCG@10':>8}")
    for name, values in rows.items():
        print(f"{name:<16} {sum(values) / len(values):>8.4f}")
    print(f"typos restored exactly: {restored} of {typo_count}; clean queries changed by the corrector: {false_fixes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
