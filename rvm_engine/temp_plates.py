"""Temporary plate files: named for whoever writes them, made durable, and cleaned up after a crash.

A plate is written to a hidden temporary file beside it and renamed into place (see
``plate_writing.write_plate``). The temporary name carries the host and the process writing it,
``.{plate}.{host}.{pid}.{random}.tmp{ext}``, so a later render can tell a stray left by a
killed render from a file another render is writing right now: two farm tasks may write
different frames of one output folder at the same time.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import time
import uuid
from collections.abc import Iterable

from rvm_engine.sequences import frame_path

#: A temporary file from another host (or of an older, unnamed kind) is removed once it is this
#: old: no plate takes a day to write, and a day absorbs clock differences between hosts.
FOREIGN_TEMP_AGE_S = 24 * 3600

_HOST_CHARS = re.compile(r"[^A-Za-z0-9-]")
_NAMED = re.compile(r"^\.(?P<base>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp(?P<ext>.*)$")
_UNNAMED = re.compile(r"^\.(?P<base>.+)\.[0-9a-f]{8}\.tmp(?P<ext>.*)$")  # before host and pid were named


def host_name() -> str:
    """This machine's name as temporary files carry it (letters, digits and dashes)."""
    return _HOST_CHARS.sub("-", socket.gethostname())[:64] or "host"


def temp_path(path: str) -> str:
    """A fresh temporary name beside plate ``path``: hidden, so sequence scans never see it."""
    folder, base = os.path.split(os.path.abspath(path))
    ext = os.path.splitext(base)[1]
    return os.path.join(folder, f".{base}.{host_name()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{ext}")


def make_durable(path: str) -> None:
    """Flush ``path``'s bytes to the disk. OpenImageIO writes and closes the file itself, so it is
    opened again to fsync it (read-only on POSIX; Windows only flushes a handle open for writing)."""
    flags = (os.O_RDWR if os.name == "nt" else os.O_RDONLY) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(folder: str) -> None:
    """Flush ``folder``'s entries (a rename) to the disk. POSIX only: Windows cannot open a folder;
    file systems that cannot sync a folder (some network shares) are let be."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def clean_stray_temps(patterns: Iterable[str], frames: Iterable[int]) -> int:
    """Remove temporary files left by dead writers of the plates of ``frames`` in output ``patterns``;
    returns how many were removed.

    Removed: a temporary file from this host whose process is gone, and one from another host (or
    without a host in its name) older than :data:`FOREIGN_TEMP_AGE_S`. Never a temporary file of a
    live process on this host, nor of another plate. Files that vanish or cannot be removed
    meanwhile (another render cleaning, permissions) are left to their owner.
    """
    wanted: dict[str, set[str]] = {}
    frames = list(frames)
    for pattern in patterns:
        for frame in frames:
            folder, base = os.path.split(os.path.abspath(frame_path(pattern, frame)))
            wanted.setdefault(folder, set()).add(base)
    here = host_name()
    removed = 0
    for folder, bases in wanted.items():
        try:
            entries = [e for e in os.scandir(folder) if e.name.startswith(".") and ".tmp" in e.name]
        except OSError:
            continue  # no folder yet: nothing stray in it
        for entry in entries:
            if _is_stray(entry, bases, here):
                try:
                    os.remove(entry.path)
                    removed += 1
                except OSError:
                    pass
    return removed


def _is_stray(entry: os.DirEntry[str], bases: set[str], here: str) -> bool:
    named = _NAMED.match(entry.name)
    match = named or _UNNAMED.match(entry.name)
    if match is None or match["base"] not in bases or match["ext"] != os.path.splitext(match["base"])[1]:
        return False
    if named is not None and named["host"] == here:
        return not pid_alive(int(named["pid"]))
    try:
        return time.time() - entry.stat().st_mtime > FOREIGN_TEMP_AGE_S
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host; True when that cannot be told (keep, never harm)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    if os.name == "nt":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: a check only, nothing is sent
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. another user's process: alive
    return True


def _windows_pid_alive(pid: int) -> bool:
    # os.kill would terminate the process on Windows: ask for its exit code instead.
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return kernel32.GetLastError() == 5  # access denied: it exists
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
