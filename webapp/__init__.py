"""Kairos web application: storefront, admin console and JSON API."""

from __future__ import annotations

from flask import Flask

from webapp.config import PROJECT_ROOT, load_config


def create_app(config: dict | None = None) -> Flask:
    """Application factory: config first, then extensions, blueprints, CLI and hooks."""
    app = Flask(__name__, template_folder=str(PROJECT_ROOT / "templates"), static_folder=str(PROJECT_ROOT / "static"))
    app.config.from_mapping(load_config(config))
    # Keys in the order the views write them: sorting every search response's keys was a fifth
    # of its JSON encoding; JSON readers never depend on the order.
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from webapp import auth, cli, errors, filters, models, request_limits, security, visitors  # noqa: F401  (models register their tables)
    from webapp.admin import bp as admin_bp
    from webapp.api import bp as api_bp
    from webapp.celery_wiring import celery_init_app
    from webapp.extensions import csrf, db, limiter, login_manager, migrate, tune_sqlite
    from webapp.storefront import bp as storefront_bp

    request_limits.init_app(app)  # per-route body limits, checked before anything reads a body
    db.init_app(app)
    with app.app_context():
        tune_sqlite(db.engine)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    csrf.exempt(api_bp)  # JSON clients and beacons authenticate by visitor cookie, not forms
    login_manager.init_app(app)  # admin accounts (webapp.auth: identity, guard, roles)
    limiter.init_app(app)  # admin login, search and events (webapp.security)
    security.init_app(app)  # CSP and other headers on every response; client address behind proxies
    celery_init_app(app)
    app.register_blueprint(storefront_bp)
    app.register_blueprint(api_bp, url_prefix="/api")
    app.register_blueprint(admin_bp, url_prefix="/admin")
    visitors.init_app(app)
    errors.init_app(app)
    filters.init_app(app)
    cli.init_app(app)
    return app
