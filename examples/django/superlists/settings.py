"""Settings for the example Django app. The database comes from the
environment, the way Gantry passes it: DATABASE_URL for PostgreSQL,
otherwise the SQLite file in DB_PATH."""

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-example-key")
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.staticfiles", "lists"]
MIDDLEWARE = ["lists.views.release_header"]
ROOT_URLCONF = "superlists.urls"
WSGI_APPLICATION = "superlists.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "static"

url = os.environ.get("DATABASE_URL", "")
if url.startswith(("postgres://", "postgresql://")):
    parts = urlparse(url)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts.path.lstrip("/"),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DB_PATH", str(BASE_DIR / "db.sqlite3")),
        }
    }
