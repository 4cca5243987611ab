"""Query rules' cost per search: lexical search of the demo's train queries with 0, 100 and 1,000 rules.

    nice -n 10 .venv/bin/python bench/rules_latency.py [--passes 5] [--cache 0]

In process, no database: the demo catalog in a Searcher (lexical retrieval, its result cache
on as a worker serves head queries, or off with --cache 0), and the rules as a worker's follower holds them
(engine.merchandising.rules.RuleSet). A rule set of N is N/10 "contains" rules on words the
train queries use (each pins one product and boosts a brand, so they do apply) and the rest
exact rules on queries nobody typed. Per search it times rule lookup, the search with the
rules' arrange hook, and what the hook does, and prints the median and p90 per setting with
the ratio to no rules. Only the train half's query texts are read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from spelling import load_cards  # noqa: E402

from engine.evaluation.judgments import DEMO_JUDGMENTS, read_esci_queries  # noqa: E402
from engine.evaluation.split import load_split  # noqa: E402
from engine.merchandising.rules import Arranger, Boost, Rule, RuleSet  # noqa: E402
from engine.serving.searcher import Searcher, SearchRequest  # noqa: E402


def rule_set(size: int, words: list[str], product_ids: list[int], brands: list[str]) -> RuleSet:
    rules = []
    for i in range(size):
        if i % 10 == 0:
            word = words[(i // 10) % len(words)]
            pin = ((product_ids[i % len(product_ids)], 1),)
            rules.append(
                Rule(i + 1, word, "contains", pins=pin, boosts=(Boost("brand", brands[i % len(brands)], 1.0),))
            )
        else:
            rules.append(Rule(i + 1, f"campaign query {i}", "exact", pins=((product_ids[0], 1),)))
    return RuleSet.of(rules)


def timed(searcher: Searcher, queries: list[str], rules: RuleSet, passes: int) -> list[float]:
    times = []
    now = time.time()
    for _ in range(passes):
        for text in queries:
            started = time.perf_counter()
            matching = rules.matching(" ".join(text.lower().split()), now)
            arranger = Arranger(matching, searcher.cards) if matching else None
            searcher.search(SearchRequest(text=text), arrange=arranger)
            times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--cache", type=int, default=512, help="result cache size (0: every search retrieves)")
    args = parser.parse_args()
    cards = load_cards()
    searcher = Searcher(result_cache=args.cache)
    searcher.apply_changes(cards, [])
    wanted = load_split().texts("train")
    queries = [q.text for q in read_esci_queries(DEMO_JUDGMENTS) if q.text in wanted]
    words = sorted({w for q in queries for w in q.lower().split() if len(w) > 4})[:100]
    brands = sorted({c.brand for c in cards if c.brand})[:50]
    ids = [c.id for c in cards[:200]]
    timed(searcher, queries, RuleSet(), 1)  # warm: indexes, result cache
    baseline = None
    print(f"{len(cards)} products, {len(queries)} train queries x {args.passes} passes, result cache {args.cache}")
    print(f"{'rules':>6} {'applied':>8} {'p50 ms':>8} {'p90 ms':>8} {'p50 ratio':>10}")
    for size in (0, 100, 1000):
        rules = rule_set(size, words, ids, brands)
        applied = sum(1 for q in queries if rules.matching(q.lower(), time.time()))
        times = timed(searcher, queries, rules, args.passes)
        p50, p90 = statistics.median(times), statistics.quantiles(times, n=10)[-1]
        baseline = baseline or p50
        print(f"{size:>6} {applied:>8} {p50:>8.3f} {p90:>8.3f} {p50 / baseline:>10.2f}")


if __name__ == "__main__":
    main()
