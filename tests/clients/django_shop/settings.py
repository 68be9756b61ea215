"""Settings for the Django client test; the node's address comes from
SHOAL_HOST and SHOAL_PORT."""

import os

SECRET_KEY = "shoal-client-test"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "shop"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shoal",
        "USER": "shoal",
        "HOST": os.environ["SHOAL_HOST"],
        "PORT": os.environ["SHOAL_PORT"],
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
