"""Settings for MINT Portal.

One settings module for every environment: every value comes through the single django-environ
``env`` below, from the real environment or from a ``.env`` file beside ``manage.py`` (the real
environment wins). Development conveniences (a throwaway SECRET_KEY, the built-in MINT sandbox)
exist only while ``DEBUG`` is on; with ``DEBUG`` off a missing required value stops start-up with
a message that names it.
"""

import base64
import hashlib
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)


# .env.example's values for the secrets start like this; copied unchanged they are no secret.
PLACEHOLDER_PREFIXES = ("change-me", "your-")


def _required(name: str, dev_default: str) -> str:
    """Return ``name`` from the environment; only a DEBUG portal may fall back to a default
    or keep a placeholder copied from .env.example."""
    value = env.str(name, default="")
    if value and not DEBUG and value.lower().startswith(PLACEHOLDER_PREFIXES):
        raise ImproperlyConfigured(
            f"{name} still has the placeholder value from .env.example ({value[:12]}…). "
            f"Set the real value in the environment or in .env."
        )
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(
        f"{name} is not set. Set it in the environment or in .env "
        f"(see .env.example); only DEBUG=1 runs without it."
    )


SECRET_KEY = _required("SECRET_KEY", "dev-only-insecure-secret-key-do-not-use-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[]) or (
    ["127.0.0.1", "localhost", "[::1]", "testserver"] if DEBUG else []
)
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS is not set. Set it to the portal's host names, comma-separated."
    )
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- MINT Planning API -------------------------------------------------------------------------
MINT_SANDBOX_PORT = env.int("MINT_SANDBOX_PORT", default=8001)
MINT_SANDBOX_CLIENT_ID = "mintportal-demo"
MINT_SANDBOX_CLIENT_SECRET = "sandbox-demo-secret"  # noqa: S105 - the sandbox's public demo pair
MINT_API_URL = _required("MINT_API_URL", f"http://127.0.0.1:{MINT_SANDBOX_PORT}/api/v1.0").rstrip(
    "/"
)
# True for a DEBUG portal without MINT_API_URL: `make run` starts the built-in sandbox, and
# seed_demo may create demo logins (nowhere else).
MINT_BUILTIN_SANDBOX = DEBUG and not env.str("MINT_API_URL", default="")
MINT_CLIENT_ID = _required("MINT_CLIENT_ID", MINT_SANDBOX_CLIENT_ID)
MINT_CLIENT_SECRET = _required("MINT_CLIENT_SECRET", MINT_SANDBOX_CLIENT_SECRET)
# Fernet keys for the MINT access token at rest (plans.token_cipher): the first encrypts, all
# decrypt. Unset: one key derived from SECRET_KEY, which is never in the database or a backup.
MINT_TOKEN_KEYS = env.list("MINT_TOKEN_KEYS", default=[]) or [
    base64.urlsafe_b64encode(
        hashlib.sha256(b"mintportal MINT token key\0" + SECRET_KEY.encode()).digest()
    ).decode()
]
for _key in MINT_TOKEN_KEYS:
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            f"MINT_TOKEN_KEYS holds a value that is not a Fernet key ({_key[:6]}…): each key is "
            '32 random bytes in URL-safe base64, made with: python -c "from cryptography.fernet '
            'import Fernet; print(Fernet.generate_key().decode())"'
        ) from None
MINT_ENVIRONMENT = env.str("MINT_ENVIRONMENT", default="sandbox")
if MINT_ENVIRONMENT not in {"sandbox", "test", "production"}:
    raise ImproperlyConfigured(
        f"MINT_ENVIRONMENT must be sandbox, test or production, not {MINT_ENVIRONMENT!r}."
    )
MINT_CONNECT_TIMEOUT = env.float("MINT_CONNECT_TIMEOUT", default=3.05)
MINT_READ_TIMEOUT = env.float("MINT_READ_TIMEOUT", default=10.0)
MINT_RETRY_BASE = env.float("MINT_RETRY_BASE", default=2.0)
MINT_RETRY_CAP = env.float("MINT_RETRY_CAP", default=300.0)
MINT_DELIVERY_DEADLINE = env.float("MINT_DELIVERY_DEADLINE", default=24 * 3600.0)
MINT_LEASE_SECONDS = env.float("MINT_LEASE_SECONDS", default=60.0)
# A send that outlives its claim is sent again by another worker, and again, and again: the
# lease must leave room for at least two whole exchanges (a token fetch and the plan).
if MINT_LEASE_SECONDS < 2 * (MINT_CONNECT_TIMEOUT + MINT_READ_TIMEOUT):
    raise ImproperlyConfigured(
        f"MINT_LEASE_SECONDS ({MINT_LEASE_SECONDS:g} s) is too short for "
        f"MINT_CONNECT_TIMEOUT + MINT_READ_TIMEOUT ({MINT_CONNECT_TIMEOUT:g} + "
        f"{MINT_READ_TIMEOUT:g} s): a send could outlive its lease and be sent again by another "
        f"worker. Make the lease at least twice their sum "
        f"({2 * (MINT_CONNECT_TIMEOUT + MINT_READ_TIMEOUT):g} s) or lower the timeouts."
    )
MINT_HEALTH_INTERVAL = env.float("MINT_HEALTH_INTERVAL", default=30.0)
# How often an open page refreshes the header's MINT health widget (it reads the database only).
HEALTH_WIDGET_REFRESH = env.float("HEALTH_WIDGET_REFRESH", default=10.0)
MINT_WORKER_BATCH = env.int("MINT_WORKER_BATCH", default=50)
# Sends each worker keeps in flight at once (each on its own keep-alive connection).
MINT_WORKER_CONCURRENCY = env.int("MINT_WORKER_CONCURRENCY", default=4)
# The circuit breaker shared by every worker: after this many retryable failures in a row from
# different messages nobody sends; one message probes after PROBE_BASE seconds, doubling up to
# PROBE_CAP while MINT keeps failing; the first success makes every waiting message due.
MINT_CIRCUIT_THRESHOLD = env.int("MINT_CIRCUIT_THRESHOLD", default=5)
MINT_CIRCUIT_PROBE_BASE = env.float("MINT_CIRCUIT_PROBE_BASE", default=1.0)
MINT_CIRCUIT_PROBE_CAP = env.float("MINT_CIRCUIT_PROBE_CAP", default=8.0)
for _name in ("MINT_WORKER_BATCH", "MINT_WORKER_CONCURRENCY", "MINT_CIRCUIT_THRESHOLD"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1, not {globals()[_name]}.")
if not 0 < MINT_CIRCUIT_PROBE_BASE <= MINT_CIRCUIT_PROBE_CAP:
    raise ImproperlyConfigured(
        f"MINT_CIRCUIT_PROBE_BASE ({MINT_CIRCUIT_PROBE_BASE:g}) must be above 0 and at most "
        f"MINT_CIRCUIT_PROBE_CAP ({MINT_CIRCUIT_PROBE_CAP:g})."
    )
MINT_WORKER_IDLE_SLEEP = env.float("MINT_WORKER_IDLE_SLEEP", default=1.0)

# --- Django ------------------------------------------------------------------------------------
INSTALLED_APPS = [
    # Django's admin, closed to administrators without their second factor
    "plans.apps.PortalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "plans",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # After the password, only the second-factor pages until the code is given.
    "plans.middleware.SecondFactorMiddleware",
    # Sees the response with the user the view left (logged in by the login page, or out).
    "plans.middleware.ResponseHeadersMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "plans.middleware.SessionTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes requires: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mintportal.urls"
WSGI_APPLICATION = "mintportal.wsgi.application"

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
                "plans.context_processors.portal",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the portal read while a worker writes; IMMEDIATE takes the write lock at BEGIN so
    # two writers queue on the busy timeout instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so worker processes started by the tests share the test database;
    # one per test run, so two runs on one machine do not delete each other's.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"mintportal-test-{os.getpid()}.sqlite3")
    }
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    # ASVS V2.1.1: at least 12 characters.
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out username+IP is refused before its password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Second factor (django-otp): administrators must use an authenticator app (TOTP), others may;
# the app shows this name next to the code.
OTP_TOTP_ISSUER = "MINT Portal"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "plans:dashboard"
LOGOUT_REDIRECT_URL = "login"

# --- Security ----------------------------------------------------------------------------------
# Login throttling (django-axes): by default 5 failures for one username from one address lock
# that pair for 15 minutes, on the portal's login and the admin's alike; the lockout page says
# the configured wait.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Password spraying: besides the lock above, this many failures from one address within the
# cool-off, across all usernames, lock the address (plans.login_throttle).
AXES_ADDRESS_FAILURE_LIMIT = env.int("AXES_ADDRESS_FAILURE_LIMIT", default=20)
AXES_HANDLER = "plans.login_throttle.PortalAxesHandler"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Every failure is kept (user, address, time) for administrators in admin → Axes.
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# The client address (django-ipware): REMOTE_ADDR, or behind a reverse proxy that overwrites
# X-Forwarded-For, that header (see docs/deploy.md). Without BEHIND_PROXY a client's own
# X-Forwarded-For is ignored, so it cannot choose the address it is counted under.
BEHIND_PROXY = env.bool("BEHIND_PROXY", default=False)
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if BEHIND_PROXY else ["REMOTE_ADDR"]
)

# Sessions: 30 minutes idle and 12 hours at most (plans.middleware.SessionTimeoutMiddleware);
# Django gives a new session key at login and ends the session at logout.
SESSION_IDLE_TIMEOUT = env.int("SESSION_IDLE_TIMEOUT", default=30 * 60)
SESSION_ABSOLUTE_TIMEOUT = env.int("SESSION_ABSOLUTE_TIMEOUT", default=12 * 3600)
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_TIMEOUT
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# HTTPS: on by default in production. Behind a TLS-terminating proxy set BEHIND_PROXY=1 so
# Django trusts its X-Forwarded-Proto header (the proxy must set it and strip clients' copies).
HTTPS = env.bool("HTTPS", default=not DEBUG)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if HTTPS:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
# Load balancers probe /healthz over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_COOKIE_HTTPONLY = True

# Content-Security-Policy (django-csp 4): scripts only from our own static files, or inline with
# the per-request nonce; no plugins, no <base>, no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "plans.logs.JsonFormatter"},
        "plain": {
            "()": "plans.logs.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    # Calendar feed URLs carry a secret in the path: masked wherever a path is logged.
    "filters": {"redact": {"()": "plans.logs.RedactFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env.str("LOG_FORMAT", default="plain" if DEBUG else "json"),
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's own handlers (DEFAULT_LOGGING: a console handler in DEBUG, mail to ADMINS)
        # go: they printed each line twice and unmasked; Django's records reach ours instead.
        "django": {"level": "INFO"},
        # runserver's request lines, through the console handler (Django gives this logger a
        # handler of its own, which would otherwise be gone and leave the lines bare on stderr).
        "django.server": {
            "level": "WARNING",
            "handlers": ["console"],
            "propagate": False,
            "filters": ["redact"],
        },
        # The loggers that write a request's path ("Not Found: …", "Forbidden (CSRF …): …"):
        # masked on the record itself, before any handler sees it.
        "django.request": {"filters": ["redact"]},
        "django.security.csrf": {"filters": ["redact"]},
        "axes": {"level": "WARNING"},
    },
}

# --- Fleet -------------------------------------------------------------------------------------
# Schedules turn into plans this many days ahead (the worker does it as part of its loop).
SCHEDULE_HORIZON_DAYS = env.int("SCHEDULE_HORIZON_DAYS", default=7)
if not 1 <= SCHEDULE_HORIZON_DAYS <= 60:
    raise ImproperlyConfigured(
        f"SCHEDULE_HORIZON_DAYS must be between 1 and 60 days, not {SCHEDULE_HORIZON_DAYS}."
    )
# Said to a dispatcher who cancels a plan MINT has already accepted: MINT's API has no cancel,
# so someone at MINT's side must be told. Name who, and how to reach them.
CANCEL_NOTICE = env.str(
    "CANCEL_NOTICE",
    default="If the vehicle will not come, tell the site's MINT operator so they can remove "
    "the plan on their side.",
)
