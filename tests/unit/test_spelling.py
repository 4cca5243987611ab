"""Symmetric-delete spelling correction (engine.serving.spelling)."""

from __future__ import annotations

import pytest

from engine.serving.spelling import Speller, Vocabulary, osa_distance, words_of

CATALOG = [
    "Wireless Mouse for Laptop",
    "Wireless Keyboard and Mouse Combo",
    "Minnie Mouse Costume",
    "Mouse Trap Board Game",
    "Noise Cancelling Headphones",
    "Kitchen Towels, Set of 6",
    "Wireless Earbuds",
]


@pytest.fixture
def speller() -> Speller:
    return Speller([Vocabulary.from_texts(CATALOG)])


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("wireless", "wireless", 0),
        ("wireles", "wireless", 1),
        ("wirelsess", "wireless", 1),
        ("ca", "ac", 1),
        ("kitten", "sitting", 3),
        ("hedphnes", "headphones", 2),
    ],
)
def test_optimal_string_alignment_distance(a, b, distance):
    assert osa_distance(a, b, 3) == distance
    if distance:
        assert osa_distance(a, b, distance - 1) == distance  # beyond the limit: limit + 1


@pytest.mark.parametrize(
    ("typed", "corrected"),
    [
        ("wireles mouse", "wireless mouse"),  # a deletion
        ("wirelless mouse", "wireless mouse"),  # an insertion
        ("wirleess mouse", "wireless mouse"),  # a transposition
        ("hedphnes", "headphones"),  # two edits on a long word
        ("kitchn towls", "kitchen towels"),
        ("WIRELES Mouse!", "wireless Mouse!"),  # case and punctuation kept around the fix
    ],
)
def test_unknown_words_are_corrected_to_the_nearest_frequent_word(speller, typed, corrected):
    correction = speller.correct(typed)
    assert correction is not None and correction.text == corrected


@pytest.mark.parametrize(
    "text", ["wireless mouse", "usb 3.0 hub", "mse", "zzzzqqqq", "mouse12", "mouses", "kitchens", "mouse's"]
)
def test_known_short_numeric_and_hopeless_words_are_left_alone(speller, text):
    assert speller.correct(text) is None


def test_frequency_breaks_distance_ties_and_parts_add_up():
    catalog = Vocabulary({"cable": 1, "table": 5})
    assert Speller([catalog]).best("xable") == "table"
    log = Vocabulary({"cable": 10})  # shoppers search it far more often
    assert Speller([catalog, log]).best("xable") == "cable"
    assert Speller([catalog, log]).frequency("cable") == 11


def test_words_split_on_punctuation_and_fold_case():
    assert words_of("USB-C Cable, 6ft (Black)") == ["usb", "c", "cable", "6ft", "black"]
