from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SLIDES = SHARED / "slides"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Every test stores files in its own folder, and can check what is left on disk."""
    media = tmp_path / "media"
    (media / "tmp").mkdir(parents=True)
    settings.MEDIA_ROOT = media
    settings.FILE_UPLOAD_TEMP_DIR = str(media / "tmp")
    return media


def stored_files(media_root: Path) -> list[Path]:
    """Files in slide storage and staging (what a rejected upload must not leave behind)."""
    return [p for p in media_root.rglob("*") if p.is_file()]


def shared_slide(name: str) -> Path:
    path = SLIDES / name
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture
def personas(db):
    """The platform's personas around one case of department A.

    outsider: a pathologist of another department (authenticated, but no access to the case).
    """
    return make_personas()


def make_personas() -> dict:
    """The `personas` fixture's users and case (also for a live site's setup, outside pytest)."""
    from cases.choices import Role
    from tests.factories import CaseFactory, DepartmentFactory, make_user

    dept_a, dept_b = DepartmentFactory(code="dept-a"), DepartmentFactory(code="dept-b")
    people = {
        "pathologist": make_user(Role.PATHOLOGIST, [dept_a], username="pathologist"),
        "annotator": make_user(Role.ANNOTATOR, [dept_a], username="annotator"),
        "clinician": make_user(Role.CLINICIAN, username="clinician"),
        "admin": make_user(Role.ADMIN, username="admin"),
        "outsider": make_user(Role.PATHOLOGIST, [dept_b], username="outsider"),
        "norole": make_user(None, [dept_a], username="norole"),
    }
    case = CaseFactory(patient__department=dept_a)
    case.patient.clinicians.add(people["clinician"])
    people["case"] = case
    return people
