"""The instant-suggestion index (engine.serving.suggest): prefixes, words being typed, one typo,
queries above titles, one suggestion per text, Unicode, and the cost of a call."""

from __future__ import annotations

import pytest

from engine.serving.suggest import SuggestEntry, SuggestIndex, normalize


def query(text: str, weight: float = 1) -> SuggestEntry:
    return SuggestEntry(text, weight, "query")


def product(text: str, weight: float = 1, ref: str | None = None) -> SuggestEntry:
    return SuggestEntry(text, weight, "product", ref or f"P-{text[:8]}")


@pytest.fixture(scope="module")
def index() -> SuggestIndex:
    return SuggestIndex(
        [
            query("wireless mouse", 40),
            query("wireless earbuds", 90),
            query("mouse pad", 10),
            query("kitchen towels", 5),
            product("Wireless Mouse, 2.4G Silent Optical Mouse", 500, "B1"),
            product("Logitech M185 Wireless Mouse", 9000, "B2"),
            product("Gaming Mouse Pad XXL", 300, "B3"),
            product("Cotton Kitchen Towels, Set of 6", 70, "B4"),
            product("Café Brew Glass Coffee Carafe", 12, "B5"),
            product("USB-C Charging Cable 6 ft", 800, "B6"),
        ]
    )


def texts(index: SuggestIndex, typed: str, limit: int = 8) -> list[str]:
    return [s.text for s in index.suggest(typed, limit)]


def test_normalize_ignores_case_accents_width_and_punctuation():
    assert normalize("  Café  BREW, Glass!") == "cafe brew glass"
    assert normalize("ＵＳＢ-Ｃ") == "usb c"  # fullwidth letters fold (NFKC)
    assert normalize("STRAẞE") == "strasse"  # casefold, not lower()
    assert normalize("snake_case") == "snake case"
    assert normalize("?!") == ""


def test_whole_text_prefix_ranks_queries_first_then_by_weight(index):
    assert texts(index, "wire") == [
        "wireless earbuds",  # the more popular query first
        "wireless mouse",
        "Wireless Mouse, 2.4G Silent Optical Mouse",
        "Logitech M185 Wireless Mouse",  # a word match: after every whole-text match
    ]


def test_the_word_being_typed_completes_inside_a_title(index):
    # "wireless mou": the text starts with it, or holds "wireless" and a word starting "mou".
    assert texts(index, "wireless mou") == [
        "wireless mouse",
        "Wireless Mouse, 2.4G Silent Optical Mouse",
        "Logitech M185 Wireless Mouse",
    ]
    assert texts(index, "m185 wire") == ["Logitech M185 Wireless Mouse"]
    assert texts(index, "mouse") == [
        "mouse pad",
        "wireless mouse",
        "Logitech M185 Wireless Mouse",
        "Wireless Mouse, 2.4G Silent Optical Mouse",
        "Gaming Mouse Pad XXL",
    ]


def test_a_finished_word_must_match_whole(index):
    # A space after "mou" says the shopper meant the word "mou", which nothing holds.
    assert texts(index, "mou ") == []
    assert texts(index, "mouse ")[:1] == ["mouse pad"]
    assert texts(index, "usb-") == ["USB-C Charging Cable 6 ft"]  # "usb" finished, then "c..."


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("wirelss", "wireless earbuds"),  # a letter left out
        ("wirelless", "wireless earbuds"),  # one too many
        ("wirwless", "wireless earbuds"),  # one wrong
        ("wrieless", "wireless earbuds"),  # two swapped
        ("kicthen", "kitchen towels"),
        ("wireless mosue", "wireless mouse"),  # the last word, after a correct one
        ("wirelss mouse", "wireless mouse"),  # a finished word, before the one being typed
    ],
)
def test_one_typo_is_forgiven(index, typed, expected):
    assert texts(index, typed)[0] == expected


def test_typos_rank_after_exact_matches_and_need_four_letters(index):
    assert texts(index, "mpus") == texts(index, "mous")  # one substitution
    assert texts(index, "mpu") == []  # three letters: too short to guess at
    assert texts(index, "wirelss mosue") == []  # two typos: one edit cannot fix them
    assert texts(index, "xqzvwk") == []


def test_queries_rank_above_titles_of_the_same_match_quality():
    index = SuggestIndex(
        [product("Towel rack", 10**6), query("towel", 1), product("Towel warmer", 5), query("towel set", 2)]
    )
    assert texts(index, "tow") == ["towel set", "towel", "Towel rack", "Towel warmer"]


def test_one_suggestion_per_text_the_query_winning(index):
    dup = SuggestIndex(
        [
            query("Kitchen Towels", 3),
            product("kitchen towels", 100, "K1"),
            product("KITCHEN TOWELS!", 200, "K2"),
            product("Kitchen towels set", 1, "K3"),
            query("kitchen  towels", 1),
        ]
    )
    found = dup.suggest("kitchen")
    assert [(s.text, s.kind, s.ref) for s in found] == [
        ("Kitchen Towels", "query", None),
        ("Kitchen towels set", "product", "K3"),
    ]
    assert (dup.count("query"), dup.count("product")) == (1, 2)  # the same-text title is dropped when shown


def test_unicode_input_matches_without_case_or_accents(index):
    assert texts(index, "CAFE") == ["Café Brew Glass Coffee Carafe"]
    assert texts(index, "café br") == ["Café Brew Glass Coffee Carafe"]
    assert texts(index, "ｃａｆé") == ["Café Brew Glass Coffee Carafe"]
    assert texts(index, "cafe\u0301") == ["Café Brew Glass Coffee Carafe"]  # a combining accent
    assert texts(index, "😀") == [] and texts(index, "") == [] and texts(index, "   ") == []


def test_product_suggestions_carry_their_id_and_limit_applies(index):
    found = index.suggest("logitech")
    assert [(s.kind, s.ref) for s in found] == [("product", "B2")]
    assert len(index.suggest("w", limit=2)) == 2
    assert index.suggest("w", limit=0) == []


def test_with_queries_keeps_the_titles_and_replaces_the_queries(index):
    fresh = index.with_queries([query("wireless charger", 7)])
    assert texts(fresh, "wireless c") == ["wireless charger"]
    assert "wireless mouse" not in texts(fresh, "wireless")
    assert fresh.count("product") == index.count("product") and fresh.count("query") == 1
    with pytest.raises(ValueError):
        index.with_queries([product("a title")])
    with pytest.raises(ValueError):
        SuggestIndex([SuggestEntry("x", 1, "brand")])
