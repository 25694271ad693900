"""Rule configuration is data: a change takes effect on the next assessment and is audited
with before and after; the admin form refuses unusable configuration (nothing written);
only the admin group may change it, billing and support only look."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from audit.actions import AuditAction
from audit.models import AuditEvent
from fraud.models import Decision, RuleConfig
from fraud.rules import RuleConfigError
from fraud.services import rule_config_update
from paymenter.principals import StaffPrincipal, SystemPrincipal
from tests.factories import make_customer, make_invoice
from tests.fraud.helpers import Clock, assessor_at, card_report, start_context

pytestmark = [pytest.mark.fraud_rules, pytest.mark.django_db, pytest.mark.usefixtures("system_principal")]


def _staff_client(group: str) -> tuple[Client, User]:
    user = User.objects.create_user(username=f"fraud-{group}", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client, user


def _rule(name: str) -> RuleConfig:
    return RuleConfig.objects.get(name=name)


def _form(config: Any, *, enabled: bool = True) -> dict[str, str]:
    data = {"config": json.dumps(config), "_save": "Save"}
    if enabled:
        data["enabled"] = "on"
    return data


def test_the_seeded_defaults_are_the_security_models_table(system_principal: SystemPrincipal) -> None:
    assert _rule("velocity").config == {
        "max_attempts": 3,
        "window_seconds": 600,
        "per_customer": True,
        "per_source_address": True,
    }
    assert _rule("amount").config["review_over"]["AUD"] == "1000.00"
    assert _rule("three_d_secure").config["decision_without_authentication"] == "review"
    assert _rule("card_checks").config == {"cvc_fail": "block", "address_fail": "review", "unavailable": "allow"}
    assert set(RuleConfig.objects.values_list("name", flat=True)) == {
        "velocity",
        "amount",
        "geography",
        "three_d_secure",
        "card_checks",
        "customer_risk",
    }


def test_a_configuration_change_takes_effect_and_is_audited(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    assessor = assessor_at(Clock())
    assessor.before_start(start_context(invoice))
    staff = StaffPrincipal(user_id=0, username="fraud-admin")

    rule_config_update(principal=staff, name="velocity", enabled=True, config={"max_attempts": 1})
    second = assessor.before_start(start_context(invoice))

    assert second.decision == Decision.BLOCK
    event = AuditEvent.objects.filter(action=AuditAction.FRAUD_RULE_CHANGED).latest("sequence")
    assert event.object_id == "velocity"
    assert event.payload["before"]["config"]["max_attempts"] == 3
    assert event.payload["after"] == {
        "enabled": True,
        "config": {"max_attempts": 1, "window_seconds": 600, "per_customer": True, "per_source_address": True},
    }


def test_a_disabled_rule_does_not_run(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    staff = StaffPrincipal(user_id=0, username="fraud-admin")
    rule_config_update(principal=staff, name="three_d_secure", enabled=False, config=_rule("three_d_secure").config)

    assessment = assessor_at(Clock()).after_report(card_report(invoice, card=None))

    assert "three_d_secure" not in {reason.split(":")[0] for reason in assessment.reasons}


def test_the_service_refuses_unusable_configuration_and_writes_nothing(system_principal: SystemPrincipal) -> None:
    before = _rule("geography").config
    audit_before = AuditEvent.objects.count()
    with pytest.raises(RuleConfigError):
        rule_config_update(
            principal=system_principal, name="geography", enabled=True, config={"blocked_countries": ["ZZ"]}
        )
    assert _rule("geography").config == before
    assert AuditEvent.objects.count() == audit_before


def test_an_admin_changes_a_rule_through_the_form_audited_with_the_user() -> None:
    client, user = _staff_client("admin")
    rule = _rule("geography")

    response = client.post(
        reverse("admin:fraud_ruleconfig_change", args=[rule.pk]),
        _form({"blocked_countries": ["kp", "BT"], "decision": "review"}),
    )

    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.config == {"blocked_countries": ["BT", "KP"], "decision": "review"}
    assert rule.updated_by == user.username
    event = AuditEvent.objects.filter(action=AuditAction.FRAUD_RULE_CHANGED).latest("sequence")
    assert (event.actor_type, event.actor_id) == ("staff", str(user.pk))
    assert event.payload["after"]["config"] == rule.config


@pytest.mark.parametrize(
    ("name", "config", "error"),
    [
        ("geography", {"blocked_countries": ["KP", "ZZ"]}, "blocked_countries: 'ZZ' is not an ISO 3166-1 alpha-2"),
        ("amount", {"review_over": {"AUD": "-5.00"}}, "review_over.AUD: must be an amount of at least zero"),
        ("amount", {"review_over": {"XYZ": "1000.00"}}, "review_over.XYZ: unknown currency"),
        ("velocity", {"max_attempts": 0}, "max_attempts: must be a whole number of at least 1"),
        ("velocity", {"max_attempts": 3, "window": 600}, "window: unknown setting"),
        ("card_checks", {"cvc_fail": "ignore"}, "cvc_fail: must be one of allow, review, block"),
        ("three_d_secure", ["review"], "config: must be a JSON object"),
    ],
)
def test_the_admin_form_refuses_unusable_configuration_and_writes_nothing(name: str, config: Any, error: str) -> None:
    client, _ = _staff_client("admin")
    rule = _rule(name)
    audit_before = AuditEvent.objects.count()

    response = client.post(reverse("admin:fraud_ruleconfig_change", args=[rule.pk]), _form(config))

    assert response.status_code == 200
    problems = list(response.context["adminform"].form.errors["config"])
    assert any(problem.startswith(error) for problem in problems), problems
    after = _rule(name)
    assert (after.config, after.updated_at) == (rule.config, rule.updated_at)
    assert AuditEvent.objects.count() == audit_before


@pytest.mark.parametrize("group", ["support", "billing"])
def test_support_and_billing_see_the_rules_but_cannot_change_them(group: str) -> None:
    client, _ = _staff_client(group)
    rule = _rule("velocity")
    audit_before = AuditEvent.objects.count()

    listing = client.get(reverse("admin:fraud_ruleconfig_changelist"))
    change = client.post(reverse("admin:fraud_ruleconfig_change", args=[rule.pk]), _form({"max_attempts": 100}))

    assert listing.status_code == 200
    assert change.status_code == 403
    assert _rule("velocity").config == rule.config
    assert AuditEvent.objects.count() == audit_before


@pytest.mark.parametrize("group", ["support", "billing", "admin"])
def test_staff_see_assessments_filtered_by_stage_decision_and_rule_read_only(group: str) -> None:
    client, _ = _staff_client(group)
    url = reverse("admin:fraud_assessment_changelist")

    for query in (
        "",
        "?stage__exact=before_start",
        "?decision__exact=block",
        "?rule=velocity",
        "?created_at__year=2026",
    ):
        assert client.get(url + query).status_code == 200
    assert client.get(reverse("admin:fraud_assessment_add")).status_code == 403
