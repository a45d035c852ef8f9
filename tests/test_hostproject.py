"""The module installed into another Django project (issue 20): its wheel, built from this tree and
installed into a temporary directory, runs in tests/hostproject (own settings, own user model
hostusers.User, the module under /pathology/), each step in its own process so this suite's
settings stay out of it."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HOST = Path(__file__).resolve().parent / "hostproject"
# What pyproject.toml builds from.
SOURCES = ["pyproject.toml", "README.md", "templates", "static", "pdl1site", "slideio", "cases", "annotations",
           "analysis", "workers", "viewer", "integration"]
OPENSEADRAGON = Path("node_modules/openseadragon/build/openseadragon")

pytestmark = pytest.mark.slow


def _run(args, cwd, env, timeout=600):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))}\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel, built from a copy of the tree (no build/ or egg-info left in it) and installed, without
    its dependencies (this environment has them), into site/."""
    root = tmp_path_factory.mktemp("host")
    src = root / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, src / name)
    if not (REPO / OPENSEADRAGON).is_dir():
        pytest.skip("OpenSeadragon is not installed (make setup runs npm ci)")
    shutil.copytree(REPO / OPENSEADRAGON, src / OPENSEADRAGON)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q", "-w", root / "dist", "."],
         src, env)
    wheel = next((root / "dist").glob("*.whl"))
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", root / "site", wheel], root, env)
    project = root / "project"
    shutil.copytree(HOST, project / "hostproject", ignore=ignore)
    (project / "pytest.ini").write_text("[pytest]\nDJANGO_SETTINGS_MODULE = hostproject.settings\n"
                                        "addopts = -p no:cacheprovider\n")
    (root / "var").mkdir()
    env = {key: value for key, value in env.items() if key not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL",
                                                                    "REDIS_URL", "PYTHONPATH"}}
    env.update(PYTHONPATH=str(root / "site"), DJANGO_SETTINGS_MODULE="hostproject.settings",
               HOST_VAR_DIR=str(root / "var"), PDL1_SOURCE_TREE=str(REPO))
    return {"wheel": wheel, "project": project, "env": env, "var": root / "var"}


def test_wheel_holds_every_package_template_static_file_and_migration(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    expected = set()
    for package in ["pdl1site", "slideio", "cases", "annotations", "analysis", "workers", "viewer"]:
        for path in (REPO / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and (
                    path.suffix in {".py", ".html", ".js", ".css"} or "starter" in path.parts):
                expected.add(path.relative_to(REPO).as_posix())
    expected |= {f"pdl1site/{p.relative_to(REPO).as_posix()}" for p in (REPO / "templates").rglob("*.html")}
    expected |= {"pdl1site/static/css/site.css", "pdl1site/static/favicon.svg",
                 "pdl1site/static/vendor/openseadragon/openseadragon.min.js", "analysis/starter/model_card.json"}
    assert any(name.startswith("cases/migrations/0001") for name in expected)
    assert not expected - names, f"missing from the wheel: {sorted(expected - names)}"


def test_apps_work_inside_a_host_project(installed):
    project, env = installed["project"], installed["env"]
    manage = [sys.executable, "-m", "django"]
    _run([*manage, "check", "--fail-level", "WARNING"], project, env)
    _run([*manage, "makemigrations", "--check", "--dry-run"], project, env)  # nothing the host would have to make
    migrated = _run([*manage, "migrate", "--noinput"], project, env)
    assert "Applying hostusers.0001_initial" in migrated.stdout and "Applying cases.0001_initial" in migrated.stdout
    assert (installed["var"] / "host.sqlite3").is_file()
    _run([*manage, "collectstatic", "--noinput", "-v", "0"], project, env)
    assert (installed["var"] / "static" / "vendor" / "openseadragon" / "openseadragon.min.js").is_file()
    _run([sys.executable, "-m", "pytest", "-q", "hostproject/host_checks.py"], project, env)
