"""Each web worker's merchandising state: the synonym table and the query rules, as last saved.

A follower step (webapp.services.serving_follower) checks at most every INDEX_SYNC_SECONDS
whether either table changed (row count and latest save time, one small query each) and, if
so, reads them whole and swaps in an immutable Merchandising: the synonyms go into the
Searcher's lexical index (and its result cache is cleared, since they change what matches),
the rules into the snapshot that requests read. A save is thus served by every worker within
about a second. A process without a follower runs the step on the request path (get_searcher).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import func, select

from engine.merchandising.rules import Arranger, Boost, Rule, RuleSet
from engine.serving.searcher import Searcher, SearchRequest, SearchResponse
from engine.serving.synonyms import SynonymRule, SynonymTable
from webapp.extensions import db
from webapp.models import QueryRule, Synonym, epoch
from webapp.services.search_params import normalize_query

STATE = "kairos.merchandising"


@dataclass(frozen=True)
class Merchandising:
    """What a worker merchandises with; replaced whole, never edited."""

    synonyms: SynonymTable = field(default_factory=SynonymTable)
    rules: RuleSet = field(default_factory=RuleSet)
    stamp: tuple = ()  # what the tables looked like when read (count, latest save, per table)


class _Holder:
    def __init__(self) -> None:
        self.current = Merchandising()
        self.last_check = float("-inf")


def _holder() -> _Holder:
    return current_app.extensions.setdefault(STATE, _Holder())


def synonym_rule(row: Synonym) -> SynonymRule:
    return SynonymRule(tuple(row.terms), tuple(row.targets or ()))


def engine_rule(row: QueryRule) -> Rule:
    """The engine's view of a stored rule."""
    return Rule(
        id=row.id,
        query=row.query,
        match=row.match,
        pins=tuple((int(p), int(pos)) for p, pos in row.pins or ()),
        hides=frozenset(int(p) for p in row.hides or ()),
        boosts=tuple(Boost(b["field"], b["value"], float(b["weight"])) for b in row.boosts or ()),
        redirect=row.redirect_url or None,
        starts_at=epoch(row.starts_at) if row.starts_at else None,
        ends_at=epoch(row.ends_at) if row.ends_at else None,
        enabled=row.enabled,
    )


def _stamp() -> tuple:
    stamps = []
    for model in (Synonym, QueryRule):
        count, latest = db.session.execute(select(func.count(model.id), func.max(model.updated_at))).one()
        stamps.append((count, latest))
    return tuple(stamps)


def follow_merchandising(searcher: Searcher, force: bool = False) -> bool:
    """Read the synonyms and rules again if they changed; returns whether anything was swapped in."""
    holder = _holder()
    if not force and time.monotonic() - holder.last_check < current_app.config["INDEX_SYNC_SECONDS"]:
        return False
    holder.last_check = time.monotonic()
    stamp = _stamp()
    if stamp == holder.current.stamp:
        return False
    synonyms = SynonymTable.from_rules(
        [synonym_rule(r) for r in db.session.scalars(select(Synonym).order_by(Synonym.id))]
    )
    rules = RuleSet.of([engine_rule(r) for r in db.session.scalars(select(QueryRule).order_by(QueryRule.id))])
    previous = holder.current
    holder.current = Merchandising(synonyms, rules, stamp)
    if synonyms != previous.synonyms:
        searcher.lexical.synonyms = synonyms
        searcher.result_cache.invalidate()  # a synonym changes what a query matches
    return True


def current_merchandising() -> Merchandising:
    """The follower snapshot's merchandising, or this process's own (synced by get_searcher)."""
    from webapp.services.serving_follower import current_snapshot

    snapshot = current_snapshot()
    if snapshot is not None and snapshot.merchandising is not None:
        return snapshot.merchandising
    return _holder().current


def held_merchandising() -> Merchandising:
    """This process's latest merchandising (what the follower puts in its next snapshot)."""
    return _holder().current


def arranger_for(text: str, searcher: Searcher, now: float | None = None) -> Arranger | None:
    """The query rules active now for a search's text, as its arrange hook; None when none apply."""
    rules = current_merchandising().rules.matching(normalize_query(text), time.time() if now is None else now)
    return Arranger(rules, searcher.cards) if rules else None


def record_outcome(response: SearchResponse, arranger: Arranger | None) -> SearchResponse:
    """Put what the rules did on the response (imposed positions, redirect, rule ids)."""
    if arranger is not None:
        outcome = arranger.outcome
        response.imposed, response.redirect, response.rule_ids = outcome.imposed, outcome.redirect, outcome.rule_ids
    return response


def preview(text: str, page_size: int = 10) -> tuple[SearchResponse, SearchResponse]:
    """A query's first results without and with the rules active now (nothing logged)."""
    from webapp.services.search_index import get_searcher

    searcher = get_searcher()
    request = SearchRequest(text=text, page_size=page_size)
    arranger = arranger_for(text, searcher)
    plain = searcher.search(request)
    return plain, record_outcome(searcher.search(request, arrange=arranger), arranger)
