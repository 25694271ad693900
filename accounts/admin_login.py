"""The admin's own login page is replaced by allauth's: one login for everyone, with rate
limits, e-mail verification and the MFA step (docs/portal.md)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme


def admin_login_redirect(request: HttpRequest, extra_context: object = None) -> HttpResponseRedirect:
    """``AdminSite.login``: send the visitor to allauth's login, keeping a local ``next``."""
    target = request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("admin:index")
    return HttpResponseRedirect(f"{reverse('account_login')}?{urlencode({REDIRECT_FIELD_NAME: target})}")
