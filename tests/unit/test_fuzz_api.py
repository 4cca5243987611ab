"""Bad input at the public search and pages, by property: any query string gets results or a
JSON 400, never a 5xx, and only valid searches are logged. Hostile catalog files are refused
with a message through the admin upload and the CLI. The last tests run schemathesis over
docs/openapi.yaml against the app in process. Event bodies: test_fuzz_api_events.py."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.fuzz_support import FUZZ, assert_json_error, count, open_shop
from webapp.extensions import db
from webapp.models import Event, Product, SearchQuery

ROOT = Path(__file__).resolve().parents[2]
INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE products; --",
    '" OR 1=1 --',
    "1; SELECT pg_sleep(5)",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "%00",
    "\x00\x01\x1f",
    "title:towel AND",
    "brand:* OR (",
    '"unbalanced',
    "towel~3^9",
    "[a TO z]",
    "{{7*7}}",
    "${jndi:ldap://x/a}",
    "\u202etowel",
    "𝔱𝔬𝔴𝔢𝔩",
    "😀" * 60,
    "\ufdfa" * 200,  # NFKC turns each into 18 characters: the logged form must still fit its column
    "a" * 201,
    "NaN",
    "-1e309",
]
SEARCH_PARAMS = ["q", "page", "sort", "brand", "price_min", "price_max", "rating_min"]
values = st.one_of(
    st.text(max_size=250),
    st.sampled_from(INJECTIONS),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats().map(str),
)
query_pairs = st.lists(st.tuples(st.one_of(st.sampled_from(SEARCH_PARAMS), st.text(max_size=8)), values), max_size=8)


@pytest.fixture
def shop(app, client, make_product):
    """A few products, limits out of the way, and one search this client made (with its hits)."""
    return open_shop(app, client, make_product)


@FUZZ
@given(pairs=query_pairs)
def test_any_search_parameters_get_results_or_a_json_400(client, shop, pairs):
    before = count(SearchQuery)
    response = client.get("/api/search", query_string=pairs)
    assert response.status_code < 500, (pairs, response.data[:300])
    if response.status_code != 200:
        assert_json_error(response)
        assert count(SearchQuery) == before  # a refused search is not logged
        return
    body = response.get_json()
    assert count(SearchQuery) == before + 1
    logged = db.session.get(SearchQuery, body["search_id"])
    assert logged.text == body["query"] and len(logged.text) <= 200
    assert not any(ord(ch) < 32 for ch in logged.text)  # control characters never reach the log
    assert len(body["results"]) <= body["page_size"]


@FUZZ
@given(raw=st.binary(max_size=300))
def test_any_bytes_in_the_query_string_never_break_search(client, shop, raw):
    response = client.get("/api/search", query_string="q=" + quote_from_bytes(raw) + "&page=1")
    assert response.status_code in (200, 400), (raw, response.data[:300])
    if response.status_code == 400:
        assert_json_error(response)


@pytest.mark.parametrize(
    "url",
    ["/product/%00", "/product/" + "x" * 300, "/product/%FF%FE", "/search?q=%00&brand=%00", "/admin/login?next=%00"],
)
def test_hostile_paths_never_500(client, shop, url):
    # PostgreSQL refuses NUL characters outright: a 400 (or the page's own 404), never a crash.
    assert client.get(url).status_code < 500


# Hostile catalog files: refused with a message in the admin upload and the CLI alike.


def _zip_bomb() -> bytes:
    """A small zip whose one member inflates to 20 MiB of zeros (over the patched 1 MiB limit)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("catalog.jsonl", b"\0" * (20 * 2**20))
    assert len(buffer.getvalue()) < 100_000
    return buffer.getvalue()


HOSTILE_FILES = [
    ("bomb.zip", _zip_bomb(), "unzips to more than 1 MiB"),
    ("huge.jsonl", b'{"external_id": "H1", "title": "x"}\n' * 40_000, "is larger than 1 MiB"),
]


@pytest.mark.parametrize(("name", "content", "message"), HOSTILE_FILES)
def test_hostile_uploads_are_refused_with_a_message(app, client, login, name, content, message):
    app.config["IMPORT_MAX_BYTES"] = 2**20
    login("admin")
    response = client.post("/admin/catalog/import", data={"file": (io.BytesIO(content), name)})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and message in page, page[-2000:]
    assert "/tmp" not in page and count(Product) == 0


@pytest.mark.parametrize(("name", "content", "message"), HOSTILE_FILES)
def test_hostile_files_are_refused_by_the_cli(app, runner, tmp_path, name, content, message):
    app.config["IMPORT_MAX_BYTES"] = 2**20
    path = tmp_path / name
    path.write_bytes(content)
    result = runner.invoke(args=["catalog", "import", str(path)])
    assert result.exit_code != 0 and message in result.output
    assert count(Product) == 0


def test_a_latin1_file_is_reported_by_line_by_the_cli(runner, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("external_id,title\nL1,Serviette éponge\n".encode("latin-1"))
    result = runner.invoke(args=["catalog", "import", str(path)])
    assert result.exit_code != 0 and "line 2: line is not valid UTF-8" in result.output
    assert count(Product) == 0


# The OpenAPI description, exercised by schemathesis (bounded: 50 examples per operation).

SCHEMA = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.yaml")


@pytest.fixture
def api_app(tmp_path):
    from tests.conftest import test_database_url as database_url
    from webapp import create_app
    from webapp.services.impression_flush import stop_impression_writer

    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url(tmp_path),
            "INSTANCE_DIR": str(tmp_path),
            "RATELIMIT_ENABLED": False,
            "CELERY": {"broker_url": "memory://", "result_backend": "cache+memory://"},
        }
    )
    with app.app_context():
        db.drop_all()
        db.create_all()
        db.session.add_all(Product(external_id=f"S{n}", title=f"Towel {n}", brand="Acme", price=n) for n in range(5))
        db.session.commit()
        yield app
        stop_impression_writer(app)  # its writer thread must not outlive the tables
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


@pytest.mark.integration
@SCHEMA.parametrize()
@settings(max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_openapi_contract(api_app, case):
    before = count(Event)
    response = case.call(app=api_app)
    # Schema-valid is not always acceptable: price_min above price_max, or an event naming a
    # product or search that does not exist (or is another visitor's) are refused by design. And
    # schema-invalid is not always refused: an empty parameter (page=, price_min=) counts as
    # absent, as HTML forms send them. What must hold: no 5xx, and answers that match the schema.
    lenient = [schemathesis.checks.positive_data_acceptance, schemathesis.checks.negative_data_rejection]
    case.validate_response(response, excluded_checks=lenient)
    assert response.status_code < 500
    if case.path == "/api/events" and response.status_code != 201:
        assert count(Event) == before
    db.session.remove()  # requests share this test's app context: end its transaction per example


def test_the_openapi_file_names_every_public_route(app):
    documented = set(yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())["paths"])
    served = {r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("api.")}
    assert served == documented
