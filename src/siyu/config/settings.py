"""Settings, read from environment variables.

The defaults give the embedded mode (SQLite, database-backed task queue in a local process); production sets
``SIYU_ENV=production`` with a real ``SECRET_KEY``, ``DATABASE_URL`` (PostgreSQL) and ``REDIS_URL``.
Every variable is listed in the README.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent  # src/siyu
DEFAULT_SECRET_KEY = "siyu-insecure-embedded-default-key-change-me"  # noqa: S105 - refused in production


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


SIYU_ENV = env("SIYU_ENV", "development")
PRODUCTION = SIYU_ENV == "production"
DATA_DIR = Path(env("SIYU_DATA_DIR", str(Path.cwd() / "var"))).resolve()

SECRET_KEY = env("SECRET_KEY", DEFAULT_SECRET_KEY)
if PRODUCTION and (SECRET_KEY == DEFAULT_SECRET_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "SIYU_ENV=production needs SECRET_KEY set to a random value of at least 32 characters "
        '(python -c "import secrets; print(secrets.token_urlsafe(50))").'
    )
# Key for secrets stored at rest (corp secrets, callback token, EncodingAESKey). Defaults to one derived from
# SECRET_KEY; set it separately to rotate SECRET_KEY without re-encrypting.
FIELD_ENCRYPTION_KEY = env("SIYU_FIELD_KEY", "")

DEBUG = env_bool("DEBUG", not PRODUCTION)
ALLOWED_HOSTS = [h.strip() for h in env("ALLOWED_HOSTS", "" if PRODUCTION else "*").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks",
    "django_tasks_db",
    "ninja",  # serves the API docs page's Swagger UI from our own static files instead of a CDN
    "siyu.core",
    "siyu.corps",
    "siyu.tags",
    "siyu.customers",
    "siyu.groups",
    "siyu.offline",
    "siyu.wecom",
    "siyu.segments",
    "siyu.channels",
    "siyu.broadcasts",
    "siyu.console",
    "siyu.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "siyu.corps.middleware.CorpContextMiddleware",
]

ROOT_URLCONF = "siyu.config.urls"
WSGI_APPLICATION = "siyu.config.wsgi.application"
ASGI_APPLICATION = "siyu.config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "siyu.console.context_processors.console",
            ],
        },
    }
]

DATABASE_URL = env("DATABASE_URL", f"sqlite:///{DATA_DIR / 'siyu.sqlite3'}")
# PostgreSQL connections are kept (and checked before reuse) in every environment: a worker polls its queue
# five times a second and starts a task per drain, and a new connection is a new server process whose first
# queries load the catalog again — with connections closed after each poll and task, a 25-a-second burst of
# adds spent a good part of the database's CPU on connecting.
_postgres = DATABASE_URL.startswith(("postgres://", "postgresql://", "pgsql://"))
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=int(env("DB_CONN_MAX_AGE", "60")) if _postgres or PRODUCTION else 0,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the console read while the worker writes; IMMEDIATE avoids lock upgrades mid-transaction
        # and the timeout rides out short write bursts instead of failing with "database is locked".
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", "")
TASK_BACKEND = env("SIYU_TASK_BACKEND", "rq" if REDIS_URL else "db")
if TASK_BACKEND == "rq":
    if not REDIS_URL:
        raise ImproperlyConfigured("SIYU_TASK_BACKEND=rq needs REDIS_URL.")
    INSTALLED_APPS += ["django_rq", "django_tasks_rq"]
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    RQ_QUEUES = {"default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 3600}}
elif TASK_BACKEND == "immediate":
    TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
elif TASK_BACKEND == "db":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
else:
    raise ImproperlyConfigured(f"SIYU_TASK_BACKEND must be db, rq or immediate, not {TASK_BACKEND!r}.")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "customers:list"
LOGOUT_REDIRECT_URL = "console:login"

LANGUAGE_CODE = env("SIYU_LANGUAGE", "zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = env("SIYU_TIME_ZONE", "Asia/Shanghai")  # display zone; storage is always UTC

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION
if not PRODUCTION:
    # Development serves static files from the apps (finders); WhiteNoise still expects its root to exist.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# Operational knobs, overridable by environment variables. Values say where they come from.
SIYU = {
    # A console page of customers: 50 is what the list shows by default; 200 bounds one request's work.
    "PAGE_SIZE": int(env("SIYU_PAGE_SIZE", "50")),
    "MAX_PAGE_SIZE": 200,
    # Bulk tagging commits every 500 customers: one batch is ~0.1 s on SQLite, short enough to keep the
    # console responsive and progress moving.
    "BULK_BATCH_SIZE": 500,
    # The public address of the console (e.g. https://scrm.example.com), for links printed or shared outside
    # it (a group code's QR); empty: the address the request came in on.
    "PUBLIC_URL": env("SIYU_PUBLIC_URL", "").rstrip("/"),
    # Exports stream rows; above this many, use the API or a background export.
    "EXPORT_MAX_ROWS": int(env("SIYU_EXPORT_MAX_ROWS", "100000")),
    # WeCom API quota per corp and API: 10,000/min and 150,000/hour (wecom-api.md §6; older docs said 2,000
    # and 30,000 — WeCom changes them, hence configurable). Per-API overrides:
    # {"externalcontact/batch/get_by_user": {"per_minute": 600, "per_hour": 20000, "concurrency": 5}}.
    "WECOM_API_PER_MINUTE": int(env("SIYU_WECOM_API_PER_MINUTE", "10000")),
    "WECOM_API_PER_HOUR": int(env("SIYU_WECOM_API_PER_HOUR", "150000")),
    "WECOM_API_LIMITS": {},
    # Concurrent calls: WeCom publishes no per-API number (45033 says when it is too many); an old doc capped
    # a corp at 300 concurrent calls. 50 per API is far above what one worker pool sends.
    "WECOM_CORP_CONCURRENCY": int(env("SIYU_WECOM_CORP_CONCURRENCY", "300")),
    "WECOM_API_CONCURRENCY": int(env("SIYU_WECOM_API_CONCURRENCY", "50")),
    # Seconds to wait for a WeCom answer before treating the call as failed (and retrying it if safe).
    "WECOM_HTTP_TIMEOUT": float(env("SIYU_WECOM_HTTP_TIMEOUT", "10")),
    # errcode -1 (system busy): WeCom advises at most 3 retries (wecom-api.md §1).
    "WECOM_BUSY_RETRIES": 3,
    # An outbox write is tried this many times (backoff from 30 s, doubling: about an hour in all) before it
    # is marked failed; throttling (45009 or our own limiter) does not count as a try.
    "WECOM_OUTBOX_MAX_ATTEMPTS": 8,
    # Callback bodies above this are refused (413): WeCom's events are well under 2 KiB of XML, so 64 KiB
    # leaves room for any event while bounding what an unauthenticated request can make us read.
    "WECOM_CALLBACK_MAX_BYTES": 64 * 1024,
    # Web processes store callbacks by group commit (wecom/groupcommit.py): one transaction for the callbacks
    # arriving together. On for PostgreSQL, where a commit waits for the disk (~8 ms measured here); SQLite's
    # embedded mode commits without waiting (synchronous=NORMAL) and keeps one INSERT per callback.
    "WECOM_GROUP_COMMIT": env_bool(
        "SIYU_WECOM_GROUP_COMMIT", DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    ),
    # At most this many rows per transaction, so that a burst commits in pieces of a few milliseconds; under
    # bench/callbacks.py's load batches hold tens of rows.
    "WECOM_GROUP_COMMIT_MAX_ROWS": 500,
    # A callback whose row is not committed within this many seconds is answered 503, while WeCom, which
    # waits 5 s for an answer (wecom-api.md §2.5), still listens; it then delivers again.
    "WECOM_CALLBACK_STORE_SECONDS": 4.0,
    # The inbox worker claims this many rows at a time. One claim is three queries, a handler's work tens of
    # milliseconds to a few hundred; rows of a claim wait for the ones before them while other workers may
    # idle, and a new customer's welcome code lasts only 20 s (P12 asks for the welcome within 2 s): a claim
    # of 10 can hold an add behind nine others' work. 2 costs about one query more an add than 10.
    "INBOX_BATCH_SIZE": 2,
    # An idle worker looks for a task this often (the database queue; Redis pushes).
    "WORKER_POLL_SECONDS": 0.2,
    # A claimed row is the worker's for this long; a worker that died frees its rows after it. Handlers take
    # milliseconds to seconds (they may wait up to 30 s for WeCom quota), so 5 minutes never cuts one short.
    "INBOX_LEASE_SECONDS": 300,
    # One drain task works at most this long, then hands over to a new task (workers stay responsive).
    "INBOX_RUN_SECONDS": 60.0,
    # A failing event is retried with backoff from 10 s, doubling, capped at an hour: 10 tries span about 85
    # minutes, enough to ride out a WeCom or database hiccup, short enough that a real problem shows that day.
    "INBOX_MAX_ATTEMPTS": int(env("SIYU_INBOX_MAX_ATTEMPTS", "10")),
    "INBOX_RETRY_BASE_SECONDS": 10.0,
    "INBOX_RETRY_MAX_SECONDS": 3600.0,
    # A sync task works this long, then continues in a new task from its checkpoint.
    "SYNC_RUN_SECONDS": 120.0,
    # The worker running a sync holds it this long past its last checkpoint; a dead worker's sync is taken
    # over after it. One batch/get_by_user page takes well under a second, so 2 minutes is ample.
    "SYNC_LEASE_SECONDS": 120,
    # After each committed batch a sync pauses while customers' adds wait in the inbox or are being worked, up
    # to this many seconds: their welcome codes last 20 s, and on a small machine the sync's writes take the
    # CPU and the database the add's workers need. 0 turns it off.
    "SYNC_YIELD_SECONDS": float(env("SIYU_SYNC_YIELD_SECONDS", "1.0")),
    # …and, while adds still wait unclaimed after that (the workers are behind: a burst), up to this many
    # seconds in all.
    "SYNC_YIELD_BEHIND_SECONDS": float(env("SIYU_SYNC_YIELD_BEHIND_SECONDS", "10.0")),
    # A sync that hits a transient WeCom failure retries from its checkpoint this many times (30 s, doubling).
    "SYNC_MAX_FAILURES": 5,
    # Reconciliation (a diff against WeCom that repairs missed callbacks) runs this many hours after the last
    # sync; 0 turns the schedule off. Each run reads every relation once, so a few times a day is plenty.
    "SYNC_RECONCILE_HOURS": float(env("SIYU_SYNC_RECONCILE_HOURS", "6")),
    # Segments (siyu.segments). A process answers from its in-memory index after reading the timeline events
    # appended since; it reads them at most this often (P6 asks for a tag change in counts within 5 s).
    "SEGMENT_FRESH_SECONDS": float(env("SIYU_SEGMENT_FRESH_SECONDS", "1")),
    # An event id skipped by the tail (its transaction not yet committed) is looked for this long; the
    # longest transaction that appends events (a sync page, a seed batch) takes seconds, so 10 minutes is
    # ample. The periodic rebuild repairs anything later.
    "SEGMENT_GAP_SECONDS": float(env("SIYU_SEGMENT_GAP_SECONDS", "600")),
    # Dynamic segments are re-evaluated (entered/exited events, the count trend) this often by the worker.
    "SEGMENT_REFRESH_SECONDS": float(env("SIYU_SEGMENT_REFRESH_SECONDS", "60")),
    # The worker saves a corp's index to the database when it changed and its last copy is this old, so a
    # process that starts loads it and reads only the events since.
    "SEGMENT_SNAPSHOT_SECONDS": float(env("SIYU_SEGMENT_SNAPSHOT_SECONDS", "300")),
    # A full rebuild from the tables runs this often (hours; 0: never) as a safety net for changes that
    # reached the tables without a timeline event.
    "SEGMENT_REBUILD_HOURS": float(env("SIYU_SEGMENT_REBUILD_HOURS", "24")),
}
# Where WeCom's API lives; point it at the simulator (siyu simulator) for demos and tests.
WECOM_API_BASE = env("WECOM_API_BASE", "https://qyapi.weixin.qq.com/cgi-bin/")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("SIYU_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # httpx logs every request URL at INFO, and WeCom URLs carry the access token (gettoken: the secret).
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
