"""What a session is missing and which chunks look wrong, from its chunk rows alone (pure functions).

Sequence numbers start at 0. The expected count is the largest of: the session's ``expected_chunks`` (raised by
any ``total_chunks`` a chunk reported) and one past the highest index received.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

DURATION_TOLERANCE = 0.5  # a chunk whose duration differs from the median by more than this fraction is flagged


def expected_count(expected_chunks: int | None, indexes: Iterable[int]) -> int:
    highest = max(indexes, default=-1)
    return max(expected_chunks or 0, highest + 1)


def missing_ranges(expected: int, indexes: Iterable[int]) -> list[tuple[int, int]]:
    """Inclusive (start, end) ranges of the indexes in ``range(expected)`` that were not received."""
    have = set(indexes)
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    for index in range(expected):
        if index not in have:
            if start is None:
                start = index
        elif start is not None:
            ranges.append((start, index - 1))
            start = None
    if start is not None:
        ranges.append((start, expected - 1))
    return ranges


def effective_overlap(chunk: Mapping[str, Any], indexes: set[int]) -> float:
    """The overlap that is trimmed: only when the previous chunk is there to overlap with."""
    index = chunk["sequence_index"]
    if index == 0 or index - 1 not in indexes:
        return 0.0
    return max(float(chunk["overlap_seconds"] or 0.0), 0.0)


def total_duration(chunks: Sequence[Mapping[str, Any]]) -> float:
    """Sum of probed durations minus the overlaps (chunks that could not be probed count as 0)."""
    indexes = {c["sequence_index"] for c in chunks}
    total = 0.0
    for chunk in chunks:
        duration = chunk["duration_seconds"]
        if duration:
            total += max(duration - effective_overlap(chunk, indexes), 0.0)
    return round(total, 6)


def inconsistent_chunks(chunks: Sequence[Mapping[str, Any]], expected: int) -> list[dict[str, Any]]:
    """Chunks whose probed duration cannot be right: none or zero, no longer than their overlap, or far from the
    median of the others (the last chunk of the recording may be shorter, not longer)."""
    ordered = sorted(chunks, key=lambda c: c["sequence_index"])
    last_index = expected - 1
    durations = [c["duration_seconds"] for c in ordered
                 if c["sequence_index"] != last_index and c["duration_seconds"]]
    median = statistics.median(durations) if len(durations) >= 2 else None
    found: list[dict[str, Any]] = []
    for chunk in ordered:
        index, duration = chunk["sequence_index"], chunk["duration_seconds"]
        overlap = float(chunk["overlap_seconds"] or 0.0)
        reason = message = None
        if not duration or duration <= 0:
            reason, message = "no_duration", "the chunk's duration could not be probed (broken or empty media)"
        elif index > 0 and overlap >= duration:
            reason, message = "overlap_exceeds_duration", \
                f"overlap {overlap:g}s is not shorter than the chunk ({duration:.3f}s)"
        elif median is not None:
            too_long = duration > median * (1 + DURATION_TOLERANCE)
            too_short = duration < median * (1 - DURATION_TOLERANCE)
            if too_long or (too_short and index != last_index):
                reason = "duration_differs_from_median"
                message = f"{duration:.3f}s differs from the median chunk duration {median:.3f}s by more than " \
                          f"{DURATION_TOLERANCE:.0%}"
        if reason:
            found.append({"sequence_index": index, "duration_seconds": duration, "reason": reason,
                          "message": message, "median_seconds": median})
    return found
