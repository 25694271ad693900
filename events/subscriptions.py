"""What each domain event causes: the one subscription table (``settings.OUTBOX_SUBSCRIPTIONS``).

Domain services record what happened (``invoice.paid``, ``invoice.voided``, ...) with
``paymenter.outbox.domain_event_record``; every subscription below whose ``event_types``
contain that type gets an outbox message of its own ``topic`` in the same transaction,
and the worker (``events.delivery``) delivers it with the subscription's ``handler``.
One consumer failing never blocks or duplicates another: each has its own message,
retries and dead-letter state.

To make an event cause something new (a receipt e-mail, a portal notice, a fraud hold),
add a subscription here; the domain service that records the event does not change.
"""

from __future__ import annotations

from fraud.services import RISK_SIGNAL_EVENT_TYPES, RISK_SIGNAL_TOPIC, risk_signal_deliver
from gateways.services import WEBHOOK_TOPIC, webhook_event_deliver
from invoices.events import InvoiceEvent
from o2s.callback_delivery import deliver_o2s_callback
from o2s.callbacks import O2S_CALLBACK_EVENT_TYPES
from o2s.callbacks import TOPIC as O2S_CALLBACK_TOPIC
from paymenter.outbox import Subscription
from portal.receipts import RECEIPT_TOPIC, deliver_receipt

SUBSCRIPTIONS: tuple[Subscription, ...] = (
    # Provisioning callbacks to O2S: signed POSTs, in order per invoice (docs/callbacks.md).
    Subscription(topic=O2S_CALLBACK_TOPIC, event_types=O2S_CALLBACK_EVENT_TYPES, handler=deliver_o2s_callback),
    # The customer's receipt e-mail for every payment that counts, and the credit note of
    # every refund (portal/receipts.py).
    Subscription(
        topic=RECEIPT_TOPIC,
        event_types=frozenset(
            {InvoiceEvent.PAID, InvoiceEvent.PAYMENT_RECORDED, InvoiceEvent.REFUNDED, InvoiceEvent.PARTIALLY_REFUNDED}
        ),
        handler=deliver_receipt,
    ),
    # Customer risk signals: a dispute opened or an early fraud warning puts the customer's
    # next payments to fraud review (fraud/services.py; docs/fraud.md).
    Subscription(topic=RISK_SIGNAL_TOPIC, event_types=RISK_SIGNAL_EVENT_TYPES, handler=risk_signal_deliver),
    # Verified gateway webhooks, stored by the inbox; not a domain event: no event types,
    # the inbox enqueues this topic itself (gateways/services/inbox.py).
    Subscription(topic=WEBHOOK_TOPIC, event_types=frozenset(), handler=webhook_event_deliver),
)
