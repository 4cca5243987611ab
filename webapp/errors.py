"""Error handling: JSON for the API, pages for people, and 503 when the database is away."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import DataError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from webapp.extensions import db


class InputError(ValueError):
    """Bad input from a client; the message is safe to show and becomes a 400."""

    def __init__(self, message: str, details: list | None = None) -> None:
        super().__init__(message)
        self.details = details or []


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _respond(status: int, message: str, details: list | None = None):
    if _wants_json():
        body = {"error": message}
        if details:
            body["details"] = details
        return jsonify(body), status
    return render_template("errors/error.html", status=status, message=message), status


def init_app(app: Flask) -> None:
    @app.errorhandler(InputError)
    def input_error(exc: InputError):
        return _respond(400, str(exc), exc.details)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        body, status = _respond(exc.code or 500, exc.description or exc.name)
        # Keep the exception's own headers: Allow on a 405 (RFC 9110), WWW-Authenticate on a 401.
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        return body, status, headers

    def drop_session(exc: SQLAlchemyError) -> None:
        """Forget a session whose connection the database cut (its ROLLBACK failed)."""
        app.logger.warning("database connection lost while closing the session: %s", exc)
        if db.session.registry.has():
            try:
                db.session.registry().invalidate()  # drop the dead connection instead of pooling it
            except SQLAlchemyError:
                pass
            db.session.registry.clear()

    @app.teardown_appcontext
    def release_session(_exc: BaseException | None) -> None:
        # Runs before Flask-SQLAlchemy's own teardown (registered earlier, so called later). A
        # connection cut after the response was made (a database restart) fails the session's
        # closing ROLLBACK; that must not turn a finished request into a 500 from gunicorn.
        try:
            db.session.remove()
        except SQLAlchemyError as exc:
            drop_session(exc)

    @app.errorhandler(DataError)
    def data_refused(exc: DataError):
        # The database refused a value that validation let through (a NUL byte, a number or text
        # beyond its column): the request's fault, answered as such instead of a 500.
        db.session.rollback()
        app.logger.warning("database refused a value: %s", exc.orig)
        return _respond(400, "a value in the request cannot be stored (too long, out of range, or a NUL character)")

    @app.errorhandler(OperationalError)
    def database_unavailable(exc: OperationalError):
        # Fail fast and let the pool reconnect on the next request (pool_pre_ping). The failure
        # may have come from another connection (an event waiting for a search opens its own):
        # the session's connection, cut by the same restart, then fails its ROLLBACK too.
        try:
            db.session.rollback()
        except SQLAlchemyError as lost:
            drop_session(lost)
        app.logger.warning("database unavailable: %s", exc.orig)
        return _respond(503, "The service is briefly unavailable, please retry.")
