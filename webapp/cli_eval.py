"""Command line: `flask --app webapp eval`, offline relevance of the live search path.

Each query goes through the same parsing and Searcher the storefront uses, without logging a
search, impression or event, so evaluating never pollutes the feedback data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from werkzeug.datastructures import MultiDict

from engine.evaluation.judgments import (
    DEMO_JUDGMENTS,
    EvaluationDataError,
    Judgments,
    Query,
    is_esci_json,
    read_esci_judgments,
    read_esci_queries,
    read_query_tsv,
    read_trec_qrels,
)
from engine.evaluation.label_sets import split_for
from engine.evaluation.metrics import MRR_K, NDCG_K, RECALL_K, Report, evaluate, write_trec_run
from engine.evaluation.split import SPLITS
from engine.serving.query_encoder import OnnxQueryEncoder
from engine.serving.searcher import Searcher
from webapp.errors import InputError
from webapp.services.search_index import get_searcher
from webapp.services.search_params import parse_search_args
from webapp.services.serving_version import warm_up

# A retriever turns query text into external product ids, best first. Dense and hybrid
# modes register here when their indexes exist; the CLI offers whatever is listed.
Retriever = Callable[[Searcher, str, int], list[str]]


def _retriever(mode: str) -> Retriever:
    def retrieve(searcher: Searcher, text: str, limit: int) -> list[str]:
        request = parse_search_args(MultiDict({"q": text}), current_app.config["SEARCH_PAGE_SIZE"])
        hits, _, _ = searcher.retrieve(request.text, request.filters, limit=limit, mode=mode)
        return [searcher.cards[pid].external_id for pid, _ in hits]

    return retrieve


# lexical: BM25; dense: the version's ONNX encoder + faiss; rrf: both fused by reciprocal
# rank; hybrid: both ranked by the version's learned ranker (RRF when it has none).
RETRIEVERS: dict[str, Retriever] = {mode: _retriever(mode) for mode in ("lexical", "dense", "rrf", "hybrid")}


def _load(queries_path: str | None, qrels_path: str | None, rel_level: int | None) -> tuple[list[Query], Judgments]:
    qrels_path = qrels_path or str(DEMO_JUDGMENTS)
    if is_esci_json(qrels_path):
        judgments = read_esci_judgments(qrels_path)
        queries = read_query_tsv(queries_path) if queries_path else read_esci_queries(qrels_path)
    else:
        if not queries_path:
            raise click.UsageError("--queries is required with TREC qrels (only ESCI JSON carries its queries)")
        judgments = read_trec_qrels(qrels_path)
        queries = read_query_tsv(queries_path)
    if rel_level is not None:
        judgments = Judgments(grades=judgments.grades, rel_level=rel_level, gain_map=judgments.gain_map)
    return queries, judgments


def _select(queries: list[Query], judgments: Judgments, split: str) -> list[Query]:
    """The judged queries of one half; the halves are the build's (engine.evaluation.label_sets)."""
    judged = [q for q in queries if q.qid in judgments.grades]
    if not judged:
        raise click.ClickException("no query has judgments: do the query ids match the qrels?")
    if len(judged) < len(queries):
        click.echo(f"skipped {len(queries) - len(judged)} queries without judgments", err=True)
    if split != "all":
        texts = split_for([q.text for q in judged], current_app.config["INSTANCE_DIR"]).texts(split)
        judged = [q for q in judged if q.text in texts]
        if not judged:
            raise click.ClickException(f"no judged query is in the {split!r} half (use --split all)")
    return judged


def _print(report: Report, judgments: Judgments, queries: list[Query], mode: str, split: str, per_query: bool) -> None:
    if per_query:
        texts = {q.qid: q.text for q in queries}
        click.echo(f"{'qid':<16} {'nDCG@10':>8} {'RR@10':>8} {'R@100':>8}  query")
        for s in report.per_query:
            click.echo(f"{s.qid:<16} {s.ndcg:8.4f} {s.rr:8.4f} {s.recall:8.4f}  {texts[s.qid]}")
    gains = "ESCI gains E 1.0, S 0.1, C 0.01, I 0" if judgments.gain_map is not None else "gain = grade"
    click.echo(f"mode {mode}, split {split}")
    click.echo(f"NDCG@{NDCG_K:<7} {report.ndcg:.4f}  ({gains}; unjudged 0)")
    click.echo(f"MRR@{MRR_K:<8} {report.mrr:.4f}  (relevant: grade >= {judgments.rel_level})")
    click.echo(f"Recall@{RECALL_K:<5} {report.recall:.4f}  (relevant: grade >= {judgments.rel_level})")
    click.echo(f"queries     {report.count}")


@click.command("eval")
@click.option(
    "--queries",
    "queries_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Queries as 'qid<TAB>text' lines; optional with ESCI JSON judgments, which carry their queries.",
)
@click.option(
    "--qrels",
    "qrels_path",
    type=click.Path(exists=True, dir_okay=False),
    help="TREC qrels ('qid 0 docid grade') or ESCI judgments JSON (*.json).",
)
@click.option("--demo", is_flag=True, help="Use the demo ESCI judgments shipped in data/esci-us-sample.")
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default="train",
    show_default=True,
    help="Which half of the judged queries: train (tune on it), test (report only: name it to see it), or all.",
)
@click.option(
    "--mode",
    "modes",
    type=click.Choice(sorted(RETRIEVERS)),
    multiple=True,
    help="Retrieval path(s) to evaluate, side by side [default: every mode the active version supports].",
)
@click.option("--variant", type=click.Choice(["fp32", "int8"]), help="Query encoder of the active version.")
@click.option("--run-out", type=click.Path(dir_okay=False, writable=True), help="Write the run in TREC format.")
@click.option("--per-query", is_flag=True, help="Print one line of scores per query.")
@click.option(
    "--rel-level",
    type=int,
    default=None,
    help="Smallest grade MRR and recall count as relevant [TREC qrels: 1, ESCI: 100 (Exact)].",
)
@with_appcontext
def eval_command(
    queries_path: str | None,
    qrels_path: str | None,
    demo: bool,
    split: str,
    modes: tuple[str, ...],
    variant: str | None,
    run_out: str | None,
    per_query: bool,
    rel_level: int | None,
) -> None:
    """Evaluate search relevance offline: NDCG@10, MRR@10 and Recall@100 over judged queries."""
    if demo == bool(qrels_path):
        raise click.UsageError("give exactly one of --qrels PATH or --demo")
    try:
        queries, judgments = _load(queries_path, qrels_path, rel_level)
        queries = _select(queries, judgments, split)
    except EvaluationDataError as exc:
        raise click.ClickException(str(exc)) from None
    searcher = _serving_searcher(variant)
    if not modes:
        modes = ("lexical", "dense", "rrf", "hybrid") if searcher.bundle is not None else ("lexical",)
    if searcher.bundle is None and set(modes) - {"lexical"}:
        raise click.ClickException("dense and hybrid modes need an active model version (flask model bootstrap)")
    reports = {}
    for mode in modes:
        run = _run(searcher, queries, mode)
        reports[mode] = evaluate(run, judgments, [q.qid for q in queries])
        if run_out:
            path = Path(run_out if len(modes) == 1 else f"{run_out}.{mode}")
            with path.open("w", encoding="utf-8") as out:
                lines = write_trec_run(run, out, tag=f"kairos-{mode}")
            click.echo(f"wrote {lines} run lines to {path}", err=True)
    if len(modes) == 1:
        _print(reports[modes[0]], judgments, queries, modes[0], split, per_query)
    else:
        _print_table(reports, judgments, split, searcher)


def _serving_searcher(variant: str | None) -> Searcher:
    """The web's Searcher with the active version loaded (optionally with another encoder variant)."""
    warm_up()
    searcher = get_searcher()
    bundle = searcher.bundle
    if variant and bundle is not None and bundle.encoder.variant != variant:
        searcher.bundle = replace(bundle, encoder=OnnxQueryEncoder(bundle.directory, variant=variant))
    return searcher


def _run(searcher: Searcher, queries: list[Query], mode: str) -> dict[str, list[str]]:
    retrieve = RETRIEVERS[mode]
    run: dict[str, list[str]] = {}
    for query in queries:
        try:
            run[query.qid] = retrieve(searcher, query.text, RECALL_K)
        except InputError as exc:
            raise click.ClickException(f"query {query.qid}: {exc}") from None
    return run


def _print_table(reports: dict[str, Report], judgments: Judgments, split: str, searcher: Searcher) -> None:
    bundle = searcher.bundle
    served = f"version {bundle.name}, {bundle.encoder.variant} encoder" if bundle else "no model version"
    click.echo(f"split {split}, {served}; relevant for MRR/recall: grade >= {judgments.rel_level}")
    click.echo(
        f"{'mode':<10} {'NDCG@' + str(NDCG_K):>9} {'MRR@' + str(MRR_K):>9} {'R@' + str(RECALL_K):>9} {'queries':>8}"
    )
    for mode, report in reports.items():
        click.echo(f"{mode:<10} {report.ndcg:9.4f} {report.mrr:9.4f} {report.recall:9.4f} {report.count:8d}")
