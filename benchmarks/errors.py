"""The one error of the benchmark harness."""

from __future__ import annotations


class BenchmarkError(Exception):
    """The benchmark could not run or a request failed: reported, exit status 1."""
