"""Serving: in-memory indexes and the Searcher that web workers hold."""
