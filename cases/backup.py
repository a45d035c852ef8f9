"""Backup and restore of a whole platform: its database and its media folder (docs/backup.md).

A backup is a folder: `manifest.json`, the database (`database.pgdump`, pg_dump's custom format, or
`database.sqlite3` in the embedded mode) and `media/`, a copy of MEDIA_ROOT. It is taken from a live
system: the database dump is one transactionally consistent snapshot, and the media folder is copied
after it, so every file the snapshot names exists in the copy unless it was deleted in between (the
backup then fails, naming it). The manifest holds the sha256 of the dump and of every media file, the
row count of every table in the snapshot and the applied migrations.

A restore goes only into an empty database and an empty media folder; it checks the whole backup
against its manifest before it changes anything, restores the database in one transaction, and
afterwards checks row counts, media hashes and every signed report document's sha256.

Generic on purpose: it reads tables and models from the app registry and imports no app.
"""

from __future__ import annotations

import datetime
import fcntl
import functools
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.apps import apps
from django.conf import settings
from django.db import connections
from django.db.migrations.loader import MigrationLoader

from analysis.hashing import sha256_file

MANIFEST = "manifest.json"
PG_DUMP = "database.pgdump"
SQLITE_DUMP = "database.sqlite3"
MEDIA = "media"
FORMAT = 1
# Upload staging (half-received files) and a compiler cache: nothing a restore needs.
SKIPPED_MEDIA = ("tmp", "torch-compile-cache")
# Media files the database names (model label, field); a FileField or a path relative to MEDIA_ROOT.
MEDIA_REFERENCES = (
    ("cases.Slide", "file"),
    ("cases.Slide", "thumbnail"),
    ("analysis.AnalysisJob", "result_file"),
    ("analysis.ModelVersion", "file"),
)
CHUNK = 1 << 20
REQUIRED = {"engine", "database", "media", "row_counts", "migrations", "platform_version", "snapshot_at"}
# What SQLite keeps beside a database file and replays into it when it opens it.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


# DATABASES OPTIONS that libpq reads, and its environment variable for each: pg_dump and pg_restore
# must reach the database as the platform does (schema search path, TLS and its certificates).
LIBPQ_ENV = {
    "options": "PGOPTIONS", "application_name": "PGAPPNAME", "client_encoding": "PGCLIENTENCODING",
    "connect_timeout": "PGCONNECT_TIMEOUT", "service": "PGSERVICE", "passfile": "PGPASSFILE",
    "hostaddr": "PGHOSTADDR", "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS", "require_auth": "PGREQUIREAUTH",
    "channel_binding": "PGCHANNELBINDING", "sslmode": "PGSSLMODE", "requiressl": "PGREQUIRESSL",
    "sslnegotiation": "PGSSLNEGOTIATION", "sslcompression": "PGSSLCOMPRESSION", "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY", "sslcertmode": "PGSSLCERTMODE", "sslrootcert": "PGSSLROOTCERT", "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR", "sslsni": "PGSSLSNI", "requirepeer": "PGREQUIREPEER",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION", "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "gssencmode": "PGGSSENCMODE", "krbsrvname": "PGKRBSRVNAME", "gsslib": "PGGSSLIB",
    "gssdelegation": "PGGSSDELEGATION",
}
# Read by Django's backend, never by libpq (assume_role is kept apart: SET ROLE, --role).
DJANGO_ONLY_OPTIONS = {"isolation_level", "pool", "server_side_binding", "prepare_threshold", "cursor_factory",
                       "context"}
# Only tune the TCP connection: the connection itself, not the tools, needs them.
TCP_OPTIONS = {"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
               "fallback_application_name"}


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


def one_line(action: str):
    """The commands promise a one-line message: a file system or SQLite error becomes a BackupError."""
    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except (OSError, sqlite3.Error) as exc:
                raise BackupError(f"{action} failed: {exc}") from exc
        return wrapper
    return decorate


@dataclass
class Database:
    """Where a database is: PostgreSQL connection parameters, or an SQLite file."""

    engine: str  # "postgresql" or "sqlite"
    name: str
    host: str = ""
    port: str = ""
    user: str = ""
    password: str = ""
    options: dict = field(default_factory=dict)  # libpq's parameters from DATABASES OPTIONS
    role: str = ""  # OPTIONS assume_role: Django's SET ROLE after connecting

    @classmethod
    def from_settings(cls, db: dict) -> Database:
        engine = db["ENGINE"].rsplit(".", 1)[-1]
        if engine not in ("postgresql", "sqlite3"):
            raise BackupError(f"backup supports PostgreSQL and SQLite, not {db['ENGINE']}")
        # SQLite's OPTIONS (timeout, transaction mode) concern the platform's own connection only.
        options = dict(db.get("OPTIONS") or {}) if engine == "postgresql" else {}
        role = options.pop("assume_role", None) or ""
        options = {k: v for k, v in options.items() if k not in DJANGO_ONLY_OPTIONS and v is not None}
        unknown = sorted(options.keys() - LIBPQ_ENV.keys() - TCP_OPTIONS)
        if unknown:
            raise BackupError(f"DATABASES OPTIONS {', '.join(unknown)}: pg_dump and pg_restore cannot be given "
                              f"these (no libpq environment variable); set them in a pg_service.conf service")
        return cls(engine="sqlite" if engine == "sqlite3" else engine, name=str(db["NAME"]),
                   host=db.get("HOST") or "", port=str(db.get("PORT") or ""), user=db.get("USER") or "",
                   password=db.get("PASSWORD") or "", options=options, role=role)

    def env(self) -> dict:
        """libpq's variables: the password never appears on a command line."""
        env = dict(os.environ, PGDATABASE=self.name)
        for key, value in (("PGHOST", self.host), ("PGPORT", self.port), ("PGUSER", self.user),
                           ("PGPASSWORD", self.password)):
            if value:
                env[key] = value
        env.update({LIBPQ_ENV[k]: str(v) for k, v in self.options.items() if k in LIBPQ_ENV})
        return env

    def tool_arguments(self) -> list[str]:
        return [f"--role={self.role}"] if self.role else []

    def connect(self):
        if self.engine == "sqlite":
            return sqlite3.connect(self.name)
        import psycopg
        from psycopg import sql

        params = {"dbname": self.name, "host": self.host, "port": self.port, "user": self.user,
                  "password": self.password}
        conn = psycopg.connect(**{k: v for k, v in params.items() if v}, **self.options)
        if self.role:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.role)))
            conn.commit()  # the next statement begins its own transaction (the dump's snapshot)
        return conn


@dataclass
class Result:
    folder: Path
    manifest: dict
    seconds: dict = field(default_factory=dict)


def copy_hashed(source: Path, target: Path) -> tuple[str, int]:
    """Copy and hash in one pass: the sha256 is of the bytes written, whatever the source does next."""
    digest, size = hashlib.sha256(), 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
    shutil.copystat(source, target)
    return digest.hexdigest(), size


def is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def binary(name: str) -> str:
    """pg_dump/pg_restore on PATH, else the newest under /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if not candidates:
        raise BackupError(f"{name} not found: install the PostgreSQL client (e.g. apt-get install postgresql-client)")
    return str(candidates[-1])


def run(command: list[str], env: dict) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


# --- What a database holds --------------------------------------------------------------------

def table_names(cursor, engine: str) -> list[str]:
    if engine == "sqlite":
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
    else:
        cursor.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY 1")
    return [row[0] for row in cursor.fetchall()]


def row_counts(cursor, engine: str) -> dict[str, int]:
    counts = {}
    for table in table_names(cursor, engine):
        cursor.execute(f'SELECT count(*) FROM "{table}"')
        counts[table] = cursor.fetchone()[0]
    return counts


def applied_migrations(cursor) -> list[list[str]]:
    cursor.execute("SELECT app, name FROM django_migrations ORDER BY app, name")
    return [list(row) for row in cursor.fetchall()]


def referenced_media(cursor) -> list[str]:
    """Paths relative to MEDIA_ROOT that the database names (absolute paths lie outside the backup)."""
    paths = set()
    for label, field_name in MEDIA_REFERENCES:
        model = apps.get_model(label)
        column = model._meta.get_field(field_name).column
        cursor.execute(f'SELECT "{column}" FROM "{model._meta.db_table}" WHERE "{column}" <> \'\'')
        paths.update(row[0] for row in cursor.fetchall() if row[0] and not os.path.isabs(row[0]))
    return sorted(paths)


def report_document_problems(cursor) -> list[str]:
    """Every stored signed-report document whose bytes do not hash to its recorded sha256."""
    model = apps.get_model("cases.ReportDocument")
    cursor.execute(f'SELECT id, content, sha256 FROM "{model._meta.db_table}" ORDER BY id')
    return [f"report document {pk}: stored sha256 {stored[:12]}..., bytes hash to "
            f"{hashlib.sha256(bytes(content)).hexdigest()[:12]}..."
            for pk, content, stored in cursor.fetchall() if hashlib.sha256(bytes(content)).hexdigest() != stored]


def is_empty_database(db: Database) -> bool:
    with closing_connection(db) as conn:
        cursor = conn.cursor()
        if db.engine == "sqlite":
            return not table_names(cursor, "sqlite")
        cursor.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
                       "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' "
                       "AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')")
        return cursor.fetchone()[0] == 0


@contextmanager
def closing_connection(db: Database):
    try:
        conn = db.connect()
    except Exception as exc:  # psycopg.OperationalError, sqlite3.Error
        missing = db.engine == "postgresql" and "does not exist" in str(exc)
        hint = f" (create it first, owned by the user restoring: createdb -O USER {db.name})" if missing else ""
        raise BackupError(f"cannot connect to database {db.name}: {str(exc).strip()}{hint}") from None
    try:
        yield conn
    finally:
        conn.close()


# --- Backup -----------------------------------------------------------------------------------

def check_media_root(media_root: Path, out: Path, previous: Path | None) -> None:
    """MEDIA_ROOT exists, and neither the new backup nor the earlier one lies inside it: a backup
    there would copy itself, and each later one every earlier one."""
    if not media_root.is_dir():
        raise BackupError(f"MEDIA_ROOT {media_root} does not exist or is not a folder: check MEDIA_ROOT "
                          f"(a volume not mounted?)")
    root = media_root.resolve()
    for what, path in (("the backup folder", out), ("--previous", previous)):
        if path is not None and is_within(Path(path).resolve(), root):
            raise BackupError(f"{what} {path} is inside MEDIA_ROOT {media_root}: each backup would copy itself "
                              f"and the earlier ones; back up to storage outside MEDIA_ROOT")


def media_files(root: Path, avoid: tuple[Path, ...] = ()) -> list[Path]:
    """Every file under `root`, through symlinked folders too (slides on another volume, linked in).

    Refused: a symlink back to a folder above it (a loop), and one leading to or into a folder of
    `avoid` (the backup being written, the earlier one)."""
    files = []
    avoid = tuple(Path(path).resolve() for path in avoid)

    def walk(folder: Path, above: tuple[Path, ...]) -> None:
        real = folder.resolve()
        if real in above:
            raise BackupError(f"{folder} leads back to {real}, a folder above it (a symlink loop): remove that link")
        for path in avoid:
            if is_within(real, path) or is_within(path, real):
                raise BackupError(f"{folder} leads to {real}, which holds or is inside the backup folder {path}: "
                                  f"remove that link from MEDIA_ROOT, or back up elsewhere")
        for entry in sorted(os.scandir(folder), key=lambda entry: entry.name):
            if not entry.is_dir():  # files, links to files, and broken links (reported as missing)
                files.append(Path(entry.path))
            elif not (folder == root and entry.name in SKIPPED_MEDIA):
                walk(Path(entry.path), (*above, real))

    walk(root, ())
    return files


def dump_postgresql(db: Database, target: Path) -> dict:
    """pg_dump under an exported snapshot, and in that same snapshot the counts and file references.

    Why a shared snapshot: the counts and references in the manifest must describe exactly the
    rows the dump holds, while the system keeps writing."""
    with closing_connection(db) as conn:
        conn.autocommit = False
        cursor = conn.cursor()
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT pg_export_snapshot(), current_setting('server_version')")
        snapshot, server_version = cursor.fetchone()
        run([binary("pg_dump"), "--format=custom", f"--snapshot={snapshot}", "--no-owner", "--no-privileges",
             *db.tool_arguments(), f"--file={target}"], db.env())
        facts = {"row_counts": row_counts(cursor, db.engine), "migrations": applied_migrations(cursor),
                 "references": referenced_media(cursor), "server_version": server_version}
        conn.rollback()
    return facts


def dump_sqlite(db: Database, target: Path) -> dict:
    """SQLite's online backup API (one step: a consistent copy); facts read from the copy itself."""
    own = connections["default"]
    if db.name == str(own.settings_dict["NAME"]):
        # This process's own connection: also reaches a test's in-memory database.
        own.ensure_connection()
        return _sqlite_copy(own.connection, target)
    with closing_connection(db) as source:
        return _sqlite_copy(source, target)


def _sqlite_copy(source, target: Path) -> dict:
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
        cursor = copy.cursor()
        return {"row_counts": row_counts(cursor, "sqlite"), "migrations": applied_migrations(cursor),
                "references": referenced_media(cursor), "server_version": sqlite3.sqlite_version}
    finally:
        copy.close()


@contextmanager
def exclusive(out: Path):
    """One backup at a time writes `out`: a second one refuses while the first holds `out.lock`,
    instead of deleting the first one's `out.partial` as an interrupted backup's."""
    lock = out.with_name(out.name + ".lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BackupError(f"another backup is writing {out} now (it holds {lock}): wait for it to finish, "
                              f"or give another folder") from None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # its holder removed it as it finished: lock the file there now
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def previous_copy_intact(previous_file: Path, known: dict, verify: bool) -> bool:
    """Whether an earlier backup's copy still holds the bytes its manifest recorded: its size always (a
    truncated copy), its sha256 too with `verify` (reads the copy whole; nothing is written)."""
    try:
        if previous_file.stat().st_size != known["size"]:
            return False
        return not verify or sha256_file(previous_file) == known["sha256"]
    except OSError:
        return False


def link_or_copy(previous_file: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(previous_file, target)
    except OSError:  # another file system, or links not allowed: a plain copy
        shutil.copy2(previous_file, target)


@one_line("backup")
def do_backup(out: Path, db: Database | None = None, media_root: Path | None = None,
              previous: Path | None = None, verify_previous: bool = False) -> Result:
    """Back up the database, then the media folder, into the new folder `out`.

    With `previous` (an earlier backup on the same file system), a media file whose path, size and
    modification time are unchanged is hard-linked from it with its recorded sha256 instead of copied:
    slides never change after ingest, so a nightly backup copies only what is new.  The earlier copy's
    size is checked, and with `verify_previous` its sha256 (it is read whole): a damaged one is copied
    afresh from the live file and listed in the manifest's previous_damaged.
    Written into `out.partial` and renamed at the end: a folder named `out` is always complete."""
    db = db or Database.from_settings(connections["default"].settings_dict)
    media_root = Path(media_root or settings.MEDIA_ROOT)
    out = Path(out)
    if out.exists():
        raise BackupError(f"{out} already exists: give a new folder for each backup")
    check_media_root(media_root, out, previous)
    earlier = read_manifest(Path(previous))["media"] if previous else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(out):
        if out.exists():  # the backup that held the lock finished it meanwhile
            raise BackupError(f"{out} already exists: give a new folder for each backup")
        return write_backup(out, db, media_root, previous, earlier, verify_previous)


def write_backup(out: Path, db: Database, media_root: Path, previous: Path | None, earlier: dict,
                 verify_previous: bool) -> Result:
    from pdl1site import __version__

    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # what an interrupted backup left (none runs now: we hold the lock)
    partial.mkdir(mode=0o700)  # patient data: readable by the backup's owner only
    seconds = {}
    try:
        started = datetime.datetime.now(datetime.timezone.utc)
        clock = time.monotonic()
        dump_name = PG_DUMP if db.engine == "postgresql" else SQLITE_DUMP
        dump = dump_postgresql if db.engine == "postgresql" else dump_sqlite
        facts = dump(db, partial / dump_name)
        seconds["database"] = time.monotonic() - clock
        snapshot_at = started.isoformat()

        clock = time.monotonic()
        files, vanished, damaged_previous = {}, [], []
        for source in media_files(media_root, avoid=(partial, *([previous] if previous else []))):
            relative = source.relative_to(media_root).as_posix()
            try:
                stat = source.stat()
                known = earlier.get(relative)
                reusable = (known and known["size"] == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns
                            and (Path(previous) / MEDIA / relative).is_file())
                if reusable and not previous_copy_intact(Path(previous) / MEDIA / relative, known, verify_previous):
                    # Linking a damaged copy would carry the damage (and its old, now false, sha256) into
                    # this backup and every later one that links it: copy the live file instead.
                    damaged_previous.append(relative)
                    reusable = False
                if reusable:
                    link_or_copy(Path(previous) / MEDIA / relative, partial / MEDIA / relative)
                    digest, size = known["sha256"], known["size"]
                else:
                    digest, size = copy_hashed(source, partial / MEDIA / relative)
            except FileNotFoundError:  # deleted while we walked: not part of this backup
                vanished.append(relative)
                continue
            files[relative] = {"sha256": digest, "size": size, "mtime_ns": stat.st_mtime_ns}
        seconds["media"] = time.monotonic() - clock
        missing = [path for path in facts["references"] if path not in files]

        manifest = {
            "format": FORMAT, "platform_version": __version__, "engine": db.engine,
            "server_version": facts["server_version"], "database_name": db.name,
            "snapshot_at": snapshot_at, "media_copied_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "database": {"file": dump_name, "sha256": sha256_file(partial / dump_name),
                         "size": (partial / dump_name).stat().st_size},
            "row_counts": facts["row_counts"], "migrations": facts["migrations"],
            "media": files, "media_skipped": list(SKIPPED_MEDIA), "media_vanished": vanished,
            "previous_damaged": damaged_previous,
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        if missing:
            raise BackupError(f"{len(missing)} media file(s) named by the database snapshot are not in MEDIA_ROOT "
                              f"{media_root}: {', '.join(missing[:10])}; deleted after the dump (take the backup "
                              f"again), or missing there (a volume not mounted, a broken symlink): check them")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    os.rename(partial, out)
    return Result(out, manifest, seconds)


# --- Restore ----------------------------------------------------------------------------------

def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder} is not a backup: no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text())
    except ValueError:
        raise BackupError(f"{path} is not valid JSON: the backup is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{folder}: not a backup of format {FORMAT}")
    missing = sorted(REQUIRED - manifest.keys())
    if missing:
        raise BackupError(f"{path} lacks {', '.join(missing)}: the backup is damaged or incomplete")
    return manifest


def check_paths(folder: Path, media_root: Path, manifest: dict) -> None:
    """Every path the manifest names stays inside the backup and inside the target media folder.

    A damaged or altered manifest must not make a restore read or write elsewhere: `../x` would be
    written beside the media folder, and an absolute path is both source and target (the file is
    emptied, then deleted). Symlinks are refused too: a backup never holds one (files are copied)."""
    dump = manifest["database"].get("file") if isinstance(manifest["database"], dict) else None
    if dump not in (PG_DUMP, SQLITE_DUMP) or (folder / dump).is_symlink():
        raise BackupError(f"{folder / MANIFEST} names the dump {dump!r}, not {PG_DUMP} or {SQLITE_DUMP} in the "
                          f"backup: the backup is damaged or was altered")
    source_root, target_root = (folder / MEDIA).resolve(), media_root.resolve()
    if (folder / MEDIA).is_symlink():
        raise BackupError(f"{folder / MEDIA} is a symlink: the backup is damaged or was altered")
    for rel in manifest["media"]:
        parts = PurePosixPath(rel).parts
        source = folder / MEDIA / rel
        escapes = (not rel or PurePosixPath(rel).is_absolute() or ".." in parts
                   or not is_within(source.resolve(), source_root)
                   or not is_within((media_root / rel).resolve(), target_root))
        if escapes or any((folder / MEDIA).joinpath(*parts[:n]).is_symlink() for n in range(1, len(parts) + 1)):
            raise BackupError(f"the manifest names the media path {rel!r}, which leads outside the backup's or "
                              f"the target's media folder (or through a symlink): the backup is damaged or was "
                              f"altered; nothing was changed")


def check_backup(folder: Path, manifest: dict) -> None:
    """Every byte of the backup against its manifest, before anything is changed."""
    dump = folder / manifest["database"]["file"]
    if not dump.is_file() or sha256_file(dump) != manifest["database"]["sha256"]:
        raise BackupError(f"{dump} is missing or does not match its sha256 in the manifest: the backup is damaged")
    bad = [rel for rel, meta in manifest["media"].items()
           if not (folder / MEDIA / rel).is_file() or sha256_file(folder / MEDIA / rel) != meta["sha256"]]
    if bad:
        raise BackupError(f"{len(bad)} media file(s) of the backup are missing or damaged: {', '.join(bad[:10])}")


def check_migrations(manifest: dict) -> None:
    """A backup made by a newer platform (migrations this code lacks) cannot be restored by this one."""
    known = {f"{app}.{name}" for app, name in MigrationLoader(None, ignore_no_migrations=True).disk_migrations}
    local_apps = {key.split(".")[0] for key in known}
    unknown = [f"{app}.{name}" for app, name in manifest["migrations"]
               if app in local_apps and f"{app}.{name}" not in known]
    if unknown:
        raise BackupError(f"the backup (platform {manifest['platform_version']}) has migrations this code does not: "
                          f"{', '.join(unknown[:5])}; restore with that platform version")


def check_targets(db: Database, media_root: Path, manifest: dict) -> None:
    if manifest["engine"] != db.engine:
        raise BackupError(f"the backup holds a {manifest['engine']} database; the target is {db.engine}")
    if db.engine == "sqlite":
        # Checked before the file is opened: SQLite would replay a leftover write-ahead log or journal
        # (a crashed server's, or the broken database's moved aside) into the restored database.
        leftovers = [db.name + suffix for suffix in SQLITE_COMPANIONS if os.path.lexists(db.name + suffix)]
        if leftovers:
            raise BackupError(f"{', '.join(leftovers)} beside the target database: SQLite would replay it into "
                              f"the restored database; move it away (with {db.name}, if any) and restore again")
        try:
            if Path(db.name).exists() and Path(db.name).stat().st_size and not is_empty_database(db):
                raise BackupError(f"the target database {db.name} is not empty: restore only into an empty one")
        except sqlite3.Error as exc:
            raise BackupError(f"the target database {db.name} cannot be read as SQLite ({exc}): restore only "
                              f"into a new file") from None
    elif not is_empty_database(db):
        raise BackupError(f"the target database {db.name} is not empty: restore only into a new, empty "
                          f"database (createdb -O USER NAME)")
    if media_root.exists() and any(p.is_file() or p.is_symlink() for p in media_root.rglob("*")):
        raise BackupError(f"the target media folder {media_root} is not empty: restore only into an empty one")


def restore_database(folder: Path, manifest: dict, db: Database) -> None:
    dump = folder / manifest["database"]["file"]
    if db.engine == "postgresql":
        # One transaction: a failed restore leaves the target as empty as it was.
        try:
            run([binary("pg_restore"), "--exit-on-error", "--single-transaction", "--no-owner", "--no-privileges",
                 *db.tool_arguments(), f"--dbname={db.name}", str(dump)], db.env())
        except BackupError as exc:
            if "permission denied for schema public" not in str(exc):
                raise
            # PostgreSQL 15 and later let only the database's owner create tables in its public schema.
            user = db.user or "USER"
            raise BackupError(f"pg_restore: permission denied for schema public: the user restoring ({user}) must "
                              f"own the target database; nothing was restored: drop it, createdb -O {user} "
                              f"{db.name} and restore again") from None
    else:
        target = Path(db.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".restoring")
        shutil.copyfile(dump, partial)
        os.replace(partial, target)


def verify_restore(db: Database, media_root: Path, manifest: dict) -> list[str]:
    """What differs between the restored system and the manifest (empty: identical)."""
    problems = []
    with closing_connection(db) as conn:
        cursor = conn.cursor()
        counts = row_counts(cursor, db.engine)
        for table, expected in manifest["row_counts"].items():
            if counts.get(table) != expected:
                problems.append(f"table {table}: {counts.get(table)} rows, the backup had {expected}")
        problems.extend(report_document_problems(cursor))
    # Each media file was hashed as it was written (copy_hashed); here only its presence and size,
    # so a restore reads the backup's media twice (check, copy), never the target's again.
    for rel, meta in manifest["media"].items():
        path = media_root / rel
        if not path.is_file() or path.stat().st_size != meta["size"]:
            problems.append(f"media file {rel} missing or of another size")
    return problems


@one_line("restore")
def do_restore(folder: Path, db: Database | None = None, media_root: Path | None = None) -> Result:
    """Restore the backup in `folder` into an empty database and an empty media folder.

    Refuses (changing nothing) a damaged backup, a backup from a newer platform, or a non-empty
    target. On a failure while restoring it removes the media files it wrote; the database restore
    is one transaction."""
    folder = Path(folder)
    db = db or Database.from_settings(connections["default"].settings_dict)
    media_root = Path(media_root or settings.MEDIA_ROOT)
    manifest = read_manifest(folder)
    check_paths(folder, media_root, manifest)
    check_migrations(manifest)  # before hashing the whole backup: a newer platform's is refused at once
    check_targets(db, media_root, manifest)
    seconds = {}
    clock = time.monotonic()
    check_backup(folder, manifest)
    seconds["check"] = time.monotonic() - clock

    written = []
    try:
        clock = time.monotonic()
        for rel, meta in manifest["media"].items():
            target = media_root / rel
            written.append(target)
            digest, _ = copy_hashed(folder / MEDIA / rel, target)
            if digest != meta["sha256"]:
                raise BackupError(f"media file {rel} changed while it was restored")
        (media_root / "tmp").mkdir(parents=True, exist_ok=True)  # upload staging, never backed up
        seconds["media"] = time.monotonic() - clock
        clock = time.monotonic()
        restore_database(folder, manifest, db)
        seconds["database"] = time.monotonic() - clock
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    clock = time.monotonic()
    problems = verify_restore(db, media_root, manifest)
    seconds["verify"] = time.monotonic() - clock
    if problems:
        raise BackupError("the restored system differs from the backup: " + "; ".join(problems[:20]))
    return Result(folder, manifest, seconds)
