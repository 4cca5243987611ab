"""Hostile catalog files (webapp.services.catalog_import, engine.catalog.readers): every bad
record is reported by line with its reason, the good ones around it are stored, and the report
says what was stored; nothing raises."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import Product
from webapp.services.catalog_import import import_catalog


def good(n: int) -> str:
    return json.dumps({"id": f"G{n}", "title": f"Good item {n}", "brand": "Acme", "price": 5})


# (kind, the bad line as it stands in the file, words its reason must hold)
BAD_LINES = [
    ("deep nesting", '{"id": "D1", "title": ' + "[" * 50_000 + "]" * 50_000 + "}", "nested too deeply"),
    ("lone surrogate", '{"id": "S1", "title": "broken \\ud800 text"}', "lone surrogate"),
    ("NaN", '{"id": "N1", "title": "x", "price": NaN}', "NaN is not a JSON number"),
    ("Infinity", '{"id": "N2", "title": "x", "rating": Infinity}', "Infinity is not a JSON number"),
    ("huge float", '{"id": "N3", "title": "x", "price": 1e400}', "price must be a number"),
    ("huge integer", '{"id": "N4", "title": "x", "price": ' + "9" * 400 + "}", "price must be between 0 and 1e+09"),
    ("5000-digit integer", '{"id": "N5", "title": "x", "price": ' + "9" * 5000 + "}", "invalid JSON"),
    ("array row", "[1, 2, 3]", "record must be a JSON object"),
    ("string row", '"just text"', "record must be a JSON object"),
    ("object title", '{"id": "W1", "title": {"en": "x"}}', "title must be text"),
    ("nested list field", '{"id": "W2", "title": "x", "bullet_points": [["a"], {"b": 1}]}', "must be text"),
    ("list id", '{"id": ["W3"], "title": "x"}', "external id must be text"),
    ("boolean price", '{"id": "W4", "title": "x", "price": true}', "price must be a number"),
    ("stray NUL byte", '{"id": "Z1", "title": "x"}\x00', "invalid JSON"),
    ("overlong line", json.dumps({"id": "L1", "title": "x", "description": "y" * 1_200_000}), "longer than 1024 KB"),
]


@pytest.mark.parametrize(("kind", "line", "reason"), BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_each_kind_of_bad_line_is_reported_and_the_rest_stored(app, tmp_path, kind, line, reason):
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join([good(1), line, good(2)]) + "\n", encoding="utf-8", errors="surrogatepass")
    report = import_catalog(path)
    assert report.stored == 2 and report.created == 2
    assert report.rejected == 1 and report.errors[0][0] == 2, report.errors
    assert reason in report.errors[0][1], report.errors


def test_invalid_utf8_bom_and_nul_inside_text(app, tmp_path):
    path = tmp_path / "c.jsonl"
    lines = [
        "\ufeff" + good(1),  # a BOM at the start of the file
        "\ufeff" + good(2),  # and one where two files were joined
        json.dumps({"id": "Z2", "title": "nul\u0000 inside", "category": "Home\u0000 > Bath"}),
    ]
    raw = "\n".join(lines).encode() + b'\n{"id": "U1", "title": "caf\xe9"}\n' + good(3).encode() + b"\n"
    path.write_bytes(raw)
    report = import_catalog(path)
    assert report.stored == 4 and [(line, e[:24]) for line, e in report.errors] == [(4, "line is not valid UTF-8 ")]
    nul = db.session.scalar(select(Product).where(Product.external_id == "Z2"))
    assert nul.title == "nul inside" and nul.category_path == "Home > Bath"


def test_a_thousand_rows_with_a_bad_line_701_store_999_and_name_it(app, tmp_path):
    rows = [good(n) for n in range(1, 1001)]
    rows[700] = json.dumps({"id": "G701", "title": "Bad brand", "brand": "x\ud800"})  # line 701
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8", errors="surrogatepass")
    report = import_catalog(path)
    assert (report.created, report.stored, report.rejected) == (999, 999, 1)
    assert report.errors[0][0] == 701 and "brand holds a lone surrogate" in report.errors[0][1]
    assert db.session.scalar(select(func.count()).select_from(Product)) == 999
    assert report.as_dict()["stored"] == 999


def test_an_unclosed_csv_quote_is_reported_and_the_next_rows_kept(app, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text('id,title,brand\nC1,First,Acme\nC2,"Unclosed title,Acme\nC3,Third,Acme\nC4,Fourth,Acme\n')
    report = import_catalog(path)
    assert report.errors and report.errors[0][0] == 3 and "unclosed quote" in report.errors[0][1]
    stored = set(db.session.scalars(select(Product.external_id)))
    assert stored == {"C1", "C3", "C4"}


def test_an_overlong_csv_row_and_a_huge_field(app, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id,title\nC1,First\n" + "C2," + "x" * 1_100_000 + "\nC3,Third\n")
    report = import_catalog(path)
    assert [line for line, _ in report.errors] == [3]
    assert set(db.session.scalars(select(Product.external_id))) == {"C1", "C3"}


def test_a_cli_import_names_the_bad_line(runner, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join([good(1), '{"id": "N1", "title": "x", "price": NaN}', good(2)]) + "\n")
    result = runner.invoke(args=["catalog", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "2 created" in result.output and "line 2: invalid JSON: NaN is not a JSON number" in result.output


def test_a_zip_damaged_midway_says_what_was_stored_before_it(app, tmp_path, monkeypatch):
    import zipfile

    from engine.catalog.readers import CatalogFileError
    from webapp.services import catalog_import

    monkeypatch.setattr(catalog_import, "CHUNK", 10)
    path = tmp_path / "c.zip"
    rows = "\n".join(good(n) + " " * (n % 7) for n in range(1, 3001)) + "\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("c.jsonl", rows)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # the deflate stream breaks halfway
    path.write_bytes(bytes(data))
    with pytest.raises(CatalogFileError, match=r"damaged after line \d+.*; before it: \d+ created"):
        import_catalog(path)
    assert db.session.scalar(select(func.count()).select_from(Product)) > 0


def test_a_damaged_zip_is_refused_before_storing_when_progress_counts_lines_first(app, tmp_path):
    import zipfile

    from engine.catalog.readers import CatalogFileError

    path = tmp_path / "c.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("c.jsonl", "\n".join(good(n) + " " * (n % 7) for n in range(1, 3001)) + "\n")
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(CatalogFileError, match="the zip is damaged"):
        import_catalog(path, progress=lambda done, total: None)
    assert db.session.scalar(select(func.count()).select_from(Product)) == 0


def test_every_kind_at_once_through_the_admin_upload_and_its_job(app, client, login, monkeypatch):
    import io
    from types import SimpleNamespace

    from worker.tasks.catalog import import_file

    login("admin")
    monkeypatch.setattr(app.extensions["celery"], "send_task", lambda *a, **k: SimpleNamespace(id="t"))
    lines = [good(0)] + [line for _, line, _ in BAD_LINES] + [good(1)]
    body = "\n".join(lines).encode("utf-8", "surrogatepass") + b"\n\xff\xfe broken\n"
    response = client.post("/admin/catalog/import", data={"file": (io.BytesIO(body), "hostile.jsonl")})
    assert response.status_code == 302
    import_file(int(response.headers["Location"].rsplit("/", 1)[1]))
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    rejected = len(BAD_LINES) + 1
    assert f"2 stored (2 created, 0 updated, 0 unchanged), {rejected} rejected" in text
    assert f'<td class="num">{len(lines) + 1}</td>' in text  # the invalid UTF-8 line, by number


def test_a_record_the_database_refuses_is_reported_and_its_chunk_kept(app, tmp_path, monkeypatch):
    from sqlalchemy import event
    from sqlalchemy.exc import DataError

    from webapp.services import catalog_import

    monkeypatch.setattr(catalog_import, "CHUNK", 50)

    def refuse(session, _context, _instances):  # as PostgreSQL refuses a value validation let through
        if any(getattr(p, "title", "") == "Refused by the database" for p in session.new):
            raise DataError("INSERT", {}, Exception("value out of range"))

    event.listen(db.session, "before_flush", refuse)
    try:
        rows = [good(n) for n in range(1, 121)]
        rows[76] = json.dumps({"id": "G77", "title": "Refused by the database"})  # line 77, in the second chunk
        path = tmp_path / "c.jsonl"
        path.write_text("\n".join(rows) + "\n")
        report = import_catalog(path)
    finally:
        event.remove(db.session, "before_flush", refuse)
    assert (report.created, report.rejected) == (119, 1)
    assert report.errors == [(77, "the database refused it: value out of range")]
    assert db.session.scalar(select(func.count()).select_from(Product)) == 119


def test_a_rating_count_beyond_the_column_is_refused_by_validation(app, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "R1", "title": "x", "rating_count": 3_000_000_000}) + "\n" + good(1) + "\n")
    report = import_catalog(path)
    assert report.stored == 1 and "rating_count must be between 0 and 2.14748e+09" in report.errors[0][1]
