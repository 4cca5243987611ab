"""The search log's test fixtures: a small shop and a started log.

The log's thread is started with a long interval so each test decides when a flush happens.
"""

from __future__ import annotations

import pytest

from webapp.services.search_log import start_search_log, stop_search_log


@pytest.fixture
def shop(app, make_product):
    make_product(external_id="T1", title="Cotton towel", brand="Acme", category_path="Home > Bath")
    make_product(external_id="T2", title="Linen towel", brand="Zenith", category_path="Home > Bath")
    make_product(external_id="M1", title="Coffee mug", brand="Acme", category_path="Kitchen")


@pytest.fixture
def search_log(app, shop):
    app.config.update(SEARCH_LOG_FLUSH_SECONDS=3600.0, SEARCH_LOG_WAIT_SECONDS=5.0)
    started = start_search_log(app)
    yield started
    stop_search_log(app)
