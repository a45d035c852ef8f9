"""SYNTHETIC training fields never are validation or test fields, whatever the training seed: training seeds
were 1_000_000 + 10_000 * seed + i and validation 9_000_000 + i, so --seed 800 trained on exactly the
validation fields (and 850 on the test fields). Data: SYNTHETIC."""

import pytest

from analysis import datasets


@pytest.mark.parametrize("seed", [0, 1, 42, 799, 800, 801, 850, 899, 900, 10_000, 2**40, -1, -800])
def test_no_training_field_is_a_validation_or_test_field(seed):
    held_out = {datasets.synthetic_field_seed(split, i) for split in ("val", "test") for i in range(0, 500_000, 97)}
    held_out |= {datasets.synthetic_field_seed(split, i) for split in ("val", "test") for i in range(200)}
    trained = {datasets.synthetic_field_seed("train", i, seed) for i in (*range(300), *range(9_990, 10_010), 123_456)}
    assert not trained & held_out
    assert len(trained) == 300 + 20 + 1  # and one seed's fields are all different


def test_seed_800_renders_other_fields_than_the_validation_ones():
    trained = datasets.synthetic_samples(3, "train", seed=800, size=64)
    val = datasets.synthetic_samples(3, "val", seed=800, size=64)
    assert not {s.name for s in trained} & {s.name for s in val}
    assert all((t.rgb != v.rgb).any() for t in trained for v in val)


def test_validation_fields_do_not_depend_on_the_seed_and_earlier_seeds_are_reproducible():
    """val/test are what a promotion renders again for any model; seeds below 800 keep their fields."""
    for split, first in (("val", 9_000_000), ("test", 9_500_000)):
        names = [f"synthetic-{first + i}" for i in range(3)]
        for seed in (0, 7, 800):
            assert [s.name for s in datasets.synthetic_samples(3, split, seed=seed, size=64)] == names
    assert [s.name for s in datasets.synthetic_samples(2, "train", size=64)] == ["synthetic-1000000", "synthetic-1000001"]
    assert datasets.synthetic_field_seed("train", 5, seed=799) == 1_000_000 + 10_000 * 799 + 5
