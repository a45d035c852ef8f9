"""Settings are read once, in pdl1site/settings.py through pdl1site.env's typed readers: no app hides
a setting behind getattr(settings, NAME, default) or reads the environment itself (issue 17)."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from pdl1site.conf import DEFAULTS, RENAMED
from pdl1site.env import env_optional_int

REPO = Path(__file__).resolve().parents[2]
APPS = ("slideio", "analysis", "cases", "workers", "viewer", "annotations")
# Where the environment is used on purpose: a child process's environment, torch's own cache variables.
ENV_ALLOWED = {"cases/backup.py", "workers/management/commands/analyze_slide.py", "workers/gpu_runtime.py"}


def hidden_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "settings"):
            found.append(f"getattr(settings, ...) line {node.lineno}")
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                isinstance(node.value, ast.Name) and node.value.id == "os":
            found.append(f"os.{node.attr} line {node.lineno}")
    return found


def test_no_app_hides_a_setting_or_reads_the_environment():
    offending = []
    for app in APPS:
        for path in sorted((REPO / app).rglob("*.py")):
            relative = str(path.relative_to(REPO))
            if "/migrations/" in relative:
                continue
            reads = hidden_reads(path)
            if relative in ENV_ALLOWED:
                reads = [r for r in reads if not r.startswith("os.")]
            offending += [f"{relative}: {r}" for r in reads]
    assert offending == []


def test_the_gpu_runtime_reads_only_torchs_own_variables():
    source = (REPO / "workers/gpu_runtime.py").read_text()
    assert "PDL1_" not in "".join(line for line in source.splitlines()
                                  if "os.environ" in line or "getenv" in line)


def test_env_optional_int(monkeypatch):
    monkeypatch.delenv("X", raising=False)
    assert env_optional_int("X") is None
    for raw, expected in (("", None), (" 3 ", 3), ("0", 0)):
        monkeypatch.setenv("X", raw)
        assert env_optional_int("X", minimum=0) == expected
    monkeypatch.setenv("X", "-1")
    with pytest.raises(ImproperlyConfigured, match="X=-1 is below the minimum 0"):
        env_optional_int("X", minimum=0)


def _settings_in_a_fresh_process(tmp_path, **env) -> subprocess.CompletedProcess:
    """The module's settings (pdl1site.conf.DEFAULTS) as pdl1site.settings sets them from `env` alone."""
    names = list(DEFAULTS)
    variables = set(names) | set(RENAMED)  # the environment variables: PDL1_GPU_BATCH, BATCH_DEADLINE_SECONDS, ...
    code = ("import json, pdl1site.settings as s; "
            f"print(json.dumps({{n: getattr(s, n) for n in {names!r}}}))")
    clean = {k: v for k, v in os.environ.items() if k not in variables and k not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**clean, "PDL1_VAR_DIR": str(tmp_path), **env})


def test_settings_read_the_module_variables(tmp_path):
    """Unset, every module setting is the default a host project gets (pdl1site.conf.DEFAULTS); the
    environment variables keep their names (BATCH_DEADLINE_SECONDS sets PDL1_BATCH_DEADLINE_SECONDS)."""
    defaults = _settings_in_a_fresh_process(tmp_path)
    assert defaults.returncode == 0, defaults.stderr
    values = json.loads(defaults.stdout)
    assert values == DEFAULTS
    assert (values["PDL1_GPU_INDEX"], values["PDL1_GPU_BATCH"], values["PDL1_VIEWER_TILE_CACHE_BYTES"],
            values["PDL1_FHIR_MRN_SYSTEM"], values["PDL1_BATCH_DEADLINE_SECONDS"]) == (
        None, 32, 32 * 1024 * 1024, "urn:pdl1:mrn", 900)  # the documented defaults (README, "Configuration")
    given = _settings_in_a_fresh_process(tmp_path, PDL1_GPU_INDEX="1", PDL1_GPU_BATCH="256", PDL1_TORCH_COMPILE="yes",
                                         VIEWER_JPEG_QUALITY="70", FHIR_MRN_SYSTEM="urn:oid:1.2.3",
                                         BATCH_DEADLINE_SECONDS="60", SLIDE_UPLOAD_MAX_BYTES="2G",
                                         PDL1_INTEGRATION_MLLP_PORT="2600")
    assert given.returncode == 0, given.stderr
    values = json.loads(given.stdout)
    assert (values["PDL1_GPU_INDEX"], values["PDL1_GPU_BATCH"], values["PDL1_TORCH_COMPILE"],
            values["PDL1_VIEWER_JPEG_QUALITY"], values["PDL1_FHIR_MRN_SYSTEM"], values["PDL1_BATCH_DEADLINE_SECONDS"],
            values["PDL1_SLIDE_UPLOAD_MAX_BYTES"], values["PDL1_INTEGRATION_MLLP_PORT"]) == (
        1, 256, True, 70, "urn:oid:1.2.3", 60, 2 * 1024**3, 2600)


def test_a_bad_gpu_variable_stops_start_up_naming_it(tmp_path):
    bad = _settings_in_a_fresh_process(tmp_path, PDL1_GPU_BATCH="lots")
    assert bad.returncode != 0 and "PDL1_GPU_BATCH='lots' is not an integer" in bad.stderr
