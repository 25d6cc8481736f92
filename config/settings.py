"""Settings, all read from the environment (django-environ). See README.md for the table.

The embedded default (no variables set) is SQLite under var/ and a Redis that `make run`
starts itself; production sets DATABASE_URL and REDIS_URL.
"""

import re
from pathlib import Path

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

from config.beat import BEAT_SCHEDULE
from config.brokers import broker_options
from config.queues import TASK_ROUTES, Queue

# Lets admin and queryset classes be subscripted at runtime (ModelAdmin[Event]) for mypy.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# Where the embedded default keeps SQLite, Redis files, the secret key and static files.
VAR_DIR = Path(env.str("MENDHOOK_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# A local run over plain HTTP (make run, the tests, make bench): no TLS redirect, HSTS or
# secure-only cookies, and a weak SECRET_KEY is tolerated. Off: production, secure by default.
PLAIN_HTTP = env.bool("PLAIN_HTTP", default=False)
PRODUCTION = not DEBUG and not PLAIN_HTTP

# No production default: a missing key is a configuration error, not a silent weak secret.
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set (or DJANGO_DEBUG=true for local work).")
    SECRET_KEY = "insecure-local-development-key"  # noqa: S105 - only reachable with DEBUG on
# Django's own test of a weak key (security.W009), refused at start instead of warned about by
# a `check --deploy` nobody runs.
if PRODUCTION and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure-")):
    raise ImproperlyConfigured(
        "SECRET_KEY is weak: use at least 50 characters with at least 5 different ones, e.g. "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))' "
        "(PLAIN_HTTP=true or DJANGO_DEBUG=true allow a weak key for local work)."
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "webhooks_app",
    "workflows_app",
    "ops_app",
    # Local running and demos (runplatform, load_demo, send_sample_webhooks); nothing imports it.
    "localdev",
]

MIDDLEWARE = [
    "ops_app.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves collected static files (the admin's CSS) from gunicorn with DEBUG off.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'mendhook.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker writes; IMMEDIATE transactions take the
    # write lock up front so concurrent writers wait (busy timeout) instead of deadlocking.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=3)
    )
    # Short OLTP queries: PostgreSQL's JIT compiled plans it misjudged as costly, adding 55-240 ms
    # to admin pages on a million events (docs/performance.md). Off unless asked for.
    if not env.bool("DATABASE_JIT", default=False):
        DATABASES["default"]["OPTIONS"].setdefault("options", "-c jit=off")
    # Behind PgBouncer in transaction mode a server-side cursor (QuerySet.iterator()) cannot
    # outlive its transaction's server connection: true there (docs/scaling.md).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.bool(
        "DATABASE_DISABLE_SERVER_SIDE_CURSORS", default=False
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(VAR_DIR / "static"))

# Caps what Django reads into memory for a form or request.body (the admin login, the API):
# without it an anonymous 64 MiB POST grew a web worker by 191 MiB. The intake reads its body
# as a stream under each source's own limit, so this cap never answers for it.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)

# --- TLS (on by default in production; see PLAIN_HTTP) --------------------------------------
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto: without this, every request looks
# like plain HTTP to Django and the SSL redirect would loop. Set it only when the proxy strips a
# client's own X-Forwarded-Proto.
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
# Load balancers and container healthchecks probe over plain HTTP from inside.
SECURE_REDIRECT_EXEMPT = [r"^health/"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=PRODUCTION)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=PRODUCTION)

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

# --- Celery -------------------------------------------------------------------------------
# Redis by default; amqp://user:password@host:5672/vhost for RabbitMQ (config/brokers.py).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# RabbitMQ only: a message handed out this many times more (its worker died with it each time)
# is dead-lettered instead of redelivered forever. It is part of each queue's declaration:
# changing it later needs the queues drained and deleted first (docs/scaling.md).
MENDHOOK_BROKER_DELIVERY_LIMIT = env.int("BROKER_DELIVERY_LIMIT", default=10)
_BROKER = broker_options(CELERY_BROKER_URL, delivery_limit=MENDHOOK_BROKER_DELIVERY_LIMIT)
CELERY_BROKER_TRANSPORT_OPTIONS = _BROKER.transport_options
CELERY_TASK_QUEUES = _BROKER.task_queues
CELERY_TASK_DEFAULT_QUEUE_TYPE = _BROKER.queue_type
CELERY_TASK_CREATE_MISSING_QUEUE_TYPE = _BROKER.queue_type
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = Queue.WEBHOOKS.value
CELERY_TASK_ROUTES = TASK_ROUTES
# The soft limit raises inside the task (a handler crash, ERR_INTERNAL); the hard one kills the
# pool process, and the attempt it ran counts as lost (ERR_WORKER_LOST), so work that always
# hits it ends in dead letter after the source's max attempts. Soft 0: none (billiard arms the
# hard limit only after the soft one fires, so a soft limit above the hard one delays it).
CELERY_TASK_SOFT_TIME_LIMIT = env.int("TASK_SOFT_TIME_LIMIT_SECONDS", default=240) or None
CELERY_TASK_TIME_LIMIT = env.int("TASK_TIME_LIMIT_SECONDS", default=300)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Flower shows tasks only when workers emit events.
CELERY_WORKER_SEND_TASK_EVENTS = True
# "task-sent" events would cost every intake request a second Redis publish; Flower learns of
# each task from the worker's "received" event instead.
CELERY_TASK_SEND_SENT_EVENT = False
# Celery's Django fixup closes the database connection before and after every task unless this
# is set: a new PostgreSQL connection per event was the worker's biggest cost. Connections are
# still retired by CONN_MAX_AGE and health checks (config/celery_app.py) and every N tasks.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = BEAT_SCHEDULE
# django-celery-beat's DatabaseScheduler that schedules only while it holds the one-beat lock.
CELERY_BEAT_SCHEDULER = "ops_app.beat_lock:LockedDatabaseScheduler"

# --- mendhook ------------------------------------------------------------------------------
# Slack-compatible incoming-webhook URL for dead-letter alerts; without it alerts are ERROR logs.
MENDHOOK_ALERT_WEBHOOK_URL = env.str("ALERT_WEBHOOK_URL", default="")
MENDHOOK_ALERT_HTTP_TIMEOUT_SECONDS = env.float("ALERT_HTTP_TIMEOUT_SECONDS", default=10.0)
# A transient refusal (5xx, 429, timeout) is retried after this many seconds, doubling, up to
# the cap, five times; a 4xx is permanent and reported once.
MENDHOOK_ALERT_RETRY_BACKOFF_SECONDS = env.float("ALERT_RETRY_BACKOFF_SECONDS", default=5.0)
MENDHOOK_ALERT_RETRY_BACKOFF_MAX_SECONDS = env.float("ALERT_RETRY_BACKOFF_MAX_SECONDS", default=300.0)
# Alerts on trends (ops_app/alerting.py), each per organization and globally, over the last hour.
MENDHOOK_ALERT_DEAD_LETTERS_PER_HOUR = env.int("ALERT_DEAD_LETTERS_PER_HOUR", default=10)
MENDHOOK_ALERT_SUCCESS_RATE_MIN = env.float("ALERT_SUCCESS_RATE_MIN", default=0.95)
MENDHOOK_ALERT_AVERAGE_ATTEMPTS_MAX = env.float("ALERT_AVERAGE_ATTEMPTS_MAX", default=2.0)
# Success rate and average attempts are judged only on at least this many finished events.
MENDHOOK_ALERT_MIN_VOLUME = env.int("ALERT_MIN_VOLUME", default=20)
MENDHOOK_ALERT_QUEUE_DEPTH_MAX = env.int("ALERT_QUEUE_DEPTH_MAX", default=100)
MENDHOOK_ALERT_OLDEST_WAITING_MINUTES = env.float("ALERT_OLDEST_WAITING_MINUTES", default=10.0)
MENDHOOK_ALERT_BREAKER_OPEN_MINUTES = env.float("ALERT_BREAKER_OPEN_MINUTES", default=5.0)
# Diagnostics (ops_app/diagnostics.py): configuration problems found before they fail work.
# Locations of the last this many days must each have an assignee rule for every template role.
MENDHOOK_DIAGNOSTIC_LOCATION_DAYS = env.int("DIAGNOSTIC_LOCATION_DAYS", default=30)
# A source is silent when its last event is older than this many times its median gap over the
# week before it (judged on at least DIAGNOSTIC_SILENT_MIN_EVENTS events), and at least the floor
# (so a source that usually sends every second is not flagged for a quiet minute).
MENDHOOK_DIAGNOSTIC_SILENT_FACTOR = env.float("DIAGNOSTIC_SILENT_FACTOR", default=10.0)
MENDHOOK_DIAGNOSTIC_SILENT_MIN_EVENTS = env.int("DIAGNOSTIC_SILENT_MIN_EVENTS", default=20)
MENDHOOK_DIAGNOSTIC_SILENT_MIN_SECONDS = env.float("DIAGNOSTIC_SILENT_MIN_SECONDS", default=900.0)
# A disabled source that received a request within this many seconds is still being sent to.
MENDHOOK_DIAGNOSTIC_DISABLED_TRAFFIC_SECONDS = env.int("DIAGNOSTIC_DISABLED_TRAFFIC_SECONDS", default=86400)
# Retention (ops_app/retention.py, daily): finished events (succeeded, manually resolved, dead
# letter) older than this many days go with their items and attempts (per organization:
# Organization.retention_days), as do step executions of finished workflow runs; error records
# and audit entries have their own. Deleted in batches of RETENTION_BATCH_SIZE ids, each its
# own short transaction, with a pause between batches so intake keeps its pace.
MENDHOOK_RETENTION_DAYS = env.int("RETENTION_DAYS", default=30)
MENDHOOK_ERROR_RECORD_RETENTION_DAYS = env.int("ERROR_RECORD_RETENTION_DAYS", default=90)
MENDHOOK_AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=365)
MENDHOOK_RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=1000)
MENDHOOK_RETENTION_BATCH_PAUSE_SECONDS = env.float("RETENTION_BATCH_PAUSE_SECONDS", default=0.05)
# Business errors that fix themselves once someone adds data (e.g. an assignee rule).
MENDHOOK_RECOVERABLE_ERROR_CODES = env.list(
    "RECOVERABLE_ERROR_CODES", default=["ERR_ASSIGNEE_NO_CSC", "ERR_ASSIGNEE_NO_PARALEGAL"]
)
MENDHOOK_RECOVERABLE_RETRY_DELAY_SECONDS = env.int("RECOVERABLE_RETRY_DELAY_SECONDS", default=300)
MENDHOOK_RECOVERABLE_MAX_ROUNDS = env.int("RECOVERABLE_MAX_ROUNDS", default=3)
# Retries due within this many seconds also ride a broker countdown; longer ones wait in the
# database for beat (delays stay far below the broker's visibility timeout).
MENDHOOK_SHORT_RETRY_MAX_SECONDS = env.int("SHORT_RETRY_MAX_SECONDS", default=30)
# An event still `received` this long after commit was never published: beat sends it.
MENDHOOK_SWEEP_AFTER_SECONDS = env.int("SWEEP_AFTER_SECONDS", default=5)
# A claim not renewed for this long belongs to a dead worker; the healer hands the event out
# again. A live attempt renews it every third of it (webhooks_app/services/leases.py), so it
# can be short: orphaned work waits at most this plus the healer's interval, not the time limit.
MENDHOOK_PROCESSING_LEASE_SECONDS = env.int("PROCESSING_LEASE_SECONDS", default=30)
# An event `queued` this long has lost its message (broker restart without persistence).
MENDHOOK_QUEUED_STALE_SECONDS = env.int("QUEUED_STALE_SECONDS", default=900)
# An event `queued` this long while the processing queue is empty lost its message sooner: the
# web process died between commit and publish.
MENDHOOK_QUEUED_LOST_SECONDS = env.int("QUEUED_LOST_SECONDS", default=60)
# How long a web process trusts its cached copy of a source (enabled flag, secrets, limits).
MENDHOOK_SOURCE_CACHE_SECONDS = env.float("SOURCE_CACHE_SECONDS", default=5.0)
# A fake Clio at /sandbox/clio/ with scripted faults, for the demo; never on in production.
MENDHOOK_DEMO_SANDBOX = env.bool("DEMO_SANDBOX", default=False)
MENDHOOK_HTTP_TIMEOUT_SECONDS = env.float("CONNECTOR_HTTP_TIMEOUT_SECONDS", default=10.0)
# Fernet keys for signing secrets and connector tokens at rest: the first encrypts, all decrypt
# (rotation: webhooks_app/encryption.py). Empty: one key derived from SECRET_KEY.
SECRETS_ENCRYPTION_KEYS = env.list("SECRETS_ENCRYPTION_KEYS", default=[])
# How long a rotated-out signing secret still verifies, so senders can switch.
MENDHOOK_SIGNING_SECRET_GRACE_HOURS = env.float("SIGNING_SECRET_GRACE_HOURS", default=24.0)

# --- Health, the one beat, metrics (README "Health, metrics and logs") -----------------------
# The running beat holds a Redis lock this long between renewals (it renews on every tick, at
# least every 5 s); a second beat stands by and takes over within this after the holder dies.
MENDHOOK_BEAT_LOCK_TTL_SECONDS = env.float("BEAT_LOCK_TTL_SECONDS", default=30.0)
# Readiness calls beat stale when its last tick is older than this.
MENDHOOK_BEAT_STALE_SECONDS = env.float("BEAT_STALE_SECONDS", default=60.0)
# Readiness warns when an event or workflow step has waited this long for a worker or for beat.
MENDHOOK_HEALTH_MAX_WAIT_SECONDS = env.float("HEALTH_MAX_WAIT_SECONDS", default=300.0)
# Bearer token a Prometheus scraper sends to /metrics (staff sessions need none). Empty: staff only.
MENDHOOK_METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Logging and Sentry ----------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# "json": one JSON object per line (python-json-logger), with every `extra` field report_failure
# adds (function, action, event_id, organization_id, error_code ...) as its own key.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d %(threadName)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "threadName": "thread"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
        # WARNING and above from the working apps and Celery become grouped error records in
        # ops_app: the seam that lets ops_app observe them without being imported (STYLE.md).
        "error_records": {"class": "ops_app.errors.ErrorRecordHandler", "level": "WARNING"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        **{name: {"handlers": ["error_records"]} for name in ("webhooks_app", "workflows_app", "celery")},
    },
}

SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    # Sentry Crons monitors whole-minute schedules only: the seconds-apart dispatchers and sweeps
    # are left out (they would log a warning on every tick); readiness watches them through
    # beat's heartbeat instead.
    SENTRY_CRONS_EXCLUDED = [
        f"^{re.escape(name)}$" for name, entry in BEAT_SCHEDULE.items() if float(entry["schedule"]) % 60
    ]
    sentry_sdk.init(
        dsn=SENTRY_DSN,
        # monitor_beat_tasks: each beat job becomes a Sentry Cron monitor (check-ins from the
        # worker that runs it), so a job that stops running or keeps failing is reported.
        integrations=[
            DjangoIntegration(),
            CeleryIntegration(monitor_beat_tasks=True, exclude_beat_tasks=SENTRY_CRONS_EXCLUDED),
        ],
        environment=env.str("SENTRY_ENVIRONMENT", default="production"),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
        send_default_pii=False,
    )

# --- REST API (/api/v1/) ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # API keys for clients; staff sessions for the browsable API (ops_app/api/authentication.py).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "ops_app.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["ops_app.api.permissions.ApiAccess"],
    "DEFAULT_THROTTLE_CLASSES": ["ops_app.api.throttling.ApiClientRateThrottle"],
    # Per API key (or staff user); "read" for GETs, "write" for retries, resolutions and replays.
    "DEFAULT_THROTTLE_RATES": {
        "read": env.str("API_THROTTLE_READ_RATE", default="600/min"),
        "write": env.str("API_THROTTLE_WRITE_RATE", default="60/min"),
    },
    "EXCEPTION_HANDLER": "ops_app.api.exceptions.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "mendhook API",
    "DESCRIPTION": (
        "Delivery statistics, queue health, failures and acts on events for one organization. "
        "Authenticate with `Authorization: Bearer <API key>`. Response fields follow the "
        "webhook-metrics contract (camelCase); query parameters and request bodies are snake_case."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema itself is public: it holds no data.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Swagger UI's assets come from the drf-spectacular-sidecar package: no CDN, works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "EventStatusEnum": "webhooks_app.models.events.EventStatus",
        "FailureStatusEnum": "webhooks_app.services.operations.RETRYABLE",
        "ReplayStatusEnum": "ops_app.models.replays.ReplayStatus",
        "RunStatusEnum": "workflows_app.models.runs.RunStatus",
        "StepStatusEnum": "workflows_app.models.runs.StepStatus",
        "LeadStatusEnum": "workflows_app.models.leads.LeadStatus",
        "ActionExecutionStatusEnum": "workflows_app.models.calls.ActionExecutionStatus",
    },
}
# Throttle counters and the cached worker snapshot of queue-health must be shared by every web
# process, so they live in Redis ("api"); "default" stays Django's per-process default.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "api": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "mendhook:api",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    },
}
# Replays (POST /api/v1/replays) hand events to the workers in batches at this rate at most.
MENDHOOK_REPLAY_BATCH_SIZE = env.int("REPLAY_BATCH_SIZE", default=50)
MENDHOOK_REPLAY_EVENTS_PER_SECOND = env.float("REPLAY_EVENTS_PER_SECOND", default=10.0)

# --- Calls and dispositions (workflows_app) ----------------------------------------------------
# An OpenAI-compatible chat-completions endpoint that picks a call's disposition from its
# transcript; unset or failing: the seed's fallback by call duration.
ANALYSIS_BASE_URL = env.str("ANALYSIS_BASE_URL", default="")
ANALYSIS_MODEL = env.str("ANALYSIS_MODEL", default="gpt-4o-mini")
ANALYSIS_API_KEY = env.str("ANALYSIS_API_KEY", default="")
ANALYSIS_TIMEOUT_SECONDS = env.float("ANALYSIS_TIMEOUT_SECONDS", default=20.0)

# --- Workflows (workflows_app) ---------------------------------------------------------------
# Providers the workflow steps call. Keys have no default and never appear in logs or errors.
RETELL_BASE_URL = env.str("RETELL_BASE_URL", default="https://api.retellai.com")
RETELL_API_KEY = env.str("RETELL_API_KEY", default="")
# The caller id of call steps without a from_number of their own.
RETELL_FROM_NUMBER = env.str("RETELL_FROM_NUMBER", default="")
# A Twilio-style SMS API for the workflow SMS step and the send_sms disposition action.
TWILIO_BASE_URL = env.str("TWILIO_BASE_URL", default="https://api.twilio.com")
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", default="")
# The workflow email step sends through Django's email backend: SMTP unless set (the demo of
# `make run` uses the console backend, so its emails show in the worker's log).
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")

# --- Circuit breakers and rate limits (webhooks_app.breakers, webhooks_app.rate_limits) ---------
# Their state lives in Redis so every web and worker process shares it; short timeouts, because
# a guard rail must never hold up the work it guards (both go on without it when Redis is down).
MENDHOOK_GUARDS_REDIS_URL = env.str("GUARDS_REDIS_URL", default=REDIS_URL)
MENDHOOK_GUARDS_REDIS_TIMEOUT_SECONDS = env.float("GUARDS_REDIS_TIMEOUT_SECONDS", default=0.5)
# A breaker opens after this many transient failures in a row and stays open this long.
MENDHOOK_BREAKER_FAIL_MAX = env.int("BREAKER_FAIL_MAX", default=5)
MENDHOOK_BREAKER_RESET_SECONDS = env.float("BREAKER_RESET_SECONDS", default=60.0)
# Per breaker name or fnmatch pattern, e.g. {"clio:*": {"fail_max": 10, "reset_seconds": 120}}.
MENDHOOK_BREAKER_OVERRIDES = env.json("BREAKER_OVERRIDES", default={})
# How long one half-open probe may hold the probe slot (longer than a connector's timeout).
MENDHOOK_BREAKER_PROBE_SECONDS = env.float("BREAKER_PROBE_SECONDS", default=MENDHOOK_HTTP_TIMEOUT_SECONDS + 5.0)
# Intake: per source (Source.rate_limit, else this default) and across all sources; "" = none.
# Over a limit: 429 + Retry-After, nothing stored.
MENDHOOK_INTAKE_RATE_LIMIT_DEFAULT = env.str("INTAKE_RATE_LIMIT_DEFAULT", default="100/second")
MENDHOOK_INTAKE_RATE_LIMIT_GLOBAL = env.str("INTAKE_RATE_LIMIT_GLOBAL", default="1000/second")
# Outbound per connector, by breaker name or pattern, e.g. {"clio:*": "10/second"} (a Clio
# source's connector_rate_limit wins). Over it: the event waits for the next window.
MENDHOOK_OUTBOUND_RATE_LIMITS = env.json("OUTBOUND_RATE_LIMITS", default={})

# --- Workflow engine tunables (workflows_app.services) -----------------------------------------
WORKFLOW_HTTP_TIMEOUT_SECONDS = env.float("WORKFLOW_HTTP_TIMEOUT_SECONDS", default=MENDHOOK_HTTP_TIMEOUT_SECONDS)
# Tries of one step against transient errors (timeouts, connection errors, 5xx, 429) before its
# failure strategy applies, and their backoff: base * 2**(n-1) seconds, never sooner than a
# 429's Retry-After (seed retryWithBackoff: 3 tries, 1 s base).
WORKFLOW_TRANSIENT_TRIES = env.int("WORKFLOW_TRANSIENT_TRIES", default=3)
WORKFLOW_BACKOFF_BASE_SECONDS = env.float("WORKFLOW_BACKOFF_BASE_SECONDS", default=1.0)
# A step that failed this many times in a row under the retry strategy goes to needs_review.
WORKFLOW_ESCALATE_AFTER_FAILURES = env.int("WORKFLOW_ESCALATE_AFTER_FAILURES", default=3)
# Lease of an executing step, renewed by a heartbeat every third of it (as events' leases).
WORKFLOW_LEASE_SECONDS = env.int("WORKFLOW_LEASE_SECONDS", default=30)
# An executing step without a lease untouched this long is stuck (seed healFailedWorkflows).
WORKFLOW_STUCK_SECONDS = env.int("WORKFLOW_STUCK_SECONDS", default=900)
# Dispatcher: runs marked per batch, batches per beat run, and when a published run whose step
# never started is published again (its message was lost).
WORKFLOW_DISPATCH_BATCH = env.int("WORKFLOW_DISPATCH_BATCH", default=200)
WORKFLOW_DISPATCH_MAX_BATCHES = env.int("WORKFLOW_DISPATCH_MAX_BATCHES", default=10)
WORKFLOW_REDISPATCH_SECONDS = env.int("WORKFLOW_REDISPATCH_SECONDS", default=600)
# --- Outbound notifications (webhooks_app.services.outbound) --------------------------------
# The receiver must answer within this (Standard Webhooks recommends 15-30 s; the seed used 10).
MENDHOOK_OUTBOUND_TIMEOUT_SECONDS = env.float("OUTBOUND_TIMEOUT_SECONDS", default=10.0)
# A receiver's Retry-After delays the next attempt beyond the schedule up to this many seconds.
MENDHOOK_OUTBOUND_RETRY_AFTER_MAX_SECONDS = env.int("OUTBOUND_RETRY_AFTER_MAX_SECONDS", default=7200)
# An endpoint whose every attempt failed for this many days is disabled, with an alert.
MENDHOOK_OUTBOUND_DISABLE_AFTER_DAYS = env.float("OUTBOUND_DISABLE_AFTER_DAYS", default=5.0)
# A delivery published this long ago and still waiting lost its message: beat sends it again.
MENDHOOK_OUTBOUND_REDISPATCH_SECONDS = env.int("OUTBOUND_REDISPATCH_SECONDS", default=60)
# Recover-since sends at most this many deliveries per second.
MENDHOOK_OUTBOUND_RECOVER_PER_SECOND = env.int("OUTBOUND_RECOVER_PER_SECOND", default=10)
# How long a process trusts its cached map of who subscribes to which event type.
MENDHOOK_OUTBOUND_SUBSCRIPTION_CACHE_SECONDS = env.float("OUTBOUND_SUBSCRIPTION_CACHE_SECONDS", default=5.0)
