"""Validation of single catalog records (engine.catalog.records)."""

from __future__ import annotations

import re

import pytest

from engine.catalog.records import ProductRecord, RecordError, validate_record


def test_full_record_is_normalised():
    record = validate_record(
        {
            "asin": " B0001 ",
            "title": "  Bath towels  ",
            "brand": "Acme",
            "price": "$1,299.50",
            "rating": 4.5,
            "rating_count": "12",
            "category": ["Home", " Bath ", ""],
            "bullet_points": ["soft", None, "  ", "absorbent"],
            "image": "https://example.com/t.jpg",
            "is_active": "yes",
        }
    )
    assert record == ProductRecord(
        external_id="B0001",
        title="Bath towels",
        brand="Acme",
        bullet_points="soft\nabsorbent",
        category_path="Home > Bath",
        price=1299.5,
        rating=4.5,
        rating_count=12,
        image_url="https://example.com/t.jpg",
        is_active=True,
        present=frozenset(
            {"title", "brand", "bullet_points", "category_path", "price", "rating", "rating_count", "image_url"}
            | {"is_active"}
        ),
    )
    assert "external_id" not in record.fields()
    assert record.fields()["price"] == 1299.5


def test_fallback_id_is_used_when_document_has_none():
    assert validate_record({"title": "Mug"}, fallback_id="M1").external_id == "M1"
    # An id in the document wins over the bulk action's _id.
    assert validate_record({"id": "D1", "title": "Mug"}, fallback_id="M1").external_id == "D1"


def test_category_path_string_is_split_on_separators():
    assert validate_record({"id": "A", "title": "t", "category": "Home|Kitchen >  Mugs"}).category_path == (
        "Home > Kitchen > Mugs"
    )


def test_missing_price_and_rating_are_none():
    record = validate_record({"id": "A", "title": "t", "price": None, "rating": ""})
    assert record.price is None and record.rating is None and record.rating_count == 0


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ([1, 2], "JSON object"),
        ({"title": "No id"}, "missing external id"),
        ({"id": "  ", "title": "Blank id"}, "missing external id"),
        ({"id": "bad id!", "title": "t"}, "external id"),
        ({"id": "A"}, "missing title"),
        ({"id": "A", "title": "   "}, "missing title"),
        ({"id": "A", "title": {"x": 1}}, "title must be text"),
        ({"id": "A", "title": "t" * 501}, "title is longer than 500"),
        ({"id": "A", "title": "t", "price": "cheap"}, "price must be a number"),
        ({"id": "A", "title": "t", "price": -1}, "price must be between"),
        ({"id": "A", "title": "t", "price": float("nan")}, "price must be a number"),
        ({"id": "A", "title": "t", "price": float("inf")}, "price must be a number"),
        ({"id": "A", "title": "t", "price": True}, "price must be a number"),
        ({"id": "A", "title": "t", "rating": 5.5}, "rating must be between 0 and 5"),
        ({"id": "A", "title": "t", "rating": "four"}, "rating must be a number"),
        ({"id": "A", "title": "t", "rating_count": 1.5}, "rating_count must be a whole number"),
        ({"id": "A", "title": "t", "image": "javascript:alert(1)"}, "image must be an http(s) URL"),
        ({"id": "A", "title": "t", "image_url": "ftp://x/y.jpg"}, "image must be an http(s) URL"),
        ({"id": "A", "title": "t", "category": 7}, "category must be"),
        ({"id": "A", "title": "t", "is_active": "maybe"}, "is_active"),
    ],
)
def test_bad_records_are_refused_with_reason(doc, reason):
    with pytest.raises(RecordError, match=re.escape(reason)):
        validate_record(doc)


def test_nul_bytes_are_stripped_from_text():
    assert validate_record({"id": "A", "title": "to\x00wel"}).title == "towel"


def test_inactive_flag_is_read():
    assert validate_record({"id": "A", "title": "t", "is_active": False}).is_active is False
    assert validate_record({"id": "A", "title": "t", "is_active": "0"}).is_active is False
