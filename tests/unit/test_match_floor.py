"""The semantic match floor (engine.evaluation.match_floor) and the Searcher's use of it."""

from __future__ import annotations

import pytest

from engine.evaluation.match_floor import fit_match_floor, score_floor
from tests.unit.test_searcher_hybrid import built  # noqa: F401


def test_the_fit_picks_the_threshold_with_the_best_f1():
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    relevant = [True, True, True, False, True, False]
    fit = fit_match_floor(scores, relevant)
    assert fit.floor == 0.5 and fit.recall == 1.0 and fit.precision == pytest.approx(0.8)
    assert score_floor(scores, relevant, 0.7).precision == 1.0


def test_ties_keep_the_stricter_floor():
    assert fit_match_floor([0.9, 0.1], [True, False]).floor == 0.9


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        fit_match_floor([0.5], [True, False])


def test_dense_only_hits_match_only_above_the_searchers_floor(built):  # noqa: F811
    from engine.serving.bundle import load_bundle
    from engine.serving.searcher import Searcher, SearchRequest
    from tests.unit.test_searcher_hybrid import CARDS

    searcher = Searcher(candidates=50, result_cache=0)
    searcher.apply_changes(CARDS, [])
    searcher.attach(load_bundle(built, 3))
    searcher.bundle.retrieval_mode = "rrf"
    words_only = searcher.search(SearchRequest(text="water bottle"))
    assert {h.card.id for h in words_only.hits if h.matches} == {1, 2}
    assert words_only.total == 2 and words_only.related == len(words_only.hits) - 2
    searcher.match_floor = -1.0  # every cosine clears it: every dense hit matches
    by_meaning = searcher.search(SearchRequest(text="water bottle"))
    assert by_meaning.total == len(by_meaning.hits) and by_meaning.related == 0


def test_the_floor_comes_from_the_configuration(app):
    from webapp.services.search_index import get_searcher

    assert get_searcher().match_floor is None  # unset: only words make a match


def test_a_configured_floor_reaches_the_searcher(tmp_path):
    from tests.conftest import test_database_url
    from webapp import create_app
    from webapp.extensions import db
    from webapp.services.search_index import searcher_state

    app = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": test_database_url(tmp_path), "SEARCH_MATCH_FLOOR": 0.42}
    )
    with app.app_context():
        assert searcher_state().searcher.match_floor == 0.42
        db.engine.dispose()
