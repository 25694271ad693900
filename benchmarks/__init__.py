"""Benchmarks: run by their own command (``make bench``), report ratios; not part of the test suite."""
