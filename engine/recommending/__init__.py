"""Recommendation lists beside search: similar, bought together, for you, trending (no Flask, no database)."""
