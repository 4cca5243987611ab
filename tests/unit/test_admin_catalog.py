"""Catalog management (webapp.admin.catalog, webapp.services.catalog_admin): list, create,
edit, hide and show products, and import a browser upload through the CLI's importer."""

from __future__ import annotations

import io
import json
import zipfile
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Product
from webapp.services.catalog_admin import list_products
from worker.tasks.catalog import import_file

FIELDS = {"external_id": "NEW-1", "title": "Linen tea towel", "brand": "Acme", "price": "7.50", "rating": "4.5"}


@pytest.fixture
def admin(login):
    return login("admin")


def product(external_id: str) -> Product | None:
    db.session.expire_all()
    return db.session.scalar(select(Product).where(Product.external_id == external_id))


def storefront_finds(client, text: str, external_id: str) -> bool:
    return f"/product/{external_id}?" in client.get("/search", query_string={"q": text}).get_data(as_text=True)


def test_list_searches_title_brand_and_id_and_filters_status(client, admin, make_product):
    make_product(external_id="T1", title="Cotton bath towel", brand="Acme")
    make_product(external_id="M1", title="Coffee mug", brand="Mugsy")
    make_product(external_id="OLD", title="Retired towel", is_active=False)
    page = client.get("/admin/catalog?q=towel").get_data(as_text=True)
    assert "Cotton bath towel" in page and "Retired towel" in page and "Coffee mug" not in page
    assert "Coffee mug" in client.get("/admin/catalog?q=mugsy").get_data(as_text=True)
    assert "Coffee mug" in client.get("/admin/catalog?q=m1").get_data(as_text=True)
    active = client.get("/admin/catalog?q=towel&status=active").get_data(as_text=True)
    assert "Cotton bath towel" in active and "Retired towel" not in active
    assert "Retired towel" in client.get("/admin/catalog?status=inactive").get_data(as_text=True)


def test_search_takes_like_wildcards_literally(app, make_product):
    make_product(external_id="A1", title="100% cotton")
    make_product(external_id="A2", title="Cotton blend")
    assert [p.external_id for p in list_products("100%").items] == ["A1"]
    assert list_products("_otton").total == 0


def test_list_paginates_most_recently_changed_first(client, admin, make_product):
    for n in range(5):
        make_product(external_id=f"P{n}", title=f"Item {n}")
    page = list_products(per_page=2)
    assert page.total == 5 and page.pages == 3
    assert [p.external_id for p in page.items] == ["P4", "P3"]
    assert [p.external_id for p in list_products(page=3, per_page=2).items] == ["P0"]
    html = client.get("/admin/catalog?q=item&page=1").get_data(as_text=True)
    assert "5 in all" in html


def test_create_makes_a_product_searchable_in_the_shop(client, admin):
    response = client.post("/admin/catalog/new", data=FIELDS)
    assert response.status_code == 302
    created = product("NEW-1")
    assert created.title == "Linen tea towel" and created.price == 7.5 and created.is_active
    assert response.headers["Location"] == f"/admin/catalog/{created.id}"
    assert storefront_finds(client, "linen tea towel", "NEW-1")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"title": ""}, "missing title"),
        ({"rating": "7"}, "rating must be between 0 and 5"),
        ({"external_id": "bad id!"}, "must be 1-64 letters"),
        ({"image_url": "javascript:alert(1)"}, "image must be an http(s) URL"),
    ],
)
def test_create_validates_with_the_importers_rules(client, admin, change, message):
    response = client.post("/admin/catalog/new", data={**FIELDS, **change})
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert db.session.scalar(select(Product.id)) is None


def test_create_refuses_a_taken_external_id(client, admin, make_product):
    make_product(external_id="NEW-1", title="Already here")
    response = client.post("/admin/catalog/new", data=FIELDS)
    assert response.status_code == 400 and "already exists" in response.get_data(as_text=True)
    assert product("NEW-1").title == "Already here"


def test_edit_saves_bumps_updated_at_and_the_shop_sees_it(client, admin, make_product):
    item = make_product(external_id="E1", title="Plain mug", brand="Acme")
    assert storefront_finds(client, "plain mug", "E1")
    before = item.updated_at
    form = {**item.to_dict(), "title": "Speckled stoneware mug", "external_id": "IGNORED"}
    form = {k: ("" if v is None else v) for k, v in form.items()}
    response = client.post(f"/admin/catalog/{item.id}", data=form)
    assert response.status_code == 302
    saved = product("E1")
    assert saved.title == "Speckled stoneware mug" and saved.updated_at > before
    assert product("IGNORED") is None  # the external id is fixed once created
    assert storefront_finds(client, "speckled stoneware", "E1") and not storefront_finds(client, "plain", "E1")
    again = client.post(f"/admin/catalog/{item.id}", data=form, follow_redirects=True)
    assert "Nothing changed." in again.get_data(as_text=True) and product("E1").updated_at == saved.updated_at


def test_edit_refuses_invalid_fields_and_keeps_the_product(client, admin, make_product):
    item = make_product(external_id="E1", title="Plain mug", price=5.0)
    response = client.post(f"/admin/catalog/{item.id}", data={"title": "Mug", "price": "-3"})
    assert response.status_code == 400 and "price must be between 0" in response.get_data(as_text=True)
    assert product("E1").price == 5.0 and product("E1").title == "Plain mug"


def test_hide_and_show_a_product(client, admin, make_product):
    item = make_product(external_id="H1", title="Wool blanket")
    assert storefront_finds(client, "wool blanket", "H1")
    before = item.updated_at
    response = client.post(f"/admin/catalog/{item.id}/active", data={"active": "0", "back": "/admin/catalog?q=wool"})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/catalog?q=wool"
    assert not product("H1").is_active and product("H1").updated_at > before
    assert not storefront_finds(client, "wool blanket", "H1")
    assert client.get("/product/H1").status_code == 404
    client.post(f"/admin/catalog/{item.id}/active", data={"active": "1", "back": "https://evil.example/"})
    assert product("H1").is_active and storefront_finds(client, "wool blanket", "H1")


def test_missing_products_are_404(client, admin):
    assert client.get("/admin/catalog/999").status_code == 404
    assert client.post("/admin/catalog/999/active", data={"active": "0"}).status_code == 404


@pytest.fixture
def sent(app, monkeypatch):
    """Tasks sent to the broker (no eager Celery in unit tests): (name, args)."""
    calls: list[tuple[str, list]] = []

    def send_task(name, args=None, **_):
        calls.append((name, list(args or [])))
        return SimpleNamespace(id=f"task-{len(calls)}")

    monkeypatch.setattr(app.extensions["celery"], "send_task", send_task)
    return calls


def upload(client, name: str, content: bytes, **form):
    return client.post(
        "/admin/catalog/import", data={"file": (io.BytesIO(content), name), **form}, content_type="multipart/form-data"
    )


def upload_and_run(client, sent, name: str, content: bytes, **form) -> str:
    """Upload, check the job was queued (not run in the request), run the task body, read the report page."""
    response = upload(client, name, content, **form)
    assert response.status_code == 302, response.get_data(as_text=True)
    job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert sent[-1] == ("catalog.import_file", [job_id])
    assert client.get(f"/admin/catalog/import/{job_id}").get_data(as_text=True).count("Queued") == 1
    import_file(job_id)
    db.session.expire_all()
    return client.get(f"/admin/catalog/import/{job_id}").get_data(as_text=True)


JSONL = "\n".join(
    [
        json.dumps({"id": "G1", "title": "Bath towel"}),
        json.dumps({"id": "B1", "title": "Bad", "rating": 11}),
        "{not json",
        json.dumps({"id": "G2", "title": "Coffee mug", "price": "7.50"}),
    ]
).encode()


def test_upload_becomes_a_job_whose_report_lists_the_bad_lines(client, admin, runner, tmp_path, sent):
    page = upload_and_run(client, sent, "catalog.jsonl", JSONL)
    assert "Succeeded" in page and "2 stored (2 created, 0 updated, 0 unchanged), 2 rejected" in page
    assert "rating must be between 0 and 5" in page and "invalid JSON" in page
    assert '<td class="num">2</td>' in page and '<td class="num">3</td>' in page  # by line
    assert 'http-equiv="refresh"' not in page  # a finished job's page stops refreshing
    assert product("G1") and product("G2") and not product("B1")
    assert storefront_finds(client, "coffee mug", "G2")
    # The CLI reads the same file the same way: now everything is unchanged.
    (tmp_path / "same.jsonl").write_bytes(JSONL)
    cli = runner.invoke(args=["catalog", "import", str(tmp_path / "same.jsonl")])
    assert "0 created, 0 updated, 2 unchanged, 2 rejected" in cli.stdout
    assert "2 stored (0 created, 0 updated, 2 unchanged)" in upload_and_run(client, sent, "catalog.jsonl", JSONL)


def test_a_queued_import_page_refreshes_and_stores_nothing_yet(client, admin, sent):
    response = upload(client, "catalog.jsonl", JSONL)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Queued" in page and 'http-equiv="refresh"' in page
    assert product("G1") is None  # nothing is imported inside the request


def test_upload_of_a_zipped_csv(client, admin, sent):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("products.csv", "id,title,brand,price\nC1,Camping stove,Blaze,49.90\nC2,,Blaze,1\n")
    page = upload_and_run(client, sent, "export.zip", buffer.getvalue())
    assert "1 stored (1 created, 0 updated, 0 unchanged), 1 rejected" in page and "missing title" in page
    assert product("C1").price == 49.9


def test_upload_name_is_sanitised_never_a_path_and_the_file_is_deleted(app, client, admin, tmp_path, sent):
    page = upload_and_run(client, sent, "../../etc/<b>cron</b>.jsonl", JSONL)
    assert "2 created" in page
    assert "etc_bcron_b.jsonl" in page and "../" not in page and "<b>cron" not in page
    assert list((tmp_path / "uploads").iterdir()) == []  # the job deleted its copy
    assert not (tmp_path / "etc").exists()


def test_reactivate_is_the_admins_choice(client, admin, sent, make_product):
    make_product(external_id="H1", title="Hidden towel", is_active=False)
    row = json.dumps({"id": "H1", "title": "Hidden towel", "is_active": True}).encode()
    assert "1 kept hidden" in upload_and_run(client, sent, "c.jsonl", row)
    assert product("H1").is_active is False
    upload_and_run(client, sent, "c.jsonl", row, reactivate="1")
    assert product("H1").is_active is True


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("catalog.exe", b"MZ", "the file must end in .ndjson, .jsonl, .json, .csv, .zip"),
        ("catalog.zip", b"PK\x05\x06" + b"\x00" * 18, "must hold exactly one"),
    ],
)
def test_upload_refuses_unreadable_files_clearly(client, admin, sent, name, content, message):
    response = upload(client, name, content)
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and message in page
    assert "upload-" not in page and "/tmp" not in page  # no server path leaks
    assert sent == []


def test_a_zip_whose_ratio_is_a_bomb_is_refused_before_a_job(client, admin, sent, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("c.jsonl", b" " * (8 * 2**20))
    response = upload(client, "c.zip", buffer.getvalue())
    assert response.status_code == 400 and "times larger than it is zipped (at most 100)" in response.get_data(
        as_text=True
    )
    assert sent == [] and list((tmp_path / "uploads").iterdir()) == []


def test_upload_without_a_file(client, admin, sent):
    response = client.post("/admin/catalog/import", data={}, content_type="multipart/form-data")
    assert response.status_code == 400 and "choose a catalog file" in response.get_data(as_text=True)


def test_upload_over_the_size_limit_gets_413_with_a_clear_page(app, client, admin):
    app.config["MAX_UPLOAD_BYTES"] = 1024 * 1024
    response = upload(client, "big.jsonl", b"x" * (1024 * 1024 + 10))
    page = response.get_data(as_text=True)
    assert response.status_code == 413 and "larger than the 1 MB upload limit" in page and "Kairos admin" in page
    assert db.session.scalar(select(Product.id)) is None


def test_the_upload_limit_defaults_to_50_mb(app):
    assert app.config["MAX_UPLOAD_BYTES"] == 50 * 1024 * 1024


def test_a_created_product_is_embedded_in_process_by_the_active_version(app, client, admin, make_product, tiny_model):
    from tests.unit.serving_fixtures import build_version_dir
    from webapp.services.model_versions import activate_version, create_version
    from webapp.services.search_index import product_card, searcher_state
    from webapp.services.serving_version import warm_up

    base = make_product(external_id="RUN-1", title="Red running shoes")
    version = create_version("tiny")
    build_version_dir(version.artifact_path, [product_card(base)], retrieval_mode="rrf")
    version.status = "ready"
    db.session.commit()
    activate_version(version.id)
    warm_up()  # this worker serves the version, as gunicorn's hook does at start
    state = searcher_state()
    assert state.version_id == version.id
    client.post("/admin/catalog/new", data=FIELDS)
    created = product("NEW-1")
    assert created.id not in state.searcher.bundle.vectors
    assert storefront_finds(client, "linen tea towel", "NEW-1")  # the next request syncs the index
    assert created.id in state.searcher.bundle.vectors  # and the vector was computed here, by the ONNX encoder


def test_an_upload_the_broker_refuses_is_a_503_and_leaves_no_file(app, client, admin, tmp_path, monkeypatch):
    def refuse(*_, **__):
        raise ConnectionError("broker down")

    monkeypatch.setattr(app.extensions["celery"], "send_task", refuse)
    response = upload(client, "catalog.jsonl", JSONL)
    assert response.status_code == 503 and "could not be queued" in response.get_data(as_text=True)
    assert list((tmp_path / "uploads").iterdir()) == []
    assert product("G1") is None
