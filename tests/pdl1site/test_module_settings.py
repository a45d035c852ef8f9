"""The module's own settings are PDL1_-prefixed Django settings with defaults (pdl1site/conf.py, issue 20
item 1): no app reads one of its own settings under a bare name that could collide with a host
project's, each is read through pdl1site.conf.settings (which supplies the default), the site sets
each from its environment variable, and the README documents both names."""

import ast
import re
from pathlib import Path

import pytest
from django.conf import global_settings
from django.core.checks import run_checks
from django.test import override_settings

from pdl1site import conf
from pdl1site.conf import DEFAULTS, RENAMED, check_renamed_settings

REPO = Path(__file__).resolve().parents[2]
APPS = ("slideio", "analysis", "cases", "workers", "viewer", "annotations", "integration")
# Settings of the libraries the module builds on (django-axes, DRF), read by the apps too.
LIBRARY_SETTINGS = {"AXES_HTTP_RESPONSE_CODE", "AXES_COOLOFF_TIME", "REST_FRAMEWORK"}
# The standalone site's own, read only by its demo loader (workers/management/commands/load_demo.py).
SITE_ONLY = {"BASE_DIR", "EMBEDDED_DEFAULT_DATABASE"}


def unprefixed_reads(source: str) -> list[str]:
    """`settings.NAME` reads in `source` that break the rule: a name that is neither Django's, a library's
    nor one of the module's prefixed settings; or a module setting read through django.conf.settings,
    where it has no default."""
    tree = ast.parse(source)
    from_conf = any(isinstance(node, ast.ImportFrom) and node.module == "pdl1site.conf"
                    and any(alias.name == "settings" and alias.asname is None for alias in node.names)
                    for node in ast.walk(tree))
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "settings"
                and node.attr.isupper()):
            continue
        name = node.attr
        if name in DEFAULTS:
            if not from_conf:
                found.append(f"line {node.lineno}: settings.{name} through django.conf (no default there): "
                             "import settings from pdl1site.conf")
        elif not (hasattr(global_settings, name) or name in LIBRARY_SETTINGS | SITE_ONLY):
            prefixed = RENAMED.get(name, "PDL1_" + name.removeprefix("PDL1_"))
            found.append(f"line {node.lineno}: settings.{name} is a setting of the module's own without the "
                         f"PDL1_ prefix or a default: read settings.{prefixed}, in pdl1site.conf.DEFAULTS")
    return found


@pytest.mark.parametrize("source, count", [
    ("from pdl1site.conf import settings\nx = settings.PDL1_JOB_MAX_TILES, settings.MEDIA_ROOT\n", 0),
    ("from django.conf import settings\nx = settings.AUTH_USER_MODEL, settings.AXES_COOLOFF_TIME\n", 0),
    ("from pdl1site.conf import settings\nx = settings.JOB_MAX_TILES\n", 1),  # the old bare name
    ("from pdl1site.conf import settings\nx = settings.SOMETHING_NEW_SECONDS\n", 1),  # a new one, unprefixed
    ("from pdl1site.conf import settings\nx = settings.PDL1_NOT_IN_DEFAULTS\n", 1),  # prefixed, no default
    ("from django.conf import settings\nx = settings.PDL1_BATCH_MAX_ATTEMPTS\n", 1),  # no default that way
    ("def f():\n    from pdl1site.conf import settings\n    return settings.PDL1_BATCH_MAX_ATTEMPTS\n", 0),
])
def test_the_scan_finds_unprefixed_reads(source, count):
    assert len(unprefixed_reads(source)) == count


def test_no_app_reads_a_setting_of_its_own_without_the_prefix():
    offending = []
    for app in APPS:
        for path in sorted((REPO / app).rglob("*.py")):
            if "migrations" not in path.parts:
                offending += [f"{path.relative_to(REPO)} {r}" for r in unprefixed_reads(path.read_text(encoding="utf-8"))]
    assert offending == []


def test_every_module_setting_is_prefixed_and_renamed_ones_point_at_it():
    assert all(name.startswith("PDL1_") for name in DEFAULTS)
    assert set(RENAMED.values()) <= set(DEFAULTS)
    assert {"BATCH_DEADLINE_SECONDS", "VIEWER_TILE_CACHE_BYTES", "FHIR_MRN_SYSTEM", "INSTITUTION_NAME"} <= set(RENAMED)


def site_variables() -> dict[str, str]:
    """PDL1_ setting -> the environment variable pdl1site/settings.py reads it from."""
    found = {}
    for node in ast.parse((REPO / "pdl1site/settings.py").read_text(encoding="utf-8")).body:
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name) and node.value.func.id.startswith("env_")):
            found[node.targets[0].id] = node.value.args[0].value
    return found


def test_the_site_sets_every_module_setting_from_its_documented_variable():
    variables = site_variables()
    assert set(DEFAULTS) <= set(variables), sorted(set(DEFAULTS) - set(variables))
    # The variables keep their names: the renamed settings' variables are the old setting names.
    assert {variables[new] for new in RENAMED.values()} == set(RENAMED)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    undocumented = [name for name in DEFAULTS if not any(
        f"`{variables[name]}`" in row and re.search(rf"`{name}`", row) for row in rows)]
    assert undocumented == [], "README's settings table must name the variable and the Django setting"


def test_module_settings_default_when_a_project_sets_none(settings):
    del settings.PDL1_BATCH_MAX_ATTEMPTS
    del settings.PDL1_INTEGRATION_MLLP_PORT
    assert conf.settings.PDL1_BATCH_MAX_ATTEMPTS == 3 and conf.settings.PDL1_INTEGRATION_MLLP_PORT == 2575
    settings.PDL1_BATCH_MAX_ATTEMPTS = 7  # a project's own value wins, read at each access
    assert conf.settings.PDL1_BATCH_MAX_ATTEMPTS == 7
    assert conf.settings.MEDIA_ROOT == settings.MEDIA_ROOT  # every other name: Django's setting
    with pytest.raises(AttributeError):
        conf.settings.NO_SUCH_SETTING  # noqa: B018


def test_an_old_bare_setting_is_warned_about_naming_the_new_one():
    assert check_renamed_settings(None) == []
    assert [m for m in run_checks() if m.id == "pdl1site.W001"] == []  # registered, and silent here
    with override_settings(BATCH_DEADLINE_SECONDS=60, VIEWER_JPEG_QUALITY=70):
        warnings = [m for m in run_checks() if m.id == "pdl1site.W001"]
    assert sorted(w.obj for w in warnings) == ["BATCH_DEADLINE_SECONDS", "VIEWER_JPEG_QUALITY"]
    message = next(w for w in warnings if w.obj == "BATCH_DEADLINE_SECONDS")
    assert "settings.PDL1_BATCH_DEADLINE_SECONDS" in message.msg and message.level == 30  # WARNING


def environment_variables_read() -> set[str]:
    """Every variable pdl1site/settings.py reads through a typed reader (env_int("NAME", ...) and the
    rest), wherever the call sits: an assignment, a dict, another call's argument."""
    return {node.args[0].value for node in ast.walk(ast.parse((REPO / "pdl1site/settings.py").read_text(encoding="utf-8")))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("env_")
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)}


def documented_variables(readme: str) -> set[str]:
    """The variables README.md's settings tables name in their first column ("Configuration" and its
    subsections, up to the next top-level section)."""
    [section] = [part for part in re.split(r"^## ", readme, flags=re.M) if part.startswith("Configuration\n")]
    return {name for line in section.splitlines() if line.startswith("| `")
            for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1])}


def test_the_scan_finds_every_kind_of_read():
    read = environment_variables_read()
    # Read inside another call, inside the LOGGING dict, and through an assignment.
    assert {"DB_CONN_MAX_AGE", "LOG_LEVEL", "STATIC_ROOT", "PDL1_VAR_DIR", "Q_RETRY", "SECRET_KEY"} <= read
    table = "| `A_B`, `C` | `D_E` | default `F` |\n| `G` | x |\n"
    assert documented_variables(f"## Configuration\n\n{table}\n## Other\n| `H` | y |\n") == {"A_B", "C", "G"}


def test_every_environment_variable_is_in_the_readme_table():
    """A variable settings.py reads but README's table does not name is a setting nobody can find."""
    documented = documented_variables((REPO / "README.md").read_text(encoding="utf-8"))
    assert sorted(environment_variables_read() - documented) == []
