"""What the benchmarks share: the best of several timed runs."""

from __future__ import annotations

import time


def best_of(runs: int, action):
    """(the shortest wall time of ``runs`` calls of ``action`` in seconds, its last result)."""
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return min(times), result
