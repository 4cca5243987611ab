"""Synonyms (engine.serving.synonyms): parsing synonyms.txt, and expansion in lexical retrieval."""

from __future__ import annotations

from engine.serving.lexical import LexicalDoc, LexicalIndex
from engine.serving.synonyms import SynonymRule, SynonymTable, format_synonyms, parse_synonyms


def test_parses_equivalences_one_way_rules_comments_and_blank_lines():
    rules, errors = parse_synonyms("# a comment\n\nTV, Television , telly\nsneakers, trainers => running shoes\n")
    assert errors == []
    assert rules == [
        SynonymRule(("tv", "television", "telly")),
        SynonymRule(("sneakers", "trainers"), ("running shoes",)),
    ]


def test_bad_lines_are_reported_with_their_line_numbers():
    text = "tv, television\nlonely\na, , b\nx => y => z\n=> shoes\nok, fine\n"
    rules, errors = parse_synonyms(text)
    assert [e.line for e in errors] == [2, 3, 4, 5]
    assert "two different terms" in errors[0].message
    assert len(rules) == 2


def test_format_then_parse_is_a_round_trip():
    rules, _ = parse_synonyms("tv, television\nsneakers, trainers => running shoes\n")
    again, errors = parse_synonyms(format_synonyms(rules))
    assert errors == [] and again == rules


def test_table_expands_both_ways_for_equivalences_and_one_way_otherwise():
    table = SynonymTable.from_rules([SynonymRule(("tv", "television")), SynonymRule(("sneakers",), ("running shoes",))])
    assert table.expands[("tv",)] == ("television",)
    assert table.expands[("television",)] == ("tv",)
    assert table.expands[("sneakers",)] == ("running shoes",)
    assert ("running", "shoes") not in table.expands
    assert table.applied("Cheap TV stand") == ["tv → television"]


def test_multi_word_terms_group_the_typed_words():
    table = SynonymTable.from_rules([SynonymRule(("cell phone", "mobile"))])
    groups = table.group(["cell", "phone", "case"])
    assert [g.words for g in groups] == [("cell", "phone"), ("case",)]
    assert groups[0].alternatives == ("mobile",)


DOCS = [
    LexicalDoc(1, "Wooden TV stand", brand="Oak"),
    LexicalDoc(2, "Television stand with drawers", brand="Pine"),
    LexicalDoc(3, "Mobile case, leather", brand="Hide"),
    LexicalDoc(4, "Cell phone case, silicone", brand="Soft"),
    LexicalDoc(5, "Garden hose", brand="Green"),
]


def _index(table: SynonymTable | None = None) -> LexicalIndex:
    index = LexicalIndex(fuzzy_min_hits=0)
    index.upsert(DOCS)
    if table is not None:
        index.synonyms = table
    return index


def test_expansion_finds_synonym_only_matches_ranked_below_typed_word_matches():
    assert [pid for pid, _ in _index().search("tv stand").hits] == [1]
    rules, _ = parse_synonyms("tv, television\n")
    hits = _index(SynonymTable.from_rules(rules)).search("tv stand").hits
    assert [pid for pid, _ in hits] == [1, 2]
    assert hits[0][1] > hits[1][1]
    # And from the other side: the typed word still leads.
    assert [pid for pid, _ in _index(SynonymTable.from_rules(rules)).search("television stand").hits] == [2, 1]


def test_multi_word_synonym_matches_as_one_word_of_the_query():
    rules, _ = parse_synonyms("cell phone, mobile\n")
    hits = _index(SynonymTable.from_rules(rules)).search("cell phone case").hits
    assert [pid for pid, _ in hits] == [4, 3]


def test_one_way_synonym_does_not_expand_back():
    rules, _ = parse_synonyms("tv => television\n")
    index = _index(SynonymTable.from_rules(rules))
    assert [pid for pid, _ in index.search("tv stand").hits] == [1, 2]
    assert [pid for pid, _ in index.search("television stand").hits] == [2]
