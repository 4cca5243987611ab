"""The admin's "explain": a search answered exactly as the shop would answer it for a visitor,
with each context signal's part in every result's score, and nothing logged.

The search path is search_and_log's without its writes: the same Searcher, the visitor's
A/B serving (read, never recorded as an exposure), the visitor's session profile and the
context ranker the web worker serves. No search row, impression or signal count is written,
so explaining a query never feeds the learning loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from flask import current_app
from werkzeug.datastructures import MultiDict

from engine.ranking.context import CONTEXT_FEATURES
from engine.ranking.context_ranker import ContextRanker
from webapp.errors import InputError
from webapp.services.assignment import serving_for
from webapp.services.context_ranking import search_context
from webapp.services.merchandising import arranger_for, record_outcome
from webapp.services.search_index import get_searcher
from webapp.services.search_params import parse_search_args

CHART_HITS = 10
EXPLORE_LABEL = "exploration bonus"


@dataclass(frozen=True)
class FeatureShare:
    name: str
    value: float
    weight: float | None  # None: no fitted ranker
    contribution: float | None  # weight x value


@dataclass(frozen=True)
class ExplainedHit:
    external_id: str
    title: str
    final_rank: int
    stage1_rank: int | None  # None: beyond the head stage 2 looks at
    score: float  # as served
    features: list[FeatureShare]
    explore: float  # the exploration term, 0..1 (new products nobody has seen yet)
    bonus: float  # explore_bonus x explore, when a ranker applies it
    total: float | None  # sum of contributions and the bonus: the stage-2 score
    imposed: str | None = None  # "pin" or "boost": a query rule put it here


@dataclass
class Explanation:
    query: str
    visitor_id: str
    personal: bool  # the visitor had a session profile
    profile_interactions: int
    ranker: ContextRanker | None
    applied: bool  # stage 2 re-ordered the head
    retrieval: str  # the stage-1 ranker that answered
    variant_id: int | None
    total_results: int
    hits: list[ExplainedHit] = field(default_factory=list)
    chart: dict | None = None  # stacked contributions of the top CHART_HITS (with a ranker)
    synonyms: list[str] = field(default_factory=list)  # "typed → alternatives" the lexical search added
    rule_ids: tuple[int, ...] = ()  # the query rules that applied
    redirect: str | None = None  # where a rule sends the shopper instead


def _visitor(raw: str) -> str:
    visitor = raw.strip()
    if len(visitor) > 64 or not visitor.isprintable():
        raise InputError("visitor must be a visitor id of at most 64 printable characters")
    return visitor


def _explained(hit, stage1: dict[int, int], context, ranker: ContextRanker | None) -> ExplainedHit:
    pid = hit.card.id
    row = context.features.get(pid) if context is not None else None
    explore = float(context.explore.get(pid, 0.0)) if context is not None else 0.0
    shares, total, bonus = [], None, 0.0
    if row is not None:
        weights = dict(zip(CONTEXT_FEATURES, ranker.vector().tolist(), strict=True)) if ranker else {}
        parts = ranker.contributions(row) if ranker else {}
        values = zip(CONTEXT_FEATURES, row.tolist(), strict=True)
        shares = [FeatureShare(n, v, weights.get(n), parts.get(n)) for n, v in values]
        if ranker is not None:
            bonus = ranker.explore_bonus * explore
            total = sum(parts.values()) + bonus
    return ExplainedHit(
        hit.card.external_id, hit.card.title, hit.position, stage1.get(pid), hit.score, shares, explore, bonus, total
    )


def _with_rules(hits: list[ExplainedHit], imposed: dict[int, str], ids: list[int]) -> list[ExplainedHit]:
    return [replace(h, imposed=imposed.get(pid)) for h, pid in zip(hits, ids, strict=True)]


def contribution_chart(hits: list[ExplainedHit]) -> dict | None:
    """Stacked bars: each top hit's score split into its features' contributions and the bonus."""
    shown = [h for h in hits[:CHART_HITS] if h.total is not None]
    if not shown:
        return None
    series = [
        {"label": name, "data": [round(h.features[i].contribution, 5) for h in shown]}
        for i, name in enumerate(CONTEXT_FEATURES)
    ]
    series.append({"label": EXPLORE_LABEL, "data": [round(h.bonus, 5) for h in shown]})
    labels = [f"{h.final_rank}. {h.title[:40]}" for h in shown]
    return {"labels": labels, "series": series, "stacked": True, "xLabel": "contribution to the stage-2 score"}


def explain_search(args: MultiDict) -> Explanation:
    """Answer q (and its filters) for args["visitor"] as the shop would, without logging anything."""
    visitor = _visitor(args.get("visitor", ""))
    request = parse_search_args(args, current_app.config["SEARCH_PAGE_SIZE"])
    if not request.text:
        raise InputError("q must name what to search for")
    searcher = get_searcher()
    ranker = searcher.context_ranker  # read once: a newly activated fit may swap in during the search
    serving = serving_for(visitor or None)  # its exposure is recorded only by the logging path
    context = search_context(visitor or None, request.text, searcher, serving.bundle or searcher.bundle)
    arranger = arranger_for(request.text, searcher)
    response = searcher.search(request, bundle=serving.bundle, mode=serving.mode, context=context, arrange=arranger)
    record_outcome(response, arranger)
    staged = response.context
    stage1 = {pid: rank for rank, pid in enumerate(staged.features, start=1)} if staged is not None else {}
    applied = staged is not None and staged.applied
    used = ranker if applied else None
    hits = [_explained(hit, stage1, staged, used) for hit in response.hits]
    hits = _with_rules(hits, response.imposed, [hit.card.id for hit in response.hits])
    profile = context.profile
    return Explanation(
        query=request.text,
        visitor_id=visitor,
        personal=profile is not None,
        profile_interactions=profile.interactions if profile is not None else 0,
        ranker=used,
        applied=applied,
        retrieval=response.ranker,
        variant_id=serving.variant_id,
        total_results=response.total,
        hits=hits,
        chart=contribution_chart(hits),
        synonyms=searcher.lexical.synonyms.applied(request.text),
        rule_ids=response.rule_ids,
        redirect=response.redirect,
    )
