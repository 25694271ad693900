"""The vocabulary of audited events. Add a member here for every new financial event."""

from enum import StrEnum


class AuditAction(StrEnum):
    CUSTOMER_CREATED = "customer.created"
    CUSTOMER_UPDATED = "customer.updated"
    CUSTOMER_ACCESS_GRANTED = "customer.access_granted"
    INVOICE_CREATED = "invoice.created"
    INVOICE_ISSUED = "invoice.issued"
    INVOICE_VOIDED = "invoice.voided"
    INVOICE_PAID = "invoice.paid"
    # the payments ledger (gateways/services): a payment that counts, one held for staff,
    # a checkout started, staff re-processing a webhook event or settling a held payment
    PAYMENT_RECORDED = "payment.recorded"
    PAYMENT_HELD = "payment.held"
    PAYMENT_HELD_RESOLVED = "payment.held_resolved"
    PAYMENT_ATTEMPT_STARTED = "payment.attempt_started"
    # the fraud rules' effects (gateways/services/attempts.py, ledger.py, reviews.py): a start
    # refused, a payment held for review and staff's decision on it
    PAYMENT_BLOCKED = "payment.blocked"
    PAYMENT_REVIEW_APPROVED = "payment.review_approved"
    PAYMENT_REVIEW_REJECTED = "payment.review_rejected"
    WEBHOOK_EVENT_REPROCESSED = "webhook.event_reprocessed"
    # bank transfers (gateways/services/bank_transfers.py): staff record one by hand, import a
    # statement, resolve or ignore a statement line; the payment itself is audited by the ledger
    BANK_TRANSFER_RECORDED = "bank_transfer.recorded"
    BANK_STATEMENT_IMPORTED = "bank_statement.imported"
    BANK_STATEMENT_LINE_RESOLVED = "bank_statement.line_resolved"
    BANK_STATEMENT_LINE_IGNORED = "bank_statement.line_ignored"
    # refunds, credit notes, disputes (gateways/services/refunds.py, disputes.py)
    REFUND_REQUESTED = "refund.requested"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    INVOICE_REFUNDED = "invoice.refunded"
    INVOICE_PARTIALLY_REFUNDED = "invoice.partially_refunded"
    CREDIT_NOTE_ISSUED = "credit_note.issued"
    DISPUTE_OPENED = "dispute.opened"
    DISPUTE_CLOSED = "dispute.closed"
    FRAUD_WARNING_RECORDED = "fraud_warning.recorded"
    # the fraud rules (fraud/engine.py, fraud/services.py): every assessment, every change of a
    # rule's configuration (before/after), a customer's risk raised by a dispute or warning
    FRAUD_ASSESSED = "fraud.assessed"
    FRAUD_RULE_CHANGED = "fraud.rule_changed"
    CUSTOMER_RISK_RAISED = "customer.risk_raised"
    CUSTOMER_RISK_CLEARED = "customer.risk_cleared"
    PAYPAL_CERTIFICATE_SEEDED = "paypal.certificate_seeded"  # a signing certificate trusted by hand
    INVOICE_CHECKSUM_MISMATCH = "invoice.checksum_mismatch"
    ENCRYPTION_KEY_ROTATED = "encryption.key_rotated"
    ENCRYPTED_VALUE_UNREADABLE = "encryption.value_unreadable"  # tampering or a lost key
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    API_AUTH_REFUSED = "api.auth_refused"  # no longer written: see REQUESTS_REFUSED
    REQUESTS_REFUSED = "requests.refused"  # aggregated per source and window (audit/refusals.py)
    INVOICE_CUSTOM_LINES = "invoice.custom_lines"
    CALLBACK_DEAD = "callback.dead"
    CALLBACK_REDELIVERY_REQUESTED = "callback.redelivery_requested"
    TAX_RATE_CREATED = "tax_rate.created"
    PRODUCT_SAVED = "product.saved"
    INVOICE_MARKED_UNCOLLECTIBLE = "invoice.marked_uncollectible"
    # staff accounts, groups and sign-ins (operations/staff_access.py, operations/staff_logins.py);
    # failed sign-ins are counted and audited in aggregate as REQUESTS_REFUSED
    STAFF_LOGIN = "staff.login"
    STAFF_USER_CREATED = "staff.user_created"
    STAFF_USER_CHANGED = "staff.user_changed"
    STAFF_USER_PASSWORD_CHANGED = "staff.user_password_changed"  # noqa: S105 - an action's name
    STAFF_USER_DELETED = "staff.user_deleted"
    STAFF_GROUP_CREATED = "staff.group_created"
    STAFF_GROUP_CHANGED = "staff.group_changed"
    STAFF_GROUP_DELETED = "staff.group_deleted"
    # accounts (accounts/receivers.py, accounts/invitations.py): a customer user's sign-in (staff
    # sign-ins are STAFF_LOGIN), MFA authenticators added, removed or reset, an invitation sent
    ACCOUNT_LOGIN = "account.login"
    ACCOUNT_MFA_ADDED = "account.mfa_added"
    ACCOUNT_MFA_REMOVED = "account.mfa_removed"
    ACCOUNT_MFA_RESET = "account.mfa_reset"
    CUSTOMER_USER_INVITED = "customer.user_invited"
