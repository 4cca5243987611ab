"""Unit-test fixtures beyond tests/conftest.py: the tiny model shared by the serving tests."""

from __future__ import annotations

import pytest

from tests.unit.serving_fixtures import TinyModel
from tests.unit.serving_fixtures import tiny_model as _tiny_model


@pytest.fixture(scope="session")
def tiny_model() -> TinyModel:
    """A tiny random BERT, its tokenizer and its ONNX export (made once per session)."""
    return _tiny_model()
