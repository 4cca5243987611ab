"""CSV records from numbered lines, with strict quoting and bounded size.

A record that cannot be read (an unclosed quote that would swallow every following row, a
record longer than the limit, a line that is not UTF-8 inside it) is reported at the line it
starts on, and for an unclosed quote or an overlong record the lines after its first are read
again as rows of their own, so nothing after a broken quote goes missing silently.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterator

# (line number, text or None, error or None): a decoded line, or why it could not be.
Line = tuple[int, str | None, str | None]


class _BadRecord(Exception):
    def __init__(self, message: str, retry_after_first: bool) -> None:
        super().__init__(message)
        self.retry_after_first = retry_after_first


class _Feed:
    """Lines for csv.reader, remembering those of the record being read (at most max_bytes of
    them), so a broken record can be reported at its first line and the lines after it re-read."""

    def __init__(self, lines: Iterator[Line], max_bytes: int) -> None:
        self.source = lines
        self.replay: deque[Line] = deque()
        self.taken: list[Line] = []
        self.size = 0
        self.max_bytes = max_bytes

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        number, text, error = self.replay.popleft() if self.replay else next(self.source)
        if error or text is None:
            if self.taken:  # the line breaks the record it belonged to; report that record
                raise _BadRecord(f"row runs into line {number}, where {error}", retry_after_first=False)
            self.taken.append((number, text, error))
            raise _BadRecord(error or "unreadable line", retry_after_first=False)
        self.taken.append((number, text, None))
        self.size += len(text)
        if self.size > self.max_bytes:
            raise _BadRecord(f"row is longer than {self.max_bytes // 1024} KB (an unclosed quote?)", True)
        return text

    def start_record(self) -> None:
        """Forget the previous record; the next one's first line is then taken[0]."""
        self.taken, self.size = [], 0

    def retry_after_first(self) -> None:
        """Hand every line of the failed record but its first to the next reader."""
        self.replay.extendleft(reversed(self.taken[1:]))


def csv_rows(lines: Iterator[Line], max_bytes: int) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(first line, cells, error) per CSV record; strict quoting, so an unclosed quote is an error."""
    csv.field_size_limit(max(csv.field_size_limit(), max_bytes))
    feed = _Feed(lines, max_bytes)
    while True:
        reader = csv.reader(feed, strict=True)
        try:
            while True:
                feed.start_record()
                cells = next(reader)
                yield feed.taken[0][0], cells, None
        except StopIteration:
            return
        except _BadRecord as exc:
            yield feed.taken[0][0], None, str(exc)
            if exc.retry_after_first:
                feed.retry_after_first()
        except csv.Error as exc:
            message = str(exc)
            if "unexpected end of data" in message:
                last = feed.taken[-1][0]
                message = f"unclosed quote: the row never ends (lines {feed.taken[0][0]}-{last} were read as one)"
                yield feed.taken[0][0], None, message
                feed.retry_after_first()
            else:
                yield feed.taken[0][0], None, f"invalid CSV: {message}"
