"""The one vocabulary of tumour-cell labels: codes, names and display colours.

Detections, corrections, datasets, exports, the viewer and the report PDF all use these. Pages get
them through the `{% label_vocabulary %}` template tag (viewer/templatetags/viewer_labels.py): no script
or stylesheet repeats them.
"""

POSITIVE, NEGATIVE = 1, 2
LABEL_NAMES = {POSITIVE: "positive", NEGATIVE: "negative"}  # code -> name
LABEL_CODES = {name: code for code, name in LABEL_NAMES.items()}  # name -> code
LABEL_RGB = {POSITIVE: (220, 30, 40), NEGATIVE: (245, 200, 0)}  # red, yellow
LABEL_COLOUR_WORDS = {POSITIVE: "red", NEGATIVE: "yellow"}  # LABEL_RGB in words, for legends
LABEL_HEX = {code: "#%02x%02x%02x" % rgb for code, rgb in LABEL_RGB.items()}  # for pages and label sets
