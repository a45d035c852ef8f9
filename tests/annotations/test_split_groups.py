"""A dataset's train / val / test split keeps one tissue on one side: slides of one file (the same sha256,
uploaded in two departments) and slides of one patient share their split."""

import pytest

from annotations.dataset import split_by_slide, split_groups
from tests.factories import CaseFactory
from tests.viewer import SlideFactory

pytestmark = pytest.mark.django_db


def test_same_file_and_same_patient_share_a_key_others_do_not(personas):
    case = personas["case"]
    first = SlideFactory(case=case)
    same_file_elsewhere = SlideFactory(case=None, sha256=first.sha256)
    same_patient = SlideFactory(case=CaseFactory(patient=case.patient))
    chained = SlideFactory(case=None, sha256=same_patient.sha256)  # linked through the patient's slide
    other = SlideFactory(case=CaseFactory())
    unfiled = SlideFactory(case=None)
    keys = split_groups([first, same_file_elsewhere, same_patient, chained, other, unfiled])
    assert keys[first.pk] == keys[same_file_elsewhere.pk] == keys[same_patient.pk] == keys[chained.pk]
    assert len({keys[first.pk], keys[other.pk], keys[unfiled.pk]}) == 3
    assert keys[first.pk] in {str(s.pseudo_id) for s in (first, same_file_elsewhere, same_patient, chained)}


def test_seven_uploads_of_one_file_never_straddle_train_and_val(personas):
    copies = [SlideFactory(case=CaseFactory(), sha256="ab" * 32) for _ in range(7)]
    others = [SlideFactory(case=CaseFactory()) for _ in range(6)]
    keys = split_groups(copies + others)
    splits = split_by_slide([keys[s.pk] for s in copies + others])
    assert len({splits[keys[s.pk]] for s in copies}) == 1


def test_a_slide_of_the_patient_accepted_later_never_moves_the_group(personas):
    """The key was the smallest pseudo id among the slides being split: a later slide of the same patient
    with a smaller random pseudo id re-hashed the whole group (a training slide could move to val)."""
    import uuid

    case = personas["case"]
    first = SlideFactory(case=case, pseudo_id=uuid.UUID("ffffffff-0000-4000-8000-000000000000"))
    before = split_groups([first])[first.pk]
    later = SlideFactory(case=CaseFactory(patient=case.patient), pseudo_id=uuid.UUID("00000000-0000-4000-8000-000000000000"))
    after = split_groups([first, later])
    assert after[first.pk] == after[later.pk] == before == str(first.pseudo_id)
