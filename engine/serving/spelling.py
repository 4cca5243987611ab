"""Query spelling correction against a shop's own vocabulary: symmetric delete (SymSpell).

Each vocabulary word is indexed under every string reachable from its first PREFIX characters
by deleting up to MAX_DISTANCE characters; a query word looks up its own deletes, and the
candidates found are checked with the true (optimal string alignment) edit distance. The best
candidate is the nearest, then the most frequent, then the alphabetically first, so the
answer is deterministic. A word the vocabulary knows is never changed, nor a short word (one
edit on three letters reaches too many words), nor a word with digits (model numbers).

Wolf Garbe's SymSpell: lookups cost a few dictionary probes instead of a scan of the
vocabulary; the prefix bound keeps the index at a few dozen keys per word.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.serving.cards import ProductCard

MAX_DISTANCE = 2
PREFIX = 7
MIN_CHARS = 4  # shorter words are never corrected
LONG_WORD = 7  # from this length two edits are allowed, below it one
_WORD = re.compile(r"[^\W_]+")
_ENDINGS = ("s", "es")  # the lexical index stems these away: such a word finds its stem's products


def words_of(text: str) -> list[str]:
    """The lower-case words of a text (letters and digits; punctuation splits)."""
    return _WORD.findall(text.lower())


def osa_distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (adjacent transpositions count one), or limit + 1 beyond it."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1] if previous[-1] <= limit else limit + 1


def _deletes(word: str, distance: int) -> set[str]:
    found = {word}
    frontier = {word}
    for _ in range(distance):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))} - found
        found |= frontier
    return found


@dataclass(frozen=True)
class Correction:
    """A corrected query: the text to search and which words changed."""

    text: str
    changed: tuple[tuple[str, str], ...]  # (typed, corrected) per changed word


class Vocabulary:
    """Word frequencies and their symmetric-delete index; immutable once built."""

    def __init__(self, frequencies: Mapping[str, int]) -> None:
        self.frequencies = {w: n for w, n in frequencies.items() if n > 0}
        self.by_delete: dict[str, list[str]] = defaultdict(list)
        for word in self.frequencies:
            for key in _deletes(word[:PREFIX], MAX_DISTANCE):
                self.by_delete[key].append(word)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Vocabulary:
        """The vocabulary of some texts, each word counted once per text (document frequency)."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(set(words_of(text)))
        return cls(counts)

    def __len__(self) -> int:
        return len(self.frequencies)


def catalog_vocabulary(cards: Iterable[ProductCard]) -> Vocabulary:
    """The words of the products' titles, brands and categories (bullets and descriptions add noise and time)."""
    return Vocabulary.from_texts(f"{card.title} {card.brand} {card.category}" for card in cards)


class Speller:
    """Corrects query words against one or more vocabularies (a word's frequency: the sum over them).

    Parts let a large, rarely changing vocabulary (the catalog's) be kept while a small one
    (the query log's) is rebuilt often.
    """

    def __init__(self, parts: Iterable[Vocabulary]) -> None:
        self.parts = tuple(parts)

    def frequency(self, word: str) -> int:
        return sum(part.frequencies.get(word, 0) for part in self.parts)

    def known(self, word: str) -> bool:
        """In the vocabulary, or a plural or possessive of a word that is ("mans", "boxes")."""
        return any(
            self.frequency(form) for form in (word, *(word[: -len(end)] for end in _ENDINGS if word.endswith(end)))
        )

    def best(self, word: str) -> str | None:
        """The vocabulary word nearest to `word` (itself when known), or None when nothing is near."""
        if self.known(word):
            return word
        if len(word) < MIN_CHARS or any(c.isdigit() for c in word):
            return None
        limit = MAX_DISTANCE if len(word) >= LONG_WORD else 1
        keys = _deletes(word[:PREFIX], limit)
        candidates = {c for part in self.parts for key in keys for c in part.by_delete.get(key, ())}
        scored = []
        for candidate in candidates:
            distance = osa_distance(word, candidate, limit)
            if distance <= limit:
                scored.append((distance, -self.frequency(candidate), candidate))
        return min(scored)[2] if scored else None

    def correct(self, text: str) -> Correction | None:
        """The query with each unknown word replaced by its best vocabulary word; None when nothing changes."""
        changed: list[tuple[str, str]] = []

        def replace(match: re.Match[str]) -> str:
            typed = match.group(0)
            best = self.best(typed.lower())
            if best is None or best == typed.lower():
                return typed
            changed.append((typed, best))
            return best

        corrected = _WORD.sub(replace, text)
        return Correction(corrected, tuple(changed)) if changed else None
