"""The catalog import use case (webapp.services.catalog_import): upsert by external id."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from engine.catalog.readers import CatalogFileError
from webapp.extensions import db
from webapp.models import Product
from webapp.services import catalog_import
from webapp.services.catalog_import import import_catalog

RECORDS = [
    {
        "asin": "A1",
        "title": "Cotton bath towel",
        "brand": "Acme",
        "price": 12.5,
        "rating": 4.5,
        "rating_count": 10,
        "category": ["Home", "Bath"],
        "image": "https://img.example/a1.jpg",
    },
    {"asin": "A2", "title": "Coffee mug", "brand": "Mugsy", "price": None, "rating": 4.0, "rating_count": 3},
    {"asin": "A3", "title": "Water bottle", "brand": "Hydro", "price": 30, "bullet_points": ["Keeps cold", "1 l"]},
]


def write_bulk(path, records) -> str:
    lines = []
    for record in records:
        lines += [json.dumps({"index": {"_id": record["asin"]}}), json.dumps(record)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def products() -> dict[str, Product]:
    return {p.external_id: p for p in db.session.scalars(select(Product))}


def test_import_creates_products(app, tmp_path):
    calls = []
    report = import_catalog(write_bulk(tmp_path / "c.ndjson", RECORDS), lambda done, total: calls.append((done, total)))
    assert (report.created, report.updated, report.unchanged, report.errors) == (3, 0, 0, [])
    assert report.summary() == "3 created, 0 updated, 0 unchanged, 0 rejected"
    stored = products()
    assert set(stored) == {"A1", "A2", "A3"}
    a1 = stored["A1"]
    assert (a1.title, a1.brand, a1.price, a1.rating, a1.rating_count) == ("Cotton bath towel", "Acme", 12.5, 4.5, 10)
    assert a1.category_path == "Home > Bath" and a1.image_url == "https://img.example/a1.jpg" and a1.is_active
    assert stored["A2"].price is None
    assert stored["A3"].bullet_points == "Keeps cold\n1 l"
    assert a1.created_at == a1.updated_at
    assert calls == [(6, 6)]  # progress counts the file's lines (two per bulk record)


def test_running_twice_changes_nothing(app, tmp_path):
    path = write_bulk(tmp_path / "c.ndjson", RECORDS)
    import_catalog(path)
    before = {eid: (p.id, p.updated_at) for eid, p in products().items()}
    db.session.expire_all()
    report = import_catalog(path)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 3)
    assert report.summary() == "0 created, 0 updated, 3 unchanged, 0 rejected"
    db.session.expire_all()
    assert {eid: (p.id, p.updated_at) for eid, p in products().items()} == before
    assert db.session.scalar(select(func.count()).select_from(Product)) == 3


def test_changed_record_updates_and_bumps_updated_at(app, tmp_path):
    import_catalog(write_bulk(tmp_path / "c.ndjson", RECORDS))
    old = {eid: (p.id, p.created_at, p.updated_at) for eid, p in products().items()}
    changed = [dict(RECORDS[0], price=9.99, title="Cotton bath towel XL"), RECORDS[1], RECORDS[2]]
    db.session.expire_all()
    report = import_catalog(write_bulk(tmp_path / "c2.ndjson", changed))
    assert (report.created, report.updated, report.unchanged) == (0, 1, 2)
    db.session.expire_all()
    now = products()
    a1 = now["A1"]
    assert (a1.price, a1.title) == (9.99, "Cotton bath towel XL")
    assert a1.id == old["A1"][0] and a1.created_at == old["A1"][1]
    assert a1.updated_at > old["A1"][2]
    assert now["A2"].updated_at == old["A2"][2] and now["A3"].updated_at == old["A3"][2]


def test_record_can_deactivate_a_product(app, tmp_path):
    import_catalog(write_bulk(tmp_path / "c.ndjson", RECORDS))
    report = import_catalog(write_bulk(tmp_path / "c2.ndjson", [dict(RECORDS[1], is_active=False)]))
    assert report.updated == 1
    db.session.expire_all()
    assert products()["A2"].is_active is False and products()["A1"].is_active is True


def test_bad_lines_are_named_and_good_ones_stored(app, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"id": "G1", "title": "Good"}),
                json.dumps({"id": "B1", "title": "Bad price", "price": "lots"}),
                "{oops",
                json.dumps({"id": "G2", "title": "Also good"}),
                json.dumps({"id": "B2"}),
            ]
        ),
        encoding="utf-8",
    )
    report = import_catalog(path)
    assert report.created == 2 and report.stored == 2
    assert [line for line, _ in report.errors] == [2, 3, 5]
    assert "price must be a number" in report.errors[0][1]
    assert report.errors[2][1] == "missing title"
    assert report.as_dict()["errors"][1]["line"] == 3
    assert set(products()) == {"G1", "G2"}


def test_later_duplicate_in_one_file_wins(app, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(
        json.dumps({"id": "D1", "title": "First"}) + "\n" + json.dumps({"id": "D1", "title": "Second"}),
        encoding="utf-8",
    )
    report = import_catalog(path)
    assert report.created == 1
    assert products()["D1"].title == "Second"


def test_chunks_commit_with_progress(app, tmp_path, monkeypatch):
    monkeypatch.setattr(catalog_import, "CHUNK", 2)
    records = [{"asin": f"C{i}", "title": f"Item {i}"} for i in range(5)] + [{"asin": "C0", "title": "Item 0 again"}]
    calls = []
    report = import_catalog(write_bulk(tmp_path / "c.ndjson", records), lambda d, t: calls.append((d, t)))
    assert calls == [(4, 12), (8, 12), (12, 12)]  # lines of the file: an action and a document per record
    # C0 was created in the first chunk and updated by the last one.
    assert (report.created, report.updated) == (5, 1)
    assert products()["C0"].title == "Item 0 again"


def test_unreadable_file_raises_and_stores_nothing(app, tmp_path):
    path = tmp_path / "c.zip"
    path.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip: no catalog member
    with pytest.raises(CatalogFileError, match="exactly one"):
        import_catalog(path)
    assert products() == {}


def test_a_partial_row_changes_only_the_fields_it_carries(app, tmp_path):
    import_catalog(write_bulk(tmp_path / "c.ndjson", RECORDS))
    path = tmp_path / "partial.jsonl"
    path.write_text(json.dumps({"asin": "A1", "title": "Cotton bath towel, large"}) + "\n")
    report = import_catalog(path)
    assert report.updated == 1
    db.session.expire_all()
    a1 = products()["A1"]
    assert a1.title == "Cotton bath towel, large"
    assert (a1.brand, a1.price, a1.image_url, a1.category_path) == (
        "Acme",
        12.5,
        "https://img.example/a1.jpg",
        "Home > Bath",
    )


def test_an_empty_csv_cell_is_not_carried_but_a_json_null_clears(app, tmp_path):
    import_catalog(write_bulk(tmp_path / "c.ndjson", RECORDS))
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("asin,title,brand,price\nA1,Towel,,\n")
    import_catalog(csv_path)
    db.session.expire_all()
    assert (products()["A1"].brand, products()["A1"].price) == ("Acme", 12.5)
    null_path = tmp_path / "null.jsonl"
    null_path.write_text(json.dumps({"asin": "A1", "title": "Towel", "price": None}) + "\n")
    import_catalog(null_path)
    db.session.expire_all()
    assert products()["A1"].price is None


def test_an_import_does_not_show_a_product_the_admin_hid_unless_asked(app, tmp_path):
    import_catalog(write_bulk(tmp_path / "c.ndjson", RECORDS))
    products()["A1"].is_active = False  # the admin hid it
    db.session.commit()
    full = write_bulk(tmp_path / "again.ndjson", [dict(RECORDS[0], is_active=True, price=11.0)])
    report = import_catalog(full)
    db.session.expire_all()
    assert report.kept_hidden == 1 and "1 kept hidden" in report.summary()
    assert products()["A1"].is_active is False and products()["A1"].price == 11.0
    import_catalog(full, options=catalog_import.ImportOptions(reactivate=True))
    db.session.expire_all()
    assert products()["A1"].is_active is True


def test_the_first_import_is_not_new_arrivals_but_later_ones_are(app, tmp_path):
    import_catalog(write_bulk(tmp_path / "c.ndjson", RECORDS))
    assert {p.listed_at for p in products().values()} == {None}  # established: no new-product bonus
    later = write_bulk(tmp_path / "later.ndjson", [{"asin": "N1", "title": "New kettle"}])
    import_catalog(later)
    assert products()["N1"].listed_at is not None
    marked = write_bulk(tmp_path / "marked.ndjson", [{"asin": "N2", "title": "Old stock"}])
    import_catalog(marked, options=catalog_import.ImportOptions(established=True))
    assert products()["N2"].listed_at is None


def test_a_product_carries_the_files_own_listing_date(app, tmp_path):
    from datetime import datetime

    from webapp.services.search_index import product_card

    dated = [
        dict(RECORDS[0], listed_at="2024-05-01T10:00:00Z"),
        dict(RECORDS[1], date_first_available=1700000000),
        RECORDS[2],
    ]
    import_catalog(write_bulk(tmp_path / "c.ndjson", dated))
    stored = products()
    assert stored["A1"].listed_at == datetime(2024, 5, 1, 10, 0)
    assert stored["A2"].listed_at == datetime(2023, 11, 14, 22, 13, 20)
    assert product_card(stored["A1"]).created_at == 1714557600.0  # the age freshness reads is the file's date
    assert product_card(stored["A3"]).created_at is None
