"""Labelled pairs from feedback records: labels, inverse-propensity weights, time decay, bad rows."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from engine.training.dataset import (
    DatasetConfig,
    EventRecord,
    FeedbackLog,
    ImpressionRecord,
    ProductRecord,
    SearchRecord,
    build_dataset,
    category_label,
    click_rows,
    decay_weight,
)

NOW = datetime(2026, 11, 28, 12, 0)
NO_BIAS = lambda position: 1.0  # noqa: E731


def catalog(count: int = 6, category: str = "Home > Kitchen > Mugs") -> list[ProductRecord]:
    return [ProductRecord(product_id=i, text=f"product {i}", category=category) for i in range(1, count + 1)]


def shown(log: FeedbackLog, search_id: int, query: str, products: list[int], age_days: float = 0.0) -> None:
    log.searches.append(SearchRecord(search_id, query, NOW - timedelta(days=age_days)))
    log.impressions.extend(ImpressionRecord(search_id, p, k) for k, p in enumerate(products, start=1))


def event(log: FeedbackLog, kind: str, search_id: int | None, product: int, position: int | None = None) -> None:
    log.events.append(EventRecord(kind, product, search_id, position, NOW))


def pairs(data) -> dict[tuple[str, int], object]:
    return {(e.query, e.product_id): e for e in data.examples}


def test_labels_from_clicks_purchases_and_skips():
    log = FeedbackLog(products=catalog())
    shown(log, 1, "Red  Mug", [1, 2, 3, 4])
    event(log, "click", 1, 2, 2)
    event(log, "click", 1, 3, 3)
    event(log, "purchase", 1, 3, 3)
    data = build_dataset(log, NO_BIAS, NOW, DatasetConfig(negatives="last_click"))
    got = pairs(data)
    assert set(got) == {("red mug", 1), ("red mug", 2), ("red mug", 3)}  # 4 is below the last click: unseen
    assert (got[("red mug", 1)].grade, got[("red mug", 1)].click) == (0.0, 0.0)  # examined and skipped
    assert (got[("red mug", 2)].grade, got[("red mug", 2)].click, got[("red mug", 2)].purchase) == (0.5, 1.0, 0.0)
    assert (got[("red mug", 3)].grade, got[("red mug", 3)].purchase) == (1.0, 1.0)  # strong positive
    assert data.positives == 2 and data.counts["events_purchase"] == 1

    everything = pairs(build_dataset(log, NO_BIAS, NOW, DatasetConfig(negatives="propensity")))
    assert everything[("red mug", 4)].click == 0.0  # "propensity": every shown position counts
    no_clicks = FeedbackLog(products=catalog())
    shown(no_clicks, 1, "mug", [1, 2])
    assert build_dataset(no_clicks, NO_BIAS, NOW, DatasetConfig(negatives="last_click")).examples == []


def test_inverse_propensity_weights_correct_and_clip():
    log = FeedbackLog(products=catalog())
    for search_id in (1, 2, 3, 4):
        shown(log, search_id, "mug", [5, 6])  # product 6 always at position 2
    event(log, "click", 1, 6, 2)
    naive = pairs(build_dataset(log, NO_BIAS, NOW))[("mug", 6)]
    corrected = pairs(build_dataset(log, lambda k: 1.0 if k == 1 else 0.5, NOW))[("mug", 6)]
    assert naive.click == pytest.approx(0.25)  # 1 click in 4 impressions
    assert corrected.click == pytest.approx(0.5)  # 1/0.5 for the click: examined half as often
    assert corrected.grade == pytest.approx(0.5 * 0.5)  # click grade 0.5
    clipped = pairs(build_dataset(log, lambda k: 0.001, NOW, DatasetConfig(max_ips_weight=2.0)))[("mug", 6)]
    assert clipped.click == pytest.approx(2.0 / 4)
    capped = pairs(build_dataset(log, lambda k: 0.001, NOW))[("mug", 6)]
    assert capped.click == 1.0  # an estimate past 1 is still a rate


def test_recent_feedback_weighs_more():
    assert decay_weight(7.0, 7.0) == pytest.approx(0.5)
    assert decay_weight(14.0, 7.0) == pytest.approx(0.25)
    assert decay_weight(-1.0, 7.0) == 1.0 and decay_weight(100.0, 0.0) == 1.0
    log = FeedbackLog(products=catalog())
    shown(log, 1, "old", [1], age_days=7.0)
    shown(log, 2, "new", [1], age_days=0.0)
    shown(log, 3, "mixed", [1], age_days=7.0)
    shown(log, 4, "mixed", [1], age_days=0.0)
    event(log, "click", 4, 1, 1)  # only the recent one was clicked
    got = pairs(build_dataset(log, NO_BIAS, NOW, DatasetConfig(half_life_days=7.0)))
    assert got[("old", 1)].weight == pytest.approx(0.5) and got[("new", 1)].weight == pytest.approx(1.0)
    assert got[("mixed", 1)].click == pytest.approx(1.0 / 1.5)  # the recent click outweighs the old skip
    flat = pairs(build_dataset(log, NO_BIAS, NOW, DatasetConfig(half_life_days=0)))
    assert flat[("mixed", 1)].click == pytest.approx(0.5)


def test_bad_rows_are_skipped_and_counted():
    log = FeedbackLog(products=catalog(3))
    shown(log, 1, "mug", [1, 2, 99])  # product 99 was deleted
    log.impressions.append(ImpressionRecord(42, 1, 1))  # a search that is not in the log
    shown(log, 2, "   ", [1])  # no text
    event(log, "click", 1, 1, 1)
    event(log, "click", 1, 99, 3)  # deleted product
    event(log, "click", 777, 1, 1)  # unknown search
    event(log, "add_to_cart", None, 2)  # from a product page, not a search
    event(log, "click", 1, 3, 5)  # never shown in that search
    data = build_dataset(log, NO_BIAS, NOW)
    assert data.counts["skipped_impressions_unknown_product"] == 1
    assert data.counts["skipped_impressions_unknown_search"] == 1
    assert data.counts["skipped_searches_without_text"] == 1
    assert data.counts["skipped_events_unknown_product"] == 1
    assert data.counts["skipped_events_unknown_search"] == 1
    assert data.counts["skipped_events_without_search"] == 1
    assert data.counts["skipped_events_not_shown"] == 1
    assert set(pairs(data)) == {("mug", 1), ("mug", 2)} and data.counts["events_click"] == 1


def test_held_out_queries_never_reach_training():
    log = FeedbackLog(products=catalog())
    shown(log, 1, "Test Query", [1])
    shown(log, 2, "train query", [1])
    event(log, "click", 1, 1, 1)
    event(log, "click", 2, 1, 1)
    data = build_dataset(log, NO_BIAS, NOW, exclude_queries=["test   query"])
    assert data.queries() == {"train query"}
    assert (data.counts["held_out_searches"], data.counts["held_out_impressions"], data.counts["held_out_events"]) == (
        1,
        1,
        1,
    )


def test_category_labels_from_the_catalog():
    assert category_label("A > B > C", 2) == "A > B" and category_label("", 2) == ""
    products = catalog(5, "Home > Kitchen > Mugs") + [ProductRecord(10, "rare", "Toys > Dolls")]
    products.append(ProductRecord(11, "no category", ""))
    data = build_dataset(FeedbackLog(products=products), NO_BIAS, NOW, DatasetConfig(min_category_products=2))
    assert data.categories == ("Home > Kitchen",)  # "Toys > Dolls" has one product: too rare to learn
    assert data.product_category == {i: 0 for i in range(1, 6)}
    assert data.product_text[10] == "rare"


def test_click_rows_for_the_click_model():
    log = FeedbackLog(products=catalog())
    shown(log, 1, "Mug", [1, 2, 3])
    event(log, "click", 1, 2, 2)
    queries, products, positions, clicks = click_rows(log, max_position=2)
    assert (queries, products, positions, clicks) == (["mug", "mug"], [1, 2], [1, 2], [False, True])


def test_config_is_checked():
    with pytest.raises(ValueError, match="negatives"):
        DatasetConfig(negatives="all")
    with pytest.raises(ValueError, match="at least 1"):
        DatasetConfig(max_ips_weight=0.5)
