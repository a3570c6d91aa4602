"""Settings shared by every environment; each value can be set from the environment."""

import os
from datetime import timedelta
from pathlib import Path

import environ

from config.observability import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

# Interpolation off: secrets may contain "$", which django-environ would expand.
env = environ.Env(interpolate=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])

INSTALLED_APPS = [
    "config.apps.BallastAdminConfig",  # django.contrib.admin with the dashboard (config/admin_site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",  # kept for its table: migration credentials 0002 moved its keys to hashed tokens
    "knox",
    "axes",
    "django_prometheus",
    "pgtrigger",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_celery_results",
    "portfolios",
    "rebalancing",
    "webhooks",
    "imports",
    "auditlog",
    "audit",  # after auditlog: replaces its admin
    "credentials",
]

MIDDLEWARE = [
    # Request id on every log line (config/observability.py), then the client's address
    # behind trusted proxies, before anything reads REMOTE_ADDR (axes, the audit trail).
    "config.observability.RequestIdMiddleware",
    "config.proxy.TrustedProxyMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who acts (the session user; API tokens in credentials/authentication.py): docs/audit.md.
    "audit.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes asks: turns a locked-out admin login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
            ],
        },
    },
]

# SQLite by default (embedded, nothing to install); DATABASE_URL switches to PostgreSQL.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'ballast.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    # Web server, worker and beat share one file: wait for locks instead of failing,
    # let readers run beside the writer (WAL) and take the write lock up front.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Persistent connections (checked before reuse): a new PostgreSQL connection costs a
    # backend process and cold caches, per request or per Celery task.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a locked-out username + address before any password is
# checked (see config/api/throttling.py and docs/security.md).
AUTHENTICATION_BACKENDS = [
    "config.api.throttling.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=30))
# Per username from one address: a guesser is stopped without locking the user out
# everywhere, and one office address does not lock out all its staff.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

# Staff sessions end after a working day, and when the browser closes.
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_COOKIE_AGE", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env.bool("DJANGO_SESSION_EXPIRE_AT_BROWSER_CLOSE", default=True)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# ISO 8601 dates and times on every admin page (config/formats/en/formats.py).
FORMAT_MODULE_PATH = ["config.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Project-wide static files (the cockpit's stylesheet), beside the apps' own.
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

REDIS_URL = env.str("REDIS_URL", default="")

# Seconds a request waits for Redis before giving up (a stopped Redis must not hang
# every request; /readyz reports it).
REDIS_TIMEOUT_SECONDS = env.float("REDIS_TIMEOUT_SECONDS", default=2.0)

if REDIS_URL:
    # Redis, or the process's memory while Redis is down (core/cache.py, docs/security.md).
    # Fails fast on its own (0.5 s), whatever REDIS_TIMEOUT_SECONDS says for the broker.
    CACHES = {"default": {"BACKEND": "core.cache.FallbackRedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery -----------------------------------------------------------------------
# With REDIS_URL: Redis is broker and result store (production, many hosts).
# Without it: kombu's file-system transport under var/celery/ and results in the
# database, so one machine runs a real worker and beat with nothing else installed.
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = 7 * 24 * 3600
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery closes the database connection around every task unless told to reuse it
# (then it closes it every 2 × this many tasks); config/celery.py drops a broken or
# expired (CONN_MAX_AGE) connection before each task as Django does per request.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=100)
# Every task has a soft and a hard time limit unless it declares its own
# (config/observability.py says what happens at each).
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
# Our LOGGING (JSON in production) for the worker too, not Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Port on which each worker host serves its task metrics (docs/operations.md); 0: none.
CELERY_METRICS_PORT = env.int("CELERY_METRICS_PORT", default=0)
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    # Re-deliver a task whose worker died without acknowledging it.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, "socket_connect_timeout": REDIS_TIMEOUT_SECONDS}
else:
    CELERY_QUEUE_DIR = VAR_DIR / "celery" / "queue"
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_QUEUE_DIR),
        "data_folder_out": str(CELERY_QUEUE_DIR),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = "django-db"
    for _folder in (CELERY_QUEUE_DIR, VAR_DIR / "celery" / "processed", VAR_DIR / "celery" / "control"):
        _folder.mkdir(parents=True, exist_ok=True)

# --- REST framework -------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "credentials.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["config.api.permissions.ModelPermissions"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.api.parsers.StrictJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "config.api.pagination.MetaDataPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "config.api.schema.RequestRulesSchema",
    "EXCEPTION_HANDLER": "config.api.exceptions.problem_details_handler",
    "DEFAULT_THROTTLE_CLASSES": ["config.api.throttling.UserRateThrottle"],
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Ballast API",
    "DESCRIPTION": "Model portfolios, portfolio accounts, holdings and rebalancing.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api.schema.request_bodies_closed",
        "config.api.schema.request_bodies_required",
        "config.api.schema.query_parameters_may_be_empty",
    ],
    # Several serializers have a `status` field with different choices: name each set.
    "ENUM_NAME_OVERRIDES": {
        "AccountStatusEnum": "portfolios.models.AccountStatus",
        "TradeOrderStatusEnum": "rebalancing.models.TradeOrderStatus",
        "PortfolioOrderStatusEnum": "rebalancing.models.PortfolioOrderStatus",
        "SideEnum": "rebalancing.models.Side",
        "ExecutionMethodEnum": "rebalancing.models.ExecutionMethod",
        "ExecutionStatusEnum": "rebalancing.models.ExecutionStatus",
        "KindEnum": "portfolios.models.CashKind",
        "ImportKindEnum": "imports.models.ImportKind",
        "ImportStatusEnum": "imports.models.ImportStatus",
        "CurrencyCodeEnum": "portfolios.api.fields.CURRENCY_CODES",
    },
}

# --- Audit trail (docs/audit.md) ----------------------------------------------------
# Models whose save()/delete() auditlog's signals record by themselves. The other
# audited models (allocations, preferences, executions, trade orders) and every bulk
# write are recorded by their services (audit.services.audit_record).
_AUDIT_SKIP = ["created_at", "updated_at"]
AUDITLOG_INCLUDE_TRACKING_MODELS = (
    {"model": "portfolios.portfolioaccount", "exclude_fields": _AUDIT_SKIP},
    {"model": "portfolios.configuration", "exclude_fields": _AUDIT_SKIP},
    {"model": "rebalancing.strategy", "exclude_fields": _AUDIT_SKIP},
    {"model": "rebalancing.savingsplan", "exclude_fields": _AUDIT_SKIP},
)
# A changed foreign key shows the object's name, not only its id.
AUDITLOG_USE_FK_STRING_REPRESENTATION = True
# REMOTE_ADDR only (set by our middleware): a client-sent X-Forwarded-For is not trusted.
AUDITLOG_DISABLE_REMOTE_ADDR = False

# The dashboard's reporting currency (docs/admin.md) and the drift band of accounts whose
# strategy has no threshold (weight points).
REPORTING_CURRENCY = env.str("REPORTING_CURRENCY", default="EUR")
DRIFT_DEFAULT_BAND = env.str("DRIFT_DEFAULT_BAND", default="0.05")

# Requests per user (= per token) to the API, counted in the default cache.
API_THROTTLE_RATE = env.str("API_THROTTLE_RATE", default="1000/min")

# Idempotency keys are honoured for this long (api.md: 24 h).
IDEMPOTENCY_KEY_TTL_SECONDS = 24 * 3600

# The live price connector (domain §9, docs/prices.md): unset URL → none configured, and
# accounts with use_price_connector fall back to stored prices for every instrument.
PRICE_CONNECTOR = {
    "CLASS": env.str("PRICE_CONNECTOR_CLASS", default="core.price_connector.HttpJsonPriceConnector"),
    "URL": env.str("PRICE_CONNECTOR_URL", default=""),
    "BATCH_SIZE": env.int("PRICE_CONNECTOR_BATCH_SIZE", default=200),
    "TIME_BUDGET": env.float("PRICE_CONNECTOR_TIME_BUDGET", default=2.0),
    # A secret: read without django-environ's $VAR interpolation.
    "AUTH_HEADER": os.environ.get("PRICE_CONNECTOR_AUTH_HEADER") or None,
}


# --- Operations (docs/operations.md) ------------------------------------------------

# JSON lines in production, readable lines locally (config/observability.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = logging_config(fmt=LOG_FORMAT, level=LOG_LEVEL)

# GET /metrics answers `Authorization: Bearer <METRICS_TOKEN>`; unset: no such page.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Addresses (or networks) of the reverse proxies in front of the web servers: from
# them, the client's address is taken from X-Forwarded-For (config/proxy.py).
TRUSTED_PROXIES = env.list("DJANGO_TRUSTED_PROXIES", default=[])

# API tokens (credentials/): hashed, named, several per user, expiring.
API_TOKEN_TTL_DAYS = env.int("API_TOKEN_TTL_DAYS", default=90)
KNOX_TOKEN_MODEL = "credentials.ApiToken"
# knox's own migrations would create its (swapped, unused) table all the same.
MIGRATION_MODULES = {"knox": None}
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=API_TOKEN_TTL_DAYS),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}

# Optional error reporting (Sentry or any compatible service); off without a DSN.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="production")
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)
SENTRY_RELEASE = env.str("SENTRY_RELEASE", default="") or None
