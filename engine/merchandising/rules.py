"""Query rules: pin, hide, boost or bury by brand/category, or redirect, for a query, in a time window.

Applied per search after ranking, to the whole ordered list before it is cut into pages:
hidden products leave it, boosted ones move ahead of the rest (buried ones behind), in
their ranked order within each group, and pinned products take their positions. What was
imposed is returned by product so the impression log can mark it: a pinned or boosted
position says nothing about relevance and the learning loop must not read it as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

MATCHES = ("exact", "contains")
BOOST_FIELDS = ("brand", "category")
PIN, BOOST = "pin", "boost"


class Card(Protocol):
    brand: str
    category: str


@dataclass(frozen=True)
class Boost:
    field: str  # "brand" or "category" (a category matches any level of the path)
    value: str
    weight: float  # > 0 boosts, < 0 buries

    def matches(self, card: Card) -> bool:
        value = self.value.lower()
        if self.field == "brand":
            return card.brand.lower() == value
        return value in (part.strip().lower() for part in card.category.split(">"))


@dataclass(frozen=True)
class Rule:
    id: int
    query: str  # normalized (lower case, single spaces)
    match: str = "exact"  # "exact" or "contains" (the query holds the phrase as whole words)
    pins: tuple[tuple[int, int], ...] = ()  # (product id, 1-based position)
    hides: frozenset[int] = frozenset()
    boosts: tuple[Boost, ...] = ()
    redirect: str | None = None
    starts_at: float | None = None  # epoch seconds; None: no start
    ends_at: float | None = None  # epoch seconds, exclusive; None: no end
    enabled: bool = True

    def active(self, now: float) -> bool:
        """Enabled and within its time window."""
        if not self.enabled:
            return False
        return (self.starts_at is None or self.starts_at <= now) and (self.ends_at is None or now < self.ends_at)

    def applies(self, query: str) -> bool:
        if self.match == "exact":
            return query == self.query
        return f" {self.query} " in f" {query} "


@dataclass(frozen=True)
class Outcome:
    """What the rules did to one search."""

    hits: list[tuple[int, float]]
    imposed: dict[int, str] = field(default_factory=dict)  # product id -> "pin" or "boost"
    redirect: str | None = None
    rule_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class RuleSet:
    """Every stored rule, indexed for lookup; immutable, swapped whole by the serving follower."""

    rules: tuple[Rule, ...] = ()
    exact: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    contains: tuple[Rule, ...] = ()

    @classmethod
    def of(cls, rules: list[Rule]) -> RuleSet:
        exact: dict[str, list[Rule]] = {}
        for rule in rules:
            if rule.match == "exact":
                exact.setdefault(rule.query, []).append(rule)
        contains = tuple(r for r in rules if r.match == "contains")
        return cls(tuple(rules), {k: tuple(v) for k, v in exact.items()}, contains)

    def matching(self, query: str, now: float) -> list[Rule]:
        """The active rules for a normalized query, exact ones first, each group by id."""
        found = [r for r in self.exact.get(query, ()) if r.active(now)]
        found += [r for r in self.contains if r.active(now) and r.applies(query)]
        return found


def apply_rules(hits: list[tuple[int, float]], rules: list[Rule], cards: Mapping[int, Card]) -> Outcome:
    """The ranked hits as the rules arrange them (products not in `cards` are never pinned)."""
    if not rules:
        return Outcome(hits)
    hidden = frozenset().union(*(r.hides for r in rules))
    boosts = [b for r in rules for b in r.boosts]
    pins: dict[int, int] = {}  # position -> product; the first rule to claim a position keeps it
    for rule in rules:
        for product_id, position in rule.pins:
            if product_id in cards and product_id not in hidden and position not in pins:
                if product_id not in pins.values():
                    pins[position] = product_id
    score = dict(hits)
    pinned = set(pins.values())
    rest = [(pid, s) for pid, s in hits if pid not in hidden and pid not in pinned]
    imposed: dict[int, str] = {}
    if boosts:
        weights = {pid: sum(b.weight for b in boosts if b.matches(cards[pid])) for pid, _ in rest if pid in cards}
        rest.sort(key=lambda h: -weights.get(h[0], 0.0))  # stable: ranked order within a group
        imposed = {pid: BOOST for pid, w in weights.items() if w != 0}
    arranged = list(rest)
    for position in sorted(pins):
        product_id = pins[position]
        arranged.insert(min(position - 1, len(arranged)), (product_id, score.get(product_id, 0.0)))
        imposed[product_id] = PIN
    redirect = next((r.redirect for r in rules if r.redirect), None)
    return Outcome(arranged, imposed, redirect, tuple(r.id for r in rules))


class Arranger:
    """A search's `arrange` hook (engine.serving.searcher): applies the rules and keeps what they did."""

    def __init__(self, rules: list[Rule], cards: Mapping[int, Card]) -> None:
        self.rules = rules
        self.cards = cards
        self.outcome = Outcome([])

    def __call__(self, hits: list[tuple[int, float]]) -> list[tuple[int, float]]:
        self.outcome = apply_rules(hits, self.rules, self.cards)
        return self.outcome.hits
