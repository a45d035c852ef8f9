"""Response headers: Content-Security-Policy, HSTS behind the TLS proxy, no-store on dynamic answers."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def policy(response) -> dict[str, list[str]]:
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def test_pages_carry_a_strict_content_security_policy(personas):
    page = signed_in(personas["pathologist"]).get(f"/cases/{personas['case'].pk}/")
    assert page.status_code == 200
    csp = policy(page)
    assert csp["script-src"] == ["'self'"]  # no inline script, no eval, no other host
    assert csp["default-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert "'unsafe-inline'" not in csp["style-src"]
    # the one inline <style> (OpenSeadragon's rule) carries this response's nonce
    (nonce,) = re.findall(r'<style nonce="([^"]+)"', page.content.decode())
    assert f"'nonce-{nonce}'" in csp["style-src"]
    other = signed_in(personas["pathologist"]).get(f"/cases/{personas['case'].pk}/")
    assert policy(other)["style-src"] != csp["style-src"]  # a fresh nonce per response


TEMPLATE_DIRS = [ROOT / "templates", *ROOT.glob("*/templates")]


def test_no_template_has_inline_script_or_event_handlers():
    """What the CSP would refuse: an inline <script>, an on…= handler or a javascript: URL."""
    offences = []
    for folder in TEMPLATE_DIRS:
        for path in folder.rglob("*.html"):
            text = path.read_text()
            for tag in re.findall(r"<script\b[^>]*>", text, flags=re.I):
                if "src=" not in tag:
                    offences.append(f"{path.relative_to(ROOT)}: inline {tag}")
            offences += [f"{path.relative_to(ROOT)}: {m}" for m in re.findall(r"\son[a-z]+\s*=", text, flags=re.I)]
            offences += [f"{path.relative_to(ROOT)}: javascript: URL" for _ in re.findall(r"javascript:", text, re.I)]
    assert TEMPLATE_DIRS and not offences, offences


def test_swagger_ui_has_no_inline_script(personas):
    page = signed_in(personas["pathologist"]).get("/api/schema/swagger-ui/")
    assert page.status_code == 200
    scripts = re.findall(r"<script\b[^>]*>", page.content.decode())
    assert scripts and all("src=" in tag for tag in scripts), scripts


def test_dynamic_answers_are_not_stored(personas):
    pathologist = signed_in(personas["pathologist"])
    api = APIClient()
    api.force_login(personas["pathologist"])
    for response in (pathologist.get(f"/cases/{personas['case'].pk}/"), pathologist.get("/patients/"),
                     api.get("/api/patients/"), api.get(f"/api/patients/{personas['case'].patient.pk}/"),
                     Client().get("/accounts/login/"), APIClient().get("/api/cases/")):
        directives = {d.strip() for d in response["Cache-Control"].split(",")}
        assert {"private", "no-store"} <= directives, (response.request["PATH_INFO"], directives)


def test_hsts_behind_the_tls_proxy(personas, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31536000
    over_tls = Client().get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert over_tls["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in Client().get("/accounts/login/")  # plain HTTP: never


PROBE = ("import json; from django.conf import settings as s; print(json.dumps([s.SECURE_HSTS_SECONDS, "
         "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_SSL_REDIRECT, getattr(s, 'SECURE_PROXY_SSL_HEADER', None)]))")


@pytest.mark.parametrize("env,expected", [
    ({}, [0, False, False, None]),
    ({"BEHIND_TLS_PROXY": "1"}, [31536000, False, False, ["HTTP_X_FORWARDED_PROTO", "https"]]),
    ({"BEHIND_TLS_PROXY": "1", "SECURE_HSTS_SECONDS": "600", "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
      "SECURE_SSL_REDIRECT": "1"}, [600, True, True, ["HTTP_X_FORWARDED_PROTO", "https"]]),
])
def test_hsts_settings_follow_the_environment(tmp_path, env, expected):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "BEHIND_TLS_PROXY"))}
    base.update({"DJANGO_SETTINGS_MODULE": "pdl1site.settings", "PDL1_VAR_DIR": str(tmp_path), "SECRET_KEY": "k",
                 **env})
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=base, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected


def test_swagger_ui_inline_style_carries_the_nonce(personas):
    page = signed_in(personas["pathologist"]).get("/api/schema/swagger-ui/")
    styles = re.findall(r"<style\b[^>]*>", page.content.decode())
    (nonce,) = re.findall(r'<style nonce="([^"]+)"', page.content.decode())
    assert len(styles) == 1 and f"'nonce-{nonce}'" in policy(page)["style-src"]
