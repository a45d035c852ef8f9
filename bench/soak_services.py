"""Private services for the soak (bench/soak.py): a PostgreSQL cluster, a Redis server and a small
media file system of its own, on loopback and private ports, so faults never touch the system
PostgreSQL (5432) and Redis (6379) that other people's tests use.

PostgreSQL refuses to run as root: as root its binaries run as the `postgres` system user
(runuser), in a data folder owned by that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.1, message: str = "condition"):
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {message}")
        time.sleep(interval)


def pg_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server binaries (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def missing_binaries() -> list[str]:
    """What the soak cannot run without (the CI test skips naming these, and only these)."""
    missing = []
    if pg_bin_dir() is None:
        missing.append("PostgreSQL server binaries (/usr/lib/postgresql/*/bin/pg_ctl)")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing.append("runuser (to run PostgreSQL as the postgres user)")
    return missing


class PrivatePostgres:
    """initdb into `folder`, pg_ctl on `port` (127.0.0.1 only, its socket in `folder`)."""

    def __init__(self, folder: Path, port: int):
        self.bin = pg_bin_dir()
        self.folder, self.port = folder, port
        self.data = folder / "pgdata"
        self.log = folder / "postgres.log"
        self.url = f"postgres://postgres@127.0.0.1:{port}/pdl1"
        self._as_root = os.geteuid() == 0

    def _cmd(self, *args: str) -> list[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        return ["runuser", "-u", "postgres", "--", *cmd] if self._as_root else cmd

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            shutil.chown(self.folder, "postgres", "postgres")
        subprocess.run(self._cmd("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                 "--no-instructions"), check=True, capture_output=True, timeout=120)
        self.start()
        subprocess.run(self._cmd("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "pdl1"),
                       check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.folder} "
                   "-c max_connections=200 -c shared_buffers=64MB")
        subprocess.run(self._cmd("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60",
                                 "start"), check=True, capture_output=True, timeout=90)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(self._cmd("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"),
                       capture_output=True, timeout=90)

    def ready(self) -> bool:
        out = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                             capture_output=True, timeout=10)
        return out.returncode == 0

    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        return None


class PrivateRedis:
    """redis-server on `port`, no persistence: a restart loses whatever was queued (the worst case)."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port = folder, port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen | None = None
        self.log = folder / "redis.log"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                                      "--appendonly", "no", "--dir", str(self.folder), "--logfile", str(self.log)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_for(self.ready, 30, message="redis-server to answer")

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class MediaDisk:
    """MEDIA_ROOT on a small file system of its own, so the soak can fill it: a tmpfs when mounting
    works (root with CAP_SYS_ADMIN), else a loop-mounted ext4 image, else a plain folder (then the
    disk-full fault is skipped and the results say so)."""

    def __init__(self, mountpoint: Path, size_mb: int):
        self.path, self.size_mb = mountpoint, size_mb
        self.kind = "folder"
        self._image: Path | None = None
        self.ballast = None

    def mount(self) -> str:
        self.path.mkdir(parents=True, exist_ok=True)
        tmpfs = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0755", "tmpfs",
                                str(self.path)], capture_output=True)
        if tmpfs.returncode == 0:
            self.kind = "tmpfs"
            return self.kind
        image = self.path.parent / "media.img"
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["truncate", "-s", f"{self.size_mb}M", str(image)], check=True, capture_output=True)
            subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
            subprocess.run(["mount", "-o", "loop", str(image), str(self.path)], check=True, capture_output=True)
            self.kind, self._image = "loop-ext4", image
        return self.kind

    @property
    def can_fill(self) -> bool:
        return self.kind != "folder"

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave_bytes: int = 64 * 1024) -> int:
        """Take all but `leave_bytes` of the free space with a ballast file; its size."""
        ballast = self.path / ".soak-ballast"
        size = max(0, self.free_bytes() - leave_bytes)
        with open(ballast, "wb") as fh:
            try:
                os.posix_fallocate(fh.fileno(), 0, size)
            except OSError:
                chunk = b"\0" * (1 << 20)
                with contextlib.suppress(OSError):
                    while True:
                        fh.write(chunk)
        self.ballast = ballast
        return ballast.stat().st_size

    def free(self) -> None:
        if self.ballast is not None:
            with contextlib.suppress(FileNotFoundError):
                self.ballast.unlink()
            self.ballast = None

    def unmount(self) -> None:
        self.free()
        if self.kind != "folder":
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
        if self._image is not None:
            with contextlib.suppress(FileNotFoundError):
                self._image.unlink()


# --- resident memory ------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """VmRSS of one process (0 when it is gone); psutil is not a dependency, /proc is enough."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (from /proc/*/stat parent links)."""
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = Path(stat).read_text()
            fields = text[text.rindex(")") + 2:].split()
            children.setdefault(int(fields[1]), []).append(int(Path(stat).parts[2]))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_rss(pid: int) -> dict:
    """Resident memory of a process tree: total and per process."""
    procs = {p: rss_bytes(p) for p in descendants(pid)}
    return {"total_mb": round(sum(procs.values()) / 2**20, 1), "processes": len([v for v in procs.values() if v]),
            "per_process_mb": {str(p): round(v / 2**20, 1) for p, v in procs.items() if v}}
