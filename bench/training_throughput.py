"""Fine-tuning throughput of the packaged MiniLM: (query, product) pairs per second per method.

    .venv/bin/python bench/training_throughput.py [--steps 8] [--methods full,top_layers,lora]

Pairs are the demo's judged (query, product) pairs with their real product texts (Exact
as positives, the rest as negatives), batched exactly as the fine-tune task batches them
(engine/training/batching.py). Each method starts from a fresh copy of the pretrained
model, runs one untimed warm-up step, then `--steps` timed steps of the real training loop
(engine/training/finetune.py: forward, multi-task loss, backward, AdamW). Extra in-batch
negatives are encoded too but not counted as pairs. CUDA is used when present.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.catalog.readers import read_catalog  # noqa: E402
from engine.evaluation.judgments import read_esci_judgments, read_esci_queries  # noqa: E402
from engine.modeling.config import ModelConfig  # noqa: E402
from engine.modeling.encoder import load_pretrained  # noqa: E402
from engine.modeling.heads import MultiTaskModel  # noqa: E402
from engine.serving.product_text import product_text  # noqa: E402
from engine.training.dataset import PairExample, TrainingSet, category_label  # noqa: E402
from engine.training.finetune import FineTuneConfig, fine_tune  # noqa: E402
from engine.training.params import with_categories  # noqa: E402

DEMO_ZIP = ROOT / "data" / "esci-us-sample" / "esci_us_ecommerce_shrunk.ndjson.zip"


def demo_pairs() -> TrainingSet:
    """Every judged demo pair, with the product texts the encoder embeds and category labels."""
    records = {p.record.external_id: p.record for p in read_catalog(DEMO_ZIP) if p.record is not None}
    ids = {external: number for number, external in enumerate(sorted(records), start=1)}
    judgments = read_esci_judgments()
    examples = []
    for query in read_esci_queries():
        for doc, grade in judgments.grades[query.qid].items():
            if doc in ids:
                label = 1.0 if grade == 100 else 0.0
                examples.append(PairExample(query.text, ids[doc], label, label, label / 2, 1.0, 1))
    texts, labels = {}, {}
    for external, number in ids.items():
        r = records[external]
        texts[number] = product_text(r.title, r.brand, r.category_path, r.bullet_points, r.description)
        labels[number] = category_label(r.category_path, 2)
    names = tuple(sorted({label for label in labels.values() if label}))
    index = {name: i for i, name in enumerate(names)}
    return TrainingSet(examples, texts, names, {n: index[c] for n, c in labels.items() if c in index})


def measure(method: str, data: TrainingSet, args: argparse.Namespace, device: str) -> dict:
    encoder, tokenizer = load_pretrained()
    config = ModelConfig()
    model, _ = with_categories(MultiTaskModel(encoder, config.heads), config, data.categories, seed=0)
    settings = FineTuneConfig(
        method=method,
        max_steps=args.steps + 1,
        epochs=1,
        batch_size=args.batch_size,
        product_max_length=args.product_max_length,
        extra_negatives=args.extra_negatives,
    )
    marks: list[float] = []
    result = fine_tune(
        model, tokenizer, data, settings, progress=lambda done, total: marks.append(time.perf_counter()), device=device
    )
    seconds = marks[-1] - marks[0]  # from the end of the warm-up step to the end of the last one
    pairs = args.steps * args.batch_size
    return {
        "method": method,
        "trainable": result.trainable_parameters,
        "seconds_per_step": seconds / args.steps,
        "pairs_per_second": pairs / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--methods", default="full,top_layers,lora")
    parser.add_argument("--batch-size", type=int, default=FineTuneConfig.batch_size)
    parser.add_argument("--product-max-length", type=int, default=FineTuneConfig.product_max_length)
    parser.add_argument("--extra-negatives", type=int, default=FineTuneConfig.extra_negatives)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    data = demo_pairs()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), device {device}, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{len(data.examples)} demo pairs; batch {args.batch_size} pairs + {args.extra_negatives} extra negatives, "
        f"products {args.product_max_length} tokens, queries 32; {args.steps} timed steps after 1 warm-up"
    )
    print(f"{'method':<11} {'trainable':>12} {'s/step':>8} {'pairs/s':>8}")
    for method in args.methods.split(","):
        row = measure(method, data, args, device)
        print(
            f"{row['method']:<11} {row['trainable']:>12,} {row['seconds_per_step']:>8.2f} {row['pairs_per_second']:>8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
