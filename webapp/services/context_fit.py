"""Fitting the stage-2 context ranker on logged pages, and starting that fit as a job.

Every search answered with a context logs its head's feature values on the impressions
(webapp.services.search), so a page is re-read exactly as the shopper saw it: features
in CONTEXT_FEATURES order, the positions shown, and the best thing the shopper did with
each product (purchase 3 > add to cart 2 > click 1). Examination propensities come from
the position-based click model fitted on the same impressions (as the fine-tune does),
falling back to (1/k) when nothing was clicked. A fit that beats relevance alone on
held-out pairs becomes the one active ranker (the previous one retired in the same
transaction); otherwise the refused fit is stored with its reason and serving is unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from flask import current_app
from kombu.exceptions import OperationalError as BrokerUnavailable
from sqlalchemy import Text, cast, exists, func, select, text, update

from engine.ranking.context import CONTEXT_FEATURES
from engine.ranking.context_ranker import LoggedPage, fit_context_ranker, pbm_propensity
from engine.training.click_model import fit_pbm, identified_or_curve
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import ContextRankerFit, Event, Impression, Job, SearchQuery, utcnow
from webapp.services.feedback_trust import trusted_events
from webapp.services.jobs import job_in_flight, start_job

Progress = Callable[[int, int], None]
GAINS = {"click": 1, "add_to_cart": 2, "purchase": 3}
CHUNK = 500  # searches read per round trip: memory holds one chunk of rows, then only engaged pages
PBM_MAX_POSITION = 24  # deeper positions share one examination estimate (the fine-tune's default)
FIT_LOCK_KEY = 0x4B41_4346  # "KACF": serialises "retire the active fit, add the new one" on PostgreSQL
JOB_KIND = "context_fit"
TASK_NAME = "ranking.fit_context"


@dataclass
class PageLog:
    """What the read found: pages with something to learn from, and every impression for the click model."""

    pages: list[LoggedPage] = field(default_factory=list)
    searches: int = 0  # logged searches read (with or without engagement)
    newest_search_id: int = 0
    search_rows: int = 0  # every stored search when the log was read: says whether any arrived since
    skipped_rows: int = 0  # impressions whose logged features lack a current feature
    queries: list[np.ndarray] = field(default_factory=list)  # per chunk: query id per impression
    products: list[np.ndarray] = field(default_factory=list)
    positions: list[np.ndarray] = field(default_factory=list)
    clicked: list[np.ndarray] = field(default_factory=list)


def _logged() -> object:
    """Impressions that carry features (SQL NULL or JSON null: searches sorted otherwise, or older rows)."""
    return (Impression.features.is_not(None)) & (cast(Impression.features, Text) != "null")


def stored_search_count() -> int:
    """Search rows stored so far; none is ever deleted, so a change means searches arrived.

    Not the largest id: web workers hand out ids from blocks and store them after answering
    (webapp.services.search_log), so a search stored later may have a smaller id."""
    return db.session.scalar(select(func.count()).select_from(SearchQuery)) or 0


def logged_searches(days: float, max_pages: int) -> list[tuple[int, str]]:
    """(search id, normalized query) of the window's searches with logged features, newest first, bounded."""
    since = utcnow() - timedelta(days=days)
    has_features = exists().where(Impression.search_id == SearchQuery.id, _logged())
    rows = db.session.execute(
        select(SearchQuery.id, SearchQuery.normalized)
        .where(SearchQuery.created_at >= since, has_features)
        # By time, not id: web workers hand out ids from blocks (webapp.services.search_ids).
        .order_by(SearchQuery.created_at.desc(), SearchQuery.id.desc())
        .limit(max_pages)
    ).all()
    return [(row.id, row.normalized) for row in rows]


def _gains(search_ids: list[int]) -> dict[tuple[int, int], int]:
    """The best engagement per (search, product)."""
    best: dict[tuple[int, int], int] = {}
    rows = db.session.execute(
        select(Event.search_id, Event.product_id, Event.type).where(Event.search_id.in_(search_ids), trusted_events())
    )
    for row in rows:
        key = (row.search_id, row.product_id)
        best[key] = max(best.get(key, 0), GAINS.get(row.type, 0))
    return best


def _read_chunk(chunk: list[tuple[int, str]], query_ids: dict[str, int], log: PageLog) -> None:
    search_ids = [sid for sid, _ in chunk]
    gains = _gains(search_ids)
    query_of = {sid: query_ids.setdefault(q, len(query_ids)) for sid, q in chunk}
    rows = db.session.execute(
        select(Impression.search_id, Impression.product_id, Impression.position, Impression.features)
        .where(Impression.search_id.in_(search_ids))
        .order_by(Impression.search_id, Impression.position)
    ).all()
    by_search: dict[int, list[tuple[np.ndarray, int, int]]] = {}
    for row in rows:
        gain = gains.get((row.search_id, row.product_id), 0)
        features = row.features if isinstance(row.features, dict) else {}
        if all(name in features for name in CONTEXT_FEATURES):
            vector = np.array([features[name] for name in CONTEXT_FEATURES], dtype=np.float32)
            by_search.setdefault(row.search_id, []).append((vector, gain, row.position))
        else:
            log.skipped_rows += 1
    for sid, shown in by_search.items():
        page_gains = np.array([g for _, g, _ in shown], dtype=np.float32)
        if page_gains.max() > page_gains.min():  # a page where nothing differs teaches nothing
            features = np.stack([v for v, _, _ in shown])
            positions = np.array([p for _, _, p in shown], dtype=np.int64)
            log.pages.append(LoggedPage(key=sid, features=features, gains=page_gains, positions=positions))
    # Every impression, with features or not, tells the click model what was examined where.
    log.queries.append(np.array([query_of[r.search_id] for r in rows], dtype=np.int64))
    log.products.append(np.array([r.product_id for r in rows], dtype=np.int64))
    log.positions.append(np.array([r.position for r in rows], dtype=np.int64))
    log.clicked.append(np.array([gains.get((r.search_id, r.product_id), 0) > 0 for r in rows], dtype=bool))


def read_logged_pages(days: float, max_pages: int, progress: Progress | None = None) -> PageLog:
    """Read the window's logged pages CHUNK searches at a time (progress: searches read, total)."""
    rows = stored_search_count()
    searches = logged_searches(days, max_pages)
    log = PageLog(searches=len(searches), newest_search_id=searches[0][0] if searches else 0, search_rows=rows)
    query_ids: dict[str, int] = {}
    for start in range(0, len(searches), CHUNK):
        _read_chunk(searches[start : start + CHUNK], query_ids, log)
        if progress is not None:
            progress(min(start + CHUNK, len(searches)), len(searches))
    return log


def position_propensity(log: PageLog) -> tuple[Callable[[int], float], dict]:
    """The examination propensity per position: the fitted click model, or (1/k) with no clicks to fit."""
    clicked = np.concatenate(log.clicked) if log.clicked else np.empty(0, dtype=bool)
    if not clicked.any():
        return pbm_propensity, {"model": "1/k (no clicks to fit a click model)"}
    fitted = fit_pbm(
        np.concatenate(log.queries),
        np.concatenate(log.products),
        np.concatenate(log.positions),
        clicked,
        max_position=PBM_MAX_POSITION,
    )
    model = identified_or_curve(fitted, current_app.config["PROPENSITY_FALLBACK_POWER"])
    name = "position-based click model" if model.source == "fitted" else f"{model.source} (click model not identified)"
    return model.propensity, {"model": name, **model.as_dict()}


def store_fit(status: str, weights: dict, metrics: dict, pages: int) -> ContextRankerFit:
    """Record a fit; an active one retires the previous active fit in the same transaction."""
    try:
        if db.engine.dialect.name == "postgresql":  # two fits finishing together must not leave two active
            db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FIT_LOCK_KEY})
        if status == "active":
            db.session.execute(
                update(ContextRankerFit).where(ContextRankerFit.status == "active").values(status="retired")
            )
        row = ContextRankerFit(status=status, weights=weights, metrics=metrics, pages=pages)
        db.session.add(row)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return row


def fit_context_ranker_from_logs(progress: Progress | None = None) -> ContextRankerFit:
    """Fit the context ranker on the last CONTEXT_FIT_DAYS of logged pages; returns the stored fit row."""
    config = current_app.config
    started = time.perf_counter()
    days, max_pages = float(config["CONTEXT_FIT_DAYS"]), int(config["CONTEXT_FIT_MAX_PAGES"])
    log = read_logged_pages(days, max_pages, progress)
    db.session.commit()  # end the read snapshot before the write transaction
    propensity, propensity_info = position_propensity(log)
    fit = fit_context_ranker(log.pages, propensity, explore_bonus=float(config["EXPLORE_BONUS"]))
    metrics = {
        **fit.metrics,
        "searches": log.searches,
        "newest_search_id": log.newest_search_id,
        "search_rows": log.search_rows,
        "skipped_rows": log.skipped_rows,
        "days": days,
        "max_pages": max_pages,
        "propensity": propensity_info,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if fit.ranker is None:
        return store_fit("refused", {}, metrics, log.searches)
    return store_fit("active", fit.ranker.to_dict(), metrics, log.searches)


def fit_summary(row: ContextRankerFit) -> dict:
    """The fit as a job result: which row, its outcome, and the figures that decided it."""
    keys = (
        "pages",
        "train_pairs",
        "holdout_pairs",
        "holdout_loss",
        "holdout_loss_relevance_only",
        "holdout_accuracy",
        "holdout_accuracy_relevance_only",
        "refused",
    )
    return {"fit_id": row.id, "status": row.status, **{k: row.metrics[k] for k in keys if k in row.metrics}}


def start_context_fit(trigger: str = "admin") -> Job:
    """Queue a fit on the training queue, one at a time; InputError when one is pending or the queue is down."""
    pending = job_in_flight(JOB_KIND)
    if pending is not None:
        raise InputError(f"a ranker fit is already {pending.status} as job {pending.id}; wait for it to finish")
    try:
        return start_job(JOB_KIND, TASK_NAME, {"trigger": trigger})
    except BrokerUnavailable as exc:
        raise InputError(f"the job queue cannot be reached ({exc}); nothing was started") from None


def active_fit() -> ContextRankerFit | None:
    """The fit serving now (the newest active one, as web workers pick it)."""
    return db.session.scalars(
        select(ContextRankerFit).where(ContextRankerFit.status == "active").order_by(ContextRankerFit.id.desc())
    ).first()


def fit_history(limit: int = 30) -> list[ContextRankerFit]:
    """The newest fits of every status."""
    return list(db.session.scalars(select(ContextRankerFit).order_by(ContextRankerFit.id.desc()).limit(limit)))
