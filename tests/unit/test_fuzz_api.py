"""Bad input at the public API, by property: any query string and any JSON body gets a 2xx or
a JSON 4xx naming the error, never a 5xx, and only valid input leaves rows behind. Hostile
catalog files are refused with a message through the admin upload and the CLI. The last test
runs schemathesis over docs/openapi.yaml against the app in process."""

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
from sqlalchemy import func, select

from engine.catalog import readers
from webapp.extensions import db
from webapp.models import EVENT_TYPES, Event, Impression, Product, SearchQuery

ROOT = Path(__file__).resolve().parents[2]
FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,  # no .hypothesis folder in the checkout; failures print their example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
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


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def shop(app, client, make_product):
    """A few products, limits out of the way, and one search this client made (with its hits)."""
    app.config.update(SEARCH_RATE_LIMIT="1000000 per minute", EVENTS_RATE_LIMIT="1000000 per minute")
    app.config["IP_RATE_LIMIT"] = "1000000 per minute"
    for n in range(6):
        make_product(title=f"Cotton towel {n}", brand=["Acme", "<b>Brand</b>"][n % 2], price=5.0 + n)
    make_product(external_id="XSS", title="<script>alert(1)</script>")
    found = client.get("/api/search?q=towel").get_json()
    return found["search_id"], [(r["product_id"], r["position"]) for r in found["results"]]


def assert_json_error(response) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.data[:300])
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], response.data[:300]
    return body


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


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=16,
)


@FUZZ
@given(body=st.one_of(json_values, st.dictionaries(st.just("events"), json_values)))
def test_any_json_body_is_refused_as_json_and_stores_nothing(client, shop, body):
    before = count(Event)
    response = client.post("/api/events", json=body)
    assert_json_error(response)
    assert count(Event) == before


@st.composite
def near_valid_events(draw, shop):
    """Event batches built from real ids and real junk, so some are valid and most are not."""
    search_id, hits = shop
    product_ids = [p for p, _ in hits] + ["XSS", "NOPE", "", "x" * 65, "<script>"]
    events = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        event = {
            "type": draw(st.sampled_from([*EVENT_TYPES, "view", "", "CLICK"])),
            "product_id": draw(st.one_of(st.sampled_from(product_ids), st.integers(), st.none())),
        }
        if draw(st.booleans()):
            event["search_id"] = draw(
                st.one_of(st.just(search_id), st.integers(-5, search_id + 5), st.integers(), st.text(max_size=3))
            )
        if draw(st.booleans()):
            event["position"] = draw(st.one_of(st.integers(-1, 30), st.floats(), st.booleans()))
        if draw(st.booleans()):
            event["quantity"] = draw(st.one_of(st.integers(-1, 102), st.just("2")))
        if draw(st.integers(0, 9)) == 0:
            event[draw(st.text(max_size=6))] = draw(json_values)
        events.append(event)
    return events


def _is_valid_as_stored(event: Event, visitor_id: str) -> bool:
    """What a stored row must satisfy: a real product, and a search of this visitor that showed it."""
    if db.session.get(Product, event.product_id) is None or not 1 <= event.quantity <= 100:
        return False
    if event.search_id is None:
        return event.position is None
    search = db.session.get(SearchQuery, event.search_id)
    shown = select(Impression.id).where(
        Impression.search_id == event.search_id, Impression.product_id == event.product_id
    )
    if event.position is not None:
        shown = shown.where(Impression.position == event.position)
    return search is not None and search.visitor_id == visitor_id and db.session.scalar(shown) is not None


@FUZZ
@given(data=st.data())
def test_event_batches_store_all_valid_or_nothing(client, shop, data):
    events = data.draw(near_valid_events(shop))
    before = count(Event)
    response = client.post("/api/events", json={"events": events})
    assert response.status_code in (201, 400), (events, response.data[:300])
    if response.status_code == 400:
        assert_json_error(response)
        assert count(Event) == before
        return
    body = response.get_json()
    assert body["stored"] == len(events) == count(Event) - before
    visitor = db.session.get(SearchQuery, shop[0]).visitor_id
    assert all(_is_valid_as_stored(db.session.get(Event, i), visitor) for i in body["ids"])


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("[" * 100_000 + "]" * 100_000, "application/json"),  # deeper than the parser's stack
        ('{"events": [' + "[" * 5000 + "]" * 5000 + "]}", "application/json"),
        (b"\xff\xfe{", "application/json"),
        ('{"events": [{"type": "click", "product_id": "P00001", "quantity": NaN}]}', "application/json"),
        ('{"events": [{"type": "click", "product_id": "P00001"}]}', "text/plain"),
        ("events=1", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_event_bodies_are_json_400s(client, shop, data, content_type):
    response = client.post("/api/events", data=data, content_type=content_type)
    assert response.status_code == 400
    assert_json_error(response)
    assert count(Event) == 0


@pytest.mark.parametrize(
    "url",
    ["/product/%00", "/product/" + "x" * 300, "/product/%FF%FE", "/search?q=%00&brand=%00", "/admin/login?next=%00"],
)
def test_hostile_paths_never_500(client, shop, url):
    # PostgreSQL refuses NUL characters outright: a 400 (or the page's own 404), never a crash.
    assert client.get(url).status_code < 500


def test_a_huge_event_batch_is_refused_whole(client, shop):
    search_id, hits = shop
    click = {"type": "click", "product_id": hits[0][0], "search_id": search_id, "position": hits[0][1]}
    response = client.post("/api/events", json={"events": [click] * 101})
    assert "at most 100 events" in assert_json_error(response)["error"] and count(Event) == 0


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
    ("latin1.csv", "external_id,title\nL1,Serviette éponge\n".encode("latin-1"), "is not UTF-8 text"),
]


@pytest.mark.parametrize(("name", "content", "message"), HOSTILE_FILES)
def test_hostile_uploads_are_refused_with_a_message(app, client, login, monkeypatch, name, content, message):
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 2**20)
    login("admin")
    response = client.post("/admin/catalog/import", data={"file": (io.BytesIO(content), name)})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and message in page, page[-2000:]
    assert "/tmp" not in page and count(Product) == 0


@pytest.mark.parametrize(("name", "content", "message"), HOSTILE_FILES)
def test_hostile_files_are_refused_by_the_cli(runner, tmp_path, monkeypatch, name, content, message):
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 2**20)
    path = tmp_path / name
    path.write_bytes(content)
    result = runner.invoke(args=["catalog", "import", str(path)])
    assert result.exit_code != 0 and message in result.output
    assert count(Product) == 0


# The OpenAPI description, exercised by schemathesis (bounded: 50 examples per operation).

SCHEMA = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.yaml")


@pytest.fixture
def api_app(tmp_path):
    from tests.conftest import test_database_url as database_url
    from webapp import create_app

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
