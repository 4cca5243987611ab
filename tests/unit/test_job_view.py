"""A job page as a person reads it (webapp.services.job_view, templates/admin/job.html): the
message once, a refusal in its own words with what to do, results as rows, and an activate
button for the version a finished build made."""

from __future__ import annotations

from webapp.extensions import db
from webapp.models import Job, ModelVersion, utcnow
from webapp.services.job_view import result_rows, shown_message


def add(**fields) -> Job:
    job = Job(**fields)
    db.session.add(job)
    db.session.commit()
    return job


def test_a_refusal_is_its_own_state_said_once_with_the_next_step(client, login):
    login("analyst")
    reason = "too little feedback: 2 positive (query, product) pairs from 9 searches; at least 50 are needed"
    job = add(
        kind="fine_tune",
        status="refused",
        message=reason,
        result={
            "refused": reason,
            "next_step": "Real traffic makes them. For a demo: flask simulate",
            "logs": [reason],
        },
        finished_at=utcnow(),
    )
    page = client.get(f"/admin/jobs/{job.id}").get_data(as_text=True)
    assert 'class="badge st-refused"' in page and "st-failed" not in page
    assert "Refused, nothing broke:" in page and "For a demo: flask simulate" in page
    body = page.split("<h2>Logs</h2>")[0].split("Raw result")[0]
    assert body.count("too little feedback: 2 positive") == 1  # not as message and again as error
    state = client.get(f"/admin/jobs/{job.id}.json").get_json()
    assert state["done"] is True and state["message"] == "" and state["refused"] == reason
    listing = client.get("/admin/jobs?status=refused").get_data(as_text=True)
    assert f"#{job.id}" in listing


def test_a_finished_build_says_done_and_offers_to_activate_its_version(client, login):
    version = ModelVersion(name="rebuild of v1", status="ready", retrieval_mode="rrf")
    db.session.add(version)
    db.session.commit()
    job = add(
        kind="build_version",
        status="succeeded",
        progress=1.0,
        message="980 of 1000",
        params={"version_id": version.id},
        result={"version_id": version.id, "build_seconds": 60.52, "products": 821220, "metrics": {"ndcg": 0.41237}},
    )
    login("admin")
    page = client.get(f"/admin/jobs/{job.id}").get_data(as_text=True)
    assert "980 of 1000" not in page and "done (1000 of 1000)" in page
    assert f'action="/admin/models/{version.id}/activate"' in page and f"Activate v{version.id}" in page
    assert "1 min 1 s" in page and "821,220" in page and "metrics › ndcg" in page and "0.4124" in page
    login("analyst")
    page = client.get(f"/admin/jobs/{job.id}").get_data(as_text=True)
    assert f"v{version.id} rebuild of v1 is ready" in page and "/activate" not in page  # analysts cannot
    version.status = "active"
    db.session.commit()
    assert "is ready and not serving" not in client.get(f"/admin/jobs/{job.id}").get_data(as_text=True)


def test_result_rows_and_shown_message():
    rows = dict(result_rows({"heartbeat": "x", "logs": [], "steps": 12, "stopped": None, "ok": True, "ids": [1, 2]}))
    assert rows == {"steps": "12", "stopped": "–", "ok": "yes", "ids": "1, 2"}
    failed = Job(status="failed", message="RuntimeError: boom", error="RuntimeError: boom")
    assert shown_message(failed) == ""
    assert shown_message(Job(status="running", message="40 of 100")) == "40 of 100"
