"""``/api/v1/products/``: the catalogue O2S invoices from (admin-managed, read-only here)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from billing.errors import ProductNotPricedError, UnknownProductError
from billing.models import Product, TaxTreatment
from billing.selectors import CatalogueEntry, catalogue_entries, catalogue_price_for
from tests.o2s.api_helpers import error_code, make_api_client, make_product

pytestmark = pytest.mark.usefixtures("db", "system_principal")


def test_list_shows_active_products_with_prices_per_currency() -> None:
    api = make_api_client()
    make_product("vps-small", prices={"AUD": 1999, "USD": 1300})
    make_product("domain-au", prices={"AUD": 2500}, tax_treatment=TaxTreatment.GST_FREE, description=".au domain")
    make_product("retired", active=False)

    response = api.get("/api/v1/products/")

    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {
                "code": "domain-au",
                "description": ".au domain",
                "tax_treatment": "gst_free",
                "prices": [{"currency": "AUD", "unit_amount_minor": 2500}],
            },
            {
                "code": "vps-small",
                "description": "VPS small, 1 month",
                "tax_treatment": "standard",
                "prices": [
                    {"currency": "AUD", "unit_amount_minor": 1999},
                    {"currency": "USD", "unit_amount_minor": 1300},
                ],
            },
        ]
    }


def test_get_one_product_by_code_and_404_for_unknown_or_inactive() -> None:
    api = make_api_client()
    make_product("vps-small", prices={"AUD": 1999})
    make_product("retired", active=False)

    found = api.get("/api/v1/products/vps-small/")
    missing = api.get("/api/v1/products/nope/")
    retired = api.get("/api/v1/products/retired/")

    assert (found.status_code, found.json()["code"]) == (200, "vps-small")
    assert (missing.status_code, error_code(missing)) == (404, "product_not_found")
    assert (retired.status_code, error_code(retired)) == (404, "product_not_found")


def test_products_need_an_api_key() -> None:
    response = make_api_client().client.get("/api/v1/products/", REMOTE_ADDR="127.0.0.1")
    assert (response.status_code, error_code(response)) == (401, "unauthenticated")


def test_catalogue_price_for_returns_the_price_in_the_currency() -> None:
    make_product("vps-small", prices={"AUD": 1999, "USD": 1300})
    make_product("domain-au", prices={"AUD": 2500}, tax_treatment=TaxTreatment.GST_FREE, description=".au domain")
    entries = catalogue_entries(codes={"vps-small", "domain-au", "nope"}, currency="USD")
    assert entries == {
        "vps-small": CatalogueEntry("vps-small", "VPS small, 1 month", TaxTreatment.STANDARD, 1300),
        "domain-au": CatalogueEntry("domain-au", ".au domain", TaxTreatment.GST_FREE, None),
    }
    assert catalogue_price_for(entries, code="vps-small", currency="USD").unit_amount_minor == 1300


def test_catalogue_price_for_refuses_unknown_inactive_and_unpriced() -> None:
    make_product("vps-small", prices={"AUD": 1999})
    make_product("retired", active=False)
    entries = catalogue_entries(codes={"nope", "retired", "vps-small"}, currency="EUR")
    with pytest.raises(UnknownProductError) as unknown:
        catalogue_price_for(entries, code="nope", currency="EUR", field="lines.0.product_code")
    with pytest.raises(UnknownProductError):
        catalogue_price_for(entries, code="retired", currency="EUR")
    with pytest.raises(ProductNotPricedError) as unpriced:
        catalogue_price_for(entries, code="vps-small", currency="EUR")
    assert (unknown.value.status_code, unknown.value.code, unknown.value.fields) == (
        422,
        "unknown_product",
        {"lines.0.product_code": ["unknown product"]},
    )
    assert (unpriced.value.status_code, unpriced.value.code) == (422, "product_not_priced_in_currency")


# --- the admin: admin group adds and changes, billing/support read, nobody deletes -------


def _staff(role: str) -> Client:
    user = User.objects.create_user(username=f"catalogue-{role}", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def test_admin_group_adds_a_product_with_prices() -> None:
    client = _staff("admin")
    response = client.post(
        reverse("admin:billing_product_add"),
        {
            "code": "backup-50",
            "description": "Backup storage 50 GB",
            "tax_treatment": "standard",
            "active": "on",
            "prices-TOTAL_FORMS": "1",
            "prices-INITIAL_FORMS": "0",
            "prices-MIN_NUM_FORMS": "0",
            "prices-MAX_NUM_FORMS": "1000",
            "prices-0-currency": "AUD",
            "prices-0-unit_amount_minor": "450",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    product = Product.objects.get(code="backup-50")
    assert list(product.prices.values_list("currency", "unit_amount_minor")) == [("AUD", 450)]


@pytest.mark.parametrize("role", ["billing", "support"])
def test_billing_and_support_only_read_the_catalogue(role: str) -> None:
    product = make_product("vps-small")
    client = _staff(role)
    change_url = reverse("admin:billing_product_change", args=[product.pk])

    assert client.get(reverse("admin:billing_product_changelist")).status_code == 200
    assert client.get(reverse("admin:billing_product_add")).status_code == 403
    page = client.get(change_url)
    assert page.status_code == 200
    assert b'name="description"' not in page.content  # shown read-only
    assert client.post(change_url, {"description": "changed"}).status_code == 403
    product.refresh_from_db()
    assert product.description == "VPS small, 1 month"


@pytest.mark.parametrize("role", ["admin", "billing", "support"])
def test_nobody_deletes_a_product(role: str) -> None:
    product = make_product("vps-small")
    response = _staff(role).post(reverse("admin:billing_product_delete", args=[product.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Product.objects.filter(pk=product.pk).exists()
