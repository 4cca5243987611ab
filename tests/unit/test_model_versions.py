"""Model version lifecycle: activate only what loads, retire the previous one, roll back."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.modeling.export import FP32_FILE
from tests.unit.serving_fixtures import build_version_dir, card
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import ModelVersion
from webapp.services.model_versions import activate_version, active_version, create_version, rollback_version

CARDS = [card(1, "red running shoes"), card(2, "blue rain jacket")]


def ready_version(name: str = "v", status: str = "ready") -> ModelVersion:
    """A version whose reserved artifact directory holds real, loadable artifacts."""
    version = create_version(name)
    build_version_dir(version.artifact_path, CARDS)
    version.status = status
    db.session.commit()
    return version


def statuses() -> dict[int, str]:
    db.session.expire_all()
    return {v.id: v.status for v in db.session.scalars(db.select(ModelVersion))}


def test_create_reserves_an_artifact_directory(app):
    version = create_version("zero-shot", retrieval_mode="rrf")
    assert version.status == "building" and version.retrieval_mode == "rrf"
    assert Path(version.artifact_path) == Path(app.config["INSTANCE_DIR"]) / "models" / f"v{version.id}"
    assert not Path(version.artifact_path).exists()  # reserved, written later by the worker


def test_activate_retires_the_previous_version(app, tiny_model):
    first, second = ready_version("one"), ready_version("two")
    assert activate_version(first.id).status == "active"
    assert activate_version(first.id).status == "active"  # activating the active one is a no-op
    assert active_version().id == first.id
    activate_version(second.id)
    assert statuses() == {first.id: "retired", second.id: "active"}
    assert second.activated_at is not None and first.activated_at is not None


@pytest.mark.parametrize("status", ["building", "failed"])
def test_activate_refuses_unfinished_versions(app, tiny_model, status):
    serving = ready_version("serving")
    activate_version(serving.id)
    other = ready_version("other", status=status)
    with pytest.raises(InputError, match=f"is {status}; only ready or retired"):
        activate_version(other.id)
    assert statuses() == {serving.id: "active", other.id: status}


def test_activate_refuses_a_corrupt_version(app, tiny_model):
    serving = ready_version("serving")
    activate_version(serving.id)
    broken = ready_version("broken")
    (Path(broken.artifact_path) / FP32_FILE).unlink()
    with pytest.raises(InputError, match=f"version {broken.id} cannot serve: artifact {FP32_FILE} is missing"):
        activate_version(broken.id)
    assert statuses() == {serving.id: "active", broken.id: "ready"}


def test_activate_refuses_a_missing_directory(app):
    version = create_version("never built")
    version.status = "ready"
    db.session.commit()
    with pytest.raises(InputError, match="incomplete or missing"):
        activate_version(version.id)
    assert active_version() is None
    with pytest.raises(InputError, match="no model version 999"):
        activate_version(999)


def test_rollback_returns_to_the_previous_version(app, tiny_model):
    first, second = ready_version("one"), ready_version("two")
    activate_version(first.id)
    activate_version(second.id)
    assert rollback_version().id == first.id
    assert statuses() == {first.id: "active", second.id: "retired"}
    assert rollback_version().id == second.id  # rolling back again undoes the rollback
    assert statuses() == {first.id: "retired", second.id: "active"}


def test_rollback_skips_versions_that_never_served(app, tiny_model):
    first = ready_version("one")
    activate_version(first.id)
    never = ready_version("never served")
    never.status = "retired"  # retired without ever being activated
    db.session.commit()
    with pytest.raises(InputError, match="no earlier version"):
        rollback_version()
    assert active_version().id == first.id


def test_rollback_without_any_version(app):
    with pytest.raises(InputError, match="no earlier version"):
        rollback_version()
