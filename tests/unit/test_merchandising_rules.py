"""Query rules (engine.merchandising.rules): matching, time windows, pin, hide, boost, bury, redirect."""

from __future__ import annotations

from dataclasses import dataclass

from engine.merchandising.rules import BOOST, PIN, Boost, Rule, RuleSet, apply_rules


@dataclass(frozen=True)
class C:
    brand: str
    category: str = ""


CARDS = {
    1: C("Acme", "Home > Bath"),
    2: C("Sonic", "Audio"),
    3: C("Acme", "Audio > Headphones"),
    4: C("Hydro"),
    5: C("Zed"),
}
HITS = [(1, 5.0), (2, 4.0), (3, 3.0), (4, 2.0)]


def ids(outcome) -> list[int]:
    return [pid for pid, _ in outcome.hits]


def test_exact_and_contains_matching():
    rules = RuleSet.of([Rule(1, "tv", "exact"), Rule(2, "tv stand", "contains")])
    assert [r.id for r in rules.matching("tv", 0)] == [1]
    assert [r.id for r in rules.matching("big tv stand oak", 0)] == [2]
    assert rules.matching("tv standing", 0) == []  # whole words only
    assert rules.matching("tvs", 0) == []


def test_a_rule_is_active_only_within_its_window_and_when_enabled():
    rule = Rule(1, "tv", starts_at=100.0, ends_at=200.0)
    rules = RuleSet.of([rule, Rule(2, "tv", enabled=False)])
    assert rules.matching("tv", 99.9) == []
    assert [r.id for r in rules.matching("tv", 100.0)] == [1]
    assert [r.id for r in rules.matching("tv", 199.9)] == [1]
    assert rules.matching("tv", 200.0) == []


def test_no_rules_leave_the_hits_alone():
    outcome = apply_rules(HITS, [], CARDS)
    assert outcome.hits == HITS and outcome.imposed == {} and outcome.redirect is None


def test_pin_moves_a_product_to_its_position_even_from_outside_the_results():
    outcome = apply_rules(HITS, [Rule(1, "q", pins=((5, 1), (3, 2)))], CARDS)
    assert ids(outcome) == [5, 3, 1, 2, 4]
    assert outcome.imposed == {5: PIN, 3: PIN}


def test_pin_past_the_end_goes_last():
    assert ids(apply_rules(HITS, [Rule(1, "q", pins=((1, 50),))], CARDS)) == [2, 3, 4, 1]


def test_hide_removes_products_and_beats_a_pin():
    outcome = apply_rules(HITS, [Rule(1, "q", hides=frozenset({2})), Rule(2, "q", pins=((2, 1),))], CARDS)
    assert ids(outcome) == [1, 3, 4]


def test_boost_by_brand_and_bury_by_category_keep_ranked_order_within_groups():
    boost = Rule(1, "q", boosts=(Boost("brand", "acme", 1.0),))
    assert ids(apply_rules([(2, 9.0), (1, 5.0), (4, 2.0), (3, 1.0)], [boost], CARDS)) == [1, 3, 2, 4]
    bury = Rule(2, "q", boosts=(Boost("category", "audio", -1.0),))
    outcome = apply_rules(HITS, [bury], CARDS)
    assert ids(outcome) == [1, 4, 2, 3]
    assert outcome.imposed == {2: BOOST, 3: BOOST}


def test_redirect_is_returned_with_the_rules_that_applied():
    outcome = apply_rules(HITS, [Rule(7, "q", redirect="/p/gift-cards"), Rule(8, "q", redirect="/other")], CARDS)
    assert outcome.redirect == "/p/gift-cards" and outcome.rule_ids == (7, 8)
