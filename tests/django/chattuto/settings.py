"""Settings of the test project: the series' chattuto, reduced to what its database holds.

The database comes from FIXTURE_DATABASE: a SQLite file path, or a postgres:// URL.
"""

import os
from datetime import timedelta
from urllib.parse import unquote, urlparse

# A key shaped like the ones `startproject` generates (50 characters, with symbols): the test
# gives the same string to Causerie as `secret_key`, so tokens signed by SimpleJWT keep working.
SECRET_KEY = "django-insecure-k8$w!z2^q@r7v(x#m1n&p4t_b9c+e3f6-g0h5j*l"

DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "fcm_django",
    "chat",
]

AUTH_USER_MODEL = "chat.User"

FCM_DJANGO_SETTINGS = {"FCM_SERVER_KEY": "unused-in-tests"}

SIMPLE_JWT = {
    # The series' values (Day 2); SIGNING_KEY defaults to SECRET_KEY.
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=30),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=180),
    "ALGORITHM": "HS256",
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "AUTH_HEADER_TYPES": ("Bearer",),
}


def _database(target):
    if target.startswith(("postgres://", "postgresql://")):
        url = urlparse(target)
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(url.path.lstrip("/")),
            "USER": unquote(url.username or ""),
            "PASSWORD": unquote(url.password or ""),
            "HOST": url.hostname or "",
            "PORT": str(url.port or ""),
        }
    path = target.removeprefix("sqlite://").removeprefix("sqlite:")
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}


DATABASES = {"default": _database(os.environ.get("FIXTURE_DATABASE", "chattuto.sqlite3"))}
