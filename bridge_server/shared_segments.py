"""Shared-memory segments that clients on this host lend the bridge for inline frames (Linux).

A client makes an anonymous ``memfd``, seals it against shrinking and growing, writes a random
token at its start and asks ``attach_shared`` with its pid and fd. The bridge opens the same
memory through ``/proc/PID/fd/FD`` and maps it only when it is a memfd (nothing else has a
``/memfd:`` link there), sealed so it can never shrink under the mapping (touching a mapping
past a shrunk file's end is SIGBUS, which no ``except`` catches), of the size the client says,
within the bridge's limit, of ordinary pages (a huge-page memfd can fail a fault with SIGBUS
too), and holding the token: a bridge in another container or on another
host reads another process's fd, or none, and refuses. Nothing has a name, so nothing can leak:
the memory goes when the last process holding it lets go. The bridge lets go on
``detach_shared`` and when the owner's process is gone (checked about every second, by its
start time in ``/proc/PID/stat``, so a reused pid is not mistaken for the owner).

Frames name regions of a segment; the reader copies a frame out once before using it (a client
scribbling on its segment cannot change pixels mid-frame), and the reply stage copies inline
outputs in. Copies go through numpy, which lets go of the GIL, so a 4K copy does not hold up
the socket thread.
"""

from __future__ import annotations

import collections
import functools
import logging
import mmap
import os
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .client.errors import BadBuffer, SharedMemoryRefused, UnknownSegment
from .client.parameters import INLINE_DTYPES
from .client.protocol import SHARED_TOKEN_BYTES, InlineImage, Request, SharedAttach, SharedRegion

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("rvm_bridge.server")
_SEAL_SHRINK = getattr(fcntl, "F_SEAL_SHRINK", 2)
_SEAL_GROW = getattr(fcntl, "F_SEAL_GROW", 4)
_GET_SEALS = getattr(fcntl, "F_GET_SEALS", 1034)
MAX_SEGMENTS = 256  # each holds a file descriptor in the bridge
SWEEP_S = 1.0


def offered_here() -> bool:
    """Whether this platform can take shared memory: Linux, with /proc."""
    return sys.platform.startswith("linux") and fcntl is not None and os.path.isdir("/proc/self/fd")


def process_start(pid: int) -> Optional[str]:
    """The start time of a running process (field 22 of /proc/PID/stat), or None when there is no
    such process here or it is a zombie (its memory already gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the name in parentheses may hold spaces
    if len(fields) < 20 or fields[0] in ("Z", "X", "x"):
        return None
    return fields[19]


@dataclass
class Segment:
    """One client's segment as mapped here."""

    id: str
    pid: int
    started: str
    token: str
    memory: mmap.mmap
    nbytes: int
    attached: float

    def close(self) -> bool:
        """Unmap; False while a frame still reads or writes it (then it stays mapped)."""
        try:
            self.memory.close()
        except BufferError:
            return False
        return True


class SharedSegments:
    """The segments clients lent this bridge, at most ``limit`` bytes in all (0: none offered)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit if limit > 0 and offered_here() else 0
        self.segments: Dict[str, Segment] = {}
        self.lock = threading.Lock()  # the socket thread attaches and drops; the stages look up
        self.dropped = 0
        self.recent: Deque[str] = collections.deque(maxlen=20)
        # Let go of but still mapped: a frame in hand holds a view. They count against the limit
        # until unmapped, or a client detaching under its own queued frames could map any amount.
        self.closing: List[Segment] = []
        self._swept = 0.0

    @property
    def offered(self) -> bool:
        return self.limit > 0

    @property
    def nbytes(self) -> int:
        with self.lock:
            return self._held()

    def _held(self) -> int:
        return sum(segment.nbytes for segment in [*self.segments.values(), *self.closing])

    # -- lending and letting go --------------------------------------------------------------
    def attach(self, asked: SharedAttach) -> Dict[str, Any]:
        """Map the client's segment; raises SharedMemoryRefused with the reason."""
        if not self.offered:
            raise SharedMemoryRefused("this bridge offers no shared memory (not Linux, or started with "
                                      "--no-shared-memory): send frames inline")
        self.sweep(force=True)
        with self.lock:
            held = self._held()
            count = len(self.segments) + len(self.closing)
        if held + asked.nbytes > self.limit or count >= MAX_SEGMENTS:
            raise SharedMemoryRefused(f"a segment of {asked.nbytes} bytes would take the bridge past its shared-memory "
                                      f"limit ({held} of {self.limit} bytes in {count} segments held; serve "
                                      "--shared-memory SIZE)")
        started = process_start(asked.pid)
        if started is None:
            raise SharedMemoryRefused(f"no process {asked.pid} runs beside this bridge (another host or container?)")
        memory = _map_memfd(asked)
        segment = Segment(secrets.token_hex(8), asked.pid, started, asked.token, memory, asked.nbytes,
                          time.monotonic())
        if process_start(asked.pid) != started:  # the owner exited while its fd was being opened
            segment.close()
            raise SharedMemoryRefused(f"process {asked.pid} exited while its segment was attached")
        with self.lock:
            self.segments[segment.id] = segment
        log.info("shared memory: attached %d bytes of process %d as segment %s", asked.nbytes, asked.pid, segment.id)
        return {"segment": segment.id, "bytes": asked.nbytes, "limit": self.limit}

    def detach(self, segment_id: str, token: str) -> Dict[str, Any]:
        """Let go of a segment (its owner's token proves the request is the owner's)."""
        with self.lock:
            segment = self.segments.get(segment_id)
            if segment is None or not secrets.compare_digest(segment.token, token):
                raise UnknownSegment(f"this bridge holds no shared-memory segment {segment_id} with that token")
            del self.segments[segment_id]
        self._unmap([segment])
        log.info("shared memory: segment %s of process %d detached", segment_id, segment.pid)
        return {"segment": segment_id, "detached": True}

    def sweep(self, force: bool = False) -> None:
        """Drop the segments whose owner's process is gone (at most about once a second)."""
        now = time.monotonic()
        if not force and now - self._swept < SWEEP_S:
            return
        self._swept = now
        with self.lock:
            self.closing = [segment for segment in self.closing if not segment.close()]
            gone = [segment for segment in self.segments.values() if process_start(segment.pid) != segment.started]
            for segment in gone:
                del self.segments[segment.id]
                self.dropped += 1
                self.recent.append(f"segment of process {segment.pid} ({segment.nbytes} bytes): the process is gone")
        self._unmap(gone)
        for segment in gone:
            log.info("shared memory: dropped segment %s: process %d is gone", segment.id, segment.pid)

    def _unmap(self, segments: List[Segment]) -> None:
        held = [segment for segment in segments if not segment.close()]
        with self.lock:
            self.closing.extend(held)

    def close_all(self) -> None:
        with self.lock:
            segments, self.segments = list(self.segments.values()), {}
        for segment in segments:
            segment.close()

    def describe(self) -> Dict[str, Any]:
        """For ``status``: what is held, by whom (segment ids are the owners' to know, not listed)."""
        now = time.monotonic()
        with self.lock:
            held = [{"pid": s.pid, "bytes": s.nbytes, "age_s": round(now - s.attached, 3)}
                    for s in self.segments.values()]
            closing = sum(segment.nbytes for segment in self.closing)
        return {"offered": self.offered, "limit": self.limit, "bytes": sum(s["bytes"] for s in held) + closing,
                "segments": held, "closing_bytes": closing, "dropped": self.dropped, "recent": list(self.recent)}

    # -- frames ------------------------------------------------------------------------------
    def bind(self, request: Request, inline_dtype: Optional[str]) -> None:
        """Point a frame request at its regions: a shared source becomes an inline image whose
        buffer is a view of the segment (copied out by the reader). ``inline_dtype`` is the clip's
        when it wants inline outputs (their region must hold them). Raises UnknownSegment or
        BadBuffer."""
        if request.shared is not None:
            request.buffers = [self._view(request.shared.region)]
            request.inline = InlineImage(0, request.shared.shape, request.shared.dtype)
        if request.shared_outputs is not None:
            self._segment(request.shared_outputs)
            if inline_dtype is not None and request.inline is not None:
                height, width, _ = request.inline.shape
                needed = height * width * 4 * INLINE_DTYPES[inline_dtype]  # alpha and foreground
                if request.shared_outputs.nbytes < needed:
                    raise BadBuffer(f"shared_outputs holds {request.shared_outputs.nbytes} bytes; this clip's alpha "
                                    f"and foreground need {needed}")

    @staticmethod
    def copy_out(view: Any) -> memoryview:
        """A private copy of a frame's bytes (the client may write its segment at any time)."""
        return memoryview(np.frombuffer(view, np.uint8).copy().data)

    def write(self, region: SharedRegion, images: Sequence[Tuple[str, List[int], str, Any]]) -> Dict[str, Any]:
        """Copy inline outputs one after another into ``region``; returns the reply's ``inline``
        entries naming where each went. Raises UnknownSegment or BadBuffer."""
        needed = sum(len(data) for _, _, _, data in images)
        if needed > region.nbytes:
            raise BadBuffer(f"shared_outputs holds {region.nbytes} bytes; the outputs need {needed}")
        segment = self._segment(region)
        try:
            target = memoryview(segment.memory)  # an export: the mapping cannot close under the copy
        except ValueError:
            raise UnknownSegment(f"shared-memory segment {region.segment} was let go of") from None
        inline: Dict[str, Any] = {}
        with target:
            offset = region.offset
            for name, shape, dtype, data in images:
                count = len(data)
                np.copyto(np.frombuffer(target, np.uint8, count, offset), np.frombuffer(data, np.uint8))
                inline[name] = {"segment": region.segment, "offset": offset, "shape": shape, "dtype": dtype}
                offset += count
        return inline

    def _segment(self, region: SharedRegion) -> Segment:
        with self.lock:
            segment = self.segments.get(region.segment)
        if segment is None:
            raise UnknownSegment(f"this bridge holds no shared-memory segment {region.segment} (detached, its "
                                 "process gone, or the bridge restarted): attach it again")
        if region.end > segment.nbytes:
            raise BadBuffer(f"shared-memory region {region.offset}..{region.end} is outside segment {region.segment} "
                            f"({segment.nbytes} bytes)")
        return segment

    def _view(self, region: SharedRegion) -> memoryview:
        segment = self._segment(region)
        try:
            return memoryview(segment.memory)[region.offset:region.end]
        except ValueError:
            raise UnknownSegment(f"shared-memory segment {region.segment} was let go of") from None


@functools.lru_cache(maxsize=1)
def _memfd_device() -> int:
    """The device number every memfd of this kernel carries (of one made here and closed)."""
    probe = os.memfd_create("rvm-bridge-probe", os.MFD_CLOEXEC)
    try:
        return os.fstat(probe).st_dev
    finally:
        os.close(probe)


def _map_memfd(asked: SharedAttach) -> mmap.mmap:
    """Map ``asked.fd`` of process ``asked.pid``, checked as the module docstring says."""
    path = f"/proc/{asked.pid}/fd/{asked.fd}"
    where = f"fd {asked.fd} of process {asked.pid}"
    try:
        # The link names what the fd is without touching it: a FIFO, a device or a file on a hung
        # network mount is never opened.
        target = os.readlink(path)
    except OSError as error:
        raise SharedMemoryRefused(f"cannot see {where} from this bridge ({error.strerror}): another host or "
                                  "container?") from None
    if not target.startswith("/memfd:"):
        raise SharedMemoryRefused(f"{where} is {target[:80]!r}, not a memfd; shared memory takes only a sealed "
                                  "memfd")
    try:
        handle = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as error:
        raise SharedMemoryRefused(f"cannot open {where}: {error.strerror}") from None
    try:
        if os.fstat(handle).st_blksize != mmap.PAGESIZE:
            # MFD_HUGETLB: a fault finding no free huge page is SIGBUS, as fatal as a shrink.
            raise SharedMemoryRefused(f"{where} is a huge-page memfd; shared memory takes only ordinary pages")
        if os.fstat(handle).st_dev != _memfd_device():
            # What was opened is not on the memfd file system: a file named like one (``/memfd:x``
            # made by root), or an fd swapped between the look and the open.
            raise SharedMemoryRefused(f"{where} is not a memfd; shared memory takes only a sealed memfd")
        try:
            seals = fcntl.fcntl(handle, _GET_SEALS)
        except OSError:
            seals = 0
        if seals & (_SEAL_SHRINK | _SEAL_GROW) != _SEAL_SHRINK | _SEAL_GROW:
            raise SharedMemoryRefused(f"{where} is not sealed against shrinking and growing (F_SEAL_SHRINK, "
                                      "F_SEAL_GROW): a segment that can shrink could crash the bridge")
        size = os.fstat(handle).st_size
        if size != asked.nbytes:
            raise SharedMemoryRefused(f"{where} holds {size} bytes, not the {asked.nbytes} announced")
        token = os.pread(handle, SHARED_TOKEN_BYTES, 0)
        if not secrets.compare_digest(token, bytes.fromhex(asked.token)):
            raise SharedMemoryRefused(f"{where} does not hold the token announced: another host or container, or "
                                      "not the client's own segment")
        try:
            return mmap.mmap(handle, asked.nbytes, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as error:  # e.g. sealed against writing
            raise SharedMemoryRefused(f"cannot map {where}: {error.strerror}") from None
    finally:
        os.close(handle)
