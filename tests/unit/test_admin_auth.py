"""Admin access (webapp.auth, webapp.admin.auth): login for every /admin route, CSRF on
every form, roles, the login rate limit, and the production secret."""

from __future__ import annotations

import re
import threading
import time

import pytest
from werkzeug.routing import Rule

from webapp import create_app
from webapp.config import load_config
from webapp.extensions import db
from webapp.models import ModelVersion
from webapp.services import admin_users
from webapp.services.admin_users import create_admin, set_active, set_password

PASSWORD = "correct horse battery staple"
FORM = re.compile(r"<form\b[^>]*method=\"post\"[^>]*>(.*?)</form>", re.S | re.I)
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch):
    monkeypatch.setattr(admin_users, "HASH_METHOD", "pbkdf2:sha256:1000")


def admin_rules(app) -> list[Rule]:
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("admin.")]
    assert len(rules) >= 15, "the admin blueprint lost its routes"
    return rules


def build(app, rule: Rule) -> str:
    """A URL for the rule with placeholder values for its arguments (ids need not exist)."""
    with app.test_request_context():
        return app.url_map.bind("localhost").build(rule.endpoint, {arg: 1 for arg in rule.arguments})


def methods(rule: Rule) -> list[str]:
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


def test_every_admin_route_but_login_needs_a_login(app, client):
    checked = 0
    for rule in admin_rules(app):
        url = build(app, rule)
        for method in methods(rule):
            response = client.open(url, method=method)
            if rule.endpoint == "admin.login":
                assert response.status_code == 200 or method == "POST", (url, method)
                continue
            checked += 1
            if url.endswith(".json"):
                assert response.status_code == 401, (url, method, response.status_code)
                assert response.get_json() == {"error": "login required"}
            else:
                assert response.status_code == 302, (url, method, response.status_code)
                assert response.headers["Location"].startswith("/admin/login"), (url, method)
            as_json = client.open(url, method=method, headers={"Accept": "application/json"})
            assert as_json.status_code == 401, (url, method, "json")
    assert checked >= 15


def test_anonymous_get_comes_back_to_the_page_after_login(client):
    response = client.get("/admin/catalog?q=towel")
    assert response.headers["Location"] == "/admin/login?next=/admin/catalog?q%3Dtowel"
    create_admin("a@example.com", PASSWORD)
    response = client.post(
        "/admin/login", data={"email": "a@example.com", "password": PASSWORD, "next": "/admin/catalog?q=towel"}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/admin/catalog?q=towel"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/admin", "/search?q=x", "/admin\\..\\x"])
def test_login_never_redirects_out_of_the_admin(client, target):
    create_admin("a@example.com", PASSWORD)
    response = client.post("/admin/login", data={"email": "a@example.com", "password": PASSWORD, "next": target})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"


def test_login_and_logout(client):
    create_admin("Ops@Example.com", PASSWORD, "analyst")
    assert "Sign in" in client.get("/admin/login").get_data(as_text=True)
    wrong = client.post("/admin/login", data={"email": "ops@example.com", "password": "not the password"})
    assert wrong.status_code == 200 and "Wrong email or password." in wrong.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302
    right = client.post("/admin/login", data={"email": " OPS@example.com ", "password": PASSWORD})
    assert right.status_code == 302
    page = client.get("/admin/").get_data(as_text=True)
    assert "ops@example.com" in page and "analyst" in page
    assert client.get("/admin/login").status_code == 302  # already signed in
    out = client.post("/admin/logout")
    assert out.status_code == 302 and out.headers["Location"] == "/admin/login"
    assert client.get("/admin/").status_code == 302


def test_unknown_and_inactive_accounts_cannot_log_in(client):
    create_admin("gone@example.com", PASSWORD)
    set_active("gone@example.com", False)
    for email in ("gone@example.com", "nobody@example.com"):
        response = client.post("/admin/login", data={"email": email, "password": PASSWORD})
        assert response.status_code == 200 and "Wrong email or password." in response.get_data(as_text=True)


def test_password_change_and_deactivation_end_open_sessions(client, login):
    user = login("admin")
    assert client.get("/admin/").status_code == 200
    set_password(user.email, "another long password")
    assert client.get("/admin/").status_code == 302
    client.post("/admin/login", data={"email": user.email, "password": "another long password"})
    assert client.get("/admin/").status_code == 200
    set_active(user.email, False)
    assert client.get("/admin/").status_code == 302


def test_passwords_are_stored_hashed_with_scrypt(app, monkeypatch):
    monkeypatch.undo()  # the real method, not the tests' cheap one
    user = create_admin("a@example.com", PASSWORD)
    assert PASSWORD not in user.password_hash and user.password_hash.startswith("scrypt:")
    assert admin_users.authenticate("a@example.com", PASSWORD).id == user.id


def enable_csrf(app) -> None:
    app.config["WTF_CSRF_ENABLED"] = True


def token(page: str) -> str:
    match = TOKEN.search(page)
    assert match, "no csrf_token in the page"
    return match.group(1)


def test_posts_without_a_csrf_token_get_400(app, client):
    enable_csrf(app)
    create_admin("a@example.com", PASSWORD)
    response = client.post("/admin/login", data={"email": "a@example.com", "password": PASSWORD})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    form_token = token(client.get("/admin/login").get_data(as_text=True))
    response = client.post(
        "/admin/login", data={"email": "a@example.com", "password": PASSWORD, "csrf_token": form_token}
    )
    assert response.status_code == 302
    assert client.post("/admin/models/rollback").status_code == 400
    assert client.post("/admin/logout").status_code == 400
    assert client.post("/admin/catalog/new", data={"external_id": "X1", "title": "Towel"}).status_code == 400


def test_every_admin_form_carries_a_csrf_token(app, client, login, make_product):
    enable_csrf(app)
    product = make_product()
    version = ModelVersion(name="v", status="ready", retrieval_mode="rrf")
    db.session.add(version)
    db.session.commit()
    login_page = client.get("/admin/login").get_data(as_text=True)
    create_admin("a@example.com", PASSWORD)
    client.post("/admin/login", data={"email": "a@example.com", "password": PASSWORD, "csrf_token": token(login_page)})
    pages = [
        "/admin/",
        "/admin/catalog",
        "/admin/catalog/new",
        f"/admin/catalog/{product.id}",
        "/admin/catalog/import",
        "/admin/models",
        "/admin/jobs",
        "/admin/events",
        "/admin/analytics",
    ]
    forms = 0
    for url in [*pages]:
        response = client.get(url)
        assert response.status_code == 200, url
        for body in FORM.findall(response.get_data(as_text=True)):
            forms += 1
            assert TOKEN.search(body), (url, body[:200])
    assert forms >= 15  # logout on every page, hide/show, save, import, activate, retrain, rebuild, rollback
    assert FORM.findall(login_page) and all(TOKEN.search(body) for body in FORM.findall(login_page))


def test_analysts_read_everything_but_change_nothing(app, client, login):
    login("analyst")
    for rule in admin_rules(app):
        url = build(app, rule)
        for method in methods(rule):
            if rule.endpoint in ("admin.login", "admin.logout") or method == "GET":
                continue
            response = client.open(url, method=method, data={"title": "x"})
            assert response.status_code == 403, (url, method, response.status_code)
    for url in ("/admin/", "/admin/catalog", "/admin/analytics", "/admin/events", "/admin/models", "/admin/jobs"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert "Retrain now" not in page.get_data(as_text=True) and "New product" not in page.get_data(as_text=True)
    assert client.get("/admin/catalog/new").status_code == 403
    assert client.get("/admin/catalog/import").status_code == 403
    assert client.post("/admin/logout").status_code == 302  # signing out is for everyone


def test_an_analyst_cannot_activate_a_model(app, client, login):
    version = ModelVersion(name="candidate", status="ready", retrieval_mode="rrf")
    db.session.add(version)
    db.session.commit()
    login("analyst")
    response = client.post(f"/admin/models/{version.id}/activate")
    assert response.status_code == 403 and "only admins" in response.get_data(as_text=True).lower()
    db.session.expire_all()
    assert db.session.get(ModelVersion, version.id).status == "ready"


def test_wrong_passwords_are_rate_limited_per_address_and_email(client):
    create_admin("a@example.com", PASSWORD)
    create_admin("b@example.com", PASSWORD)
    for _ in range(5):
        assert client.post("/admin/login", data={"email": "a@example.com", "password": "guess"}).status_code == 200
    sixth = client.post("/admin/login", data={"email": "a@example.com", "password": "guess"})
    assert sixth.status_code == 429 and "Too many failed sign-in attempts" in sixth.get_data(as_text=True)
    # Locked for the window even with the right password; another account from the same address is not.
    assert client.post("/admin/login", data={"email": "A@example.com", "password": PASSWORD}).status_code == 429
    assert client.post("/admin/login", data={"email": "b@example.com", "password": PASSWORD}).status_code == 302


def test_successful_logins_do_not_count_towards_the_limit(client):
    create_admin("a@example.com", PASSWORD)
    for _ in range(7):
        assert client.post("/admin/login", data={"email": "a@example.com", "password": PASSWORD}).status_code == 302


def test_rate_limit_storage_comes_from_the_environment(monkeypatch):
    # Shared storage (Redis) makes the limit hold across web workers; memory:// counts per process.
    monkeypatch.setenv("RATELIMIT_STORAGE_URI", "redis://127.0.0.1:6379/9")
    assert load_config()["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/9"
    monkeypatch.delenv("RATELIMIT_STORAGE_URI")
    assert load_config()["RATELIMIT_STORAGE_URI"] == "memory://"


def test_production_refuses_to_start_without_a_secret_key(monkeypatch, tmp_path):
    monkeypatch.setenv("KAIROS_ENV", "production")
    monkeypatch.setenv("KAIROS_INSTANCE_DIR", str(tmp_path))
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY must be set"):
        create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}"})
    monkeypatch.setenv("SECRET_KEY", "a-real-secret-from-the-environment")
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}"})
    assert app.config["SECRET_KEY"] == "a-real-secret-from-the-environment" and app.config["SESSION_COOKIE_SECURE"]


def test_logout_ends_the_session_even_for_a_copied_cookie(app, client, login):
    login("admin")
    name = app.config["SESSION_COOKIE_NAME"]
    copied = client.get_cookie(name).value
    assert client.post("/admin/logout").status_code == 302
    replay = app.test_client()
    replay.set_cookie(name, copied)
    assert replay.get("/admin/").status_code == 302  # the old cookie is still validly signed, but ended


def test_a_sign_in_ends_after_the_admin_session_lifetime(app, client, login):
    login("admin")
    assert client.get("/admin/").status_code == 200
    with client.session_transaction() as session:
        session["admin_at"] -= app.config["ADMIN_SESSION_HOURS"] * 3600 + 60
    assert client.get("/admin/").status_code == 302


def test_destructive_actions_ask_for_the_password_again(app, client, login, make_product):
    login("admin")
    product = make_product()
    with client.session_transaction() as session:
        session["admin_confirmed_at"] -= app.config["ADMIN_REAUTH_MINUTES"] * 60 + 1
    hide = client.post(
        f"/admin/catalog/{product.id}/active", data={"active": "0"}, headers={"Referer": "/admin/catalog"}
    )
    assert hide.status_code == 302 and hide.headers["Location"].startswith("/admin/reauth?next=/admin/catalog")
    as_json = client.post(f"/admin/models/{product.id}/activate", headers={"Accept": "application/json"})
    assert as_json.status_code == 401 and as_json.get_json()["error"] == "re-authentication required"
    db.session.expire_all()
    assert db.session.get(type(product), product.id).is_active, "nothing changed before the password was confirmed"
    wrong = client.post("/admin/reauth", data={"password": "not it", "next": "/admin/catalog"})
    assert wrong.status_code == 200 and "Wrong password" in wrong.get_data(as_text=True)
    right = client.post("/admin/reauth", data={"password": PASSWORD, "next": "/admin/catalog"})
    assert right.status_code == 302 and right.headers["Location"] == "/admin/catalog"
    assert client.post(f"/admin/catalog/{product.id}/active", data={"active": "0"}).status_code == 302
    db.session.expire_all()
    assert not db.session.get(type(product), product.id).is_active


def test_concurrent_wrong_passwords_are_counted_before_they_are_checked(app, monkeypatch):
    create_admin("a@example.com", PASSWORD)
    checked = []

    def slow_check(stored: str, password: str) -> bool:
        checked.append(password)
        time.sleep(0.05)  # a real hash takes this long: every thread arrives while the others are checking
        return False

    monkeypatch.setattr(admin_users, "check_password_hash", slow_check)
    statuses: list[int] = []

    def attempt() -> None:
        response = app.test_client().post("/admin/login", data={"email": "a@example.com", "password": "guess"})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=attempt) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(checked) <= 5, f"{len(checked)} of 24 concurrent attempts checked the password"
    assert statuses.count(429) >= 19
