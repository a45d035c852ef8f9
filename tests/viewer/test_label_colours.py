"""The viewer's script draws cells in the colours analysis.labels defines (the report PDF uses them too)."""

import json
import re
from pathlib import Path

from analysis.labels import LABEL_RGB

VIEWER_JS = Path(__file__).resolve().parents[2] / "viewer" / "static" / "viewer" / "viewer.js"


def test_viewer_js_colours_are_the_label_vocabularys():
    match = re.search(r"var COLORS = (\{[^}]*\});", VIEWER_JS.read_text())
    assert match, "viewer.js no longer declares COLORS: update this test with where the colours now live"
    colours = json.loads(re.sub(r"(\d+):", r'"\1":', match.group(1)))
    assert {int(code): tuple(rgb) for code, rgb in colours.items()} == LABEL_RGB
