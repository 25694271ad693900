"""django-allauth's adapter: where this project departs from allauth's defaults (docs/portal.md)."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from paymenter.client_ip import client_ip


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]  # allauth is untyped
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        """Nobody signs up: customer users are invited for a customer (accounts/invitations.py),
        staff users are created by an administrator."""
        return False

    def get_client_ip(self, request: HttpRequest) -> str:
        """The address rate limits count against: the one the rest of the project trusts
        (``TRUSTED_PROXY_COUNT``), not allauth's own header handling."""
        address = client_ip(request)
        if not address:
            raise PermissionDenied("Unable to determine the client address")
        return address
