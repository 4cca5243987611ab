"""A web worker killed with searches only in its journal: the next worker, a click or the CLI stores them."""

from __future__ import annotations

import os

from sqlalchemy import select

from tests.unit.search_log.support import as_visitor, count, killed_worker
from webapp.extensions import db
from webapp.models import Event, Impression, SearchQuery
from webapp.services.search_journal import Journal
from webapp.services.search_log import start_search_log, stop_search_log


def test_a_killed_workers_searches_are_stored_by_the_next_worker_to_start(app, shop):
    answered = killed_worker(app)
    assert count(SearchQuery) == 0
    app.config.update(SEARCH_LOG_FLUSH_SECONDS=3600.0)
    started = start_search_log(app)  # a replacement worker boots
    try:
        assert sorted(db.session.scalars(select(SearchQuery.id))) == sorted(a[0] for a in answered)
        assert count(Impression) == 2 + 1 + 2  # each page's impressions came with it
        assert os.listdir(started.journal.directory) == [os.path.basename(started.journal.path)]
    finally:
        stop_search_log(app)


def test_a_click_on_a_killed_workers_search_is_stored(client, app, search_log):
    answered = killed_worker(app)
    as_visitor(client)
    search_id, product, position = answered[1]
    click = {"type": "click", "product_id": product, "search_id": search_id, "position": position}
    response = client.post("/api/events", json={"events": [click]})
    assert response.status_code == 201, response.get_json()
    assert count(SearchQuery) == 3 and count(Event) == 1


def test_the_cli_stores_what_stopped_workers_left_and_leaves_running_ones(app, shop, runner):
    answered = killed_worker(app)
    running = Journal(os.path.join(app.config["INSTANCE_DIR"], "searchlog"))  # a live worker's: not the CLI's
    running.append(b"held by a running worker\n")
    result = runner.invoke(args=["search-log", "store"])
    assert result.exit_code == 0, result.output
    assert "3 searches stored; 1 journals of running workers left" in result.output
    assert sorted(db.session.scalars(select(SearchQuery.id))) == sorted(a[0] for a in answered)
    assert os.path.exists(running.path)
    assert "0 searches stored" in runner.invoke(args=["search-log", "store"]).output
    running.close(remove=True)
