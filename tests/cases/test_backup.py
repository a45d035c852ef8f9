"""Issue 19, item 4: backup of a live system and restore into an empty database and media folder.

The PostgreSQL test (CI) dumps a small live system with `manage.py backup`, restores it with
`manage.py restore` into a new database and a new media folder, and compares every table row by row,
every media file, every signed report's stored bytes and every annotation version. SQLite (the
embedded mode) has its own variant. Refusals (a non-empty target, a damaged backup) change nothing.
"""

import datetime
import decimal
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection

from analysis.detection_store import open_store, write_store
from annotations import services as annotation_services
from annotations.models import AnnotationRevision
from cases import services
from cases.backup import Database
from cases.models import ReportDocument
from cases.reports import do_create_draft, do_sign
from tests.annotations import project_with_field, session_of
from tests.factories import PatientFactory
from tests.viewer import DoneJobFactory, random_detections

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory
DEMO_SLIDE = Path(__file__).resolve().parents[2] / "demo" / "CMU-1-Small-Region.svs"
POSTGRES = connection.vendor == "postgresql"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def live_system(personas, media_root):
    """Patients, a case with a real slide file, a done job with its detection store, a signed report
    with its stored documents, and an annotation session with two saved versions."""
    PatientFactory.create_batch(3, department=personas["case"].department)
    case = personas["case"]
    slide = services.do_ingest_slide([services.IngestSource(name=DEMO_SLIDE.name, path=DEMO_SLIDE)],
                                     case=case, uploaded_by=personas["pathologist"]).slide
    xy, labels, scores = random_detections(2000, slide.width, slide.height, seed=3)
    relative = f"results/job-test-{slide.pk}/detections.store"
    write_store(media_root / relative, xy, labels, scores, width=slide.width, height=slide.height, mpp=slide.mpp_x)
    pos, neg = int((labels == 1).sum()), int((labels == 2).sum())
    job = DoneJobFactory(slide=slide, result_file=relative,
                         summary={"counts": {"positive": pos, "negative": neg, "other": 0},
                                  "tps": 100 * pos / (pos + neg), "detections": len(labels)})
    report = do_sign(do_create_draft(case, job, personas["pathologist"], comment="before backup"),
                     personas["pathologist"], PASSWORD)
    _, field = project_with_field(personas, slide=slide, region=(100, 100, 256, 256))
    session = session_of(field, personas["annotator"])
    annotation_services.do_save_points(session, personas["annotator"], 0, [{"x": 120, "y": 130, "label": "positive"}])
    annotation_services.do_save_points(session, personas["annotator"], 1,
                                       [{"x": 150.5, "y": 160, "label": "negative"}, {"x": 200, "y": 210, "label": "positive"}])
    return {"slide": slide, "job": job, "report": report, "session": session}


def plain(value):
    """Django's SQLite connection parses dates and decimals, a bare sqlite3 one does not: compare text."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, (datetime.date, datetime.time, decimal.Decimal)):
        return str(value)
    return value


def all_rows(cursor, table):
    cursor.execute(f'SELECT * FROM "{table}"')
    return sorted((tuple(plain(v) for v in row) for row in cursor.fetchall()), key=repr)


def model_tables():
    return sorted({m._meta.db_table for m in apps.get_models(include_auto_created=True) if m._meta.managed})


def media_hashes(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): sha(p.read_bytes()) for p in root.rglob("*") if p.is_file()}


def table_rows(cursor) -> dict:
    return {table: all_rows(cursor, table) for table in model_tables()}


def assert_identical(source_rows, restored_cursor, source_media, restored_media, world):
    # Every model's records: counts, and more, every row identical.
    assert table_rows(restored_cursor) == source_rows
    restored_cursor.execute("SELECT count(*) FROM cases_patient")
    assert restored_cursor.fetchone()[0] == 4
    # Every signed report's stored documents: same sha256, and the restored bytes hash to it.
    documents = list(ReportDocument.objects.filter(report=world["report"]).values_list("id", "sha256"))
    assert len(documents) == 2
    for pk, stored in documents:
        restored_cursor.execute("SELECT content, sha256 FROM cases_reportdocument WHERE id = %s"
                                if POSTGRES else "SELECT content, sha256 FROM cases_reportdocument WHERE id = ?", [pk])
        content, restored_sha = restored_cursor.fetchone()
        assert restored_sha == stored == sha(bytes(content))
    # Every detection store and every other media file (the slide, its thumbnail): identical bytes.
    store = world["job"].result_file
    assert media_hashes(restored_media).keys() >= {store, world["slide"].file.name}
    assert {k: v for k, v in media_hashes(restored_media).items() if not k.startswith("tmp/")} == \
        {k: v for k, v in media_hashes(source_media).items() if not k.startswith("tmp/")}
    with open_store(restored_media / store) as restored_store, open_store(source_media / store) as source_store:
        got, want = restored_store.all(), source_store.all()
        assert len(got.labels) == 2000
        assert np.array_equal(got.xy, want.xy) and np.array_equal(got.labels, want.labels)
    # Every annotation version.
    versions = list(AnnotationRevision.objects.filter(session=world["session"]).order_by("version")
                    .values_list("version", "points"))
    assert [v for v, _ in versions] == [1, 2]
    restored_cursor.execute("SELECT version, points FROM annotations_annotationrevision ORDER BY version")
    assert [(v, p if isinstance(p, list) else json.loads(p)) for v, p in restored_cursor.fetchall()] == versions


@pytest.fixture
def pg_target():
    """A new, empty PostgreSQL database beside the test database, dropped afterwards."""
    if not POSTGRES:
        pytest.skip("PostgreSQL backup: runs when DATABASE_URL points at PostgreSQL (CI); SQLite has its own test")
    import psycopg

    source = Database.from_settings(connection.settings_dict)
    target = Database(**{**source.__dict__, "name": f"{source.name}_restored"})
    admin = Database(**{**source.__dict__, "name": "postgres"})
    with admin.connect() as conn:
        conn.autocommit = True
        conn.execute(f'DROP DATABASE IF EXISTS "{target.name}"')
        conn.execute(f'CREATE DATABASE "{target.name}"')
    yield target
    with psycopg.connect(**{k: v for k, v in {"dbname": "postgres", "host": admin.host, "port": admin.port,
                                              "user": admin.user, "password": admin.password}.items() if v},
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target.name}" WITH (FORCE)')


def target_url(db: Database) -> str:
    auth = db.user + (f":{db.password}" if db.password else "")
    return f"postgres://{auth}@{db.host or 'localhost'}:{db.port or 5432}/{db.name}"


def test_postgresql_backup_restores_into_a_new_database_identically(personas, media_root, tmp_path, pg_target):
    world = live_system(personas, media_root)
    out = tmp_path / "backup-1"
    call_command("backup", str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"] == "postgresql" and manifest["row_counts"]["cases_reportdocument"] == 2
    assert manifest["media"][world["job"].result_file]["sha256"] == sha((media_root / world["job"].result_file).read_bytes())
    with Database.from_settings(connection.settings_dict).connect() as live:  # plain psycopg, as the target
        at_backup = table_rows(live.cursor())
    # The live system goes on after the snapshot: that write is not in this backup.
    PatientFactory(department=personas["case"].department, mrn="AFTER-BACKUP")

    restored_media = tmp_path / "restored-media"
    call_command("restore", str(out), database_url=target_url(pg_target), media_root=str(restored_media))
    with pg_target.connect() as restored:
        cursor = restored.cursor()
        cursor.execute("SELECT count(*) FROM cases_patient WHERE mrn = 'AFTER-BACKUP'")
        assert cursor.fetchone()[0] == 0
        assert_identical(at_backup, cursor, media_root, restored_media, world)


def test_postgresql_restore_refuses_a_non_empty_target_and_changes_nothing(personas, media_root, tmp_path, pg_target):
    live_system(personas, media_root)
    out = tmp_path / "backup-1"
    call_command("backup", str(out))
    with pytest.raises(CommandError, match="already exists"):
        call_command("backup", str(out))
    # The live database itself is not empty.
    restored_media = tmp_path / "restored-media"
    with pytest.raises(CommandError, match="target database .* is not empty"):
        call_command("restore", str(out), media_root=str(restored_media))
    assert not restored_media.exists()
    # A media folder with a file in it.
    restored_media.mkdir()
    (restored_media / "left-over.txt").write_text("x")
    with pytest.raises(CommandError, match="media folder .* is not empty"):
        call_command("restore", str(out), database_url=target_url(pg_target), media_root=str(restored_media))
    assert pg_target_tables(pg_target) == 0 and [p.name for p in restored_media.iterdir()] == ["left-over.txt"]
    # A damaged backup: refused before anything is written.
    (restored_media / "left-over.txt").unlink()
    damaged = next(p for p in (out / "media").rglob("*.store"))
    data = damaged.read_bytes()
    damaged.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    with pytest.raises(CommandError, match="damaged"):
        call_command("restore", str(out), database_url=target_url(pg_target), media_root=str(restored_media))
    assert pg_target_tables(pg_target) == 0 and not any(restored_media.rglob("*"))


def pg_target_tables(db: Database) -> int:
    with db.connect() as conn:
        return conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]


def test_sqlite_backup_restores_into_a_new_file_identically(personas, media_root, tmp_path):
    if POSTGRES:
        pytest.skip("embedded-mode (SQLite) backup: runs when DATABASE_URL is unset")
    import sqlite3

    world = live_system(personas, media_root)
    out = tmp_path / "backup-1"
    call_command("backup", str(out))
    assert (out / "database.sqlite3").is_file()
    target = tmp_path / "restored" / "db.sqlite3"
    restored_media = tmp_path / "restored-media"
    call_command("restore", str(out), database_url=f"sqlite:///{target}", media_root=str(restored_media))
    restored = sqlite3.connect(target)
    try:
        with connection.cursor() as source:
            assert_identical(table_rows(source), restored.cursor(), media_root, restored_media, world)
    finally:
        restored.close()
    # A second restore onto the now populated file is refused, and leaves the media folder alone.
    other_media = tmp_path / "other-media"
    with pytest.raises(CommandError, match="target database .* is not empty"):
        call_command("restore", str(out), database_url=f"sqlite:///{target}", media_root=str(other_media))
    assert not other_media.exists()
    assert os.path.getsize(target) > 0


def test_a_backup_with_previous_links_unchanged_media_and_copies_what_changed(personas, media_root, tmp_path):
    world = live_system(personas, media_root)
    first, second = tmp_path / "night-1", tmp_path / "night-2"
    call_command("backup", str(first))
    # During the day a new detection store arrives and the old one is rewritten (a rerun).
    store = media_root / world["job"].result_file
    xy, labels, scores = random_detections(500, 1000, 1000, seed=9)
    write_store(store, xy, labels, scores, width=1000, height=1000, mpp=0.5)
    write_store(media_root / "results" / "new" / "detections.store", xy, labels, scores, width=1000, height=1000,
                mpp=0.5)
    call_command("backup", str(second), previous=str(first))
    manifest = json.loads((second / "manifest.json").read_text())
    slide_file = world["slide"].file.name
    # The slide never changed: the same inode as last night's copy, with its recorded sha256.
    assert (second / "media" / slide_file).stat().st_ino == (first / "media" / slide_file).stat().st_ino
    assert manifest["media"][slide_file]["sha256"] == sha((media_root / slide_file).read_bytes())
    # The rewritten and the new file were copied, and their sha256 are of the new bytes.
    for relative in (world["job"].result_file, "results/new/detections.store"):
        copy = second / "media" / relative
        assert not (first / "media" / relative).exists() or copy.stat().st_ino != (first / "media" / relative).stat().st_ino
        assert manifest["media"][relative]["sha256"] == sha((media_root / relative).read_bytes()) == sha(copy.read_bytes())
    assert sha((first / "media" / world["job"].result_file).read_bytes()) != manifest["media"][world["job"].result_file]["sha256"]


def test_a_damaged_copy_in_the_previous_backup_is_not_carried_into_the_next(personas, media_root, tmp_path):
    """Last night's copy of a slide was truncated on the backup disk: tonight's backup copies the intact live
    file instead of linking the damage under its old sha256 (and says so in its manifest)."""
    world = live_system(personas, media_root)
    first = tmp_path / "night-1"
    call_command("backup", str(first))
    slide_file = world["slide"].file.name
    damaged = first / "media" / slide_file
    intact = damaged.read_bytes()
    for night, damage, options in ((2, intact[:100], {}),  # truncated: its size gives it away
                                   (3, bytes([intact[0] ^ 1]) + intact[1:], {"verify_previous": True})):  # a flipped bit
        damaged.chmod(0o600)
        damaged.write_bytes(damage)
        os.utime(damaged, ns=(0, json.loads((first / "manifest.json").read_text())["media"][slide_file]["mtime_ns"]))
        out = tmp_path / f"night-{night}"
        call_command("backup", str(out), previous=str(first), **options)
        manifest = json.loads((out / "manifest.json").read_text())
        copy = out / "media" / slide_file
        assert copy.stat().st_ino != damaged.stat().st_ino
        assert sha(copy.read_bytes()) == sha((media_root / slide_file).read_bytes()) == manifest["media"][slide_file]["sha256"]
        assert manifest["previous_damaged"] == [slide_file]


def test_a_restore_that_fails_midway_removes_the_media_it_wrote(personas, media_root, tmp_path, monkeypatch):
    from cases import backup

    live_system(personas, media_root)
    out = tmp_path / "backup-1"
    call_command("backup", str(out))
    if POSTGRES:
        source = Database.from_settings(connection.settings_dict)
        target = Database(**{**source.__dict__, "name": "never_reached"})
        monkeypatch.setattr(backup, "is_empty_database", lambda db: True)  # no such database is needed
    else:
        target = Database(engine="sqlite", name=str(tmp_path / "restored.sqlite3"))

    def broken(*args):
        raise backup.BackupError("disk full")

    monkeypatch.setattr(backup, "restore_database", broken)
    restored_media = tmp_path / "restored-media"
    with pytest.raises(backup.BackupError, match="disk full"):
        backup.do_restore(out, target, restored_media)
    assert not [p for p in restored_media.rglob("*") if p.is_file()]
    assert not (tmp_path / "restored.sqlite3").exists()


def test_postgresql_backup_while_annotators_save_is_one_consistent_snapshot(personas, media_root, tmp_path, pg_target):
    """Saves go on during the backup: the restored session's version equals its number of saved
    versions (one snapshot for every table), and the manifest's counts are those of that snapshot."""
    import threading

    from django.db import connections

    world = live_system(personas, media_root)
    session, annotator = world["session"], personas["annotator"]
    stop, saved = threading.Event(), []

    def autosave():
        try:
            from annotations.models import AnnotationSession

            current = AnnotationSession.objects.get(pk=session.pk)
            while not stop.is_set():
                current = annotation_services.do_save_points(
                    current, annotator, current.version, [{"x": 120 + len(saved), "y": 130, "label": "positive"}])
                saved.append(current.version)
        finally:
            connections.close_all()

    def wait_for(condition, seconds=30):
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            stop.wait(0.01)

    writer = threading.Thread(target=autosave)
    writer.start()
    try:
        wait_for(lambda: len(saved) >= 3)
        before = len(saved)
        out = tmp_path / "backup-live"
        call_command("backup", str(out))
        during = len(saved) - before
        wait_for(lambda: len(saved) >= before + during + 3)  # and some saves after the backup
    finally:
        stop.set()
        writer.join(30)
    assert during > 0  # saves went on while the backup ran
    manifest = json.loads((out / "manifest.json").read_text())
    in_backup = manifest["row_counts"]["annotations_annotationrevision"]
    assert in_backup < AnnotationRevision.objects.count()  # the writer went on after the snapshot

    restored_media = tmp_path / "restored-media"
    call_command("restore", str(out), database_url=target_url(pg_target), media_root=str(restored_media))
    with pg_target.connect() as restored:
        version = restored.execute("SELECT version FROM annotations_annotationsession WHERE id = %s",
                                   [session.pk]).fetchone()[0]
        revisions = restored.execute("SELECT count(*), max(version) FROM annotations_annotationrevision "
                                     "WHERE session_id = %s", [session.pk]).fetchone()
        total = restored.execute("SELECT count(*) FROM annotations_annotationrevision").fetchone()[0]
    assert version >= 2 and revisions == (version, version) and total == in_backup


@pytest.mark.parametrize("content", ["{", '{"format": 1}', "[]"])
def test_restore_refuses_a_damaged_manifest(tmp_path, content):
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "manifest.json").write_text(content)
    with pytest.raises(CommandError, match="damaged|not a backup"):
        call_command("restore", str(tmp_path / "backup"), media_root=str(tmp_path / "restored-media"))
    assert not (tmp_path / "restored-media").exists()
