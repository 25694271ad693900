"""The application's settings plus the benchmarks' one-statement baseline views (``benchmarks.urls``).

Used only by the servers the benchmarks start (``make bench``, ``make bench-flood``,
``make bench-webhooks``); never in production.
"""

from paymenter.settings import *  # noqa: F403 - the benchmark measures the application's own settings

ROOT_URLCONF = "benchmarks.urls"
# Query logging and debug pages would be measured too: a benchmark never runs with DEBUG.
DEBUG = False
