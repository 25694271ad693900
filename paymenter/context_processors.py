"""Template context every page needs: the seller's name and ABN for the header and footer of
``templates/base.html``. From settings, not from a view, so that every page (the hosted
invoice, the portal, the account pages of allauth) says who is asking for the money."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict[str, Any]:
    """``site_name`` and ``site_abn``: the seller as invoices name it (settings.SELLER_*)."""
    return {"site_name": settings.SELLER_NAME, "site_abn": settings.SELLER_ABN}
