"""Error handling: JSON for the API, pages for people, and 503 when the database is away."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import OperationalError
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
        return _respond(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(OperationalError)
    def database_unavailable(exc: OperationalError):
        # Fail fast and let the pool reconnect on the next request (pool_pre_ping).
        db.session.rollback()
        app.logger.warning("database unavailable: %s", exc.orig)
        return _respond(503, "The service is briefly unavailable, please retry.")
