"""``manage.py verify_audit_chain`` and key rotation."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings

from audit.actions import AuditAction
from audit.models import AuditChainHead
from audit.services import audit_record
from audit.verification import BreakReason, verify_chain
from paymenter.principals import SystemPrincipal

pytestmark = pytest.mark.django_db

DEV_KEY = "dev1:ZGV2LW9ubHktYXVkaXQtY2hhaW4taG1hYy1rZXktMzI="
NEW_KEY = "k2:bmV3LWF1ZGl0LWNoYWluLWhtYWMta2V5LWZvci10ZXN0cw=="


def test_command_reports_ok_with_the_head(system_principal: SystemPrincipal) -> None:
    with transaction.atomic():
        audit_record(action=AuditAction.ENCRYPTION_KEY_ROTATED, object_type="keyring", object_id="FIELD")
    head = AuditChainHead.objects.get()
    out = io.StringIO()

    call_command("verify_audit_chain", stdout=out)

    assert out.getvalue() == (
        f"audit chain OK: {head.last_sequence} rows verified; "
        f"head sequence {head.last_sequence}, head hash {head.last_hash}\n"
    )


def test_rotated_keys_verify_old_and_new_rows(system_principal: SystemPrincipal) -> None:
    with override_settings(AUDIT_HMAC_KEYS=DEV_KEY), transaction.atomic():
        old = audit_record(action=AuditAction.INVOICE_CREATED, object_id="before-rotation")
    with override_settings(AUDIT_HMAC_KEYS=f"{NEW_KEY},{DEV_KEY}"):
        with transaction.atomic():
            new = audit_record(action=AuditAction.INVOICE_CREATED, object_id="after-rotation")
        rotated = verify_chain()
    with override_settings(AUDIT_HMAC_KEYS=DEV_KEY):
        retired_too_early = verify_chain()

    assert (old.key_id, new.key_id) == ("dev1", "k2")
    assert new.prev_hash == old.hmac
    assert (rotated.ok, rotated.checked) == (True, new.sequence)
    assert (retired_too_early.ok, retired_too_early.first_bad_sequence, retired_too_early.reason) == (
        False,
        new.sequence,
        BreakReason.UNKNOWN_KEY,
    )
