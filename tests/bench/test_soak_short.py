"""The soak in CI (issue 19 item 5): bench/soak.py for about 60 s of load with one fault of each kind
(SIGKILL of an analysis qcluster, SIGKILL of a daphne with an upload or a save in flight, a Redis
restart, PostgreSQL down 5 s, MEDIA_ROOT filled during an upload), asserting the invariants, never
the timings.

It runs the checkout as it is, with its own PostgreSQL cluster, redis-server and media file system
on private ports (never the services other tests use). It skips only when a binary it needs is
not installed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

from soak_faults import KINDS  # noqa: E402
from soak_services import missing_binaries  # noqa: E402

pytestmark = pytest.mark.slow

SHORT = ["--duration", "60", "--viewers", "8", "--annotators", "3", "--pathologists", "2", "--jobs", "2",
         "--max-jobs", "1", "--job-lead", "20", "--training-steps", "5", "--uploads", "6", "--max-signed", "2",
         "--batch-deadline", "20", "--media-mb", "256", "--drain", "300", "--seed", "5",
         # Invariants, not timings: on a slow CI machine a PostgreSQL restart early in the run took 89 s to
         # recover here (every batch waits for its deadline and the minute watchdog), close to the 120-s default.
         "--recover-timeout", "300"]


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    missing = missing_binaries()
    if missing:
        pytest.skip("the soak needs " + ", ".join(missing))
    out = tmp_path_factory.mktemp("soak") / "result.json"
    run = subprocess.run([sys.executable, str(REPO / "bench" / "soak.py"), *SHORT, "--out", str(out)], cwd=REPO,
                         capture_output=True, text=True, timeout=2400)
    assert out.exists(), f"the soak wrote no result:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    return json.loads(out.read_text())


def test_every_fault_was_injected_during_the_load_and_recovered(soak):
    faults = {f["kind"]: f for f in soak["faults"]}
    assert sorted(faults) == sorted(KINDS)
    for kind, fault in faults.items():
        if kind == "disk" and os.geteuid() != 0:
            continue  # mounting its small file system needs root; CI and this machine run as root
        assert fault["error"] is None, (kind, fault["error"])
        assert fault["t_inject_s"] is not None and fault["recovery_s"] is not None, fault
        assert fault["t_inject_s"] < soak["load_s"], fault


@pytest.mark.parametrize("invariant", ["annotation_saves", "corrections", "regions", "uploads", "signed_reports",
                                       "jobs", "training", "no_5xx_outside_fault_windows"])
def test_invariant_holds(soak, invariant):
    # A string, not the dict: pytest shortens a dict's repr and the reason a job failed was cut off.
    assert soak["invariants"][invariant]["ok"], json.dumps(soak["invariants"][invariant], indent=1)


def test_the_load_did_what_it_claims(soak):
    """Each invariant was exercised: acknowledged writes of every kind, a signed report downloaded,
    jobs compared with the fault-free reference."""
    inv = soak["invariants"]
    assert inv["annotation_saves"]["acknowledged"] > 0
    assert inv["corrections"]["acknowledged"] > 0
    assert inv["uploads"]["acknowledged"] > 0 and inv["uploads"]["refused"] > 0  # the disk-full upload
    assert inv["signed_reports"]["signed"] > 0 and inv["signed_reports"]["downloads"] > 0
    assert len(inv["jobs"]["jobs"]) == 2 and all(j.get("identical") for j in inv["jobs"]["jobs"]), inv["jobs"]
    assert soak["requests_by_op"]["tile"] > 0 and soak["requests_by_op"]["overlay"] > 0


def test_the_disk_full_upload_got_a_clear_answer(soak):
    if os.geteuid() != 0:
        pytest.skip("the disk-full fault needs root to mount its small file system")
    (disk,) = [f for f in soak["faults"] if f["kind"] == "disk"]
    during = disk["details"]["upload_during_fault"]
    assert during["status"] == 507, during
    assert "storage is full" in during["body"]
