"""gunicorn settings for Kairos; override with GUNICORN_* environment variables."""

import gc
import os
import signal

# Each worker holds its own in-memory indexes; threads share them within a worker.
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "2"))  # tuned: bench/README.md "Serving tuning"
worker_class = "gthread"
timeout = 30
# The longest request line gunicorn takes (its maximum; the default is 4094): a query of 200
# 4-byte characters is 2,400 bytes percent-encoded. docs/openapi.yaml documents the 414 beyond it.
limit_request_line = 8190
graceful_timeout = 10
accesslog = os.environ.get("GUNICORN_ACCESSLOG")  # unset: no access log on the hot path
# One control socket per instance: the default ($HOME/.gunicorn/gunicorn.ctl) is shared, so a
# second server on the same machine (a test run beside `make run`) would take over the first's.
_instance = os.environ.get("KAIROS_INSTANCE_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "instance"
)
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET") or os.path.join(_instance, "gunicorn.ctl")


def post_worker_init(worker) -> None:
    """Build this worker's indexes and load the active model before it takes traffic."""
    # Ctrl-C reaches the whole process group; the master then sends each worker SIGQUIT too.
    # A worker hit by both sometimes hangs in its quit handler until the master SIGKILLs it
    # (graceful_timeout later), so workers leave SIGINT to the master.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    from sqlalchemy.exc import SQLAlchemyError

    from webapp.services.search_log import start_search_log
    from webapp.services.serving_follower import start_follower
    from webapp.services.serving_version import warm_up

    with worker.wsgi.app_context():
        try:
            warm_up()  # the index, and the active model version's encoder and vectors
        except SQLAlchemyError as exc:
            # A database blip while a worker restarts must not stop the server (gunicorn halts on
            # a worker boot error); the first request then builds the index instead.
            worker.log.warning("search index not warmed: %s", exc)
    # Searches are journaled and stored after the response; also stores dead workers' journals.
    start_search_log(worker.wsgi)
    # Every sync of the serving state (catalog, versions, signals, experiment, suggestions) runs
    # in this thread from now on; requests only read the snapshot it publishes.
    start_follower(worker.wsgi)
    # The indexes, model and catalog just loaded live as long as the worker: moved out of the
    # collector's reach, so a full collection walks only what requests made since (it walked
    # all of it, a pause of 0.1-0.2 s of CPU that stalled every request of the worker).
    gc.collect()
    gc.freeze()


def worker_exit(server, worker) -> None:
    """Write the searches and impression counts this worker still holds, so a graceful stop or restart loses none."""
    from sqlalchemy.exc import SQLAlchemyError

    from webapp.services.impression_flush import stop_impression_writer
    from webapp.services.search_log import stop_search_log
    from webapp.services.serving_follower import stop_follower

    stop_follower(worker.wsgi)
    try:
        stop_search_log(worker.wsgi)
    except SQLAlchemyError as exc:  # the journal stays on disk; the next worker to start stores it
        worker.log.warning("search log not stored at exit, left in its journal: %s", exc)
    try:
        stop_impression_writer(worker.wsgi)
    except SQLAlchemyError as exc:  # the database is away: `flask signals rebuild` recounts from impressions
        worker.log.warning("impression counts not written at exit: %s", exc)
