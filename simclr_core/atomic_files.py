"""Files replaced whole: written beside the target, flushed to disk, then renamed over it, so that a reader, or a
run killed at any moment, sees the previous file or the new one, never half of one.

New files get the permissions a plain open() would give them (0o666 less the umask). tempfile makes its files
private (0o600) whatever the umask, and a rename keeps them so: a results folder or checkpoint shared by a group
(umask 002) would be readable by its writer alone.

Nothing here imports torch: the registry's CLI writes its store through this module and stays fast.
"""
from __future__ import annotations

import errno
import glob
import os
import shutil
import socket
import tempfile
import time
import threading
from pathlib import Path
from typing import IO, Callable

# A full disk, a quota, a read-only mount: the environment refusing a write, which a command reports in one line
# (not as a bug).
DISK_REFUSED = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
# A disk that failed or stopped answering: a drive unplugged, a network or FUSE mount whose server went away.
DISK_GONE = frozenset({errno.EIO, errno.ENOTCONN, errno.ESTALE})
# What os.link and os.symlink raise on a file system without such links (exFAT and FAT drives, some FUSE and SMB
# mounts).
NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})
# How long a temporary file whose writer cannot be checked from here (another host's, or one named before names
# recorded their writer) stays untouched before it counts as abandoned: a small file's write takes milliseconds;
# an hour leaves room for a stalled network disk and for clocks that differ between hosts.
ABANDONED_AFTER_S = 3600.0


def disk_trouble(code: int | None) -> tuple[str, str] | None:
    """(what the disk did, what to do) for an errno of DISK_REFUSED or DISK_GONE; None for any other."""
    if code in DISK_REFUSED:
        return "the disk refused a write", "free space there (or make it writable)"
    if code in DISK_GONE:
        return "the disk failed or stopped answering", "check or reconnect it (the drive, the network or FUSE mount)"
    return None


def process_umask() -> int:
    """This process's umask, read without changing it where Linux shows it (os.umask can only be read by setting
    it, which would leave another thread creating a file at that moment with the wrong permissions)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_file_beside(path: Path) -> tuple[int, str]:
    """(fd, name) of a new temporary file in path's folder, with the permissions open() gives a new file. Its name,
    `.<name>.<pid>@<host>.<random>.tmp`, says who writes it (remove_abandoned_temps)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}@{socket.gethostname()}.", suffix=".tmp",
                               dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~process_umask())
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, tmp


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(file_object)`` on a temporary file in the same folder, fsync it, then rename it over ``path``.
    On an OSError (a full disk) the error names the file and the free space; the previous file stays."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        free = shutil.disk_usage(path.parent).free
        raise OSError(exc.errno, f"could not write {path}: {exc.strerror or exc} ({free / 2**20:,.0f} MiB free "
                                 f"on that disk); the previous {path.name}, if any, is unchanged") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def nearest_existing(path: str | os.PathLike) -> Path:
    """`path` if it exists, else its nearest parent that does: what a folder not made yet would be created in (a
    file there means it never can be)."""
    existing = Path(path)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def remove_leftover_temps(path: str | os.PathLike) -> None:
    """Delete the temporary files that writes of `path` (atomic_write_bytes, temp_file_beside) left behind when their
    process was killed mid-write: SIGKILL or a power loss lets no code run to delete them, and a checkpoint's is
    as large as the checkpoint. Only for a file that this process alone writes: another writer's would vanish under
    it."""
    path = Path(path)
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        leftover.unlink(missing_ok=True)


def remove_abandoned_temps(path: str | os.PathLike, older_than_s: float = ABANDONED_AFTER_S) -> list[Path]:
    """Delete the temporary files of writes of `path` whose writer is gone (killed between write and rename), and
    return them: those its name says a process of this host wrote that no longer runs, and any untouched for
    `older_than_s` (another host's, an unnamed one, a pid reused since). Safe for a file several processes write
    (a run's status.json): a live writer's temporary, which it may rename any moment, stays."""
    path = Path(path)
    prefix, host, removed = f".{path.name}.", socket.gethostname(), []
    for leftover in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid, _, writer_host = leftover.name[len(prefix):-len(".tmp")].rpartition(".")[0].partition("@")
        try:
            gone = (writer_host == host and pid.isdigit() and not _process_exists(int(pid))
                    or time.time() - leftover.stat().st_mtime > older_than_s)
            if gone:
                leftover.unlink()
                removed.append(leftover)
        except FileNotFoundError:         # renamed by its writer, or removed by another cleaner, meanwhile
            continue
    return removed


def _process_exists(pid: int) -> bool:
    if pid <= 0:
        return True       # not a pid of one process (0 and -1 would signal a group): not judged from its name
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's
        return True
    return True


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """`text` as UTF-8, replacing `path` whole (atomic_write_bytes)."""
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def create_if_absent(path: str | os.PathLike, text: str) -> bool:
    """Write `text` (UTF-8) to `path` unless a file of that name exists; True if this call created it.

    Two processes racing to create the same file never both succeed, and a reader never sees it half-written:
    the finished temporary file is hard-linked to the name, which fails if the name exists. A file system
    without hard links gets the same guarantee from a lock file beside the target, held while the name is
    checked and the temporary file renamed onto it.
    """
    path = Path(path)
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in NO_LINKS:
                raise
        from filelock import FileLock

        with FileLock(path.with_name(f".{path.name}.create-lock")):
            if path.exists():
                return False
            os.replace(tmp, path)
            return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def symlinks_work(folder: str | os.PathLike) -> bool:
    """Whether the file system of `folder` (an existing folder) can make symbolic links; exFAT, FAT and some FUSE
    or SMB mounts cannot."""
    probe = Path(folder) / f".symlink-check.{os.getpid()}.{threading.get_ident()}"
    try:
        os.symlink(probe.name, probe)
    except OSError as exc:
        if exc.errno in NO_LINKS:
            return False
        raise
    probe.unlink()
    return True


__all__ = ["atomic_write_bytes", "atomic_write_text", "create_if_absent", "nearest_existing", "remove_leftover_temps",
           "remove_abandoned_temps", "symlinks_work", "temp_file_beside", "process_umask", "disk_trouble",
           "ABANDONED_AFTER_S", "DISK_GONE", "DISK_REFUSED", "NO_LINKS"]
