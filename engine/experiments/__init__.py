"""A/B experiment statistics: visitor-level metrics, delta-method tests, SRM, always-valid sequential tests."""
