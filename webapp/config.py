"""Settings read from the environment when the factory runs, never at import time."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE = PROJECT_ROOT / "instance"

# Secrets have no default in production: a missing one must stop the start, not be guessed.
_DEV_SECRET = "kairos-development-only-secret"


def _normalize_db_url(url: str) -> str:
    """Let operators paste a plain postgres:// URL and still get the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def load_config(overrides: dict | None = None) -> dict:
    """Build the Flask config from the environment, then apply explicit overrides."""
    env = os.environ
    instance = Path(env.get("KAIROS_INSTANCE_DIR", DEFAULT_INSTANCE))
    production = env.get("KAIROS_ENV", "development") == "production"
    secret = env.get("SECRET_KEY") or (None if production else _DEV_SECRET)
    db_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'kairos.db'}"
    broker = env.get("CELERY_BROKER_URL") or f"sqla+sqlite:///{instance / 'broker.db'}"
    backend = env.get("CELERY_RESULT_BACKEND") or f"db+sqlite:///{instance / 'results.db'}"
    config = {
        "ENV_NAME": "production" if production else "development",
        "SECRET_KEY": secret,
        "SQLALCHEMY_DATABASE_URI": _normalize_db_url(db_url),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        # SQLite only: writers take turns through a file lock (webapp/sqlite_writes.py); "0" leaves it to SQLite.
        "SQLITE_SERIALIZED_WRITES": env.get("KAIROS_SQLITE_SERIALIZED_WRITES", "1") not in ("0", "false", "no"),
        "INSTANCE_DIR": str(instance),
        "DEMO_CATALOG": str(PROJECT_ROOT / "data" / "esci-us-sample" / "esci_us_ecommerce_shrunk.ndjson.zip"),
        "SEARCH_PAGE_SIZE": int(env.get("KAIROS_PAGE_SIZE", "24")),
        "SEARCH_MAX_QUERY_CHARS": 200,
        "SEARCH_CANDIDATES": int(env.get("KAIROS_SEARCH_CANDIDATES", "300")),  # per retriever; 12 pages of 24
        # Stage-1 results of this many recent (query, filters) kept per web worker (0: off); about 30 KB each.
        "SEARCH_RESULT_CACHE": int(env.get("KAIROS_SEARCH_RESULT_CACHE", "512")),
        # gunicorn workers write the search log after the response (webapp/services/search_log.py):
        # each journals its searches and stores them this often (0: in the request, as elsewhere);
        # an event naming a search not stored yet waits for it at most SEARCH_LOG_WAIT_SECONDS.
        "SEARCH_LOG_FLUSH_SECONDS": float(env.get("KAIROS_SEARCH_LOG_FLUSH_SECONDS", "0.1")),
        "SEARCH_LOG_WAIT_SECONDS": float(env.get("KAIROS_SEARCH_LOG_WAIT_SECONDS", "2")),
        "SEARCH_LOG_DIR": env.get("KAIROS_SEARCH_LOG_DIR", ""),  # default: <instance>/searchlog
        # The cosine from which a product found only by meaning counts in a search's total
        # (engine.evaluation.match_floor fits it on the train half); empty: only words match.
        "SEARCH_MATCH_FLOOR": float(env["KAIROS_SEARCH_MATCH_FLOOR"]) if env.get("KAIROS_SEARCH_MATCH_FLOOR") else None,
        # How often a web worker reads the catalog change feed (one indexed query, off the request
        # path in a gunicorn worker); keeps a saved product searchable everywhere within a second.
        "INDEX_SYNC_SECONDS": float(env.get("KAIROS_INDEX_SYNC_SECONDS", "0.25")),
        # How often a worker's follower compares the whole catalog with its index (0: never),
        # repairing a change written around the change feed.
        "CATALOG_RECONCILE_SECONDS": float(env.get("KAIROS_CATALOG_RECONCILE_SECONDS", "300")),
        # How often a gunicorn worker's follower thread runs the syncs that are due (0: requests
        # sync on demand); webapp/services/serving_follower.py.
        "SERVING_FOLLOW_SECONDS": float(env.get("KAIROS_SERVING_FOLLOW_SECONDS", "0.1")),
        "EVENTS_MAX_BATCH": 100,
        # Time-sensitive ranking (engine/ranking, webapp/services/signals.py, context_ranking.py):
        # decayed counts at two half-lives (seconds), mirrored into every web worker this often;
        # event times a client sends are clamped within the skew and refused beyond the age.
        "SIGNAL_SHORT_HALF_LIFE": float(env.get("KAIROS_SIGNAL_SHORT_HALF_LIFE", "3600")),
        "SIGNAL_LONG_HALF_LIFE": float(env.get("KAIROS_SIGNAL_LONG_HALF_LIFE", "86400")),
        "SIGNAL_SYNC_SECONDS": float(env.get("KAIROS_SIGNAL_SYNC_SECONDS", "0.2")),
        "SIGNAL_RECONCILE_SECONDS": float(env.get("KAIROS_SIGNAL_RECONCILE_SECONDS", "300")),
        # Impression counts change with every search but matter over hours: mirrored and written in
        # batches (a worker's background thread writes its summed impressions this often; 5 s rather
        # than 1 s cut the writes per search about 3-fold: head products repeat within the window).
        "SIGNAL_IMPRESSION_SYNC_SECONDS": float(env.get("KAIROS_SIGNAL_IMPRESSION_SYNC_SECONDS", "5")),
        "SIGNAL_IMPRESSION_FLUSH_SECONDS": float(env.get("KAIROS_SIGNAL_IMPRESSION_FLUSH_SECONDS", "5")),
        # Where the counts live: Redis when set (e.g. redis://127.0.0.1:6379/3), else the database.
        "SIGNAL_STORE_URL": env.get("KAIROS_SIGNAL_STORE_URL", ""),
        "EVENT_MAX_FUTURE_SECONDS": float(env.get("KAIROS_EVENT_MAX_FUTURE_SECONDS", "300")),
        "EVENT_MAX_AGE_DAYS": float(env.get("KAIROS_EVENT_MAX_AGE_DAYS", "7")),
        # A visitor with more purchases (add-to-carts) than this within the window is flagged and
        # their feedback kept out of learning, signals and experiments (webapp.services.feedback_trust).
        "FEEDBACK_MAX_PURCHASES": int(env.get("KAIROS_FEEDBACK_MAX_PURCHASES", "60")),
        "FEEDBACK_MAX_ADD_TO_CARTS": int(env.get("KAIROS_FEEDBACK_MAX_ADD_TO_CARTS", "120")),
        "FEEDBACK_RATE_WINDOW_SECONDS": float(env.get("KAIROS_FEEDBACK_RATE_WINDOW_SECONDS", "3600")),
        # Stage 2 on or off (off: stage-1 relevance only, no context features logged).
        "CONTEXT_RANKING": env.get("KAIROS_CONTEXT_RANKING", "1") not in ("0", "false", "no"),
        # The shopper's session profile: interactions within this window, at most this many.
        "PERSONALIZATION": env.get("KAIROS_PERSONALIZATION", "1") not in ("0", "false", "no"),
        "PROFILE_WINDOW_HOURS": float(env.get("KAIROS_PROFILE_WINDOW_HOURS", "6")),
        "PROFILE_MAX_EVENTS": int(env.get("KAIROS_PROFILE_MAX_EVENTS", "50")),
        # Recommendation lists: at most this many products of one brand per list.
        "RECOMMEND_PER_BRAND": int(env.get("KAIROS_RECOMMEND_PER_BRAND", "2")),
        # New products: lifted by at most this much (score units) while new and little seen.
        "EXPLORE_BONUS": float(env.get("KAIROS_EXPLORE_BONUS", "0.3")),
        "EXPLORE_DAYS": float(env.get("KAIROS_EXPLORE_DAYS", "14")),
        # The stage-2 ranker: refitted by beat on this many days of logged pages; workers poll for it.
        "CONTEXT_FIT_INTERVAL_SECONDS": float(env.get("KAIROS_CONTEXT_FIT_INTERVAL", "900")),
        "CONTEXT_FIT_DAYS": float(env.get("KAIROS_CONTEXT_FIT_DAYS", "14")),
        "CONTEXT_FIT_MAX_PAGES": int(env.get("KAIROS_CONTEXT_FIT_MAX_PAGES", "50000")),
        "CONTEXT_RANKER_CHECK_SECONDS": float(env.get("KAIROS_CONTEXT_RANKER_CHECK_SECONDS", "2")),
        # How long a web worker trusts its copy of the running experiment (start/stop show up after it).
        "EXPERIMENT_CACHE_SECONDS": float(env.get("KAIROS_EXPERIMENT_CACHE_SECONDS", "1")),
        "EXPERIMENT_SNAPSHOT_SECONDS": float(env.get("KAIROS_EXPERIMENT_SNAPSHOT_SECONDS", "3600")),
        "JOBS_STALE_SWEEP_SECONDS": float(env.get("KAIROS_JOBS_STALE_SWEEP_SECONDS", "300")),
        # How often a web worker checks which model version is active (hot swap without restart).
        "VERSION_CHECK_SECONDS": float(env.get("KAIROS_VERSION_CHECK_SECONDS", "2")),
        "ENCODER_VARIANT": env.get("KAIROS_ENCODER_VARIANT", "int8"),  # a version's manifest may override
        "ENCODER_THREADS": int(env.get("KAIROS_ENCODER_THREADS", "1")),
        # Graded judgments used when building a version (train half: int8 gate, ranker fit).
        # KAIROS_JUDGMENTS: the shop's own (ESCI JSON, or TREC qrels with KAIROS_JUDGMENT_QUERIES).
        "RANKER_QRELS": env.get(
            "KAIROS_JUDGMENTS",
            env.get("KAIROS_RANKER_QRELS", str(PROJECT_ROOT / "data" / "esci-us-sample" / "esci_us_judgments.json")),
        ),
        "RANKER_QUERIES": env.get("KAIROS_JUDGMENT_QUERIES", ""),  # qid<TAB>text, for TREC qrels
        # Absolute validation NDCG@10 a fitted ranker may trail RRF or a single retriever by and still serve.
        "SELECTION_MARGIN": float(env.get("KAIROS_SELECTION_MARGIN", "0.01")),
        "QUERY_CACHE_SIZE": int(env.get("KAIROS_QUERY_CACHE_SIZE", "4096")),
        # Instant suggestions (webapp/services/instant_suggest.py): each web worker rebuilds its index
        # this often, from the queries the suggestion rule admits (webapp/services/suggestions.py):
        # SUGGEST_MIN_VISITORS visitors from SUGGEST_MIN_ADDRESSES networks in SUGGEST_MIN_HOURS hours.
        "SUGGEST_REFRESH_SECONDS": float(env.get("KAIROS_SUGGEST_REFRESH_SECONDS", "30")),
        "SUGGEST_QUERY_DAYS": float(env.get("KAIROS_SUGGEST_QUERY_DAYS", "30")),
        "SUGGEST_MAX_QUERIES": int(env.get("KAIROS_SUGGEST_MAX_QUERIES", "5000")),
        "SUGGEST_MIN_VISITORS": int(env.get("KAIROS_SUGGEST_MIN_VISITORS", "2")),
        "SUGGEST_MIN_ADDRESSES": int(env.get("KAIROS_SUGGEST_MIN_ADDRESSES", "2")),
        "SUGGEST_MIN_HOURS": int(env.get("KAIROS_SUGGEST_MIN_HOURS", "2")),
        # Spelling correction of queries from the catalog's and the query log's words (webapp.services.spelling).
        "SPELLING_CORRECTION": env.get("KAIROS_SPELLING_CORRECTION", "1") not in ("0", "false", "no"),
        # The learning loop (worker/building/fine_tune.py, worker/schedule.py): beat checks every
        # interval and fine-tunes when this many new events arrived; a run trains on the window's
        # feedback, needs this many positive pairs, and is refused if validation NDCG@10 drops by
        # more than the margin (absolute).
        "FINE_TUNE_INTERVAL_SECONDS": float(env.get("KAIROS_FINE_TUNE_INTERVAL", "3600")),
        "FINE_TUNE_MIN_NEW_EVENTS": int(env.get("KAIROS_FINE_TUNE_MIN_NEW_EVENTS", "500")),
        "FINE_TUNE_WINDOW_DAYS": float(env.get("KAIROS_FINE_TUNE_WINDOW_DAYS", "30")),
        "FINE_TUNE_MIN_POSITIVE_PAIRS": int(env.get("KAIROS_FINE_TUNE_MIN_POSITIVE_PAIRS", "50")),
        "FINE_TUNE_GATE_MARGIN": float(env.get("KAIROS_FINE_TUNE_GATE_MARGIN", "0.01")),
        # Optuna's study storage for `flask model tune` (worker.building.tune): the shop's PostgreSQL
        # database under the schema "optuna", or instance/optuna.db beside a SQLite file.
        "TUNE_STORAGE_URL": env.get("KAIROS_TUNE_STORAGE_URL", ""),  # "": derived below, after overrides
        # Share of relevance-sorted pages given random adjacent swaps (engine.ranking.exploration), so
        # the click model can tell positions apart; 0 switches exploration off.
        "EXPLORATION_SHARE": float(env.get("KAIROS_EXPLORATION_SHARE", "0")),
        # Propensities (1/k)^power used when the click model is not identified by the log.
        "PROPENSITY_FALLBACK_POWER": float(env.get("KAIROS_PROPENSITY_FALLBACK_POWER", "1.0")),
        "FINE_TUNE_METHOD": env.get("KAIROS_FINE_TUNE_METHOD", "top_layers"),  # full | top_layers | lora
        "FINE_TUNE_MAX_TRAIN_SECONDS": float(env.get("KAIROS_FINE_TUNE_MAX_TRAIN_SECONDS", "5400")),
        "FINE_TUNE_LOCK_TTL_SECONDS": float(env.get("KAIROS_FINE_TUNE_LOCK_TTL", "600")),
        "FINE_TUNE_CHECKPOINT_DIR": env.get("KAIROS_FINE_TUNE_CHECKPOINT_DIR", ""),  # "": INSTANCE_DIR/checkpoints
        # Request bodies (webapp/request_limits.py): a few KB on public routes (the JSON API, the
        # storefront's forms, the admin login), more for the admin's own forms, and the upload limit
        # only for the catalog import. A larger body answers 413 before it is read. MAX_CONTENT_LENGTH
        # is Flask's fallback for a request no route claimed; forms have at most MAX_FORM_PARTS fields.
        "MAX_BODY_BYTES": int(env.get("KAIROS_MAX_BODY_KB", "32")) * 1024,
        "MAX_ADMIN_FORM_BYTES": int(env.get("KAIROS_MAX_ADMIN_FORM_KB", "512")) * 1024,
        "MAX_UPLOAD_BYTES": int(env.get("KAIROS_MAX_UPLOAD_MB", "50")) * 1024 * 1024,
        "MAX_CONTENT_LENGTH": int(env.get("KAIROS_MAX_BODY_KB", "32")) * 1024,
        "MAX_FORM_PARTS": int(env.get("KAIROS_MAX_FORM_PARTS", "100")),
        "MAX_FORM_MEMORY_SIZE": int(env.get("KAIROS_MAX_ADMIN_FORM_KB", "512")) * 1024,
        # Catalog files (engine/catalog/readers.py), from the CLI or an upload: at most this large
        # unzipped, this compression ratio for a zip member over 1 MiB, and this long per record.
        "IMPORT_MAX_BYTES": int(env.get("KAIROS_IMPORT_MAX_MB", "512")) * 1024 * 1024,
        "IMPORT_MAX_ZIP_RATIO": float(env.get("KAIROS_IMPORT_MAX_ZIP_RATIO", "100")),
        "IMPORT_MAX_LINE_BYTES": int(env.get("KAIROS_IMPORT_MAX_LINE_KB", "1024")) * 1024,
        # Login attempts are counted in this storage (Redis in production so every web worker
        # shares the count; memory:// is per process).
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI") or "memory://",
        # Activation refuses a version whose quick quality check (dense NDCG@10 on a few train
        # queries) falls more than this below the figure recorded at its build.
        "ACTIVATION_MAX_PROBE_DROP": float(env.get("KAIROS_ACTIVATION_MAX_PROBE_DROP", "0.05")),
        "ADMIN_LOGIN_LIMIT": env.get("KAIROS_ADMIN_LOGIN_LIMIT", "5 per minute"),
        # An admin sign-in ends this long after the password was given (the cookie itself lasts
        # as long as the visitor id); destructive actions ask for it again after the shorter window.
        "ADMIN_SESSION_HOURS": float(env.get("KAIROS_ADMIN_SESSION_HOURS", "8")),
        "ADMIN_REAUTH_MINUTES": float(env.get("KAIROS_ADMIN_REAUTH_MINUTES", "15")),
        # Public limits (webapp/security.py): per visitor cookie, and per client address across
        # search and events. Behind a proxy set KAIROS_PROXY_HOPS, or every shopper shares its address.
        "SEARCH_RATE_LIMIT": env.get("KAIROS_SEARCH_RATE_LIMIT", "120 per minute"),
        "EVENTS_RATE_LIMIT": env.get("KAIROS_EVENTS_RATE_LIMIT", "120 per minute"),
        # Suggestions come a keystroke at a time: a budget of their own per visitor and per address,
        # so typing never uses up the searches.
        "SUGGEST_RATE_LIMIT": env.get("KAIROS_SUGGEST_RATE_LIMIT", "600 per minute"),
        "SUGGEST_IP_RATE_LIMIT": env.get("KAIROS_SUGGEST_IP_RATE_LIMIT", "6000 per minute"),
        "IP_RATE_LIMIT": env.get("KAIROS_IP_RATE_LIMIT", "1200 per minute"),
        "PROXY_HOPS": int(env.get("KAIROS_PROXY_HOPS", "0")),
        # Set explicitly: Flask-Limiter otherwise inherits the previous app's value in one process.
        "RATELIMIT_ENABLED": env.get("KAIROS_RATELIMIT_ENABLED", "1") not in ("0", "false", "no"),
        "RATELIMIT_HEADERS_ENABLED": True,  # Retry-After on a 429
        # Search must not need Redis: a limit store that cannot be reached falls back to per-process
        # memory (rechecked with backoff), and any other limiter error lets the request through.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_SWALLOW_ERRORS": True,
        "RATELIMIT_STORAGE_OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # The visitor cookie is written when it changes (a new visitor, the cart), not re-signed on
        # every response: that was 5% of a search's CPU. It lasts this long from its last change.
        "SESSION_REFRESH_EACH_REQUEST": False,
        "PERMANENT_SESSION_LIFETIME": timedelta(days=int(env.get("KAIROS_VISITOR_COOKIE_DAYS", "90"))),
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_HTTPONLY": True,  # Flask-Login's, should a "remember me" ever be offered
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": production,
        "CELERY": {
            "broker_url": broker,
            "result_backend": backend,
            "task_ignore_result": True,
            "worker_prefetch_multiplier": 1,
            "task_routes": {
                "catalog.*": {"queue": "inference"},
                "inference.*": {"queue": "inference"},
                "training.*": {"queue": "training"},
                "ranking.*": {"queue": "training"},
            },
            "task_default_queue": "inference",
            "broker_connection_retry_on_startup": True,
            # A pool child killed mid-task (SIGKILL, the OOM killer) re-runs the task, up to its
            # max_retries, after this delay; every task here is idempotent (it re-reads its job row).
            # Past the retries worker/celery_app.py marks the job failed.
            "task_retry_on_worker_lost": True,
            "task_annotations": {
                "*": {"default_retry_delay": float(env.get("KAIROS_WORKER_LOST_RETRY_SECONDS", "30"))}
            },
            # Redis redelivers an unacknowledged task after this long: longer than any task runs
            # (a fine-tune takes hours on CPU), or a live run would be handed out twice. Only
            # Redis takes this option; kombu's SQLAlchemy transport passes it to create_engine.
            "broker_transport_options": {"visibility_timeout": 6 * 3600} if broker.startswith("redis") else {},
        },
    }
    if overrides:
        celery_overrides = overrides.get("CELERY")
        config.update({k: v for k, v in overrides.items() if k != "CELERY"})
        if celery_overrides:
            config["CELERY"] = {**config["CELERY"], **celery_overrides}
    if not config["SECRET_KEY"]:
        raise RuntimeError("SECRET_KEY must be set when KAIROS_ENV=production")
    _no_ping_for_sqlite(config)
    _serialize_sqlite_writes(config)
    config["TUNE_STORAGE_URL"] = config["TUNE_STORAGE_URL"] or _tune_storage(config)
    return config


def _tune_storage(config: dict) -> str:
    """Optuna keeps its own alembic_version table, so it gets its own schema (PostgreSQL) or file (SQLite)."""
    url = str(config["SQLALCHEMY_DATABASE_URI"])
    if url.startswith("postgresql"):
        return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3Doptuna"
    return f"sqlite:///{Path(config['INSTANCE_DIR']) / 'optuna.db'}"


def _no_ping_for_sqlite(config: dict) -> None:
    """A SQLite file has no server to lose a connection to: the pre-ping is a wasted statement
    per request (a tenth of a cached search's time, profiled). PostgreSQL keeps it."""
    if str(config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite"):
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {**config["SQLALCHEMY_ENGINE_OPTIONS"], "pool_pre_ping": False}


def _serialize_sqlite_writes(config: dict) -> None:
    """On a SQLite database, connections take turns to write through webapp.sqlite_writes (not for PostgreSQL)."""
    if not config["SQLITE_SERIALIZED_WRITES"] or not str(config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite"):
        return
    from webapp.sqlite_writes import SerializedWritesConnection

    options = dict(config["SQLALCHEMY_ENGINE_OPTIONS"])
    options["connect_args"] = {"factory": SerializedWritesConnection, **options.get("connect_args", {})}
    config["SQLALCHEMY_ENGINE_OPTIONS"] = options
