"""{% label_vocabulary %}: the one label vocabulary (analysis.labels) as JSON for the page's scripts.

The viewer's scripts read codes, names and colours from this element instead of repeating them, so
the viewer, the report PDF and the exports draw positive and negative cells in the same colours.
"""

from django import template
from django.utils.html import json_script

from analysis.labels import LABEL_CODES, LABEL_NAMES, LABEL_RGB

register = template.Library()


def label_vocabulary_data() -> dict:
    return {"codes": dict(LABEL_CODES), "names": {str(code): name for code, name in LABEL_NAMES.items()},
            "rgb": {str(code): list(rgb) for code, rgb in LABEL_RGB.items()}}


@register.simple_tag
def label_vocabulary():
    """<script type="application/json" id="label-vocabulary">: data, not code (the CSP allows it)."""
    return json_script(label_vocabulary_data(), "label-vocabulary")
