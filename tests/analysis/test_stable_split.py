"""A slide's train / val / test split does not depend on which other slides are in the dataset: accepting
one more slide used to move a former training slide into validation (at 9 -> 10, 16 -> 17, 23 -> 24 slides),
so a model fine-tuned on the later export was judged on a slide its predecessor trained on."""

from annotations.dataset import split_by_slide


def test_accepting_more_slides_never_moves_a_slide():
    keys = [f"S{i}" for i in range(60)]
    final = split_by_slide(keys)
    for n in range(2, 60):  # from 2: a lone slide is train whatever its hash (S0's is test)
        assert split_by_slide(keys[:n]) == {k: final[k] for k in keys[:n]}, n


def test_deterministic_in_any_order_and_every_split_drawn():
    keys = [f"slide-{i}" for i in range(20)]
    a, b = split_by_slide(keys, seed=3), split_by_slide(list(reversed(keys)), seed=3)
    assert a == b and sorted(set(a.values())) == ["test", "train", "val"]
    assert split_by_slide(keys, seed=4) != a  # the seed draws another split


def test_a_dataset_with_nothing_left_to_train_on_trains_on_everything():
    assert split_by_slide(["one"]) == {"one": "train"}
    assert split_by_slide(["a", "b"], val=0.5, test=0.5) == {"a": "train", "b": "train"}
    assert split_by_slide([]) == {}
