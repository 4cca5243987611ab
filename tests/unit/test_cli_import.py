"""`flask catalog import` (webapp.cli): exit codes and messages an operator can act on."""

from __future__ import annotations

import json

from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Product


def stored_ids() -> set[str]:
    return set(db.session.scalars(select(Product.external_id)))


def write_lines(path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_import_with_broken_lines_succeeds_and_names_them(runner, tmp_path):
    path = write_lines(
        tmp_path / "c.jsonl",
        [
            json.dumps({"id": "G1", "title": "Bath towel"}),
            json.dumps({"id": "B1", "title": "Bad", "rating": 11}),
            "{not json",
            json.dumps({"id": "G2", "title": "Coffee mug", "price": "7.50"}),
        ],
    )
    result = runner.invoke(args=["catalog", "import", path])
    assert result.exit_code == 0, result.output
    assert "2 created, 0 updated, 0 unchanged, 2 rejected" in result.stdout
    assert "line 2: rating must be between 0 and 5" in result.stderr
    assert "line 3: invalid JSON" in result.stderr
    assert stored_ids() == {"G1", "G2"}


def test_rerun_reports_unchanged(runner, tmp_path):
    path = write_lines(tmp_path / "c.jsonl", [json.dumps({"id": "G1", "title": "Bath towel"})])
    assert runner.invoke(args=["catalog", "import", path]).exit_code == 0
    result = runner.invoke(args=["catalog", "import", path])
    assert result.exit_code == 0 and "0 created, 0 updated, 1 unchanged, 0 rejected" in result.stdout


def test_error_list_is_capped(runner, tmp_path):
    path = write_lines(tmp_path / "c.jsonl", [json.dumps({"id": "G1", "title": "ok"})] + ["{bad"] * 5)
    result = runner.invoke(args=["catalog", "import", path, "--max-errors", "2"])
    assert result.exit_code == 0
    assert "line 2:" in result.stderr and "line 3:" in result.stderr and "line 4:" not in result.stderr
    assert "... and 3 more" in result.stderr


def test_file_with_only_bad_lines_fails(runner, tmp_path):
    path = write_lines(tmp_path / "c.jsonl", ["{bad", json.dumps({"id": "X"})])
    result = runner.invoke(args=["catalog", "import", path])
    assert result.exit_code != 0
    assert "no valid records found" in result.stderr
    assert "line 1: invalid JSON" in result.stderr and "line 2: missing title" in result.stderr
    assert stored_ids() == set()


def test_missing_file_is_a_clear_error(runner, tmp_path):
    result = runner.invoke(args=["catalog", "import", str(tmp_path / "missing.ndjson")])
    assert result.exit_code != 0
    assert "missing.ndjson is not a file" in result.stderr
    assert "Traceback" not in result.output


def test_non_utf8_file_is_a_clear_error_naming_the_line(runner, tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes("id,title\nA,Caf\u00e9\n".encode("latin-1"))
    result = runner.invoke(args=["catalog", "import", str(path)])
    assert result.exit_code != 0
    assert "line 2: line is not valid UTF-8" in result.stderr and "no valid records found" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert stored_ids() == set()


def test_without_path_imports_the_configured_demo_catalog(app, runner, tmp_path):
    app.config["DEMO_CATALOG"] = write_lines(tmp_path / "demo.jsonl", [json.dumps({"id": "D1", "title": "Demo"})])
    result = runner.invoke(args=["catalog", "import"])
    assert result.exit_code == 0, result.output
    assert stored_ids() == {"D1"}


def test_new_arrivals_established_and_reactivate_flags(runner, tmp_path):
    first = write_lines(tmp_path / "a.jsonl", [json.dumps({"id": "A", "title": "Kettle"})])
    assert runner.invoke(args=["catalog", "import", "--new-arrivals", first]).exit_code == 0
    kettle = db.session.scalar(select(Product).where(Product.external_id == "A"))
    assert kettle.listed_at is not None  # asked to: even the first import counts as new
    kettle.is_active = False
    db.session.commit()
    again = write_lines(tmp_path / "b.jsonl", [json.dumps({"id": "A", "title": "Kettle", "is_active": True})])
    kept = runner.invoke(args=["catalog", "import", again])
    assert "1 kept hidden" in kept.output
    shown = runner.invoke(args=["catalog", "import", "--reactivate", again])
    assert "1 updated" in shown.output
    db.session.expire_all()
    assert db.session.scalar(select(Product.is_active).where(Product.external_id == "A")) is True
    old = write_lines(tmp_path / "c.jsonl", [json.dumps({"id": "B", "title": "Old stock"})])
    assert runner.invoke(args=["catalog", "import", "--established", old]).exit_code == 0
    assert db.session.scalar(select(Product.listed_at).where(Product.external_id == "B")) is None
