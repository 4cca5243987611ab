"""Recommendation quality on simulated baskets, and the API's latency beside /api/health.

    .venv/bin/python bench/recommendations.py [--train 6000] [--test 2000] [--requests 300] [--no-http]

Quality, in process: baskets are simulated (engine.evaluation.baskets) from relations defined
by the demo's train-half queries only (who bought X also wants X's complements and
substitutes); the first `--train` sessions feed the co-occurrence counts and the popularity
signals, the next `--test` sessions (another seed) are held out. For every held-out session
and every position k >= 2, each strategy is asked for 10 products given the product at k-1
(the basket so far excluded) and scored on whether the product at k is among them: hit rate
@10 and NDCG@10 (one relevant item: 1 / log2(rank + 1)). Strategies: popularity (the
bestsellers), similar (nearest neighbours; the bench has no model version, so title TF-IDF
vectors reduced to 128 dimensions stand in for the version's embeddings), bought together
(lift over chance, similar as its cold-start fallback) and blended (bought together, similar
and the bestsellers, interleaved in that order).

Latency: a fresh instance (SQLite, the demo catalog, lexical only) served by gunicorn on
127.0.0.1:8741 (the project's gunicorn.conf.py, rate limits off); a few baskets are posted
as events, then GET /api/recommendations?context=product is driven beside /api/health, and
the same service call is timed in process.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.latency_client import drive  # noqa: E402
from bench.latency_server import HOST, Server, prepare, server_env  # noqa: E402
from bench.shift_world import DEMO_CATALOG, card_of  # noqa: E402
from engine.catalog.readers import read_catalog  # noqa: E402
from engine.evaluation.baskets import relations_from, simulate_baskets  # noqa: E402
from engine.evaluation.judgments import read_esci_judgments, read_esci_queries  # noqa: E402
from engine.evaluation.split import load_split  # noqa: E402
from engine.ranking.board import SignalBoard  # noqa: E402
from engine.recommending.co_occurrence import PairBoard  # noqa: E402
from engine.recommending.items import bestsellers  # noqa: E402
from engine.recommending.lists import Catalog, bought_together, similar  # noqa: E402
from engine.serving.vectors import VectorIndex  # noqa: E402

K = 10
PORT = 8741
T0 = 1_700_000_000.0


def title_vectors(cards: dict, dim: int = 128) -> VectorIndex:
    """Title TF-IDF vectors reduced by SVD: a stand-in for a model version's product embeddings."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    ids = sorted(cards)
    tfidf = TfidfVectorizer(sublinear_tf=True).fit_transform([f"{cards[i].title} {cards[i].brand}" for i in ids])
    matrix = TruncatedSVD(dim, random_state=0).fit_transform(tfidf).astype(np.float32)
    index = VectorIndex(dim)
    index.build(ids, matrix)
    return index


def blended(*lists: list[int]) -> list[int]:
    """Round robin over the lists, best first, each product once."""
    out: list[int] = []
    for row in zip(*lists, strict=False):
        out += [p for p in row if p not in out]
    return out[:K]


def quality(args) -> dict[str, tuple[float, float]]:
    queries, judgments = read_esci_queries(), read_esci_judgments()
    relations = relations_from(queries, judgments, set(load_split().train))  # never the test half
    records = {line.record.external_id: line.record for line in read_catalog(DEMO_CATALOG) if line.record}
    wanted = [e for e in relations.products() if e in records]
    cards = {i: card_of(i, records[e]) for i, e in enumerate(wanted, start=1)}
    id_of = {card.external_id: i for i, card in cards.items()}
    known = set(id_of)
    train = [[id_of[e] for e in s if e in known] for s in simulate_baskets(relations, args.train, seed=1)]
    test = [[id_of[e] for e in s if e in known] for s in simulate_baskets(relations, args.test, seed=2)]
    board, pairs = SignalBoard(), PairBoard()
    for n, basket in enumerate(train):
        at = T0 + n * 30.0
        for pid in basket:
            board.add(pid, "purchase", at)
            pairs.add_basket_event(f"v{n}", pid, at)
    now = T0 + len(train) * 30.0
    catalog = Catalog(cards, board, title_vectors(cards), now, per_brand=3)
    counts = pairs.at(now)
    popular = [pid for pid, _ in itertools.islice(bestsellers(cards, board, now), K + 8)]
    hits = {name: [] for name in ("popularity", "similar", "bought_together", "blended")}
    for basket in test:
        for k in range(1, len(basket)):
            seen, target = set(basket[:k]), basket[k]
            anchor = basket[k - 1]
            sim = [r.product_id for r in similar(anchor, cards, catalog.vectors, board, now, K, 3, seen)]
            together = [r.product_id for r in bought_together(catalog, [anchor], counts, K, seen)]
            lists = {
                "popularity": [p for p in popular if p not in seen][:K],
                "similar": sim,
                "bought_together": together,
                "blended": blended(together, sim, [p for p in popular if p not in seen]),
            }
            for name, found in lists.items():
                rank = found.index(target) + 1 if target in found else 0
                hits[name].append(1.0 / math.log2(rank + 1) if rank else 0.0)
    print(
        f"# {len(cards)} products with relations (train-half queries), {len(train)} train / {len(test)} held-out sessions"
    )
    print(f"{'strategy':<16} {'hit@10':>7} {'NDCG@10':>8} {'cases':>6}")
    out = {}
    for name, gains in hits.items():
        hit, ndcg = float(np.mean([g > 0 for g in gains])), float(np.mean(gains))
        out[name] = (hit, ndcg)
        print(f"{name:<16} {hit:>7.3f} {ndcg:>8.3f} {len(gains):>6}")
    return out


def latency(args) -> float:
    with tempfile.TemporaryDirectory(prefix="kairos-rec-bench-") as tmp:
        env = server_env(Path(tmp))
        prepare(env)
        log = Path(tmp) / "gunicorn.log"
        command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"{HOST}:{PORT}"]
        with log.open("w") as out:
            process = subprocess.Popen(
                [*command, "webapp:create_app()"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        server = Server("recommendations", f"http://{HOST}:{PORT}", process, log)
        try:
            server.wait_healthy()
            import requests

            ids = [r.external_id for r in (line.record for line in read_catalog(DEMO_CATALOG)) if r][:200]
            for n in range(40):  # a few baskets so bought-together reads real rows
                basket = [ids[(n * 7 + j * 13) % len(ids)] for j in range(3)]
                session = requests.Session()
                session.post(
                    f"{server.base}/api/events",
                    json={"events": [{"type": "purchase", "product_id": p} for p in basket]},
                    timeout=10,
                )
            params = [
                {"context": "product", "product_id": ids[i % len(ids)], "limit": "8"} for i in range(args.requests)
            ]
            drive(server.base, "/api/health", [{}] * 50, 1, 60)  # warm-up
            drive(server.base, "/api/recommendations", params[:50], 1, 120)
            health = drive(server.base, "/api/health", [{}] * args.requests, 1, 120)
            recs = drive(server.base, "/api/recommendations", params, 1, 300)
            print(f"\n# gunicorn, lexical only, concurrency 1, {args.requests} requests each")
            print(f"health p50 {health.percentile(50):.2f} ms, p90 {health.percentile(90):.2f} ms")
            print(
                f"recommendations p50 {recs.percentile(50):.2f} ms, p90 {recs.percentile(90):.2f} ms"
                + (f", errors {recs.errors}" if recs.errors else "")
            )
            in_process(env, ids[:50])
            return recs.percentile(50) / health.percentile(50)
        finally:
            server.stop()


def in_process(env: dict, ids: list[str]) -> None:
    """The service call itself (lists built and logged), in this process on the same instance."""
    import os

    os.environ.update(env)
    from webapp import create_app
    from webapp.services.recommendations import recommend

    app = create_app({"RATELIMIT_ENABLED": False})
    with app.test_request_context("/"):
        recommend("product", [ids[0]], 8, None)
        times = []
        for pid in ids * 2:
            started = time.perf_counter()
            recommend("product", [pid], 8, None)
            times.append((time.perf_counter() - started) * 1000)
    print(f"in process: recommend(product) p50 {statistics.median(times):.2f} ms over {len(times)} calls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args()
    scores = quality(args)
    ratio = float("nan") if args.no_http else latency(args)
    h, p = scores["blended"][0], scores["popularity"][0]
    print(
        f"recommendations: hit@10 blended {h:.3f} vs popularity {p:.3f} (ratio {h / p if p else float('inf'):.2f}), "
        f"p50 ratio to health {ratio:.2f}"
    )


if __name__ == "__main__":
    main()
