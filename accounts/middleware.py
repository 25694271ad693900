"""Staff sessions: a short idle timeout, and MFA before the admin (docs/portal.md).

PCI DSS 8.4 and the security model ask for MFA on every administrative access. allauth asks
for the code at login once a user has an authenticator; this middleware makes sure every
staff user has one: until then, any staff page - the admin, and the API schema and docs
that open with a staff session - redirects to the TOTP setup page (the account, MFA and
logout pages stay reachable, they are outside these paths).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse


def staff_needs_mfa_setup(user: object) -> bool:
    """A signed-in staff user without any MFA authenticator (TOTP or, later, a passkey)."""
    return bool(
        getattr(user, "is_authenticated", False) and getattr(user, "is_staff", False) and not is_mfa_enabled(user)
    )


class StaffSessionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.staff_prefixes: tuple[str, ...] = ()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if getattr(user, "is_authenticated", False) and getattr(user, "is_staff", False):
            # renewed by every request (SESSION_SAVE_EVERY_REQUEST): an idle timeout
            request.session.set_expiry(int(settings.STAFF_SESSION_IDLE_SECONDS))
            if request.path.startswith(self._staff_prefixes()) and staff_needs_mfa_setup(user):
                query = urlencode({"next": request.get_full_path()})
                return HttpResponseRedirect(f"{reverse('mfa_activate_totp')}?{query}")
        return self.get_response(request)

    def _staff_prefixes(self) -> tuple[str, ...]:
        if not self.staff_prefixes:
            self.staff_prefixes = (reverse("admin:index"), reverse("o2s-schema"), reverse("o2s-docs"))
        return self.staff_prefixes
