"""Synonyms for lexical retrieval: Solr's synonyms.txt format, parsed and turned into expansions.

`a, b, c` makes the terms equivalent (each expands to the others); `a, b => c, d` is one-way
(a and b expand to c and d, not back). A term may be several words ("cell phone"). The typed
words keep their weight; an expansion is added beside them at SYNONYM_BOOST, so a product
found only through a synonym ranks behind one that has the words the shopper typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SYNONYM_BOOST = 0.5
MAX_TERM_WORDS = 4
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class SynonymRule:
    """One line of a synonyms file: equivalent terms (targets empty) or terms => targets."""

    terms: tuple[str, ...]
    targets: tuple[str, ...] = ()

    @property
    def one_way(self) -> bool:
        return bool(self.targets)

    def line(self) -> str:
        """The rule as a synonyms.txt line."""
        left = ", ".join(self.terms)
        return f"{left} => {', '.join(self.targets)}" if self.targets else left


@dataclass(frozen=True)
class LineError:
    line: int  # 1-based
    message: str


def _term(raw: str) -> str:
    return " ".join(_WORD.findall(raw.lower()))


def _terms(side: str) -> tuple[list[str], str | None]:
    terms = [_term(t) for t in side.split(",")]
    if any(not t for t in terms):
        return [], "an empty term (two commas in a row, or a comma at an end)"
    if any(len(t.split()) > MAX_TERM_WORDS for t in terms):
        return [], f"a term of more than {MAX_TERM_WORDS} words"
    return list(dict.fromkeys(terms)), None


def parse_line(text: str) -> tuple[SynonymRule | None, str | None]:
    """(rule, None), (None, None) for a blank or comment line, or (None, why it is not a rule)."""
    body = text.split("#", 1)[0].strip()
    if not body:
        return None, None
    if body.count("=>") > 1:
        return None, "more than one '=>'"
    if "=>" in body:
        left, right = body.split("=>")
        terms, error = _terms(left)
        targets, target_error = _terms(right) if error is None else ([], None)
        if error or target_error:
            return None, error or target_error
        return SynonymRule(tuple(terms), tuple(targets)), None
    terms, error = _terms(body)
    if error:
        return None, error
    if len(terms) < 2:
        return None, "an equivalence needs at least two different terms"
    return SynonymRule(tuple(terms)), None


def parse_synonyms(text: str) -> tuple[list[SynonymRule], list[LineError]]:
    """Every rule of a synonyms file and every line that is not one (with its line number)."""
    rules: list[SynonymRule] = []
    errors: list[LineError] = []
    for number, line in enumerate(text.splitlines(), start=1):
        rule, error = parse_line(line)
        if error is not None:
            errors.append(LineError(number, error))
        elif rule is not None:
            rules.append(rule)
    return rules, errors


def format_synonyms(rules: list[SynonymRule]) -> str:
    """A synonyms.txt text holding the rules, one a line."""
    return "".join(rule.line() + "\n" for rule in rules)


@dataclass(frozen=True)
class Expansion:
    """A run of typed words and what it expands to."""

    words: tuple[str, ...]
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class SynonymTable:
    """Term (as a tuple of words) -> the terms it expands to; immutable, swapped whole."""

    expands: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    longest: int = 1

    @classmethod
    def from_rules(cls, rules: list[SynonymRule]) -> SynonymTable:
        table: dict[tuple[str, ...], dict[str, None]] = {}
        for rule in rules:
            for term in rule.terms:
                targets = rule.targets or tuple(t for t in rule.terms if t != term)
                table.setdefault(tuple(term.split()), {}).update(dict.fromkeys(t for t in targets if t != term))
        expands = {k: tuple(v) for k, v in table.items() if v}
        return cls(expands, max((len(k) for k in expands), default=1))

    def __bool__(self) -> bool:
        return bool(self.expands)

    def group(self, words: list[str]) -> list[Expansion]:
        """The words in order, a run that is a term (longest first) grouped with its alternatives."""
        out: list[Expansion] = []
        i = 0
        while i < len(words):
            for size in range(min(self.longest, len(words) - i), 0, -1):
                run = tuple(words[i : i + size])
                if run in self.expands or size == 1:
                    out.append(Expansion(run, self.expands.get(run, ())))
                    i += size
                    break
        return out

    def applied(self, text: str) -> list[str]:
        """What a query's words expand to, as 'typed → alternative, ...' lines (for Explain)."""
        words = _WORD.findall(text.lower())
        return [f"{' '.join(e.words)} → {', '.join(e.alternatives)}" for e in self.group(words) if e.alternatives]
