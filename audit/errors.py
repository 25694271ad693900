"""Error codes of the audit trail."""

from __future__ import annotations

from enum import StrEnum

from paymenter.errors import PaymenterError


class AuditErrorCode(StrEnum):
    OUTSIDE_TRANSACTION = "audit_outside_transaction"
    CHAIN_HEAD_MISSING = "audit_chain_head_missing"


class AuditError(PaymenterError):
    """A misuse of the audit trail: a programming or deployment error, hence HTTP 500."""

    status_code = 500


class AuditOutsideTransactionError(AuditError):
    """``audit_record`` was called outside ``transaction.atomic``.

    The event must commit or roll back together with the change it records, so writing it
    in its own autocommit transaction is refused.
    """

    def __init__(self) -> None:
        super().__init__(
            code=AuditErrorCode.OUTSIDE_TRANSACTION,
            message="audit events must be written inside the transaction of the change they record",
        )


class AuditChainHeadMissingError(AuditError):
    def __init__(self) -> None:
        super().__init__(
            code=AuditErrorCode.CHAIN_HEAD_MISSING,
            message="the audit chain head row is missing; run the audit migrations",
        )
