"""One kind's share of a SuggestIndex (engine.serving.suggest): texts sorted for prefix
ranges, word lists for word matches, and a sorted vocabulary for one-edit corrections.

Entries are numbered heaviest first, so every id stream here is best first, and "the best
n" is "the first n" without scoring anything at query time.
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

_WORD = re.compile(r"[^\W_]+")
_TOP = "\U0010ffff"  # sorts after any normalized text: [p, p + _TOP) holds every string starting with p
_FEW_WORDS = 256  # a word being typed that can still become at most this many words is looked up by its words


def normalize(text: str) -> str:
    """Matching form: NFKC, casefolded, accents dropped, letter/digit words joined by one space."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isascii():
        decomposed = unicodedata.normalize("NFD", text)
        text = unicodedata.normalize("NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch)))
    return " ".join(_WORD.findall(text))


@dataclass(frozen=True)
class Typed:
    """What was typed, normalized: its words, and whether the last one may still grow."""

    words: tuple[str, ...]
    open_end: bool

    @property
    def complete(self) -> tuple[str, ...]:
        return self.words[:-1] if self.open_end else self.words

    @property
    def last(self) -> str | None:
        return self.words[-1] if self.open_end else None


class SuggestPart:
    """Entries of one kind, given as (matching form, weight, payload) with distinct forms."""

    def __init__(self, rows: Iterable[tuple[str, float, Any]]) -> None:
        ordered = sorted(rows, key=lambda row: (-row[1], row[0]))
        self._keys = [key for key, _, _ in ordered]
        self._payloads = [payload for _, _, payload in ordered]
        self._words = [key.split() for key in self._keys]
        self._word_sets = [frozenset(words) for words in self._words]
        by_key = sorted(range(len(self._keys)), key=self._keys.__getitem__)
        self._sorted_keys = [self._keys[i] for i in by_key]
        self._sorted_ids = by_key
        postings: dict[str, list[int]] = {}
        for i, words in enumerate(self._word_sets):
            for word in words:
                postings.setdefault(word, []).append(i)  # ids ascend: each list is best first
        self._postings = postings
        self._vocab = sorted(postings)

    def __len__(self) -> int:
        return len(self._keys)

    def items(self, ids: Iterable[int]) -> Iterator[tuple[str, Any]]:
        """(matching form, payload) of each id."""
        return ((self._keys[i], self._payloads[i]) for i in ids)

    def starts_with(self, typed: Typed) -> Iterator[int]:
        """Entries whose whole text starts with the typed text, best first."""
        text = " ".join(typed.words)
        if typed.open_end:
            ids = self._sorted_ids[self._range(self._sorted_keys, text)]
        else:  # the text itself, or the text followed by more words
            lo = bisect_left(self._sorted_keys, text)
            exact = self._sorted_ids[lo : lo + 1] if lo < len(self) and self._sorted_keys[lo] == text else []
            ids = exact + self._sorted_ids[self._range(self._sorted_keys, text + " ")]
        ids.sort()
        return iter(ids)

    def word_matches(self, typed: Typed) -> Iterator[int]:
        """Entries holding every finished word, and a word starting with the last one, best first."""
        complete, last = typed.complete, typed.last
        if any(word not in self._postings for word in complete):
            return iter(())
        growing = self._vocab[self._range(self._vocab, last)] if last is not None else []
        if last is not None and not growing:
            return iter(())
        if not complete:  # only a word being typed: merge the lists of every word it may become
            return _unique(heapq.merge(*(self._postings[w] for w in growing)))
        word_sets = self._word_sets
        rarest = min(complete, key=lambda w: len(self._postings[w]))
        others = [w for w in complete if w != rarest]
        if last is None:
            return (i for i in self._postings[rarest] if all(w in word_sets[i] for w in others))
        if len(growing) > _FEW_WORDS:
            # A short last word starts most texts' words: test each entry of the rarest list.
            words = self._words
            return (
                i
                for i in self._postings[rarest]
                if all(w in word_sets[i] for w in others) and any(w.startswith(last) for w in words[i])
            )
        # A longer last word starts few words: gather their entries, walk whichever side is smaller.
        ending = set().union(*(self._postings[w] for w in growing))
        if len(ending) < len(self._postings[rarest]):
            return (i for i in sorted(ending) if all(w in word_sets[i] for w in complete))
        return (i for i in self._postings[rarest] if i in ending and all(w in word_sets[i] for w in others))

    def knows(self, typed: Typed, j: int) -> bool:
        """Whether typed word j matches something here as typed (as a word, or a word's start if still growing)."""
        word = typed.words[j]
        if typed.open_end and j == len(typed.words) - 1:
            return self._has_prefix(word)
        return word in self._postings

    def edits(self, word: str, as_prefix: bool) -> set[str]:
        """Vocabulary words (or, for the word being typed, word beginnings) one edit from `word`."""
        valid = self._has_prefix if as_prefix else self._postings.__contains__
        # An edit at position i keeps word[:i], so it can only help where word[:i] still begins a
        # vocabulary word: past the longest such beginning there is nothing to try.
        reach = 0
        while reach < len(word) and self._has_prefix(word[: reach + 1]):
            reach += 1
        found: set[str] = set()
        for i in range(min(reach, len(word) - 1) + 1):
            head, rest = word[:i], word[i:]
            tries = [head + rest[1:]]  # delete
            if len(rest) > 1:
                tries.append(head + rest[1] + rest[0] + rest[2:])  # transpose
            for ch in self._next_chars(head):
                tries.append(head + ch + rest[1:])  # substitute
                tries.append(head + ch + rest)  # insert
            found.update(t for t in tries if t and valid(t))
        if not as_prefix and reach == len(word):  # a finished word missing its last letter
            found.update(word + ch for ch in self._next_chars(word) if valid(word + ch))
        found.discard(word)
        return found

    @staticmethod
    def _range(ordered: list[str], prefix: str) -> slice:
        return slice(bisect_left(ordered, prefix), bisect_left(ordered, prefix + _TOP))

    def _has_prefix(self, prefix: str) -> bool:
        i = bisect_left(self._vocab, prefix)
        return i < len(self._vocab) and self._vocab[i].startswith(prefix)

    def _next_chars(self, head: str) -> list[str]:
        """The characters that follow `head` in some vocabulary word (one bisect per character)."""
        chars: list[str] = []
        vocab, n = self._vocab, len(head)
        i = bisect_left(vocab, head)
        while i < len(vocab) and vocab[i].startswith(head):
            if len(vocab[i]) == n:
                i += 1
                continue
            chars.append(vocab[i][n])
            i = bisect_left(vocab, head + vocab[i][n] + _TOP, i)
        return chars


def _unique(ids: Iterable[int]) -> Iterator[int]:
    """Drop repeats from an ascending stream."""
    previous = -1
    for i in ids:
        if i != previous:
            previous = i
            yield i
