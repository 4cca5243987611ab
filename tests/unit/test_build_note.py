"""The storefront's build note: signed-in staff see a model build's progress; shoppers never do."""

from __future__ import annotations

from webapp.extensions import db
from webapp.models import Job


def test_only_signed_in_staff_see_the_build_progress(app, client, login):
    job = Job(kind="build_version", status="running", progress=0.37, params={"version_id": 1})
    db.session.add(job)
    db.session.commit()
    shopper = app.test_client().get("/").get_data(as_text=True)
    assert "Search is improving" not in shopper and "build-note" not in shopper
    login("analyst")
    page = client.get("/").get_data(as_text=True)
    assert "Search is improving: model v1 building, 37%." in page and f"/admin/jobs/{job.id}" in page
    job.status = "succeeded"
    db.session.commit()
    assert "Search is improving" not in client.get("/").get_data(as_text=True)
