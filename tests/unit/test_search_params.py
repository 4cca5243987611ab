"""Search parameter parsing (webapp.services.search_params): valid requests and every 400 case."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from engine.serving.lexical import Filters
from webapp.errors import InputError
from webapp.services.search_params import MAX_BRANDS, normalize_query, parse_search_args


def parse(pairs: list[tuple[str, str]] | dict, page_size: int = 24):
    return parse_search_args(MultiDict(pairs), page_size)


def test_defaults():
    request = parse({})
    assert (request.text, request.sort, request.page, request.page_size) == ("", "relevance", 1, 24)
    assert request.filters == Filters()


def test_full_request_is_parsed():
    request = parse(
        [
            ("q", "  bath towel "),
            ("page", "3"),
            ("sort", "price_desc"),
            ("brand", "Acme"),
            ("brand", " Soft "),
            ("brand", "Acme"),
            ("brand", ""),
            ("price_min", "5"),
            ("price_max", "20.5"),
            ("rating_min", "4"),
        ],
        page_size=12,
    )
    assert request.text == "bath towel" and request.page == 3 and request.sort == "price_desc"
    assert request.page_size == 12
    assert request.filters == Filters(brands=("Acme", "Soft"), price_min=5.0, price_max=20.5, rating_min=4.0)


def test_control_characters_become_spaces():
    assert parse({"q": "bath\x00towel\x1b"}).text == "bath towel"
    assert parse({"q": "usb\tc\ncable"}).text == "usb c cable"  # tab and newline too (hypothesis found "0\n0")


def test_limits_are_inclusive():
    request = parse(
        [("q", "x" * 200), ("page", "50"), ("rating_min", "5"), ("price_min", "0"), ("price_max", "0")]
        + [("brand", f"B{i}") for i in range(MAX_BRANDS)]
    )
    assert len(request.text) == 200 and request.page == 50 and len(request.filters.brands) == MAX_BRANDS


def test_empty_values_mean_unset():
    request = parse({"page": "", "sort": "", "price_min": " ", "rating_min": ""})
    assert request.page == 1 and request.sort == "relevance" and request.filters == Filters()


@pytest.mark.parametrize(
    ("args", "names"),
    [
        ({"q": "x" * 201}, "q must be at most 200"),
        ({"page": "0"}, "page"),
        ({"page": "51"}, "page"),
        ({"page": "abc"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"page": "\u00b2"}, "page"),  # a "digit" to str.isdigit that int() refuses
        ({"sort": "cheapest"}, "sort must be one of"),
        ({"price_min": "30", "price_max": "10"}, "price_min must not exceed price_max"),
        ({"price_min": "NaN"}, "price_min must be between"),
        ({"price_max": "nan"}, "price_max must be between"),
        ({"price_max": "inf"}, "price_max must be between"),
        ({"price_min": "-1"}, "price_min must be between"),
        ({"price_min": "ten"}, "price_min must be a number"),
        ({"rating_min": "6"}, "rating_min must be between 0 and 5"),
        ({"rating_min": "-0.5"}, "rating_min must be between"),
        ({"rating_min": "NaN"}, "rating_min must be between"),
        ([("brand", f"B{i}") for i in range(MAX_BRANDS + 1)], "at most 20 brands"),
        ({"brand": "b" * 201}, "at most 20 brands"),
    ],
)
def test_bad_input_raises_input_error(args, names):
    with pytest.raises(InputError) as caught:
        parse(args)
    assert names in str(caught.value)


def test_normalize_query():
    assert normalize_query("  Bath   TOWELS\t") == "bath towels"
    assert normalize_query("\uff34\uff4f\uff57\uff45\uff4c") == "towel"  # full-width letters fold (NFKC)
    assert normalize_query("") == ""
