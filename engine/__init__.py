"""Kairos search and learning core: no Flask, no database."""
