"""What Django's error pages and error reports may show (``DEFAULT_EXCEPTION_REPORTER_FILTER``).

Django's own filter hides ``sensitive_variables``/``sensitive_post_parameters`` and
secret-looking settings only when ``DEBUG`` is off. Key material (encryption, audit and
checksum keys; see ``paymenter.encryption``, ``paymenter.keyring``) must not reach even a
developer's debug page or a pasted traceback, so here the filter is always on.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter


class AlwaysSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    def is_active(self, request: HttpRequest | None) -> bool:
        return True
