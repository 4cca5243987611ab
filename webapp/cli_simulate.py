"""Command line: `flask --app webapp simulate`, a crowd of simulated shoppers on a running storefront.

Each visitor is its own HTTP session (its own cookie), searches the train-half queries
through GET /api/search and posts its clicks, add-to-carts and purchases to /api/events,
behaving as engine/evaluation/simulator.py says. It writes real feedback, so it talks to
a loopback address unless --allow-remote says otherwise.
"""

from __future__ import annotations

import ipaddress
import time
from urllib.parse import urlsplit

import click
import requests

from engine.evaluation.judgments import EvaluationDataError, is_esci_json
from engine.evaluation.simulator import MAX_SESSIONS, ShopperModel, Simulator
from engine.evaluation.split import SPLITS
from webapp.cli_eval import _load, _select


class HttpTransport:
    """One visitor: a requests.Session against the storefront's JSON API."""

    def __init__(self, base_url: str, timeout: float, retries: int = 3) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.http = requests.Session()

    def _send(self, method: str, path: str, **kwargs: object) -> requests.Response:
        """One request; a 429 (the shop's rate limit) waits its Retry-After (at most a minute) and retries."""
        for attempt in range(self.retries + 1):
            response = self.http.request(method, f"{self.base}{path}", timeout=self.timeout, **kwargs)
            if response.status_code != 429 or attempt == self.retries:
                break
            time.sleep(min(float(response.headers.get("Retry-After") or 1), 60.0))
        return response

    def search(self, params: dict[str, str]) -> dict:
        """GET /api/search; raises on any non-200 answer."""
        response = self._send("GET", "/api/search", params=params)
        if response.status_code != 200:
            raise RuntimeError(f"search answered {response.status_code}: {response.text[:200]}")
        return response.json()

    def send_events(self, events: list[dict]) -> None:
        """POST /api/events; raises when the shop refuses the batch."""
        response = self._send("POST", "/api/events", json={"events": events})
        if response.status_code != 201:
            raise RuntimeError(f"events answered {response.status_code}: {response.text[:200]}")


def is_loopback(url: str) -> bool:
    """Whether a URL points at this machine (localhost, 127.0.0.0/8, ::1)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("simulate")
@click.option("--base-url", required=True, help="The running storefront, e.g. http://127.0.0.1:8000.")
@click.option("--sessions", type=click.IntRange(1, MAX_SESSIONS), default=100, show_default=True)
@click.option("--queries", "queries_path", type=click.Path(exists=True, dir_okay=False), help="'qid<TAB>text' lines.")
@click.option("--qrels", "qrels_path", type=click.Path(exists=True, dir_okay=False), help="TREC qrels or ESCI JSON.")
@click.option("--demo", is_flag=True, help="The demo ESCI judgments (the default without --qrels).")
@click.option("--split", type=click.Choice(SPLITS), help="Demo split to search [default: train; all for own qrels].")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same shoppers.")
@click.option("--workers", type=click.IntRange(1, 32), default=4, show_default=True, help="Visitors at a time.")
@click.option("--eta", type=float, default=1.0, show_default=True, help="Examination at position k is (1/k)^eta.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds per request.")
@click.option("--max-errors", type=int, default=50, show_default=True, help="Stop after this many refused requests.")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback URL (this writes feedback there).")
def simulate_command(
    base_url: str,
    sessions: int,
    queries_path: str | None,
    qrels_path: str | None,
    demo: bool,
    split: str | None,
    seed: int,
    workers: int,
    eta: float,
    timeout: float,
    max_errors: int,
    allow_remote: bool,
) -> None:
    """Send simulated shoppers' searches, clicks, add-to-carts and purchases to a running shop."""
    if urlsplit(base_url).scheme not in ("http", "https"):
        raise click.UsageError("--base-url must be an http(s) URL")
    if not is_loopback(base_url) and not allow_remote:
        raise click.UsageError(f"{base_url} is not a loopback address; pass --allow-remote to write feedback there")
    if demo and qrels_path:
        raise click.UsageError("--demo and --qrels exclude each other")
    own = qrels_path is not None and not is_esci_json(qrels_path)
    try:
        queries, judgments = _load(queries_path, qrels_path, None)
    except EvaluationDataError as exc:
        raise click.ClickException(str(exc)) from None
    queries = _select(queries, judgments, split or ("all" if own else "train"))
    simulator = Simulator(queries, judgments, ShopperModel(eta=eta))
    click.echo(f"simulating {sessions} sessions on {base_url} over {len(simulator.queries)} queries (seed {seed})")
    summary = simulator.run(
        lambda: HttpTransport(base_url, timeout), sessions, seed=seed, workers=workers, max_errors=max_errors
    )
    for line in summary.lines():
        click.echo(line)
    if summary.errors >= max_errors:
        raise click.ClickException(f"stopped after {summary.errors} errors")
