"""Building model versions: embedding, export, ranker fitting, publishing (torch lives here)."""
