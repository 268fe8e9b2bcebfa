"""Django settings, read from the environment (see docs/operations.md, 'Production setup').

DJANGO_ENV=development (the default) gives the zero-setup demo: SQLite, a filesystem
Celery transport and DEBUG on. DJANGO_ENV=production refuses DEBUG and the built-in
SECRET_KEY, and wants ALLOWED_HOSTS.
"""

from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from webapp.env import env_bool, env_choice, env_database, env_int, env_list, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("VAR_DIR", BASE_DIR / "var")

DJANGO_ENV = env_choice("DJANGO_ENV", "development", ("development", "production"))
PRODUCTION = DJANGO_ENV == "production"
_DEMO_SECRET_KEY = "demo-only-secret-key-never-use-in-production"

DEBUG = env_bool("DEBUG", not PRODUCTION)
SECRET_KEY = env_str("SECRET_KEY", _DEMO_SECRET_KEY)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

if PRODUCTION:
    if DEBUG:
        raise ImproperlyConfigured("DEBUG must be off when DJANGO_ENV=production.")
    if SECRET_KEY == _DEMO_SECRET_KEY or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set to a random value of 32+ characters when DJANGO_ENV=production."
        )
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must list the site's host names when DJANGO_ENV=production.")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "axes",
    "csp",
    "labeling",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "webapp.outages.DatabaseUnavailableMiddleware",  # a database that cannot be reached: 503, Retry-After
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "webapp.api_views.NotFoundPageMiddleware",  # a view's 404 is the site's page, in debug too
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

if PRODUCTION:  # runserver serves static files itself in development
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"
ASGI_APPLICATION = "webapp.asgi.application"

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

DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{VAR_DIR / 'demo.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out username and address before a password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "labeling:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

if PRODUCTION:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # HTTPS only: plain HTTP is redirected, and browsers are told (HSTS) to use HTTPS for a year.
    # Both follow SECURE_COOKIES unless set: a site served over plain HTTP can have neither.
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", SESSION_COOKIE_SECURE)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if SESSION_COOKIE_SECURE else 0, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

# Login throttling (django-axes), on the site's and the admin's login forms alike: after
# LOGIN_FAILURE_LIMIT wrong passwords for one username from one address, that pair is refused,
# right password or not, for LOGIN_COOLOFF_MINUTES. Locking the pair, not the username alone,
# keeps someone elsewhere from locking a labeler out. API tokens are not throttled: they are 40
# random hex digits, not guessable, and never go through the login form.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False  # its start-up line would open every manage.py command's output; lockouts are still logged
AXES_ENABLE_ADMIN = False  # unlock with `manage.py axes_reset_username NAME`, or wait out the cool-off

# Response headers. Every script and style is a file under static/ (htmx is told not to add
# its indicator <style>, see base.html), so the policy allows neither inline code nor eval.
# JSON data blocks (json_script) are not scripts to a browser and need no exception.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# The API (/api/): token first, so a request without credentials gets 401 with a
# WWW-Authenticate header; sessions let a logged-in user browse it.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["webapp.api.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "webapp.renderers.BrowsableAPIRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# DRF reads a body from the stream, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check: the
# API's JSON parser refuses a body over this many bytes with 413.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
SPECTACULAR_SETTINGS = {
    "TITLE": "RLHF labeling API",
    "DESCRIPTION": "Labelers fetch and rank tasks; staff read the data and steer training runs. "
    "Authenticate with the header `Authorization: Token KEY` (manage.py create_labeler --print-token).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and Redoc from the drf-spectacular-sidecar package, served as static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "webapp.api_schema.document_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "TaskKindEnum": "labeling.models.ComparisonTask.Kind",
        "TaskStateEnum": "labeling.models.ComparisonTask.State",
        "RunKindEnum": "training.models.TrainingRun.Kind",
        "RunStatusEnum": "training.models.TrainingRun.Status",
        "PolicyStatusEnum": "training.models.PolicyVersion.Status",
        "LaunchKindEnum": "training.serializers.LAUNCH_KINDS",
    },
}

# Where checkpoints live: written to a temporary folder inside it, then renamed into place.
MODEL_STORE = env_path("MODEL_STORE", VAR_DIR / "models")

# Where a worker's models run and in what precision (training.core.devices.decide): "auto" takes
# the first GPU in bfloat16 when there is one, else the CPU in float32; or "cpu", "cuda", "cuda:1";
# "float32", "bfloat16", "float16".
TRAINING_DEVICE = env_str("TRAINING_DEVICE", "auto")
TRAINING_DTYPE = env_str("TRAINING_DTYPE", "auto")
# Processes a reward-model, RL, SFT or DPO run trains on, one a GPU (`accelerate launch`); rank 0 writes.
TRAINING_PROCESSES = env_int("TRAINING_PROCESSES", 1, minimum=1)

# Celery. The demo default is kombu's filesystem transport: no broker server needed.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://localhost//")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(VAR_DIR / "celery-broker"),
        "data_folder_out": str(VAR_DIR / "celery-broker"),
        "processed_folder": str(VAR_DIR / "celery-broker-processed"),
        "control_folder": str(VAR_DIR / "celery-broker-control"),  # else a control/ folder in the cwd
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem://")
    else {}
)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "generation"
# Where every task runs: the one routing table. A kind of run names its task (training.services.KINDS).
CELERY_TASK_ROUTES = {
    "training.execute_run": {"queue": "generation"},  # sampling and blind-evaluation sampling, in the worker
    "training.run_in_child": {"queue": "training"},  # RM, RL, SFT, DPO: one at a time, each in a child process
    "training.run_round": {"queue": "training"},  # a round: its training steps in children, then sampling queued
    "training.fail_stale_runs": {"queue": "generation"},
    # The rounds it launches run on the training worker: never stuck behind a long sampling run.
    "training.start_due_rounds": {"queue": "training"},
    "training.score_fresh_rankings": {"queue": "generation"},
    "training.score_fresh_rankings_of": {"queue": "generation"},
}
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 6 * 3600, minimum=1)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 300
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Installed into django-celery-beat's tables on beat's start, then editable in the admin.
CELERY_BEAT_SCHEDULE = {
    "fail-stale-training-runs": {"task": "training.fail_stale_runs", "schedule": 60.0},
    "start-due-rounds": {"task": "training.start_due_rounds", "schedule": 300.0},
    "score-fresh-rankings": {"task": "training.score_fresh_rankings", "schedule": 600.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
