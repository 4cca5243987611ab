"""As-you-type suggestions: popular queries and product titles, matched as the shopper types.

A SuggestIndex is built whole from (text, weight, kind) entries and never changes, so a web
worker swaps a fresh one in by plain assignment while requests keep reading the old one.
Matches come in tiers, each read only if the ones before it did not fill the list:

1. the whole text starts with what was typed ("wireless mou" -> "wireless mouse pad");
2. every typed word is a word of the text and the last one starts a word of it
   ("wireless mou" -> "logitech m185 wireless mouse");
3. as 1 then 2, after one edit (insert, delete, substitute, transpose) of the one typed word
   of 4 or more characters that matches nothing as typed ("wirelss" -> "wireless mouse").

Within a tier popular queries come before product titles, then heavier entries first.
Matching ignores case, diacritics and punctuation (NFKC, casefold, accents dropped). The
index keeps one part per kind, so a refresh of the queries reuses the product titles' part.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from engine.serving.suggest_part import SuggestPart, Typed, normalize

KINDS = ("query", "product")  # the order of kinds within a tier
MIN_TYPO_CHARS = 4
MAX_TYPO_CHARS = 30  # a longer "word" was pasted, not typed: no edit search, which bounds its cost

__all__ = ["KINDS", "SuggestEntry", "SuggestIndex", "Suggestion", "normalize"]


@dataclass(frozen=True)
class SuggestEntry:
    """Something worth suggesting: a popular query, or a product title (ref: its external id)."""

    text: str
    weight: float
    kind: str
    ref: str | None = None


@dataclass(frozen=True)
class Suggestion:
    """One line of the list: the text to show, its kind, and the product's external id for a title."""

    text: str
    kind: str
    ref: str | None


def _part(entries: Iterable[SuggestEntry]) -> SuggestPart:
    """One kind's part: one entry per matching form of its text, the heaviest."""
    best: dict[str, SuggestEntry] = {}
    for entry in entries:
        key = normalize(entry.text)
        if key and (key not in best or entry.weight > best[key].weight):
            best[key] = entry
    return SuggestPart([(key, entry.weight, entry) for key, entry in best.items()])


class SuggestIndex:
    """Immutable suggestion index over popular queries and product titles."""

    def __init__(self, entries: Iterable[SuggestEntry] = ()) -> None:
        by_kind: dict[str, list[SuggestEntry]] = {kind: [] for kind in KINDS}
        for entry in entries:
            if entry.kind not in by_kind:
                raise ValueError(f"unknown suggestion kind {entry.kind!r}")
            by_kind[entry.kind].append(entry)
        self._parts = {kind: _part(by_kind[kind]) for kind in KINDS}

    def with_queries(self, entries: Iterable[SuggestEntry]) -> SuggestIndex:
        """A new index with these popular queries and this one's product titles (not rebuilt)."""
        fresh = SuggestIndex(entries)
        if len(fresh._parts["product"]):
            raise ValueError("with_queries takes query entries only")
        fresh._parts["product"] = self._parts["product"]
        return fresh

    def __len__(self) -> int:
        return sum(len(part) for part in self._parts.values())

    def count(self, kind: str) -> int:
        """How many distinct texts of this kind the index holds."""
        return len(self._parts[kind])

    def suggest(self, prefix: str, limit: int = 8) -> list[Suggestion]:
        """Up to `limit` suggestions for what the shopper has typed so far, best first."""
        words = normalize(prefix).split()
        if not words or limit < 1:
            return []
        # A separator typed last ("wireless ", "usb-") means the word is finished: match it whole.
        typed = Typed(tuple(words), open_end=unicodedata.normalize("NFKC", prefix)[-1].isalnum())
        found: list[Suggestion] = []
        shown: set[str] = set()  # matching forms already listed: a title that reads as a listed query is skipped
        for key, entry in self._candidates(typed, 2 * limit):
            if key not in shown:
                shown.add(key)
                found.append(Suggestion(entry.text, entry.kind, entry.ref))
                if len(found) == limit:
                    break
        return found

    def _candidates(self, typed: Typed, per_variant: int) -> Iterator[tuple[str, SuggestEntry]]:
        """Every match, best first, lazily: a tier is searched only when the list needs it."""
        parts = [self._parts[kind] for kind in KINDS]
        for part in parts:
            yield from part.items(part.starts_with(typed))
        for part in parts:
            yield from part.items(part.word_matches(typed))
        for part in parts:
            yield from part.items(self._one_edit(part, typed, per_variant))

    @staticmethod
    def _one_edit(part: SuggestPart, typed: Typed, per_variant: int) -> list[int]:
        """Matches after one edit of the one typed word this part knows nothing of.

        The exact tiers gave fewer than `limit`, so `per_variant` = 2 * limit of each variant's
        best is enough to fill the list, however many entries the variant matches in all.
        """
        unknown = [j for j in range(len(typed.words)) if not part.knows(typed, j)]
        if len(unknown) != 1:  # none: nothing to correct; two or more: one edit cannot fix them
            return []
        j = unknown[0]
        word = typed.words[j]
        if not MIN_TYPO_CHARS <= len(word) <= MAX_TYPO_CHARS:
            return []
        found: list[tuple[bool, int]] = []  # (not a whole-text match, id): whole-text matches first
        for variant in sorted(part.edits(word, as_prefix=typed.open_end and j == len(typed.words) - 1)):
            fixed = Typed(typed.words[:j] + (variant,) + typed.words[j + 1 :], typed.open_end)
            found.extend((False, i) for i in islice(part.starts_with(fixed), per_variant))
            found.extend((True, i) for i in islice(part.word_matches(fixed), per_variant))
        return list(dict.fromkeys(i for _, i in sorted(found)))
