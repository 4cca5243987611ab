"""Offline evaluation: judgments, query sets and splits, ranking metrics."""
