"""O2S API authentication: bearer keys, IP allowlist behind trusted proxies, audit, rate limit.

Driven through test-only endpoints built on the real ``O2SAPIView`` /
``O2SIdempotentPostView`` (``tests/o2s/urls_auth.py``); Redis and PostgreSQL are real.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone
from django_redis import get_redis_connection
from redis.exceptions import ConnectionError as RedisConnectionError

from audit.models import AuditEvent
from audit.refusals import refusals_flush
from billing.models import ApiKey
from o2s.api import throttling
from o2s.api.throttling import ApiKeyRateThrottle
from o2s.selectors import api_key_hash
from o2s.services import api_key_create, api_key_revoke
from paymenter import rls
from paymenter.client_ip import client_ip
from paymenter.principals import SystemPrincipal

pytestmark = [pytest.mark.urls("tests.o2s.urls_auth"), pytest.mark.django_db]

ADMIN = SystemPrincipal(label="test:api-keys")
READER = SystemPrincipal(label="test:audit-reader")
WHOAMI = "/api/v1/whoami/"
ECHO = "/api/v1/echo/"
ALLOWED_IP = "10.1.2.3"
OUTSIDE_IP = "203.0.113.66"
PROXY_IP = "192.0.2.10"
GENERIC_401 = {"error": {"code": "unauthenticated", "message": "Invalid or missing API key.", "fields": {}}}
IP_403 = {
    "error": {
        "code": "ip_not_allowed",
        "message": "This API key may not be used from this address.",
        "fields": {},
    }
}
WWW_AUTHENTICATE = 'Bearer realm="paymenter"'
KEY_RE = re.compile(r"^pmk_(?P<lookup_id>[0-9a-f]{12})_(?P<secret>[a-z2-7]{52})$")
FROZEN_NOW = 1_800_000_030.0  # 30 s into a one-minute window


@pytest.fixture(autouse=True)
def _clear_throttle_counters() -> Iterator[None]:
    yield
    connection = get_redis_connection("default")
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    for key in connection.scan_iter(match=f"{prefix}:throttle:api_key:*"):
        connection.delete(key)


def _key(**overrides: Any) -> tuple[ApiKey, str]:
    arguments: dict[str, Any] = {"name": "o2s test", "allowed_networks": ["10.1.2.0/24"], **overrides}
    return api_key_create(principal=ADMIN, **arguments)


def _get(raw: str | None, *, remote: str = ALLOWED_IP, xff: str | None = None, url: str = WHOAMI) -> Any:
    headers = {"Authorization": f"Bearer {raw}"} if raw is not None else {}
    extra: dict[str, Any] = {"REMOTE_ADDR": remote}
    if xff is not None:
        extra["HTTP_X_FORWARDED_FOR"] = xff
    return Client().get(url, headers=headers, **extra)


def _last_sequence() -> int:
    with rls.acting_as(READER):
        last = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    return last or 0


def _refusals_since(sequence: int) -> list[dict[str, Any]]:
    """The aggregated refusal events written since ``sequence``, once every window is closed
    (``refusals_flush`` an hour ahead), without their timestamps."""
    refusals_flush(now=time.time() + 3600)
    with rls.acting_as(READER):
        return [
            {name: event.payload[name] for name in ("kind", "source", "count", "reasons", "details")}
            for event in AuditEvent.objects.filter(sequence__gt=sequence, action="requests.refused").order_by(
                "sequence"
            )
        ]


def _refusal(source: str, reason: str, lookup_id: str = "", count: int = 1) -> dict[str, Any]:
    return {
        "kind": "api",
        "source": source,
        "count": count,
        "reasons": {reason: count},
        "details": {lookup_id: count} if lookup_id else {},
    }


def _events_since(sequence: int) -> list[AuditEvent]:
    with rls.acting_as(READER):
        return list(AuditEvent.objects.filter(sequence__gt=sequence).order_by("sequence"))


def _all_audit_payloads_json() -> str:
    with rls.acting_as(READER):
        return json.dumps(list(AuditEvent.objects.values_list("payload", flat=True)))


def _assert_secret_nowhere(raw: str, caplog: pytest.LogCaptureFixture) -> None:
    secret = raw.rsplit("_", 1)[1]
    assert secret not in _all_audit_payloads_json()
    assert secret not in caplog.text
    assert all(secret not in str(record.args) for record in caplog.records)


# --- success ------------------------------------------------------------------------------------


def test_valid_key_from_an_allowed_address_runs_the_view_as_the_key() -> None:
    api_key, raw = _key()

    response = _get(raw)

    assert response.status_code == 200
    assert response.json() == {"api_key_id": str(api_key.pk), "name": "o2s test", "acting_as": str(api_key.pk)}


def test_post_view_authenticates_too() -> None:
    api_key, raw = _key()

    refused = Client().post(ECHO, {}, content_type="application/json", REMOTE_ADDR=ALLOWED_IP)
    accepted = Client().post(
        ECHO, {}, content_type="application/json", REMOTE_ADDR=ALLOWED_IP, headers={"Authorization": f"Bearer {raw}"}
    )

    assert refused.status_code == 401
    assert accepted.status_code == 201
    assert accepted.json() == {"api_key_id": str(api_key.pk)}


def test_scheme_is_case_insensitive() -> None:
    _api_key, raw = _key()

    response = Client().get(WHOAMI, REMOTE_ADDR=ALLOWED_IP, headers={"Authorization": f"bearer {raw}"})

    assert response.status_code == 200


def test_two_active_keys_both_work_and_revoking_one_leaves_the_other() -> None:
    old, old_raw = _key(name="o2s 2026-01")
    new, new_raw = _key(name="o2s 2026-07")

    assert _get(old_raw).json()["api_key_id"] == str(old.pk)
    assert _get(new_raw).json()["api_key_id"] == str(new.pk)

    api_key_revoke(principal=ADMIN, lookup_id_or_id=old.lookup_id)

    assert _get(old_raw).status_code == 401
    assert _get(new_raw).status_code == 200


def test_last_use_is_recorded_at_most_once_a_minute() -> None:
    api_key, raw = _key()
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at is None

    before = timezone.now()
    _get(raw)
    api_key.refresh_from_db()
    first_use = api_key.last_used_at
    _get(raw)
    api_key.refresh_from_db()

    assert first_use is not None
    assert first_use >= before
    assert api_key.last_used_at == first_use  # the second request did not write

    two_minutes_ago = timezone.now() - timedelta(minutes=2)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=two_minutes_ago)
    _get(raw)
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None
    assert api_key.last_used_at > two_minutes_ago + timedelta(minutes=1)


def test_ipv4_mapped_ipv6_remote_address_matches_an_ipv4_network() -> None:
    _api_key, raw = _key()

    assert _get(raw, remote=f"::ffff:{ALLOWED_IP}").status_code == 200


def test_ipv6_network_allowlist() -> None:
    _api_key, raw = _key(allowed_networks=["2001:db8:1::/48"])

    assert _get(raw, remote="2001:db8:1::42").status_code == 200
    assert _get(raw, remote="2001:db8:2::42").status_code == 403


# --- 401 refusals -------------------------------------------------------------------------------


def test_no_header_is_401_with_www_authenticate_and_one_audit_event() -> None:
    since = _last_sequence()

    response = _get(None)

    assert response.status_code == 401
    assert response.json() == GENERIC_401
    assert response["WWW-Authenticate"] == WWW_AUTHENTICATE
    assert _refusals_since(since) == [_refusal(ALLOWED_IP, "missing")]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer not-a-key",
        "Basic dXNlcjpwYXNzd29yZA==",
        "Bearer pmk_0123456789ab_tooshort",
        "Bearer pmk_0123456789ab_" + "a" * 52 + " extra",
        "Token {key}",
        "Bearer {key}x",
        "Bearer {key_upper}",
    ],
)
def test_malformed_authorization_is_401_without_revealing_why(header: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api_key, raw = _key()
    since = _last_sequence()

    response = Client().get(
        WHOAMI,
        REMOTE_ADDR=ALLOWED_IP,
        headers={"Authorization": header.format(key=raw, key_upper=raw.upper())},
    )

    assert response.status_code == 401
    assert response.json() == GENERIC_401
    assert response["WWW-Authenticate"] == WWW_AUTHENTICATE
    assert _refusals_since(since) == [_refusal(ALLOWED_IP, "malformed")]
    api_key.refresh_from_db()
    assert api_key.last_used_at is None
    _assert_secret_nowhere(raw, caplog)


def test_unknown_key_is_401() -> None:
    since = _last_sequence()
    unknown = "pmk_0123456789ab_" + "a" * 52

    response = _get(unknown)

    assert response.status_code == 401
    assert response.json() == GENERIC_401
    assert response["WWW-Authenticate"] == WWW_AUTHENTICATE
    assert _refusals_since(since) == [_refusal(ALLOWED_IP, "unknown", "0123456789ab")]


def test_wrong_secret_for_a_real_lookup_id_is_401_unknown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api_key, raw = _key()
    forged = f"pmk_{api_key.lookup_id}_" + "b" * 52
    since = _last_sequence()

    response = _get(forged)

    assert response.status_code == 401
    assert response.json() == GENERIC_401
    assert _refusals_since(since) == [_refusal(ALLOWED_IP, "unknown", api_key.lookup_id)]
    api_key.refresh_from_db()
    assert api_key.last_used_at is None
    _assert_secret_nowhere(forged, caplog)
    _assert_secret_nowhere(raw, caplog)


def test_revoked_key_is_401(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api_key, raw = _key()
    api_key_revoke(principal=ADMIN, lookup_id_or_id=str(api_key.pk))
    since = _last_sequence()

    response = _get(raw)

    assert response.status_code == 401
    assert response.json() == GENERIC_401
    assert response["WWW-Authenticate"] == WWW_AUTHENTICATE
    assert _refusals_since(since) == [_refusal(ALLOWED_IP, "revoked", api_key.lookup_id)]
    assert len(_events_since(since)) == 1
    api_key.refresh_from_db()
    assert api_key.last_used_at is None
    _assert_secret_nowhere(raw, caplog)


def test_expired_key_is_401(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api_key, raw = _key(expires_at=timezone.now() + timedelta(days=1))
    assert _get(raw).status_code == 200
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    since = _last_sequence()

    response = _get(raw)

    assert response.status_code == 401
    assert response.json() == GENERIC_401
    assert _refusals_since(since) == [_refusal(ALLOWED_IP, "expired", api_key.lookup_id)]
    _assert_secret_nowhere(raw, caplog)


# --- 403: allowlist and client address -------------------------------------------------------


def test_right_key_from_a_disallowed_address_is_403_ip_not_allowed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api_key, raw = _key()
    since = _last_sequence()

    response = _get(raw, remote=OUTSIDE_IP)

    assert response.status_code == 403
    assert response.json() == IP_403
    assert _refusals_since(since) == [_refusal(OUTSIDE_IP, "ip_not_allowed", api_key.lookup_id)]
    assert len(_events_since(since)) == 1
    api_key.refresh_from_db()
    assert api_key.last_used_at is None
    _assert_secret_nowhere(raw, caplog)


@override_settings(TRUSTED_PROXY_COUNT=0)
def test_spoofed_forwarded_for_is_ignored_without_trusted_proxies() -> None:
    _api_key, raw = _key()
    since = _last_sequence()

    response = _get(raw, remote=OUTSIDE_IP, xff=ALLOWED_IP)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ip_not_allowed"
    assert [p["source"] for p in _refusals_since(since)] == [OUTSIDE_IP]


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_behind_one_proxy_the_client_is_the_last_forwarded_entry() -> None:
    api_key, raw = _key()

    response = _get(raw, remote=PROXY_IP, xff=f"{OUTSIDE_IP}, {ALLOWED_IP}")

    assert response.status_code == 200
    assert response.json()["api_key_id"] == str(api_key.pk)


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_behind_one_proxy_a_spoofed_left_entry_is_ignored() -> None:
    _api_key, raw = _key()
    since = _last_sequence()

    response = _get(raw, remote=PROXY_IP, xff=f"{ALLOWED_IP}, {OUTSIDE_IP}")

    assert response.status_code == 403
    assert response.json() == IP_403
    assert [(p["reasons"], p["source"]) for p in _refusals_since(since)] == [({"ip_not_allowed": 1}, OUTSIDE_IP)]


@override_settings(TRUSTED_PROXY_COUNT=2)
def test_behind_two_proxies_the_client_is_the_second_entry_from_the_right() -> None:
    _api_key, raw = _key()

    assert _get(raw, remote=PROXY_IP, xff=f"{OUTSIDE_IP}, {ALLOWED_IP}, 192.0.2.9").status_code == 200
    assert _get(raw, remote=PROXY_IP, xff=f"{ALLOWED_IP}, {OUTSIDE_IP}, 192.0.2.9").status_code == 403


@override_settings(TRUSTED_PROXY_COUNT=2)
def test_too_few_forwarded_entries_is_refused_not_remote_addr() -> None:
    """REMOTE_ADDR (a proxy, here even inside the allowlist) is never taken as the client."""
    _api_key, raw = _key()
    since = _last_sequence()

    response = _get(raw, remote="10.1.2.50", xff=ALLOWED_IP)

    assert response.status_code == 403
    assert response.json() == IP_403
    assert [(p["reasons"], p["source"]) for p in _refusals_since(since)] == [({"client_ip_unknown": 1}, "unknown")]


@pytest.mark.parametrize(
    ("proxies", "remote", "xff"),
    [(1, PROXY_IP, "not-an-ip"), (1, PROXY_IP, f"{ALLOWED_IP}:443"), (0, "garbage", None), (1, PROXY_IP, "")],
)
def test_an_unparseable_client_address_is_403_not_a_crash(proxies: int, remote: str, xff: str | None) -> None:
    _api_key, raw = _key()
    since = _last_sequence()

    with override_settings(TRUSTED_PROXY_COUNT=proxies):
        response = _get(raw, remote=remote, xff=xff)

    assert response.status_code == 403
    assert response.json() == IP_403
    assert [(p["reasons"], p["source"]) for p in _refusals_since(since)] == [({"client_ip_unknown": 1}, "unknown")]


@pytest.mark.parametrize(
    ("proxies", "remote", "xff", "expected"),
    [
        (0, "10.1.2.3", None, "10.1.2.3"),
        (0, "10.1.2.3", "198.51.100.1", "10.1.2.3"),
        (0, "::ffff:10.1.2.3", None, "10.1.2.3"),
        (0, "2001:DB8::1", None, "2001:db8::1"),
        (1, PROXY_IP, "198.51.100.1", "198.51.100.1"),
        (1, PROXY_IP, "1.1.1.1, 198.51.100.1", "198.51.100.1"),
        (1, PROXY_IP, " 1.1.1.1 ,198.51.100.1 ", "198.51.100.1"),
        (1, PROXY_IP, "garbage, 198.51.100.1", "198.51.100.1"),
        (1, PROXY_IP, None, ""),
        (2, PROXY_IP, "1.1.1.1, 198.51.100.1, 10.0.0.2", "198.51.100.1"),
        (2, PROXY_IP, "198.51.100.1", ""),
    ],
)
def test_client_ip(proxies: int, remote: str, xff: str | None, expected: str) -> None:
    extra: dict[str, Any] = {"REMOTE_ADDR": remote}
    if xff is not None:
        extra["HTTP_X_FORWARDED_FOR"] = xff
    request = RequestFactory().get("/", **extra)

    with override_settings(TRUSTED_PROXY_COUNT=proxies):
        assert client_ip(request) == expected


# --- audit and logs never carry the key ----------------------------------------------------------


def test_refusals_are_audited_in_one_event_per_source_and_never_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api_key, raw = _key()
    revoked, revoked_raw = _key(name="revoked")
    api_key_revoke(principal=ADMIN, lookup_id_or_id=revoked.lookup_id)
    since = _last_sequence()

    statuses = [
        _get(None).status_code,
        _get("garbage").status_code,
        _get(f"pmk_{api_key.lookup_id}_" + "c" * 52).status_code,
        _get(revoked_raw).status_code,
        _get(raw, remote=OUTSIDE_IP).status_code,
    ]

    assert statuses == [401, 401, 401, 401, 403]
    assert _events_since(since) == []  # nothing is written while requests are refused
    assert _refusals_since(since) == [
        {
            "kind": "api",
            "source": ALLOWED_IP,
            "count": 4,
            "reasons": {"malformed": 1, "missing": 1, "revoked": 1, "unknown": 1},
            "details": {api_key.lookup_id: 1, revoked.lookup_id: 1},
        },
        _refusal(OUTSIDE_IP, "ip_not_allowed", api_key.lookup_id),
    ]
    events = _events_since(since)
    assert {(e.actor_type, e.actor_id, e.object_type) for e in events} == {
        ("system", "worker:refusals", "request_source")
    }
    for secret_bearer in (raw, revoked_raw):
        assert secret_bearer not in _all_audit_payloads_json()
        assert secret_bearer not in caplog.text
        _assert_secret_nowhere(secret_bearer, caplog)


# --- management commands -------------------------------------------------------------------------


def test_create_api_key_prints_the_key_once_and_stores_only_its_hash(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    out = StringIO()
    since = _last_sequence()

    call_command(
        "create_api_key",
        "--name",
        "o2s production",
        "--allow-ip",
        "10.1.2.0/24",
        "--allow-ip",
        "2001:db8::1/64",
        "--expires-in-days",
        "90",
        "--allow-custom-lines",
        "--rate-limit",
        "120",
        stdout=out,
    )

    printed = out.getvalue()
    raw = printed.strip().splitlines()[-1]
    match = KEY_RE.match(raw)
    assert match is not None
    secret = match.group("secret")
    assert len(base64.b32decode(secret.upper() + "====")) == 32  # 256 bits >= 128
    assert printed.count(raw) == 1
    api_key = ApiKey.objects.get(lookup_id=match.group("lookup_id"))
    assert api_key.key_hash == hashlib.sha256(raw.encode()).hexdigest() == api_key_hash(raw)
    row = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert all(secret not in str(value) for value in row.values())
    assert api_key.name == "o2s production"
    assert api_key.allowed_networks == ["10.1.2.0/24", "2001:db8::/64"]
    assert api_key.can_invoice_custom_lines is True
    assert api_key.rate_limit_per_minute == 120
    assert api_key.expires_at is not None
    assert timedelta(days=89) < api_key.expires_at - timezone.now() <= timedelta(days=90)
    events = _events_since(since)
    assert [(e.action, e.actor_id, e.object_id) for e in events] == [
        ("api_key.created", "command:create_api_key", str(api_key.pk))
    ]
    assert events[0].payload["lookup_id"] == api_key.lookup_id
    _assert_secret_nowhere(raw, caplog)
    assert _get(raw).status_code == 200


def test_keys_are_unique_and_random() -> None:
    matches = [KEY_RE.match(_key()[1]) for _ in range(5)]

    assert len({match.group("secret") for match in matches if match is not None}) == 5


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--allow-ip", "10.0.0.300/8"], "allowed_networks: not an IP network: '10.0.0.300/8'"),
        (["--allow-ip", "10.0.0.0/8", "--rate-limit", "0"], "invalid positive_integer value: '0'"),
    ],
)
def test_create_api_key_refuses_bad_input_and_writes_nothing(arguments: list[str], message: str) -> None:
    since = _last_sequence()
    count = ApiKey.objects.count()

    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("create_api_key", "--name", "bad", *arguments, stdout=StringIO())

    assert ApiKey.objects.count() == count
    assert _events_since(since) == []


def test_a_key_needs_at_least_one_network() -> None:
    from o2s.errors import InvalidApiKeySpecError  # noqa: PLC0415 - local to this refusal test

    with pytest.raises(InvalidApiKeySpecError) as excinfo:
        _key(allowed_networks=[])

    assert excinfo.value.fields == {"allowed_networks": ["at least one network is required"]}


def test_revoke_api_key_command_by_displayed_form_is_idempotent() -> None:
    api_key, raw = _key()
    assert _get(raw).status_code == 200
    since = _last_sequence()

    first, second = StringIO(), StringIO()
    call_command("revoke_api_key", f"pmk_{api_key.lookup_id}…", stdout=first)
    call_command("revoke_api_key", api_key.lookup_id, stdout=second)

    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert "revoked at" in first.getvalue()
    assert first.getvalue() == second.getvalue()
    events = _events_since(since)
    assert [(e.action, e.actor_id) for e in events] == [("api_key.revoked", "command:revoke_api_key")]
    assert _get(raw).status_code == 401


def test_revoke_api_key_command_refuses_an_unknown_key() -> None:
    with pytest.raises(CommandError, match="no such API key"):
        call_command("revoke_api_key", str(uuid.uuid4()), stdout=StringIO())


def test_list_api_keys_shows_status_and_never_a_secret() -> None:
    active, active_raw = _key(name="active one")
    revoked, revoked_raw = _key(name="revoked one")
    api_key_revoke(principal=ADMIN, lookup_id_or_id=revoked.lookup_id)
    out, only_active = StringIO(), StringIO()

    call_command("list_api_keys", stdout=out)
    call_command("list_api_keys", "--active", stdout=only_active)

    text = out.getvalue()
    assert f"{active.pk}  pmk_{active.lookup_id}…  active   active one" in text
    assert f"{revoked.pk}  pmk_{revoked.lookup_id}…  revoked  revoked one" in text
    assert str(revoked.pk) not in only_active.getvalue()
    for raw in (active_raw, revoked_raw):
        assert raw.rsplit("_", 1)[1] not in text


# --- rate limit -----------------------------------------------------------------------------------


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [FROZEN_NOW]
    monkeypatch.setattr(ApiKeyRateThrottle, "timer", staticmethod(lambda: now[0]))
    return now


def test_over_the_limit_is_429_with_retry_after_and_windows_are_per_key(frozen_clock: list[float]) -> None:
    _limited, raw = _key(rate_limit_per_minute=3)
    _other, other_raw = _key(rate_limit_per_minute=3)

    statuses = [_get(raw).status_code for _ in range(3)]
    refused = _get(raw)

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert refused["Retry-After"] == "30"
    assert refused.json()["error"]["code"] == "rate_limited"
    assert [_get(other_raw).status_code for _ in range(3)] == [200, 200, 200]

    frozen_clock[0] += 30  # the next window
    assert _get(raw).status_code == 200


def test_refused_requests_do_not_count_against_the_limit(frozen_clock: list[float]) -> None:
    _api_key, raw = _key(rate_limit_per_minute=1)

    assert _get(raw, remote=OUTSIDE_IP).status_code == 403
    assert _get(raw).status_code == 200
    assert _get(raw).status_code == 429


def test_redis_down_fails_open_with_an_error_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _api_key, raw = _key(rate_limit_per_minute=1)

    def _down(alias: str) -> Any:
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(throttling, "get_redis_connection", _down)

    assert [_get(raw).status_code for _ in range(2)] == [200, 200]
    errors = [r for r in caplog.records if r.name == "o2s.api.throttling" and r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert "Redis unavailable" in errors[0].getMessage()
