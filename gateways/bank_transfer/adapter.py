"""The bank transfer "gateway": instructions instead of a payment page, staff instead of webhooks.

Nobody is redirected anywhere: :meth:`BankTransferGateway.payment_start` answers with our
account and the invoice's payment reference for the page to show. Money arrives in our
bank account; billing staff record it in the admin, or import the bank statement, and
both go through ``gateways.services.bank_transfers`` into the ledger. So the adapter has
no session to fetch, no webhook to verify, nothing to capture, and no report to give (the
statement is the report). A refund is money staff pay back from the bank account: it is
recorded as done, with the refund request as its id.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from gateways.bank_transfer.instructions import instructions_for
from gateways.base import (
    GatewayCode,
    GatewayDispute,
    GatewayEvent,
    GatewayFraudWarning,
    GatewayPayment,
    GatewayRefund,
    GatewayRefundStatus,
    GatewayRequestError,
    PaymentRequest,
    PaymentStart,
    WebhookRejectedError,
    WebhookRejectedReason,
)
from paymenter.money import Money

REFUND_ID_PREFIX = "bank-payout:"


class BankTransferGateway:
    code = GatewayCode.BANK_TRANSFER

    def checkout_origin(self) -> str:
        return ""  # the payer never leaves our page

    def payment_start(self, request: PaymentRequest) -> PaymentStart:
        """The instructions to show: account, BSB, reference and the amount asked for."""
        instructions = instructions_for(invoice_number=request.invoice_number, amount=request.amount)
        return PaymentStart(
            session_id="",
            instructions={
                "account_name": instructions.account_name,
                "bank_name": instructions.bank_name,
                "bsb": instructions.bsb,
                "account_number": instructions.account_number,
                "reference": instructions.reference,
                "amount": instructions.amount.format(),
            },
        )

    def webhook_verify(self, *, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
        raise WebhookRejectedError(WebhookRejectedReason.GATEWAY_DISABLED, "bank transfer has no webhooks")

    def webhook_parse(self, body: bytes) -> GatewayEvent:
        raise WebhookRejectedError(WebhookRejectedReason.GATEWAY_DISABLED, "bank transfer has no webhooks")

    def payment_fetch(self, *, session_id: str = "", transaction_id: str = "") -> GatewayPayment | None:
        return None  # no one to ask: staff record what arrived

    def session_expire(self, *, session_id: str) -> None:
        return None  # instructions do not expire; nothing to close

    def payment_capture(self, *, session_id: str, idempotency_key: str) -> GatewayPayment:
        raise GatewayRequestError("bank transfer: nothing to capture; the money is in the account when recorded")

    def refund(
        self, *, transaction_id: str, amount: Money, idempotency_key: str, request_id: uuid.UUID
    ) -> GatewayRefund:
        """Staff pay the money back from the bank account themselves; asking for the refund
        here records that they did. The id derives from our refund request, so a retry
        answers the same refund."""
        return GatewayRefund(
            gateway=self.code,
            refund_id=f"{REFUND_ID_PREFIX}{request_id}",
            transaction_id=transaction_id,
            status=GatewayRefundStatus.SUCCEEDED,
            amount=amount,
            request_id=request_id,
            gateway_status="paid_out_by_staff",
        )

    def refunds_fetch(self, *, transaction_id: str = "", refund_id: str = "") -> list[GatewayRefund]:
        return []

    def disputes_fetch(self, *, transaction_id: str = "", dispute_id: str = "") -> list[GatewayDispute]:
        return []

    def fraud_warning_fetch(self, *, warning_id: str) -> GatewayFraudWarning | None:
        return None

    def payments_report(self, *, since: datetime, until: datetime) -> list[GatewayPayment] | None:
        return None  # the bank statement is the report
