"""Test settings: the real settings module, with overrides for speed and isolation.

DATABASE_URL and REDIS_URL still choose the services, so CI runs this suite on PostgreSQL and
Redis, and a plain `make test` on a fresh machine runs it embedded (SQLite, no Redis).
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")

from pdl1site.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
Q_CLUSTER = {**Q_CLUSTER, "sync": True}  # noqa: F405  tasks run inline unless a test starts workers
SERVER_GC_THRESHOLD = 0  # importing pdl1site.asgi in a test must not freeze the test process's objects

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    # One test database per run: runs side by side (developers, CI) never drop each other's.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}  # noqa: F405
