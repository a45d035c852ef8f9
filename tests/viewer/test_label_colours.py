"""The viewer's scripts draw cells in the colours analysis.labels defines (the report PDF uses them too):
the page carries the vocabulary ({% label_vocabulary %}) and no script repeats it."""

import json
import re
from pathlib import Path

from django.template import Context, Template

from analysis.labels import LABEL_CODES, LABEL_NAMES, LABEL_RGB

VIEWER_STATIC = Path(__file__).resolve().parents[2] / "viewer" / "static" / "viewer"


def rendered_vocabulary() -> dict:
    html = Template("{% load viewer_labels %}{% label_vocabulary %}").render(Context())
    match = re.fullmatch(r'<script id="label-vocabulary" type="application/json">(.*)</script>', html, re.S)
    assert match, html
    return json.loads(match.group(1))


def test_the_page_carries_the_label_vocabulary():
    vocabulary = rendered_vocabulary()
    assert {int(code): tuple(rgb) for code, rgb in vocabulary["rgb"].items()} == LABEL_RGB
    assert {int(code): name for code, name in vocabulary["names"].items()} == LABEL_NAMES
    assert vocabulary["codes"] == LABEL_CODES


def test_no_viewer_script_or_stylesheet_repeats_a_label_colour():
    scripts = list(VIEWER_STATIC.glob("*.js")) + list(VIEWER_STATIC.glob("*.css"))
    assert scripts
    for rgb in LABEL_RGB.values():
        pattern = re.compile(r"\b" + r"\s*,\s*".join(str(v) for v in rgb) + r"\b")
        offenders = [p.name for p in scripts if pattern.search(p.read_text())]
        assert not offenders, f"{rgb} repeated in {offenders}: read it from #label-vocabulary"
