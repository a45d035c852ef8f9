"""Embedded mode (SQLite, ORM broker, no Redis) and production mode (PostgreSQL, Redis) settings.

Settings are evaluated in a fresh interpreter with a controlled environment, as a deployment
would start them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json; from django.conf import settings as s; import django; django.setup(); "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'name': str(s.DATABASES['default']['NAME']),"
    " 'q': {k: v for k, v in s.Q_CLUSTER.items() if k in ('orm', 'redis')},"
    " 'layer': s.CHANNEL_LAYERS['default']['BACKEND'], 'media': str(s.MEDIA_ROOT), 'debug': s.DEBUG,"
    " 'hosts': s.ALLOWED_HOSTS}))"
)


def settings_with(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY",
                                                             "MEDIA_ROOT", "ALLOWED_HOSTS")}
    base.update({"DJANGO_SETTINGS_MODULE": "pdl1site.settings", "PDL1_VAR_DIR": str(tmp_path), **env})
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=base, capture_output=True, text=True)


def test_embedded_default_needs_no_service(tmp_path):
    result = settings_with(tmp_path, SECRET_KEY="k")
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["engine"] == "django.db.backends.sqlite3" and got["name"] == str(tmp_path / "db.sqlite3")
    assert got["q"] == {"orm": "default"}
    assert got["layer"] == "channels.layers.InMemoryChannelLayer"
    assert got["media"] == str(tmp_path / "media") and got["debug"] is False


def test_production_mode_from_environment(tmp_path):
    result = settings_with(tmp_path, SECRET_KEY="k", DATABASE_URL="postgres://u:p@db.internal:5432/pdl1",
                           REDIS_URL="redis://cache.internal:6379/2", MEDIA_ROOT="/srv/slides",
                           ALLOWED_HOSTS="pdl1.hospital.example")
    got = json.loads(result.stdout)
    assert got["engine"] == "django.db.backends.postgresql" and got["name"] == "pdl1"
    assert got["q"] == {"redis": "redis://cache.internal:6379/2"}
    assert got["layer"] == "channels_redis.core.RedisChannelLayer"
    assert (got["media"], got["hosts"]) == ("/srv/slides", ["pdl1.hospital.example"])


def test_embedded_mode_uses_the_key_file_make_run_wrote(tmp_path):
    """A second shell without SECRET_KEY: settings read var/secret_key (made once if missing)."""
    probe = "from django.conf import settings as s; print(s.SECRET_KEY)"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY")}
    env.update({"DJANGO_SETTINGS_MODULE": "pdl1site.settings", "PDL1_VAR_DIR": str(tmp_path)})
    run = lambda *args: subprocess.run([sys.executable, *args], cwd=ROOT, env=env,  # noqa: E731
                                       capture_output=True, text=True)
    first = run("-c", probe)
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert first.stdout.strip() == key_file.read_text().strip() and len(first.stdout.strip()) >= 50
    assert run("-c", probe).stdout == first.stdout  # the same key in every later process
    key_file.write_text("written-by-make-run\n")
    assert run("-c", probe).stdout.strip() == "written-by-make-run"
    command = run("manage.py", "import_slide", "--help")
    assert command.returncode == 0 and "ImproperlyConfigured" not in command.stderr, command.stderr


@pytest.mark.parametrize("env,message", [
    ({"DATABASE_URL": "postgres://u:p@db.internal:5432/pdl1"}, "SECRET_KEY must be set"),
    ({"DATABASE_URL": "postgres://u:p@db.internal:5432/pdl1", "DEBUG": "1"}, "SECRET_KEY must be set"),
    ({"SECRET_KEY": "k", "DATABASE_URL": "postgres://u:p@db.internal:5432/pdl1", "ALLOWED_HOSTS": "*"},
     "ALLOWED_HOSTS='*' is refused"),
    ({"SECRET_KEY": "k", "DEBUG": "perhaps"}, "DEBUG='perhaps' is not a boolean"),
    ({"SECRET_KEY": "k", "DATABASE_URL": "nonsense://x"}, "DATABASE_URL"),
    ({"SECRET_KEY": "k", "SLIDE_UPLOAD_MAX_BYTES": "huge"}, "SLIDE_UPLOAD_MAX_BYTES"),
    # Each of these used to start, or to fail without naming the variable.
    ({"SECRET_KEY": "k", "Q_TIMEOUT": "5000"}, "Q_RETRY (3700) must be greater than Q_TIMEOUT (5000)"),
    ({"SECRET_KEY": "k", "Q_TIMEOUT": "600", "Q_RETRY": "600"}, "Q_RETRY (600) must be greater than Q_TIMEOUT (600)"),
    ({"SECRET_KEY": "k", "REDIS_URL": "cache.internal:6379"}, "REDIS_URL='cache.internal:6379' is not a Redis URL"),
    ({"SECRET_KEY": "k", "REDIS_URL": "http://cache.internal:6379/0"}, "REDIS_URL='http://cache.internal:6379/0'"),
    ({"SECRET_KEY": "k", "SLIDE_UPLOAD_MAX_BYTES": "nan"}, "SLIDE_UPLOAD_MAX_BYTES='nan' must be a positive size"),
    ({"SECRET_KEY": "k", "ANNOTATION_IMPORT_MAX_BYTES": "inf"}, "ANNOTATION_IMPORT_MAX_BYTES='inf' must be a positive"),
    ({"SECRET_KEY": "k", "PDL1_INTEGRATION_MAX_MESSAGE_BYTES": "0.5"}, "PDL1_INTEGRATION_MAX_MESSAGE_BYTES='0.5' is "
                                                                       "less than one byte"),
    ({"SECRET_KEY": "k", "LOG_LEVEL": "verbose"}, "LOG_LEVEL='verbose' is not one of CRITICAL"),
    ({"SECRET_KEY": "k", "PDL1_INTEGRATION_MLLP_PORT": "70000"}, "PDL1_INTEGRATION_MLLP_PORT=70000 is above the "
                                                                 "maximum 65535"),
    ({"SECRET_KEY": "   "}, "SECRET_KEY is set but holds only whitespace"),
    ({"SECRET_KEY": " \t", "DATABASE_URL": "postgres://u:p@db.internal:5432/pdl1"}, "SECRET_KEY is set but holds only"),
    ({"SECRET_KEY": "k", "DATABASE_URL": "postgres://u:p@db.internal:5432/pdl1", "ALLOWED_HOSTS": ""},
     "ALLOWED_HOSTS is set but names no host"),
    ({"SECRET_KEY": "k", "DATABASE_URL": "postgres://u:p@db.internal:5432/pdl1", "ALLOWED_HOSTS": " , ",
      "DEBUG": "1"}, "ALLOWED_HOSTS is set but names no host"),
    ({"SECRET_KEY": "k", "ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS is set but names no host"),  # embedded, DEBUG off: all 400
    ({"SECRET_KEY": "k", "VIEWER_JPEG_QUALITY": "100"}, "VIEWER_JPEG_QUALITY=100 is above the maximum 95"),
    ({"SECRET_KEY": "k", "VIEWER_JPEG_QUALITY": "0"}, "VIEWER_JPEG_QUALITY=0 is below the minimum 1"),
])
def test_bad_configuration_stops_start_up(tmp_path, env, message):
    result = settings_with(tmp_path, **env)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]


CHECKED = ("import json; from django.conf import settings as s; import django; django.setup(); "
           "print(json.dumps({'redis': s.REDIS_URL, 'timeout': s.Q_CLUSTER['timeout'], 'retry': s.Q_CLUSTER['retry'],"
           " 'level': s.LOGGING['root']['level'], 'hosts': s.ALLOWED_HOSTS, 'port': s.PDL1_INTEGRATION_MLLP_PORT,"
           " 'jpeg': s.PDL1_VIEWER_JPEG_QUALITY}))")


@pytest.mark.parametrize("env, expected", [
    ({"REDIS_URL": "rediss://cache.internal:6380/0"}, {"redis": "rediss://cache.internal:6380/0"}),
    ({"REDIS_URL": "unix:///run/redis/redis.sock?db=2"}, {"redis": "unix:///run/redis/redis.sock?db=2"}),
    ({"Q_TIMEOUT": "5000", "Q_RETRY": "5100"}, {"timeout": 5000, "retry": 5100}),
    ({"LOG_LEVEL": "warning"}, {"level": "WARNING"}),  # logging itself knows only the upper-case names
    ({"ALLOWED_HOSTS": "", "DEBUG": "1"}, {"hosts": []}),  # embedded with DEBUG: Django's localhost names
    ({"PDL1_INTEGRATION_MLLP_PORT": "65535", "VIEWER_JPEG_QUALITY": "95"}, {"port": 65535, "jpeg": 95}),
])
def test_values_at_the_edges_still_start(tmp_path, env, expected):
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DEBUG", "ALLOWED_HOSTS")}
    base.update({"DJANGO_SETTINGS_MODULE": "pdl1site.settings", "PDL1_VAR_DIR": str(tmp_path), "SECRET_KEY": "k",
                 **env})
    result = subprocess.run([sys.executable, "-c", CHECKED], cwd=ROOT, env=base, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert {name: got[name] for name in expected} == expected


@pytest.mark.slow
def test_embedded_mode_end_to_end(tmp_path):
    """A fresh embedded deployment migrates, loads the demo and runs a queued task on the ORM broker."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"DJANGO_SETTINGS_MODULE": "pdl1site.settings", "PDL1_VAR_DIR": str(tmp_path), "SECRET_KEY": "k"})
    run = lambda *args: subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=300)
    assert run("migrate", "-v0").returncode == 0
    demo = run("load_demo")
    assert demo.returncode == 0, demo.stderr
    loaded = json.loads(demo.stdout)
    assert loaded["case"] == "DEMO-2026-0001"
    assert (tmp_path / "db.sqlite3").exists()
    # The first demo slide is the real PD-L1 IHC one, analysed at load: its detections are there
    # before the worker starts, both classes, and the slide passed its check before scoring.
    facts = (
        "import django, json; django.setup(); from cases.models import Case;"
        "case = Case.objects.get(accession='DEMO-2026-0001'); slides = list(case.slides.order_by('pk'));"
        "jobs = [list(s.analysis_jobs.values('status', 'summary', 'detector')) for s in slides];"
        "print(json.dumps({'slides': [[s.original_name, s.marker, s.mpp_x, s.qc.get('passed')] for s in slides],"
        " 'jobs': jobs}))"
    )
    first = subprocess.run([sys.executable, "-c", facts], cwd=ROOT, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    state = json.loads(first.stdout)
    (pdl1_name, marker, mpp, qc_passed), (he_name, he_marker, *_) = state["slides"]
    assert (pdl1_name, marker, mpp, qc_passed) == ("PDL1-SP142-GPEC-demo.tif", "PD-L1", 0.65, True)
    assert he_marker == "H&E" and "not IHC" in he_name and "format demonstration only" in he_name
    (job,), he_jobs = state["jobs"]
    assert he_jobs == [] and job["status"] == "done" and job["detector"] == "classic"
    assert job["summary"]["counts"]["positive"] > 0 and job["summary"]["counts"]["negative"] > 0
    assert loaded["slide"] == loaded["analysis"]["job"] == 1 and loaded["analysis"]["status"] == "done"
    # A second `make run` loads nothing twice and does not analyse again.
    again = run("load_demo")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["slide_created"] is False
    second = subprocess.run([sys.executable, "-c", facts], cwd=ROOT, env=env, capture_output=True, text=True)
    assert json.loads(second.stdout) == state
    script = (
        "import django; django.setup();"
        "from django_q.tasks import async_task; from django_q.brokers import get_broker;"
        "tid = async_task('math.sqrt', 16.0);"
        "b = get_broker(); print(type(b).__name__, b.queue_size(), tid)"
    )
    queued = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    broker, size, task_id = queued.stdout.split()
    assert (broker, size) == ("ORM", "1"), queued.stderr
    # ... and a worker (qcluster, as `make run` starts it) takes it from the ORM broker and runs it.
    cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        done = subprocess.run([sys.executable, "-c", "import django; django.setup(); from django_q.tasks import "
                               f"result; print(result({task_id!r}, wait=120_000))"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    finally:
        cluster.terminate()
        cluster.wait(timeout=60)
    assert done.stdout.strip() == "4.0", done.stderr


def test_commands_print_no_login_protection_banner(tmp_path):
    """`manage.py` commands keep their one-line messages: django-axes says nothing at start-up."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DEBUG")}
    env.update({"DJANGO_SETTINGS_MODULE": "pdl1site.settings", "PDL1_VAR_DIR": str(tmp_path), "SECRET_KEY": "k"})
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0 and "AXES" not in result.stderr + result.stdout, result.stderr
