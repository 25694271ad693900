"""The fraud rules: each a small class with a name, a validated configuration and one method
per hook it applies to, answering allow / review / block with a reason a person can read
and the inputs it used (docs/fraud.md).

A rule sees :class:`StartFacts` (before a payment session is created) or
:class:`ReportFacts` (after the gateway reported the payment), gathered by the engine
(``fraud.engine``). A rule that does not apply to a hook simply has no method for it; an
input a rule needs but does not have (no card country, no GeoIP database, a private
address) is named in its ``inputs`` and reason, never a crash.

Configuration is data (``fraud.models.RuleConfig.config``, JSON): each rule's ``Config`` is
a frozen dataclass whose ``from_json`` refuses unknown keys and bad values with
:class:`RuleConfigError`, so the admin form and the engine read it the same way.
"""

from __future__ import annotations

import ipaddress
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self

from django.db import connection

from fraud import geoip
from fraud.models import Assessment, CustomerRiskFlag, Decision, Stage
from paymenter.countries import INVALID_MESSAGE as COUNTRY_MESSAGE
from paymenter.countries import country_code_normalise
from paymenter.money import CURRENCY_EXPONENTS, Money, MoneyError, normalize_currency

DECISION_RANK = {Decision.ALLOW: 0, Decision.REVIEW: 1, Decision.BLOCK: 2}
CARD_METHOD = "card"


class RuleConfigError(ValueError):
    """A rule configuration that cannot be used: ``problems`` maps a key to what is wrong."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("; ".join(f"{key}: {problem}" for key, problem in self.problems.items()))


@dataclass(frozen=True)
class RuleResult:
    decision: Decision
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CardCheck:
    """The card facts the gateway reported (``gateways.base.CardFacts``, copied by the engine)."""

    country: str = ""
    cvc_check: str = ""
    address_postal_code_check: str = ""
    address_line1_check: str = ""
    three_d_secure_result: str = ""


@dataclass(frozen=True)
class StartFacts:
    invoice_id: uuid.UUID
    customer_id: uuid.UUID
    gateway: str
    amount: Money
    source_ip: str
    billing_country: str
    now: datetime


@dataclass(frozen=True)
class ReportFacts:
    invoice_id: uuid.UUID
    customer_id: uuid.UUID
    gateway: str
    method: str
    amount: Money
    invoice_total: Money
    transaction_id: str
    card: CardCheck | None
    payer_country: str
    billing_country: str
    now: datetime


# --- configuration parsing ---------------------------------------------------------------------


def _known_keys(data: Any, allowed: set[str]) -> dict[str, str]:
    if not isinstance(data, Mapping):
        return {"config": "must be a JSON object"}
    return {key: "unknown setting" for key in data if key not in allowed}


def _positive_int(data: Mapping[str, Any], key: str, default: int, problems: dict[str, str]) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems[key] = "must be a whole number of at least 1"
        return default
    return value


def _bool(data: Mapping[str, Any], key: str, default: bool, problems: dict[str, str]) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        problems[key] = "must be true or false"
        return default
    return value


def _decision(
    data: Mapping[str, Any], key: str, default: Decision, problems: dict[str, str], *, allowed: tuple[Decision, ...]
) -> Decision:
    value = data.get(key, default.value)
    if value not in {choice.value for choice in allowed}:
        problems[key] = "must be one of " + ", ".join(choice.value for choice in allowed)
        return default
    return Decision(value)


ALL_DECISIONS = (Decision.ALLOW, Decision.REVIEW, Decision.BLOCK)


# --- velocity ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VelocityConfig:
    max_attempts: int = 3
    window_seconds: int = 600
    per_customer: bool = True
    per_source_address: bool = True

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        problems = _known_keys(data, {"max_attempts", "window_seconds", "per_customer", "per_source_address"})
        if "config" in problems:
            raise RuleConfigError(problems)
        config = cls(
            max_attempts=_positive_int(data, "max_attempts", 3, problems),
            window_seconds=_positive_int(data, "window_seconds", 600, problems),
            per_customer=_bool(data, "per_customer", True, problems),
            per_source_address=_bool(data, "per_source_address", True, problems),
        )
        if problems:
            raise RuleConfigError(problems)
        return config

    def to_json(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "window_seconds": self.window_seconds,
            "per_customer": self.per_customer,
            "per_source_address": self.per_source_address,
        }


def _advisory_lock(key: str) -> None:
    """A transaction-scoped PostgreSQL advisory lock on ``key`` (released at commit/rollback)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])


def source_address(text: str) -> str | None:
    """``text`` as a normalised IP address, or ``None`` when it is empty or not an address."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


_SHARED_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)


def _shared_address(address: str) -> bool:
    """Loopback, RFC 1918, link-local or IPv6 unique-local: never one customer's own address."""
    parsed = ipaddress.ip_address(address)
    return any(parsed.version == network.version and parsed in network for network in _SHARED_NETWORKS)


class VelocityRule:
    """At most ``max_attempts`` new payment attempts per customer, and per public source
    address, in any ``window_seconds``; the next is blocked until the oldest leaves the window.

    Exact under concurrency: advisory transaction locks on the customer and on the address
    (always in that order, so two attempts cannot deadlock) serialise the count of stored
    start assessments and the insert of this one (the engine stores it in the same
    transaction, before the locks are released). Blocked starts do not count: they created
    no attempt, and counting them would keep a customer who keeps trying blocked forever.
    """

    name: ClassVar[str] = "velocity"

    def __init__(self, config: VelocityConfig) -> None:
        self.config = config

    def before_start(self, facts: StartFacts) -> RuleResult:
        window = timedelta(seconds=self.config.window_seconds)
        address = source_address(facts.source_ip)
        inputs: dict[str, Any] = {
            "max_attempts": self.config.max_attempts,
            "window_seconds": self.config.window_seconds,
        }
        scopes: list[tuple[str, str, dict[str, Any]]] = []
        if self.config.per_customer:
            scopes.append(("customer", f"fraud.velocity:customer:{facts.customer_id}", {"customer": facts.customer_id}))
        if self.config.per_source_address:
            if address is None:
                inputs["source_address"] = "skipped: no usable source address"
            elif _shared_address(address):
                # A loopback or private address is not a customer's: it is this host, or a proxy
                # whose clients TRUSTED_PROXY_COUNT does not see through. Counting every
                # customer behind it as one would block them all; the per-customer limit holds.
                inputs["source_address"] = f"skipped: {address} is a loopback or private-network address"
            else:
                scopes.append(("source_address", f"fraud.velocity:address:{address}", {"source_ip": address}))
        for _, key, _ in scopes:  # customer first, then the address: one fixed order
            _advisory_lock(key)

        retry_after = 0
        blocked: list[str] = []
        for scope, _, match in scopes:
            times = list(
                Assessment.objects.filter(
                    stage=Stage.BEFORE_START,
                    created_at__gt=facts.now - window,
                    created_at__lte=facts.now,
                    **match,
                )
                .exclude(decision=Decision.BLOCK)
                .order_by("created_at")
                .values_list("created_at", flat=True)
            )
            inputs[f"{scope}_attempts_in_window"] = len(times)
            if len(times) >= self.config.max_attempts:
                frees_at = times[len(times) - self.config.max_attempts] + window
                retry_after = max(retry_after, math.ceil((frees_at - facts.now).total_seconds()), 1)
                blocked.append(scope.replace("_", " "))
        if blocked:
            inputs["retry_after_seconds"] = retry_after
            return RuleResult(
                Decision.BLOCK,
                f"{self.config.max_attempts} payment attempts in {self.config.window_seconds // 60} minutes "
                f"already made by this {' and this '.join(blocked)}; retry after {retry_after} seconds",
                inputs,
            )
        return RuleResult(Decision.ALLOW, "within the attempt limit", inputs)


# --- amount ------------------------------------------------------------------------------------


AMOUNT_DEFAULT_OVERRIDES = {"JPY": "100000"}
"""1,000.00 in every currency except the yen, where 1,000 is about ten dollars."""


def _default_thresholds() -> dict[str, str]:
    return {
        currency: AMOUNT_DEFAULT_OVERRIDES.get(currency, "1000." + "0" * exponent if exponent else "1000")
        for currency, exponent in sorted(CURRENCY_EXPONENTS.items())
    }


@dataclass(frozen=True)
class AmountConfig:
    review_over: Mapping[str, Money] = field(
        default_factory=lambda: {code: Money.parse(text, code) for code, text in _default_thresholds().items()}
    )
    """Per currency: an invoice whose total is over this goes to review."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        problems = _known_keys(data, {"review_over"})
        if "config" in problems:
            raise RuleConfigError(problems)
        raw = data.get("review_over", _default_thresholds())
        thresholds: dict[str, Money] = {}
        if not isinstance(raw, Mapping):
            problems["review_over"] = 'must map currency codes to amounts, e.g. {"AUD": "1000.00"}'
        else:
            for code, text in raw.items():
                try:
                    currency = normalize_currency(code)
                except MoneyError:
                    problems[f"review_over.{code}"] = "unknown currency"
                    continue
                if not isinstance(text, str | int) or isinstance(text, bool):
                    problems[f"review_over.{code}"] = 'must be an amount such as "1000.00"'
                    continue
                try:
                    thresholds[currency] = Money.parse(str(text), currency)
                except MoneyError:
                    problems[f"review_over.{code}"] = "must be an amount of at least zero, such as 1000.00"
        if problems:
            raise RuleConfigError(problems)
        return cls(review_over=thresholds)

    def to_json(self) -> dict[str, Any]:
        return {"review_over": {code: str(money.as_decimal()) for code, money in sorted(self.review_over.items())}}


class AmountRule:
    """An invoice whose total is over its currency's threshold goes to review (after the
    payment is reported: the review holds the payment, not the start)."""

    name: ClassVar[str] = "amount"

    def __init__(self, config: AmountConfig) -> None:
        self.config = config

    def after_report(self, facts: ReportFacts) -> RuleResult:
        total = facts.invoice_total
        threshold = self.config.review_over.get(total.currency)
        inputs: dict[str, Any] = {"invoice_total": total.format()}
        if threshold is None:
            inputs["threshold"] = f"skipped: none configured for {total.currency}"
            return RuleResult(Decision.ALLOW, f"no amount threshold for {total.currency}", inputs)
        inputs["threshold"] = threshold.format()
        if total.minor > threshold.minor:
            return RuleResult(Decision.REVIEW, f"invoice total {total.format()} is over {threshold.format()}", inputs)
        return RuleResult(Decision.ALLOW, f"invoice total is not over {threshold.format()}", inputs)


# --- geography ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeographyConfig:
    blocked_countries: frozenset[str] = frozenset({"KP", "IR", "SY"})
    decision: Decision = Decision.BLOCK

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        problems = _known_keys(data, {"blocked_countries", "decision"})
        if "config" in problems:
            raise RuleConfigError(problems)
        raw = data.get("blocked_countries", sorted(cls.blocked_countries))
        countries: set[str] = set()
        if not isinstance(raw, list):
            problems["blocked_countries"] = 'must be a list of country codes, e.g. ["KP", "IR"]'
        else:
            for code in raw:
                normalised = country_code_normalise(code)
                if normalised is None:
                    problems["blocked_countries"] = f"{str(code)[:10]!r} is not {COUNTRY_MESSAGE}"
                    break
                countries.add(normalised)
        decision = _decision(data, "decision", Decision.BLOCK, problems, allowed=(Decision.REVIEW, Decision.BLOCK))
        if problems:
            raise RuleConfigError(problems)
        return cls(blocked_countries=frozenset(countries), decision=decision)

    def to_json(self) -> dict[str, Any]:
        return {"blocked_countries": sorted(self.blocked_countries), "decision": self.decision.value}


class GeographyRule:
    """Blocked countries against every country known about the payment: the customer's
    billing country and the request IP's country before the start; the billing country, the
    card's issuing country and the PayPal payer's country after the report."""

    name: ClassVar[str] = "geography"

    def __init__(self, config: GeographyConfig) -> None:
        self.config = config

    def before_start(self, facts: StartFacts) -> RuleResult:
        countries: dict[str, str] = {"billing_country": facts.billing_country}
        inputs: dict[str, Any] = {"billing_country": facts.billing_country or "skipped: none on record"}
        country, note = geoip.country_of(facts.source_ip)
        inputs["ip_country"] = country or f"skipped: {note}"
        if country:
            countries["ip_country"] = country
        return self._decide(countries, inputs)

    def after_report(self, facts: ReportFacts) -> RuleResult:
        countries: dict[str, str] = {"billing_country": facts.billing_country}
        inputs: dict[str, Any] = {"billing_country": facts.billing_country or "skipped: none on record"}
        if facts.method == CARD_METHOD:
            card_country = facts.card.country.upper() if facts.card is not None else ""
            inputs["card_country"] = card_country or "skipped: the gateway reported no card country"
            countries["card_country"] = card_country
        if facts.payer_country or facts.method == "paypal":
            payer = facts.payer_country.upper()
            inputs["payer_country"] = payer or "skipped: the gateway reported no payer country"
            countries["payer_country"] = payer
        return self._decide(countries, inputs)

    def _decide(self, countries: dict[str, str], inputs: dict[str, Any]) -> RuleResult:
        inputs["blocked_countries"] = sorted(self.config.blocked_countries)
        hits = [
            f"{name.replace('_', ' ')} {code}"
            for name, code in countries.items()
            if code in self.config.blocked_countries
        ]
        if hits:
            return RuleResult(self.config.decision, "blocked country: " + ", ".join(hits), inputs)
        return RuleResult(Decision.ALLOW, "no blocked country", inputs)


# --- 3-D Secure --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThreeDSecureConfig:
    decision_without_authentication: Decision = Decision.REVIEW
    authenticated_results: frozenset[str] = frozenset({"authenticated", "attempt_acknowledged"})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        problems = _known_keys(data, {"decision_without_authentication", "authenticated_results"})
        if "config" in problems:
            raise RuleConfigError(problems)
        decision = _decision(
            data,
            "decision_without_authentication",
            Decision.REVIEW,
            problems,
            allowed=(Decision.REVIEW, Decision.BLOCK),
        )
        raw = data.get("authenticated_results", sorted(cls.authenticated_results))
        if not isinstance(raw, list) or not raw or not all(isinstance(item, str) and item for item in raw):
            problems["authenticated_results"] = 'must be a non-empty list of results, e.g. ["authenticated"]'
            raw = []
        if problems:
            raise RuleConfigError(problems)
        return cls(decision_without_authentication=decision, authenticated_results=frozenset(raw))

    def to_json(self) -> dict[str, Any]:
        return {
            "decision_without_authentication": self.decision_without_authentication.value,
            "authenticated_results": sorted(self.authenticated_results),
        }


class ThreeDSecureRule:
    """Every card payment must be authenticated by 3-D Secure; one that was not (not run,
    failed, or no card facts reported) goes to review, or is blocked if so configured."""

    name: ClassVar[str] = "three_d_secure"

    def __init__(self, config: ThreeDSecureConfig) -> None:
        self.config = config

    def after_report(self, facts: ReportFacts) -> RuleResult:
        if facts.method != CARD_METHOD:
            return RuleResult(Decision.ALLOW, f"not applicable to {facts.method}", {"method": facts.method})
        if facts.card is None:
            return RuleResult(
                self.config.decision_without_authentication,
                "the gateway reported no card facts: 3-D Secure result unknown",
                {"three_d_secure_result": "skipped: no card facts reported"},
            )
        result = facts.card.three_d_secure_result
        inputs = {"three_d_secure_result": result or "none: 3-D Secure did not run"}
        if result in self.config.authenticated_results:
            return RuleResult(Decision.ALLOW, f"3-D Secure {result}", inputs)
        return RuleResult(
            self.config.decision_without_authentication,
            f"card not authenticated by 3-D Secure ({result or 'did not run'})",
            inputs,
        )


# --- AVS / CVV ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardChecksConfig:
    cvc_fail: Decision = Decision.BLOCK
    address_fail: Decision = Decision.REVIEW
    unavailable: Decision = Decision.ALLOW
    """A check the gateway could not run (``unavailable``, ``unchecked``, or not reported)."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        problems = _known_keys(data, {"cvc_fail", "address_fail", "unavailable"})
        if "config" in problems:
            raise RuleConfigError(problems)
        config = cls(
            cvc_fail=_decision(data, "cvc_fail", Decision.BLOCK, problems, allowed=ALL_DECISIONS),
            address_fail=_decision(data, "address_fail", Decision.REVIEW, problems, allowed=ALL_DECISIONS),
            unavailable=_decision(data, "unavailable", Decision.ALLOW, problems, allowed=ALL_DECISIONS),
        )
        if problems:
            raise RuleConfigError(problems)
        return config

    def to_json(self) -> dict[str, Any]:
        return {
            "cvc_fail": self.cvc_fail.value,
            "address_fail": self.address_fail.value,
            "unavailable": self.unavailable.value,
        }


class CardChecksRule:
    """The card's CVC and address (AVS) checks: a failed CVC is blocked, a failed postal
    code or address line goes to review, a check that did not run is configurable."""

    name: ClassVar[str] = "card_checks"

    def __init__(self, config: CardChecksConfig) -> None:
        self.config = config

    def after_report(self, facts: ReportFacts) -> RuleResult:
        if facts.method != CARD_METHOD:
            return RuleResult(Decision.ALLOW, f"not applicable to {facts.method}", {"method": facts.method})
        card = facts.card or CardCheck()
        checks = {
            "cvc_check": (card.cvc_check, self.config.cvc_fail),
            "address_postal_code_check": (card.address_postal_code_check, self.config.address_fail),
            "address_line1_check": (card.address_line1_check, self.config.address_fail),
        }
        inputs: dict[str, Any] = {name: value or "not reported" for name, (value, _) in checks.items()}
        found: list[tuple[Decision, str]] = []
        for name, (value, on_fail) in checks.items():
            label = name.removesuffix("_check").replace("_", " ")
            if value == "fail":
                found.append((on_fail, f"{label} check failed"))
            elif value != "pass":
                found.append((self.config.unavailable, f"{label} check {value or 'not reported'}"))
        worst = max((decision for decision, _ in found), key=DECISION_RANK.__getitem__, default=Decision.ALLOW)
        if worst is Decision.ALLOW:
            return RuleResult(Decision.ALLOW, "card checks passed or not required", inputs)
        return RuleResult(worst, "; ".join(reason for decision, reason in found if decision is worst), inputs)


# --- customer risk -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerRiskConfig:
    decision: Decision = Decision.REVIEW

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        problems = _known_keys(data, {"decision"})
        if "config" in problems:
            raise RuleConfigError(problems)
        decision = _decision(data, "decision", Decision.REVIEW, problems, allowed=(Decision.REVIEW, Decision.BLOCK))
        if problems:
            raise RuleConfigError(problems)
        return cls(decision=decision)

    def to_json(self) -> dict[str, Any]:
        return {"decision": self.decision.value}


class CustomerRiskRule:
    """A customer with an open risk flag (a dispute or an early fraud warning,
    ``fraud.services.customer_risk_raise``) has their payments reviewed until staff clear it."""

    name: ClassVar[str] = "customer_risk"

    def __init__(self, config: CustomerRiskConfig) -> None:
        self.config = config

    def after_report(self, facts: ReportFacts) -> RuleResult:
        flags = list(
            CustomerRiskFlag.objects.filter(customer_id=facts.customer_id, cleared_at__isnull=True)
            .order_by("created_at")
            .values_list("reason", flat=True)
        )
        inputs: dict[str, Any] = {"open_risk_flags": flags}
        if flags:
            return RuleResult(self.config.decision, "customer risk raised: " + "; ".join(flags), inputs)
        return RuleResult(Decision.ALLOW, "no open customer risk flag", inputs)


# --- the registry ------------------------------------------------------------------------------

RULES: dict[str, tuple[type[Any], type[Any]]] = {
    VelocityRule.name: (VelocityRule, VelocityConfig),
    AmountRule.name: (AmountRule, AmountConfig),
    GeographyRule.name: (GeographyRule, GeographyConfig),
    ThreeDSecureRule.name: (ThreeDSecureRule, ThreeDSecureConfig),
    CardChecksRule.name: (CardChecksRule, CardChecksConfig),
    CustomerRiskRule.name: (CustomerRiskRule, CustomerRiskConfig),
}
"""Rule name -> (rule class, config class), in the order the engine runs them."""


def rule_config_parse(name: str, data: Any) -> Any:
    """``data`` as rule ``name``'s config; :class:`RuleConfigError` when it cannot be used."""
    if name not in RULES:
        raise RuleConfigError({"name": "unknown rule"})
    if not isinstance(data, Mapping):
        raise RuleConfigError({"config": "must be a JSON object"})
    return RULES[name][1].from_json(data)


def rule_build(name: str, data: Any) -> Any:
    """The rule ``name`` configured with ``data`` (validated)."""
    return RULES[name][0](rule_config_parse(name, data))


def default_configs() -> dict[str, dict[str, Any]]:
    """Every rule's default configuration as JSON (the data migration's seed)."""
    return {name: config_class().to_json() for name, (_, config_class) in RULES.items()}
