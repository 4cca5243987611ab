"""Random adjacent swaps (engine.ranking.exploration) and their use in the search log (webapp.services.search)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import select

from engine.ranking.exploration import EXPLORED, adjacent_swaps
from engine.training.click_model import fit_pbm
from webapp.extensions import db
from webapp.models import Impression


@dataclass(frozen=True)
class Row:
    name: str
    position: int


def page(n: int = 10) -> list[Row]:
    return [Row(f"p{k}", k) for k in range(1, n + 1)]


def test_swaps_move_products_by_at_most_one_place_and_keep_positions():
    rng, moved = random.Random(1), 0
    for _ in range(200):
        swapped = adjacent_swaps(page(), 1.0, rng)
        assert [r.position for r in swapped] == list(range(1, 11))
        assert sorted(r.name for r in swapped) == sorted(r.name for r in page())
        for row in swapped:
            assert abs(int(row.name[1:]) - row.position) <= 1
        moved += sum(int(r.name[1:]) != r.position for r in swapped)
    assert 600 < moved < 1400  # about half of the ~9 pairs' products move per page


def test_only_the_configured_share_of_pages_explores():
    rng = random.Random(2)
    assert all(adjacent_swaps(page(), 0.0, rng) is None for _ in range(100))
    explored = sum(adjacent_swaps(page(), 0.1, rng) is not None for _ in range(2000))
    assert 140 < explored < 260
    assert adjacent_swaps(page(1), 1.0, rng) is None  # nothing to swap


def test_explored_pages_are_logged_as_such_and_identify_the_click_model(app, client, make_product):
    for n in range(8):
        make_product(title=f"walnut desk lamp {n}", brand="")
    app.config["EXPLORATION_SHARE"] = 1.0
    for _ in range(40):
        assert client.get("/api/search", query_string={"q": "walnut desk lamp"}).status_code == 200
    rows = db.session.execute(select(Impression.product_id, Impression.position, Impression.ranker)).all()
    assert rows and all(r.ranker.endswith(EXPLORED) for r in rows)
    positions = {}
    for product, position, _ in rows:
        positions.setdefault(product, set()).add(position)
    assert all(len(seen) >= 2 for seen in positions.values())  # every product seen at two places
    model = fit_pbm(["q"] * len(rows), [r[0] for r in rows], [r[1] for r in rows], [False] * len(rows), 8)
    assert model.identification.varied_share == 1.0
    assert client.get("/api/search", query_string={"q": "walnut desk lamp", "sort": "rating"}).status_code == 200
    newest = db.session.scalars(select(Impression.ranker).order_by(Impression.id.desc()).limit(1)).one()
    assert not newest.endswith(EXPLORED)  # a sort the shopper chose is never shuffled
