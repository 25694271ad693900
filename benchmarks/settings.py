"""The application's settings plus the benchmark's baseline view (``benchmarks.urls``).

Used only by the server ``python -m benchmarks.invoice_create`` starts; never in production.
"""

from paymenter.settings import *  # noqa: F403 - the benchmark measures the application's own settings

ROOT_URLCONF = "benchmarks.urls"
# Query logging and debug pages would be measured too: a benchmark never runs with DEBUG.
DEBUG = False
