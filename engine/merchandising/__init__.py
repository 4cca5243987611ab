"""Merchandising: the shop team's query rules, applied to a search's ranked results."""
