"""Encoder speed: torch vs ONNX fp32 vs ONNX int8 for the packaged all-MiniLM-L6-v2, on this CPU.

    .venv/bin/python bench/encoder_speed.py [--repeats 3] [--products 512] [--batch-size 64]

Exports the query tower to a temporary directory, then measures
  1. single-query latency with one thread (tokenize + encode, no cache), over the 150 demo queries;
  2. product embedding throughput (batch 64, max_length 128) over demo product texts, all cores;
  3. agreement of each ONNX variant with torch (cosine), so speed is never read without quality.
Prints a side-by-side table with medians and ratios to the torch baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from engine.catalog.readers import read_catalog  # noqa: E402
from engine.modeling.encoder import load_pretrained, tokenize  # noqa: E402
from engine.modeling.export import export_query_encoder  # noqa: E402
from engine.modeling.inference import embed_texts  # noqa: E402
from engine.serving.product_text import product_text  # noqa: E402
from engine.serving.query_encoder import OnnxQueryEncoder  # noqa: E402

DEMO = ROOT / "data" / "esci-us-sample"
QUERY_MAX_LENGTH = 32


def demo_queries() -> list[str]:
    data = json.loads((DEMO / "esci_us_queryset.json").read_text(encoding="utf-8"))
    return [q["queryText"] for q in data["querySetQueries"]]


def demo_product_texts(limit: int) -> list[str]:
    records = [line.record for line in read_catalog(DEMO / "esci_us_ecommerce_shrunk.ndjson.zip") if line.record]
    return [
        product_text(
            title=r.title,
            brand=r.brand,
            category=r.category_path,
            bullet_points=r.bullet_points,
            description=r.description,
        )
        for r in records[:limit]
    ]


def latencies_ms(encode: Callable[[str], object], queries: list[str], repeats: int) -> list[float]:
    for query in queries[:20]:  # warm up allocators and kernels
        encode(query)
    timings = []
    for _ in range(repeats):
        for query in queries:
            started = time.perf_counter()
            encode(query)
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def throughput(embed: Callable[[list[str]], np.ndarray], texts: list[str], repeats: int) -> tuple[float, np.ndarray]:
    vectors = embed(texts[:64])  # warm up
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        vectors = embed(texts)
        rates.append(len(texts) / (time.perf_counter() - started))
    return statistics.median(rates), vectors


def agreement(a: np.ndarray, b: np.ndarray) -> str:
    cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return f"{cosine.mean():.4f} / {cosine.min():.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--products", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    cores = os.cpu_count() or 1

    encoder, tokenizer = load_pretrained()
    encoder.eval()
    queries, texts = demo_queries(), demo_product_texts(args.products)
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        export_query_encoder(encoder, tokenizer, directory, max_length=QUERY_MAX_LENGTH)
        export_seconds = time.perf_counter() - started
        sizes = {
            v: (Path(directory) / f).stat().st_size / 2**20
            for v, f in (("fp32", "query_encoder.onnx"), ("int8", "query_encoder.int8.onnx"))
        }

        # 1. Single-query latency, one thread everywhere (a web worker's budget per request).
        torch.set_num_threads(1)

        def torch_query(text: str) -> np.ndarray:
            with torch.inference_mode():
                return encoder.encode_batch(tokenize(tokenizer, [text], QUERY_MAX_LENGTH)).numpy()

        single = {"torch": latencies_ms(torch_query, queries, args.repeats)}
        onnx_single = {}
        for variant in ("fp32", "int8"):
            onnx = OnnxQueryEncoder(directory, variant=variant, threads=1, cache_size=0)
            single[f"onnx {variant}"] = latencies_ms(lambda q, o=onnx: o.encode([q]), queries, args.repeats)
            onnx_single[variant] = onnx.encode(queries)
        cached = OnnxQueryEncoder(directory, variant="int8", threads=1)
        for query in queries:
            cached.encode_query(query)  # fill the cache: what follows is hits only
        cache_hit = latencies_ms(cached.encode_query, queries, args.repeats)
        torch_queries = np.concatenate([torch_query(q) for q in queries])

        # 2. Product throughput with all cores, as a worker embeds a catalog.
        torch.set_num_threads(cores)
        rates = {}
        rates["torch"], torch_products = throughput(
            lambda t: embed_texts(
                encoder, tokenizer, t, batch_size=args.batch_size, max_length=args.max_length, device="cpu"
            ),
            texts,
            args.repeats,
        )
        product_vectors = {}
        for variant in ("fp32", "int8"):
            onnx = OnnxQueryEncoder(
                directory,
                variant=variant,
                threads=cores,
                cache_size=0,
                max_length=args.max_length,
                batch_size=args.batch_size,
            )
            rates[f"onnx {variant}"], product_vectors[variant] = throughput(onnx.encode, texts, args.repeats)

    base_latency = statistics.median(single["torch"])
    print(
        f"all-MiniLM-L6-v2 on {cores} CPU cores, torch {torch.__version__}; export + int8 took {export_seconds:.1f} s;"
        f" ONNX fp32 {sizes['fp32']:.0f} MiB, int8 {sizes['int8']:.0f} MiB"
    )
    print(f"single query: {len(queries)} demo queries x {args.repeats}, 1 thread, tokenize + encode, no cache")
    print(
        f"products: {len(texts)} demo product texts, batch {args.batch_size}, max_length {args.max_length},"
        f" {cores} threads, median of {args.repeats} runs"
    )
    print()
    header = f"{'encoder':<11} {'query p50 ms':>12} {'p90 ms':>8} {'speedup':>8} {'products/s':>11} {'speedup':>8}"
    print(header + f"  {'cos vs torch: queries (mean/min)':>33}  {'products (mean/min)':>19}")
    print("-" * (len(header) + 56))
    for name in ("torch", "onnx fp32", "onnx int8"):
        times = sorted(single[name])
        p50, p90 = statistics.median(times), times[int(0.9 * (len(times) - 1))]
        variant = name.split()[-1]
        query_cos = "1 (baseline)" if name == "torch" else agreement(onnx_single[variant], torch_queries)
        product_cos = "1 (baseline)" if name == "torch" else agreement(product_vectors[variant], torch_products)
        print(
            f"{name:<11} {p50:>12.2f} {p90:>8.2f} {base_latency / p50:>7.2f}x {rates[name]:>11.1f}"
            f" {rates[name] / rates['torch']:>7.2f}x  {query_cos:>33}  {product_cos:>19}"
        )
    print(f"{'int8 cached':<11} {statistics.median(cache_hit):>12.4f}   (encode_query cache hit)")


if __name__ == "__main__":
    main()
