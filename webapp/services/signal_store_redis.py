"""Decayed signal counts in Redis, when SIGNAL_STORE_URL names one (the database otherwise).

The database stays the record: impressions and events are stored there first, and the
counts are derived data. With Redis, a search's or a batch's increments are queued on the
session and sent after its commit (a rolled-back search counts nothing), so the signal
writes leave the database transaction. One Lua script applies a batch atomically with the
same decay arithmetic as the SQL upsert; a sorted set of changed keys, scored by time,
lets every web worker mirror just what changed. If Redis is down, searches and events go
on (the increments are dropped and counted in the log); `flask signals rebuild` replays
the database's impressions and events into the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

import redis
from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from engine.ranking.board import SignalBoard
from engine.ranking.decay import DecayedCount, HalfLives

log = logging.getLogger(__name__)
CHANGED = "kairos:signals:changed"  # actions: mirrored every SIGNAL_SYNC_SECONDS
CHANGED_IMPRESSIONS = "kairos:signals:changed:impressions"  # mirrored every SIGNAL_IMPRESSION_SYNC_SECONDS
PREFIX = "kairos:signals:"
PENDING = "kairos.signal_increments"
KEEP_HALF_LIVES = 10  # a count untouched for 10 long half-lives is below 0.1% of itself: let it expire

# KEYS: count hashes. ARGV: short half-life, long half-life, now, ttl, then (weight, at) per key.
_MERGE = """
local hs, hl, now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
for i, key in ipairs(KEYS) do
  local w, at = tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i])
  local cur = redis.call('HMGET', key, 's', 'l', 't')
  local s, l, t = tonumber(cur[1]) or 0, tonumber(cur[2]) or 0, tonumber(cur[3]) or at
  if at >= t then
    s = s * 2 ^ (-(at - t) / hs) + w
    l = l * 2 ^ (-(at - t) / hl) + w
    t = at
  else
    s = s + w * 2 ^ (-(t - at) / hs)
    l = l + w * 2 ^ (-(t - at) / hl)
  end
  redis.call('HSET', key, 's', string.format('%.17g', s), 'l', string.format('%.17g', l), 't', string.format('%.17g', t))
  redis.call('EXPIRE', key, ttl)
  if string.sub(key, -11) == ':impression' then
    redis.call('ZADD', 'kairos:signals:changed:impressions', now, key)
  else
    redis.call('ZADD', 'kairos:signals:changed', now, key)
  end
end
return #KEYS
"""


def product_key(product_id: int, signal: str) -> str:
    return f"{PREFIX}p:{product_id}:{signal}"


def query_key(query: str, product_id: int, signal: str) -> str:
    return f"{PREFIX}q:{product_id}:{signal}:{query}"  # the query last: it may hold any character


def parse_key(key: str) -> tuple[int, str, str] | None:
    """(product id, signal, query or "") of a count key, None for a foreign key."""
    if not key.startswith(PREFIX):
        return None
    kind, _, rest = key[len(PREFIX) :].partition(":")
    parts = rest.split(":", 2)
    try:
        if kind == "p" and len(parts) == 2:
            return int(parts[0]), parts[1], ""
        if kind == "q" and len(parts) == 3:
            return int(parts[0]), parts[1], parts[2]
    except ValueError:
        return None
    return None


class RedisSignalStore:
    """Writes increments and reads changed counts; one per app (its client is thread-safe)."""

    def __init__(self, url: str, half_lives: HalfLives) -> None:
        self.client = redis.Redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.5, decode_responses=True)
        self.half_lives = half_lives
        self._merge = self.client.register_script(_MERGE)
        self.dropped = 0  # increments lost while Redis was unreachable (rebuild restores them)
        self._lock = threading.Lock()

    def add(self, increments: Iterable[tuple[str, float, float]]) -> None:
        """Apply (key, weight, at) increments atomically; raises redis errors to the caller."""
        increments = list(increments)
        if not increments:
            return
        ttl = int(KEEP_HALF_LIVES * self.half_lives.long)
        args: list[float | str] = [self.half_lives.short, self.half_lives.long, repr(time.time()), ttl]
        for _, weight, at in increments:
            args += [weight, at]
        self._merge(keys=[key for key, _, _ in increments], args=args)

    def changed_since(self, since: float | None, zset: str = CHANGED) -> list[str]:
        low = "-inf" if since is None else repr(since)
        return self.client.zrangebyscore(zset, low, "+inf")

    def mirror(self, board: SignalBoard, since: float | None, impressions_since: float | None | bool = None) -> int:
        """Copy counts changed since `since` (epoch seconds; None: all) into the board; impression
        counts since `impressions_since` (False: not this time)."""
        keys = self.changed_since(since)
        if impressions_since is not False:
            keys += self.changed_since(impressions_since, CHANGED_IMPRESSIONS)
        if not keys:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, "s", "l", "t")
        count = 0
        for key, values in zip(keys, pipe.execute(), strict=True):
            parsed = parse_key(key)
            if parsed is None or values[2] is None:
                continue  # expired since it was listed
            product_id, signal, query = parsed
            board.put(product_id, signal, DecayedCount(float(values[0]), float(values[1]), float(values[2])), query)
            count += 1
        return count

    def prune(self) -> int:
        """Forget change marks older than the counts can live."""
        horizon = time.time() - KEEP_HALF_LIVES * self.half_lives.long
        return sum(int(self.client.zremrangebyscore(z, "-inf", repr(horizon))) for z in (CHANGED, CHANGED_IMPRESSIONS))


def redis_store() -> RedisSignalStore | None:
    """This app's store when SIGNAL_STORE_URL is set."""
    url = current_app.config.get("SIGNAL_STORE_URL")
    if not url:
        return None
    store = current_app.extensions.get("kairos.signal_store")
    if store is None:
        from webapp.services.signals import half_lives

        store = current_app.extensions.setdefault("kairos.signal_store", RedisSignalStore(url, half_lives()))
    return store


def queue_increments(session: Session, increments: Iterable[tuple[str, float, float]]) -> None:
    """Hold increments on the session until its transaction commits."""
    session.info.setdefault(PENDING, []).extend(increments)


@event.listens_for(Session, "after_commit")
def _send_after_commit(session: Session) -> None:
    increments = session.info.pop(PENDING, None)
    if not increments or not has_app_context():
        return
    store = redis_store()
    if store is None:
        return
    try:
        store.add(increments)
    except redis.RedisError as exc:
        with store._lock:
            store.dropped += len(increments)
        log.warning("signal store unreachable, %d increments dropped (rebuild restores them): %s", len(increments), exc)


@event.listens_for(Session, "after_rollback")
def _discard_after_rollback(session: Session) -> None:
    session.info.pop(PENDING, None)
