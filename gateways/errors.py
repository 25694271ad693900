"""Error codes of the payments ledger and gateways."""

from __future__ import annotations

from enum import StrEnum

from paymenter.errors import PaymenterError
from paymenter.money import Money


class PaymentErrorCode(StrEnum):
    GATEWAY_DISABLED = "gateway_disabled"
    GATEWAY_UNAVAILABLE = "gateway_unavailable"
    GATEWAY_REFUSED = "gateway_refused"
    NOTHING_DUE = "invoice_nothing_due"
    PAYMENT_BLOCKED = "payment_blocked"
    ATTEMPT_NOT_FOUND = "payment_attempt_not_found"
    WEBHOOK_EVENT_NOT_FOUND = "webhook_event_not_found"
    PAYMENT_NOT_FOUND = "payment_not_found"
    INVALID_REFUND = "invalid_refund"
    REFUND_EXCEEDS_REFUNDABLE = "refund_exceeds_refundable"
    REFUND_NOT_ALLOWED = "refund_not_allowed"
    REFUND_FORBIDDEN = "refund_forbidden"
    REVIEW_FORBIDDEN = "payment_review_forbidden"
    REVIEW_NOT_ALLOWED = "payment_review_not_allowed"


class PaymentError(PaymenterError):
    pass


class GatewayDisabledError(PaymentError):
    status_code = 404

    def __init__(self, code: str) -> None:
        super().__init__(
            code=PaymentErrorCode.GATEWAY_DISABLED, message=f"The payment method {code!r} is not available."
        )


class PaymentGatewayUnavailableError(PaymentError):
    """The gateway could not be reached: nothing was charged; try again shortly."""

    status_code = 503

    def __init__(self) -> None:
        super().__init__(
            code=PaymentErrorCode.GATEWAY_UNAVAILABLE,
            message="The payment provider cannot be reached right now. Nothing was charged; please try again.",
        )


class PaymentGatewayRefusedError(PaymentError):
    status_code = 502

    def __init__(self) -> None:
        super().__init__(
            code=PaymentErrorCode.GATEWAY_REFUSED,
            message="The payment provider refused to start the payment. Nothing was charged.",
        )


class NothingDueError(PaymentError):
    status_code = 409

    def __init__(self, *, status: str) -> None:
        super().__init__(code=PaymentErrorCode.NOTHING_DUE, message=f"Nothing is due on an invoice that is {status}.")


class PaymentAttemptNotFoundError(PaymentError):
    status_code = 404

    def __init__(self) -> None:
        super().__init__(code=PaymentErrorCode.ATTEMPT_NOT_FOUND, message="No such payment attempt.")


class WebhookEventNotFoundError(PaymentError):
    status_code = 404

    def __init__(self) -> None:
        super().__init__(code=PaymentErrorCode.WEBHOOK_EVENT_NOT_FOUND, message="No such webhook event.")


class PaymentBlockedError(PaymentError):
    """The risk rules refused the start. The message names no rule (docs/payments.md)."""

    status_code = 403

    def __init__(self, *, retry_after_seconds: int | None = None) -> None:
        """``retry_after_seconds``: a block that passes with time (too many attempts) says
        when to try again - in whole minutes, rounded up - and nothing else."""
        if retry_after_seconds is not None and retry_after_seconds > 0:
            minutes = -(-retry_after_seconds // 60)
            unit = "minute" if minutes == 1 else "minutes"
            message = f"Too many payment attempts: try again in {minutes} {unit}."
        else:
            message = "This payment cannot be started. Please contact us if you need help."
        super().__init__(code=PaymentErrorCode.PAYMENT_BLOCKED, message=message)
        self.retry_after_seconds = retry_after_seconds


class PaymentNotFoundError(PaymentError):
    status_code = 404

    def __init__(self) -> None:
        super().__init__(code=PaymentErrorCode.PAYMENT_NOT_FOUND, message="No such payment.")


class InvalidRefundError(PaymentError):
    """400: the refund asked for is malformed (``field`` names what is wrong)."""

    status_code = 400

    def __init__(self, *, field: str, message: str) -> None:
        super().__init__(code=PaymentErrorCode.INVALID_REFUND, message=message, fields={field: [message]})


class RefundExceedsRefundableError(PaymentError):
    """More than the payment took less what was already refunded (or is being refunded)."""

    status_code = 409

    def __init__(self, *, requested: Money, refundable: Money) -> None:
        super().__init__(
            code=PaymentErrorCode.REFUND_EXCEEDS_REFUNDABLE,
            message=f"Cannot refund {requested.format()}: at most {refundable.format()} of this payment is left.",
        )


class RefundNotAllowedError(PaymentError):
    status_code = 409

    def __init__(self, message: str) -> None:
        super().__init__(code=PaymentErrorCode.REFUND_NOT_ALLOWED, message=message)


class RefundForbiddenError(PaymentError):
    """403: only billing staff and admins (``invoices.process_refund``) refund."""

    status_code = 403

    def __init__(self) -> None:
        super().__init__(code=PaymentErrorCode.REFUND_FORBIDDEN, message="You may not refund payments.")


class PaymentReviewForbiddenError(PaymentError):
    """403: only billing staff and admins (``gateways.review_payment``) decide a fraud review."""

    status_code = 403

    def __init__(self) -> None:
        super().__init__(code=PaymentErrorCode.REVIEW_FORBIDDEN, message="You may not approve or reject payments.")


class PaymentReviewNotAllowedError(PaymentError):
    """409: the payment is not (or no longer) waiting for a fraud review decision."""

    status_code = 409

    def __init__(self, message: str) -> None:
        super().__init__(code=PaymentErrorCode.REVIEW_NOT_ALLOWED, message=message)
