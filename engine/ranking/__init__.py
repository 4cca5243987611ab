"""Time-sensitive and personal ranking: decayed signals, shopper profiles and the stage-2 re-ranker."""
