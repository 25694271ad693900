"""Personal data is AES-256-GCM ciphertext at rest, bound to its row and column, and
email lookups go through a keyed, case-insensitive blind index."""

from __future__ import annotations

import hashlib
import hmac
import uuid

import pytest
from django.conf import settings
from django.db import connection
from pytest_django.fixtures import Settings

from audit.models import AuditEvent
from billing.errors import BillingErrorCode, DuplicateCustomerError
from billing.models import Customer
from billing.selectors import EMAIL_INDEX_PURPOSE, customer_get_by_email
from paymenter import encryption
from paymenter.keyring import Keyring, KeyringError, decode_key_material
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer

pytestmark = pytest.mark.django_db

ENCRYPTED_COLUMNS = ("name", "email", "phone", "postal_address", "tax_id")
KEY_32 = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="  # 32 x "A"


def _raw(customer_id: uuid.UUID, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM billing_customer WHERE id = %s", [customer_id])
        row = cursor.fetchone()
    assert row is not None
    value: str = row[0]
    return value


def _raw_set(customer_id: uuid.UUID, column: str, value: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE billing_customer SET {column} = %s WHERE id = %s", [value, customer_id])


def _reload(customer_id: uuid.UUID) -> Customer:
    customer: Customer = Customer.objects.get(pk=customer_id)
    return customer


def test_customer_pii_is_stored_as_ciphertext(system_principal: SystemPrincipal) -> None:
    customer = make_customer(name="Wombat Hosting Pty Ltd", email="accounts@wombat.example", tax_id="51 824 753 556")

    with connection.cursor() as cursor:
        cursor.execute("SELECT name, email FROM billing_customer WHERE id = %s", [customer.id])
        name, email = cursor.fetchone() or ("", "")

    assert name.startswith("v1:dev1:")
    assert email.startswith("v1:dev1:")
    assert "Wombat" not in name
    assert "wombat" not in email
    for column in ENCRYPTED_COLUMNS:
        stored = _raw(customer.id, column)
        assert stored.startswith("v1:dev1:")
        assert "Salamanca" not in stored
        assert "824 753" not in stored
    reloaded = _reload(customer.id)
    assert reloaded.name == "Wombat Hosting Pty Ltd"
    assert reloaded.email == "accounts@wombat.example"
    assert reloaded.tax_id == "51 824 753 556"


def test_every_write_uses_a_fresh_nonce(system_principal: SystemPrincipal) -> None:
    first = make_customer(name="Same Name Pty Ltd")
    second = make_customer(name="Same Name Pty Ltd")
    before = _raw(first.id, "name")

    reloaded = _reload(first.id)
    reloaded.name = "Same Name Pty Ltd"
    reloaded.save(update_fields=["name"])

    after = _raw(first.id, "name")
    assert after != before
    assert _raw(second.id, "name") not in (before, after)
    assert _reload(first.id).name == "Same Name Pty Ltd"
    assert _reload(second.id).name == "Same Name Pty Ltd"


def test_ciphertext_copied_to_another_row_does_not_decrypt(system_principal: SystemPrincipal) -> None:
    victim = make_customer(name="Victim Pty Ltd")
    attacker = make_customer(name="Attacker Pty Ltd")
    _raw_set(attacker.id, "name", _raw(victim.id, "name"))

    moved = _reload(attacker.id)

    with pytest.raises(encryption.DecryptionError, match=r"billing_customer\.name:"):
        _ = moved.name
    assert _reload(victim.id).name == "Victim Pty Ltd"


def test_ciphertext_copied_to_another_column_of_the_row_does_not_decrypt(system_principal: SystemPrincipal) -> None:
    customer = make_customer(name="Column Swap Pty Ltd")
    _raw_set(customer.id, "phone", _raw(customer.id, "name"))

    moved = _reload(customer.id)

    with pytest.raises(encryption.DecryptionError):
        _ = moved.phone
    assert moved.name == "Column Swap Pty Ltd"


def test_tampered_ciphertext_does_not_decrypt(system_principal: SystemPrincipal) -> None:
    customer = make_customer()
    stored = _raw(customer.id, "email")
    middle = len(stored) // 2 + 4
    replacement = "B" if stored[middle] != "B" else "C"
    _raw_set(customer.id, "email", stored[:middle] + replacement + stored[middle + 1 :])

    with pytest.raises(encryption.DecryptionError):
        _ = _reload(customer.id).email


def test_unknown_key_id_does_not_decrypt(system_principal: SystemPrincipal) -> None:
    customer = make_customer()
    _raw_set(customer.id, "tax_id", _raw(customer.id, "tax_id").replace("v1:dev1:", "v1:gone:", 1))

    with pytest.raises(encryption.DecryptionError, match="unknown encryption key id 'gone'"):
        _ = _reload(customer.id).tax_id


def test_unknown_format_does_not_decrypt() -> None:
    with pytest.raises(encryption.DecryptionError, match="not an encrypted value"):
        encryption.decrypt("plain text", context="billing_customer.name:1")


def test_json_field_round_trips(system_principal: SystemPrincipal) -> None:
    address = {"line1": "1 Macquarie St", "line2": "Level 3", "city": "Sydney", "postcode": "2000", "country": "AU"}
    customer = make_customer(postal_address=address)

    stored = _raw(customer.id, "postal_address")

    assert stored.startswith("v1:dev1:")
    assert "Macquarie" not in stored
    assert _reload(customer.id).postal_address == address


def test_filtering_on_an_encrypted_field_is_refused(system_principal: SystemPrincipal) -> None:
    make_customer(name="Findable Pty Ltd")

    with pytest.raises(TypeError, match="name is encrypted"):
        Customer.objects.filter(name="Findable Pty Ltd")
    with pytest.raises(TypeError, match="email is encrypted"):
        Customer.objects.filter(email__in=["accounts@findable.example"])


def test_email_lookup_is_case_and_whitespace_insensitive(system_principal: SystemPrincipal) -> None:
    customer = make_customer(email="Accounts@Quokka.example")

    found = customer_get_by_email(principal=system_principal, email="  accounts@QUOKKA.EXAMPLE \n")

    assert found.id == customer.id
    assert found.email == "Accounts@Quokka.example"


def test_email_index_is_keyed_not_a_plain_hash(system_principal: SystemPrincipal, settings: Settings) -> None:
    customer = make_customer(email="Accounts@Bilby.example")
    normalized = "accounts@bilby.example"
    key = decode_key_material(settings.BLIND_INDEX_KEY, name="BLIND_INDEX_KEY")

    assert customer.email_index != hashlib.sha256(normalized.encode()).hexdigest()
    assert customer.email_index != hashlib.sha256(b"Accounts@Bilby.example").hexdigest()
    expected = hmac.new(key, f"{EMAIL_INDEX_PURPOSE}\x00{normalized}".encode(), hashlib.sha256).hexdigest()
    assert customer.email_index == expected
    settings.BLIND_INDEX_KEY = KEY_32
    assert encryption.blind_index("Accounts@Bilby.example", purpose=EMAIL_INDEX_PURPOSE) != expected


def test_duplicate_email_differing_in_case_is_refused(system_principal: SystemPrincipal) -> None:
    make_customer(email="owner@numbat.example")
    customers_before = Customer.objects.count()
    events_before = AuditEvent.objects.count()

    with pytest.raises(DuplicateCustomerError) as excinfo:
        make_customer(external_id="o2s-numbat-2", email=" OWNER@Numbat.Example")

    assert excinfo.value.code == BillingErrorCode.DUPLICATE_EMAIL
    assert excinfo.value.code == "duplicate_email"
    assert Customer.objects.count() == customers_before
    assert Customer.objects.filter(external_id="o2s-numbat-2").exists() is False
    assert AuditEvent.objects.count() == events_before


def test_dev_field_key_is_a_valid_keyring() -> None:
    ring = Keyring.parse("FIELD_ENCRYPTION_KEYS", settings.FIELD_ENCRYPTION_KEYS)

    assert ring.ids() == ["dev1"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("k1:" + "QUFBQQ==", r"K\[k1\]: key must be at least 32 bytes, got 4"),
        (f"k1:{KEY_32},k1:{KEY_32}", "K: key id 'k1' appears twice"),
        ("k1:not*base64!", r"K\[k1\]: key material is not valid base64"),
        (KEY_32, "K: entries must look like 'keyid:base64key'"),
        (" , ", "K: at least one key is required"),
    ],
)
def test_malformed_keyring_is_refused(spec: str, message: str) -> None:
    with pytest.raises(KeyringError, match=message):
        Keyring.parse("K", spec)


def test_keyring_primary_is_the_first_key() -> None:
    other = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="  # 32 x "B"
    ring = Keyring.parse("K", f"new:{other},old:{KEY_32}")

    token = encryption.encrypt("hello", context="t.c:1", keyring=ring)

    assert ring.primary_id == "new"
    assert encryption.key_id_of(token) == "new"
    assert encryption.decrypt(token, context="t.c:1", keyring=ring) == "hello"
    with pytest.raises(encryption.DecryptionError):
        encryption.decrypt(token, context="t.c:2", keyring=ring)


def test_a_json_value_changed_in_place_is_saved(db: None, system_principal: object) -> None:
    customer = make_customer(postal_address={"line1": "1 Elizabeth St", "city": "Hobart"})
    loaded = Customer.objects.get(id=customer.id)
    loaded.postal_address["city"] = "Launceston"
    loaded.save(update_fields=["postal_address"])
    assert Customer.objects.get(id=customer.id).postal_address == {"line1": "1 Elizabeth St", "city": "Launceston"}
