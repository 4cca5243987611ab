"""What the click and purchase heads cost per search, and whether a fitted ranker uses them.

    .venv/bin/python bench/heads_cost.py --instance DIR [--version ID] [--repeats 3]

DIR is a SQLite instance with a built model version that serves heads (heads.npz: a version
fine-tuned on feedback, e.g. the one `bench/learning_loop.py --keep` leaves); --version picks
it (default: the newest ready or active version with heads). Read only: the instance's catalog
is loaded into an in-process Searcher with the version's bundle (its serve variant, 1 encoder
thread, faiss single-threaded, as a web worker runs it). On the demo split, as a build does (worker.building.selection):

- two rankers fitted on the train half (75 queries): one with the heads' predictions in the
  click and purchase columns, one without heads (columns 0); their NDCG@10 on train and on
  the test half (75 queries never used to fit anything), next to RRF, and the version build's
  own choice (its ranker.json, kept only when it beat RRF on train);
- the with-heads ranker's weights and each feature's typical pull on a score (the mean over
  queries of the standard deviation of weight x value across the top 50 by RRF);
- per search, over the 150 demo queries, each query's embedding cached first (encoding costs
  the same either way): Searcher.retrieve (hybrid, the with-heads ranker) with the heads and
  with them removed from the bundle, timed alternately per query, medians over queries x
  repeats; and the heads' share alone (candidate_head_scores: RRF top 50, vector lookup,
  numpy MLPs).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.evaluation.judgments import DEMO_JUDGMENTS, read_esci_judgments, read_esci_queries  # noqa: E402
from engine.evaluation.split import load_split  # noqa: E402
from engine.serving.bundle import load_bundle  # noqa: E402
from engine.serving.heads import HEADS_FILE, candidate_head_scores  # noqa: E402
from engine.serving.lexical import Filters  # noqa: E402
from engine.serving.ranker import FEATURES  # noqa: E402
from engine.serving.searcher import Searcher  # noqa: E402
from engine.serving.vectors import serve_single_threaded  # noqa: E402
from engine.training.ranker_fit import RRF_COLUMN  # noqa: E402
from worker.building.selection import LabelSet, fit_ranker, ndcg  # noqa: E402

HEAD = 50  # the fused head whose spread of weighted features the bench reports


def pick_version(instance: Path, version_id: int | None) -> tuple[int, Path]:
    with closing(sqlite3.connect(f"file:{instance / 'kairos.db'}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT id, artifact_path FROM model_versions WHERE status IN ('ready', 'active') ORDER BY id DESC"
        ).fetchall()
    for row_id, path in rows:
        if (version_id is None and (Path(path) / HEADS_FILE).is_file()) or row_id == version_id:
            return int(row_id), Path(path)
    raise SystemExit(f"{instance}: no ready or active version {version_id or 'with ' + HEADS_FILE}")


def searcher_for(instance: Path, version_id: int, directory: Path) -> Searcher:
    from webapp import create_app
    from webapp.extensions import db
    from webapp.models import Product
    from webapp.services.search_index import product_card

    app = create_app({"INSTANCE_DIR": str(instance), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'kairos.db'}"})
    with app.app_context():
        cards = [product_card(p) for p in db.session.scalars(db.select(Product).where(Product.is_active))]
    searcher = Searcher(candidates=app.config["SEARCH_CANDIDATES"])
    searcher.apply_changes(cards, [])
    searcher.attach(load_bundle(directory, version_id, threads=1))
    return searcher


def timings(searcher: Searcher, texts: list[str], repeats: int) -> dict[str, float]:
    with_heads = searcher.bundle
    without = replace(with_heads, heads=None)
    samples: dict[str, list[float]] = {"with heads": [], "without heads": [], "heads alone": []}
    for text in texts:
        with_heads.encoder.encode_query(text)  # cache it: encoding costs the same either way
    for _ in range(repeats):
        for text in texts:
            for label, bundle in (("with heads", with_heads), ("without heads", without)):
                started = time.perf_counter()
                searcher.retrieve(text, Filters(), mode="hybrid", bundle=bundle)
                samples[label].append((time.perf_counter() - started) * 1000)
            dense = searcher._dense(with_heads, text, Filters(), searcher.candidates)
            lexical = [(p, s) for p, s in searcher.lexical.search(text, limit=searcher.candidates).hits]
            query = with_heads.encoder.encode_query(text)
            started = time.perf_counter()
            candidate_head_scores(with_heads.heads, with_heads.ranker, with_heads.vectors, query, dense, lexical)
            samples["heads alone"].append((time.perf_counter() - started) * 1000)
    return {label: statistics.median(values) for label, values in samples.items()}


def pulls(searcher: Searcher, texts: list[str]) -> dict[str, float]:
    """Mean over queries of std(weight * feature) across the top HEAD candidates by RRF."""
    weights = searcher.bundle.ranker.vector()
    spread = []
    for text in texts:
        _, features = searcher.candidate_features(text)
        head = features[np.argsort(-features[:, RRF_COLUMN], kind="stable")[:HEAD]]
        spread.append((head * weights).std(axis=0))
    return dict(zip(FEATURES, np.mean(spread, axis=0).tolist(), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instance", type=Path, required=True)
    parser.add_argument("--version", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    serve_single_threaded()  # as a web worker does: one faiss (OpenMP) and one BLAS thread per search
    version_id, directory = pick_version(args.instance, args.version)
    searcher = searcher_for(args.instance, version_id, directory)
    built = searcher.bundle
    if built.heads is None:
        raise SystemExit(f"v{version_id} serves no heads: nothing to compare")
    queries, judgments, split = read_esci_queries(DEMO_JUDGMENTS), read_esci_judgments(DEMO_JUDGMENTS), load_split()
    texts = [q.text for q in queries]
    halves = {
        name: LabelSet([q for q in queries if q.text in split.texts(name)], judgments) for name in ("train", "test")
    }
    print(
        f"v{version_id} ({directory}): heads {', '.join(built.heads.names)}, {built.encoder.variant} encoder, "
        f"{len(built.vectors)} vectors; the build kept {'a' if built.ranker else 'no'} ranker"
    )
    bare = replace(built, heads=None, ranker=None)
    rankers = {}
    for label, bundle in (("with heads", replace(built, ranker=None)), ("without heads", bare)):
        searcher.attach(bundle)
        rankers[label] = fit_ranker(searcher, halves["train"])
        if rankers[label] is None:
            raise SystemExit("no judged pairs to fit a ranker on: is this the demo catalog?")
    print(f"{'NDCG@10':<23} train   test")
    searcher.attach(bare)
    print(f"  {'rrf':<21} {ndcg(searcher, halves['train'], 'rrf'):.4f} {ndcg(searcher, halves['test'], 'rrf'):.4f}")
    for label, ranker in rankers.items():
        searcher.attach(replace(built, ranker=ranker, heads=built.heads if label == "with heads" else None))
        row = " ".join(f"{ndcg(searcher, halves[h], 'hybrid'):.4f}" for h in ("train", "test"))
        print(f"  {'ranker ' + label:<21} {row}")
    searcher.attach(replace(built, ranker=rankers["with heads"]))
    weights = rankers["with heads"].weights
    print("with-heads ranker: weight, typical pull on a score (std of weight x value over the top 50 by RRF)")
    for name, pull in pulls(searcher, texts).items():
        print(f"  {name:<12} {weights.get(name, 0.0):+8.3f}   {pull:.4f}")
    print(f"per search, {len(texts)} demo queries x {args.repeats}, query embeddings cached, medians:")
    for label, value in timings(searcher, texts, args.repeats).items():
        print(
            f"  {'heads alone (top 50 by RRF)' if label == 'heads alone' else 'retrieve hybrid, ' + label:<30} "
            f"{value:6.2f} ms"
        )


if __name__ == "__main__":
    main()
