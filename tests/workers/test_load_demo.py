"""`manage.py load_demo` makes users with published passwords (admin/demo-admin-pass a superuser): it
refuses, writing nothing, a database that is not the embedded demo's own unless --not-production, and a
demo user name that exists but is not a user it made. `make run` refuses DATABASE_URL outright."""

import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from cases.models import Case, Department, Patient
from tests.factories import make_user

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


def nothing_loaded():
    return (not Department.objects.filter(code="pathology").exists() and not Patient.objects.exists()
            and not Case.objects.exists())


def test_a_database_other_than_the_embedded_one_is_refused_and_nothing_written(settings):
    settings.EMBEDDED_DEFAULT_DATABASE = False  # DATABASE_URL set: production, or CI's PostgreSQL
    with pytest.raises(CommandError, match="not the embedded demo database.*--not-production.*nothing was written"):
        call_command("load_demo", stdout=io.StringIO())
    assert not get_user_model().objects.exists() and nothing_loaded()


@pytest.mark.parametrize("username", ["admin", "pathologist", "clinician"])
@pytest.mark.parametrize("not_production", [False, True])
def test_an_existing_user_of_a_demo_name_that_it_did_not_make_is_refused(settings, username, not_production):
    settings.EMBEDDED_DEFAULT_DATABASE = not not_production
    own = make_user(None, username=username, first_name="Ada", last_name="Lovelace")
    with pytest.raises(CommandError, match=f"user\\(s\\) {username} exist and were not made by load_demo"):
        call_command("load_demo", *(["--not-production"] if not_production else []), stdout=io.StringIO())
    own.refresh_from_db()
    assert (list(own.groups.all()), own.is_superuser, own.is_staff) == ([], False, False)
    assert list(get_user_model().objects.all()) == [own] and nothing_loaded()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # the analysis is queued on commit
def test_not_production_loads_the_demo_and_a_second_run_recognises_its_own_users(settings, media_root):
    """Also the make-run case: every run after the first finds the users it made, and goes on."""
    from django.contrib.auth.models import Group

    from cases.choices import Role

    for role in Role.values:  # made by a migration; an earlier transactional test's flush removed them
        Group.objects.get_or_create(name=role)
    settings.EMBEDDED_DEFAULT_DATABASE = False
    out = io.StringIO()
    call_command("load_demo", "--not-production", stdout=out)
    first = json.loads(out.getvalue())
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("demo-admin-pass") and first["analysis"]["status"] == "done"
    settings.EMBEDDED_DEFAULT_DATABASE = True
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    again = json.loads(out.getvalue())
    assert again["slide_created"] is False and again["analysis"]["job"] == first["analysis"]["job"]
    assert get_user_model().objects.count() == 4


def make_dry_run(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`make --dry-run run`: prints the commands, runs none of them (no install, no server)."""
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(["make", "--dry-run", "run", *args], cwd=REPO, env={**base, **env},
                          capture_output=True, text=True, timeout=60)


def test_make_run_refuses_a_database_url_before_doing_anything():
    url = "postgres://u:p@db.internal:5432/pdl1"
    for result in (make_dry_run(DATABASE_URL=url), make_dry_run(f"DATABASE_URL={url}")):
        assert result.returncode != 0 and "make run is the embedded demo" in result.stderr, result.stderr
        assert "manage.py" not in result.stdout and "pip install" not in result.stdout
    embedded = make_dry_run()
    assert embedded.returncode == 0, embedded.stderr
    assert "manage.py load_demo" in embedded.stdout
