"""analysis.datasets.same_field: every annotation of one field names the same image, so lineage and split checks
compare fields, not annotations (a consensus entry of field 12 is the field a predecessor trained on as session 40)."""

import pytest

from analysis.datasets import same_field


@pytest.mark.parametrize("name, field", [
    ("field-12-session-40", "field-12"),
    ("field-12-consensus", "field-12"),
    ("field-x-consensus", "field-x-consensus"),  # not one of the platform's field names: kept as it is
    ("deepliif-Lung1-val", "deepliif-Lung1-val"),
    ("bcdata-0001", "bcdata-0001"),
])
def test_same_field(name, field):
    assert same_field(name) == field
