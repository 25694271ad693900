"""Gateway code -> adapter. A gateway is offered only when settings enable it."""

from __future__ import annotations

from django.conf import settings

from gateways.bank_transfer.adapter import BankTransferGateway
from gateways.base import Gateway, GatewayCode
from gateways.errors import GatewayDisabledError
from gateways.paypal.adapter import PaypalGateway
from gateways.stripe.adapter import StripeGateway

_ADAPTERS: dict[GatewayCode, Gateway] = {
    GatewayCode.STRIPE: StripeGateway(),
    GatewayCode.PAYPAL: PaypalGateway(),
    GatewayCode.BANK_TRANSFER: BankTransferGateway(),
}


def gateways_enabled() -> list[GatewayCode]:
    """The gateways configured here, in the order the pay page offers them."""
    enabled: list[GatewayCode] = []
    if settings.STRIPE_SECRET_KEY:
        enabled.append(GatewayCode.STRIPE)
    if settings.PAYPAL_CLIENT_ID and settings.PAYPAL_CLIENT_SECRET:
        enabled.append(GatewayCode.PAYPAL)
    if settings.BANK_TRANSFER_ACCOUNT_NUMBER:
        enabled.append(GatewayCode.BANK_TRANSFER)
    return enabled


def gateway_for(code: str) -> Gateway:
    """The adapter of ``code``; refuses a gateway that is unknown or not enabled."""
    try:
        gateway_code = GatewayCode(code)
    except ValueError:
        raise GatewayDisabledError(code) from None
    if gateway_code not in gateways_enabled() or gateway_code not in _ADAPTERS:
        raise GatewayDisabledError(code)
    return _ADAPTERS[gateway_code]
