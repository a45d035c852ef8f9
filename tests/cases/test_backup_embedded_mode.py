"""The embedded mode's backup and restore checks (SQLite database files: a leftover -wal/-shm/-journal
beside the target, a target that is no SQLite file, the SQLite backup API) skip when the suite runs on
PostgreSQL, as CI does. Both modes are tested: on PostgreSQL this runs those tests again in a fresh pytest
without DATABASE_URL and REDIS_URL (SQLite, no Redis), and fails with their output if any fails or skips."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED_ONLY = [
    "tests/cases/test_backup.py::test_sqlite_backup_restores_into_a_new_file_identically",
    "tests/cases/test_backup_restore_checks.py::test_a_leftover_sqlite_log_beside_the_target_is_refused_and_nothing_changes",
    "tests/cases/test_backup_restore_checks.py::test_a_target_file_that_is_no_sqlite_database_is_a_one_line_refusal",
]


@pytest.mark.slow
def test_the_embedded_mode_backup_checks_pass_on_sqlite(tmp_path):
    if not os.environ.get("DATABASE_URL"):
        pytest.skip("the suite runs on SQLite: these tests ran in it")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *EMBEDDED_ONLY],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = run.stdout[-4000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    assert "skipped" not in run.stdout.splitlines()[-1], tail
    assert "5 passed" in run.stdout.splitlines()[-1], tail
