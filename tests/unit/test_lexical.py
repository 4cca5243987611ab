"""The tantivy BM25 index (engine.serving.lexical): matching, fuzziness, filters, facets, updates."""

from __future__ import annotations

import pytest

from engine.serving.lexical import Filters, LexicalDoc, LexicalIndex, clean_query

DOCS = [
    LexicalDoc(1, "Cotton bath towels, set of 6", brand="Acme", category="Home > Bath", price=25.0, rating=4.6),
    LexicalDoc(2, "Wireless headphones with noise cancelling", brand="Sonic", category="Audio", price=99.0, rating=4.2),
    LexicalDoc(3, "Wired earbuds", brand="Sonic", description="Great headphones alternative", price=15.0, rating=3.1),
    LexicalDoc(4, "Stainless steel water bottle", brand="Hydro", price=30.0, rating=4.8),
    LexicalDoc(5, "Beach towel, oversized", brand="Acme", price=None, rating=None),
    LexicalDoc(6, "Ceramic coffee mug", brand="Mugsy", bullet_points="Dishwasher safe", price=8.0, rating=4.0),
]


@pytest.fixture(scope="module")
def index() -> LexicalIndex:
    idx = LexicalIndex()
    assert idx.upsert(DOCS) == len(DOCS)
    return idx


def ids(result) -> list[int]:
    return [pid for pid, _ in result.hits]


def test_all_documents_indexed(index):
    assert index.num_docs == len(DOCS)


def test_finds_by_title_and_brand(index):
    assert ids(index.search("water bottle"))[0] == 4
    assert set(ids(index.search("hydro"))) == {4}
    assert set(ids(index.search("mugsy"))) == {6}


def test_title_outranks_description(index):
    # Both mention headphones; the title match must come first.
    assert ids(index.search("headphones"))[:2] == [2, 3]


def test_scores_are_descending(index):
    scores = [score for _, score in index.search("towel").hits]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


def test_stemming_singular_finds_plural(index):
    result = index.search("towel")
    assert {1, 5} <= set(ids(result))
    assert set(ids(index.search("towels"))) >= {1, 5}


def test_fuzzy_fallback_finds_misspelling():
    idx = LexicalIndex(fuzzy_min_hits=1)
    idx.upsert(DOCS)
    result = idx.search("hedphones")
    assert ids(result)[0] == 2
    assert result.fuzzy is True


def test_exact_query_is_not_marked_fuzzy():
    idx = LexicalIndex(fuzzy_min_hits=1)
    idx.upsert(DOCS)
    result = idx.search("headphones")
    assert result.fuzzy is False and ids(result)[0] == 2


def test_no_fuzzy_matching_on_short_words():
    idx = LexicalIndex(fuzzy_min_hits=1)
    idx.upsert([LexicalDoc(1, "Red mug"), LexicalDoc(2, "Blue cup")])
    # "mig" is one edit from "mug", but words under 4 characters never match fuzzily.
    assert idx.search("mig").hits == []
    assert ids(idx.search("mug")) == [1]


def test_fuzzy_matches_rank_behind_exact_matches():
    idx = LexicalIndex(fuzzy_min_hits=5)
    idx.upsert([LexicalDoc(1, "Lamp shade"), LexicalDoc(2, "Lamps set"), LexicalDoc(3, "Camp stove")])
    # Too few exact hits for "lamp", so near spellings ("camp") widen the result, behind the exact ones.
    result = idx.search("lamp")
    assert result.fuzzy is True
    assert ids(result)[-1] == 3 and set(ids(result)[:2]) == {1, 2}


def test_multi_word_query_needs_every_word_when_enough_match():
    idx = LexicalIndex(fuzzy_min_hits=1)
    idx.upsert([LexicalDoc(1, "Red coffee mug"), LexicalDoc(2, "Red wine glass"), LexicalDoc(3, "Blue coffee mug")])
    assert ids(idx.search("red mug")) == [1]


def test_brand_filter(index):
    result = index.search("", Filters(brands=("Sonic",)))
    assert set(ids(result)) == {2, 3}
    assert set(ids(index.search("", Filters(brands=("Sonic", "Hydro"))))) == {2, 3, 4}
    # Brand filters are exact, not tokenised.
    assert index.search("", Filters(brands=("sonic",))).hits == []


def test_price_range_filter(index):
    result = index.search("", Filters(price_min=10, price_max=30))
    assert set(ids(result)) == {1, 3, 4}  # products without a price are outside any range
    assert set(ids(index.search("", Filters(price_min=90)))) == {2}
    assert set(ids(index.search("", Filters(price_max=10)))) == {6}


def test_rating_min_filter(index):
    assert set(ids(index.search("", Filters(rating_min=4.5)))) == {1, 4}


def test_filters_combine_with_words(index):
    assert ids(index.search("towel", Filters(price_max=50))) == [1]
    assert ids(index.search("headphones", Filters(rating_min=4))) == [2]


def test_brand_facet_counts_ignore_brand_filter(index):
    result = index.search("", Filters(brands=("Sonic",)))
    assert result.total == 2
    assert result.brand_counts == {"Acme": 2, "Sonic": 2, "Hydro": 1, "Mugsy": 1}


def test_brand_facet_counts_follow_other_filters(index):
    result = index.search("", Filters(brands=("Acme",), price_min=20))
    assert ids(result) == [1]
    assert result.brand_counts == {"Acme": 1, "Sonic": 1, "Hydro": 1}


def test_empty_query_returns_everything(index):
    result = index.search("")
    assert result.total == len(DOCS) and set(ids(result)) == {d.id for d in DOCS}


def test_upsert_replaces_and_removal_deletes():
    idx = LexicalIndex(fuzzy_min_hits=1)
    idx.upsert(DOCS)
    idx.upsert([LexicalDoc(4, "Glass teapot", brand="Hydro", price=30.0)])
    assert idx.num_docs == len(DOCS)
    assert idx.search("bottle").hits == []
    assert ids(idx.search("teapot")) == [4]
    idx.upsert([], removed_ids=[4, 6])
    assert idx.num_docs == len(DOCS) - 2
    assert idx.search("teapot").hits == [] and idx.search("mug").hits == []
    assert idx.search("").total == len(DOCS) - 2


@pytest.mark.parametrize(
    "text",
    [
        '"unbalanced quote',
        "(towel",
        "towel)",
        "towel AND",
        "OR",
        "NOT towel",
        "title:towel",
        "price:[1 TO 5]",
        "brand:",
        ":::",
        "towel^2",
        "towel~2",
        "+towel -mug",
        "*",
        "?",
        "\\",
        "{}[]",
        "caf\u00e9 \u00fcber \u65e5\u672c",
        "\U0001f600 towel",
        "tow\x00el",
        "\x01\x02\x1f",
        "   ",
        "a" * 200,
        "' OR 1=1 --",
        "<script>",
    ],
)
def test_query_syntax_never_raises(index, text):
    result = index.search(text)
    assert result.total >= 0 and len(result.hits) <= len(DOCS)


def test_field_syntax_is_treated_as_words(index):
    # "title:towel" must not become a field query on a field name; it is the words "title towel".
    assert set(ids(index.search("title:towel"))) >= {1, 5}
    assert set(ids(index.search("towel AND"))) >= {1, 5}


def test_clean_query_strips_syntax_and_lowers_operators():
    assert clean_query('"bath" (towel) AND mug:OR').split() == ["bath", "towel", "and", "mug", "or"]
    assert clean_query("caf\u00e9-noir") == "caf\u00e9 noir"
