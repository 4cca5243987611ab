"""Catalog file formats (engine.catalog.readers): bulk ndjson, JSON Lines, CSV, zip, limits."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from engine.catalog import readers
from engine.catalog.readers import CatalogFileError, read_catalog


def _bulk(*docs: tuple[str, dict]) -> str:
    lines = []
    for doc_id, doc in docs:
        lines.append(json.dumps({"index": {"_index": "ecommerce", "_id": doc_id}}))
        lines.append(json.dumps(doc))
    return "\n".join(lines) + "\n"


BULK = _bulk(
    ("B1", {"title": "Cotton bath towels", "brand": "Acme", "price": 12.5, "rating": 4.4, "rating_count": 30}),
    ("B2", {"title": "Wireless headphones", "brand": "Sonic", "price": None, "category": ["Audio", "Headphones"]}),
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _zip(tmp_path: Path, members: dict[str, str | bytes], name: str = "catalog.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def _ok(parsed) -> dict[str, object]:
    return {p.record.external_id: p.record for p in parsed if p.record is not None}


def _errors(parsed) -> dict[int, str]:
    return {p.line: p.error for p in parsed if p.error}


def test_bulk_ndjson_plain(tmp_path):
    parsed = read_catalog(_write(tmp_path, "c.ndjson", BULK))
    assert [p.line for p in parsed] == [2, 4]  # the document's own line
    records = _ok(parsed)
    assert records["B1"].title == "Cotton bath towels" and records["B1"].price == 12.5
    assert records["B2"].price is None and records["B2"].category_path == "Audio > Headphones"
    assert _errors(parsed) == {}


def test_bulk_ndjson_zipped_matches_plain(tmp_path):
    plain = read_catalog(_write(tmp_path, "c.ndjson", BULK))
    zipped = read_catalog(_zip(tmp_path, {"export/c.ndjson": BULK}))
    assert zipped == plain


def test_zip_ignores_non_catalog_members(tmp_path):
    path = _zip(tmp_path, {"README.txt": "not a catalog", "c.ndjson": BULK})
    assert set(_ok(read_catalog(path))) == {"B1", "B2"}


def test_bulk_broken_lines_are_named_and_good_ones_parse(tmp_path):
    text = "\n".join(
        [
            json.dumps({"index": {"_id": "G1"}}),  # 1
            json.dumps({"title": "Good one", "price": 3}),  # 2
            json.dumps({"index": {"_id": "X1"}}),  # 3
            '{"title": "broken json"',  # 4
            json.dumps({"index": {"_id": "X2"}}),  # 5
            json.dumps({"title": "Bad price", "price": "free"}),  # 6
            "",  # 7 (blank lines are skipped)
            json.dumps({"delete": {"_id": "G1"}}),  # 8
            json.dumps({"index": {"_id": "X3"}}),  # 9
            json.dumps({"brand": "No title"}),  # 10
            json.dumps({"index": {"_id": "G2"}}),  # 11
            json.dumps({"title": "Good two", "rating": 4}),  # 12
            json.dumps({"index": {"_id": "X4"}}),  # 13
            json.dumps({"title": "Bad image", "image": "data:x"}),  # 14
            json.dumps({"index": {"_id": "X5"}}),  # 15
            json.dumps({"title": "Bad rating", "rating": 9}),  # 16
            json.dumps({"index": {"_id": "DANGLING"}}),  # 17
        ]
    )
    parsed = read_catalog(_write(tmp_path, "c.ndjson", text))
    assert set(_ok(parsed)) == {"G1", "G2"}
    errors = _errors(parsed)
    assert sorted(errors) == [4, 6, 8, 10, 14, 16, 17]
    assert errors[4].startswith("invalid JSON")
    assert "price must be a number" in errors[6]
    assert "'delete' is not supported" in errors[8]
    assert errors[10] == "missing title"
    assert "http(s) URL" in errors[14]
    assert "rating must be between 0 and 5" in errors[16]
    assert "no document after it" in errors[17]


def test_bulk_action_without_document_blames_its_own_line(tmp_path):
    text = "\n".join(
        [
            json.dumps({"index": {"_id": "LOST"}}),
            json.dumps({"index": {"_id": "KEPT"}}),
            json.dumps({"title": "Kept"}),
        ]
    )
    parsed = read_catalog(_write(tmp_path, "c.ndjson", text))
    assert _errors(parsed) == {1: "bulk action line has no document after it"}
    assert set(_ok(parsed)) == {"KEPT"}


def test_bulk_document_without_id_is_refused(tmp_path):
    text = json.dumps({"index": {}}) + "\n" + json.dumps({"title": "Anonymous"}) + "\n"
    parsed = read_catalog(_write(tmp_path, "c.ndjson", text))
    assert _errors(parsed) == {2: "missing external id (external_id, asin or id)"}


def test_json_lines(tmp_path):
    text = "\n".join(
        [
            json.dumps({"external_id": "J1", "title": "Steel mug", "price": "4.99"}),
            "not json at all",
            json.dumps(["a", "list"]),
            json.dumps({"id": "J2", "name": "Named by name", "rating": "3.5"}),
        ]
    )
    parsed = read_catalog(_write(tmp_path, "c.jsonl", text))
    records = _ok(parsed)
    assert records["J1"].price == 4.99 and records["J2"].title == "Named by name" and records["J2"].rating == 3.5
    assert _errors(parsed) == {2: _errors(parsed)[2], 3: "record must be a JSON object"}
    assert _errors(parsed)[2].startswith("invalid JSON")


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "U1", "title": "Caf\u00e9 mug"}).encode())
    assert _ok(read_catalog(path))["U1"].title == "Caf\u00e9 mug"


def test_csv_quoted_newlines_header_case_and_line_numbers(tmp_path):
    text = (
        "External_ID, Title ,BRAND,Price,Rating,Bullet_Points\r\n"  # 1
        'C1,"Towel, large",Acme,9.5,4.5,"soft\r\nthick"\r\n'  # 2-3
        "C2,,Acme,1,1,\r\n"  # 4: no title
        'C3,"Mug ""XL""",Mugs,x,4,\r\n'  # 5: bad price
        "C4,Plate,Acme,2,4,\r\n"  # 6
        "C5,Bowl,Acme,2,4,,extra\r\n"  # 7: too many cells
    )
    parsed = read_catalog(_write(tmp_path, "c.csv", text))
    records = _ok(parsed)
    assert set(records) == {"C1", "C4"}
    assert records["C1"].title == "Towel, large" and records["C1"].bullet_points == "soft\r\nthick"
    assert records["C1"].brand == "Acme" and records["C1"].price == 9.5
    errors = _errors(parsed)
    assert sorted(errors) == [4, 5, 7]
    assert errors[4] == "missing title"
    assert "price must be a number" in errors[5]
    assert "more cells" in errors[7]
    assert [p.line for p in parsed] == [2, 4, 5, 6, 7]


def test_csv_line_numbers_after_blank_lines(tmp_path):
    text = "id,title,price\n\nA,First,1\n\n\nB,Second,oops\n"
    parsed = read_catalog(_write(tmp_path, "c.csv", text))
    assert [p.line for p in parsed] == [3, 6]
    assert "price must be a number" in _errors(parsed)[6]


def test_csv_inside_zip(tmp_path):
    path = _zip(tmp_path, {"c.csv": "id,title\nZ1,Zipped\n"})
    assert _ok(read_catalog(path))["Z1"].title == "Zipped"


def test_empty_files_give_nothing(tmp_path):
    assert read_catalog(_write(tmp_path, "c.csv", "")) == []
    assert read_catalog(_write(tmp_path, "c.ndjson", "\n\n")) == []


def test_a_non_utf8_line_is_that_lines_error(tmp_path):
    latin = (
        json.dumps({"id": "A", "title": "Caf\u00e9"}, ensure_ascii=False).encode("utf-8").replace(b"\xc3\xa9", b"\xe9")
    )
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"id": "G", "title": "Good"}\n' + latin + b"\n")
    parsed = read_catalog(path)
    assert _ok(parsed)["G"].title == "Good"
    assert [(p.line, p.error) for p in parsed if p.error] == [(2, "line is not valid UTF-8 (byte 26 of the line)")]


def test_a_non_utf8_row_in_a_zipped_csv_is_that_rows_error(tmp_path):
    path = _zip(tmp_path, {"c.csv": "id,title\nA,Caf\u00e9\nB,Tea\n".encode("latin-1")})
    parsed = read_catalog(path)
    assert set(_ok(parsed)) == {"B"}
    assert [(p.line, p.error[:24]) for p in parsed if p.error] == [(2, "line is not valid UTF-8 ")]


def test_zip_with_two_catalog_members_is_refused(tmp_path):
    path = _zip(tmp_path, {"a.ndjson": BULK, "b.csv": "id,title\nA,a\n"})
    with pytest.raises(CatalogFileError, match="exactly one"):
        read_catalog(path)


def test_zip_with_no_catalog_member_is_refused(tmp_path):
    with pytest.raises(CatalogFileError, match="exactly one"):
        read_catalog(_zip(tmp_path, {"notes.txt": "hello"}))


def test_zip_declared_size_over_limit_is_refused_before_inflating(tmp_path, monkeypatch):
    # Highly repetitive text: the archive stays small while the declared size is large.
    path = _zip(tmp_path, {"c.ndjson": BULK * 200})
    limit = 2_000
    assert path.stat().st_size < limit < len(BULK * 200)
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", limit)
    with pytest.raises(CatalogFileError, match="unzips to more than"):
        read_catalog(path)


def test_plain_file_over_limit_is_refused(tmp_path, monkeypatch):
    path = _write(tmp_path, "c.ndjson", BULK)
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 10)
    with pytest.raises(CatalogFileError, match="larger than"):
        read_catalog(path)


def test_missing_file_and_directory_are_refused(tmp_path):
    with pytest.raises(CatalogFileError, match="is not a file"):
        read_catalog(tmp_path / "nope.ndjson")
    with pytest.raises(CatalogFileError, match="is not a file"):
        read_catalog(tmp_path)
