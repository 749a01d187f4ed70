"""Same-host shared memory for inline frames: the segments a client lends its bridge (Linux).

Each segment is an anonymous ``memfd`` cut into slots, one per frame in flight: the frame's
pixels at the slot's start, its inline outputs after them. The segment is sealed against
shrinking and growing before the bridge maps it (a mapping touched past a shrunk file's end
kills the process touching it), and its first page holds a random token the bridge reads back
through ``/proc/PID/fd/FD``: that proves the bridge sees this process's memory (same host, same
container). Nothing has a name in ``/dev/shm``, so nothing outlives the processes holding it.

A slot is used again only after its reply came: a reply left unread (a time-out, an error, a
caller that stopped early) retires its whole segment, since the bridge may still write into it.
Retired segments are detached at the next chance, outside any run of frames.

Standard library only and importable on Python 3.7: where ``os.memfd_create`` is missing (3.7,
macOS, Windows) ``available()`` is false and frames travel inline over ZeroMQ.
"""

from __future__ import annotations

import logging
import mmap
import os
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from .errors import BadBuffer, BridgeError
from .parameters import INLINE_DTYPES
from .protocol import SHARED_HEADER_BYTES, SHARED_TOKEN_BYTES

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("rvm_bridge.client")
# Looked up by name: Python 3.8+ on Linux only; elsewhere shared memory is simply not offered.
_MEMFD_CREATE = getattr(os, "memfd_create", None)
_MFD_FLAGS = getattr(os, "MFD_CLOEXEC", 1) | getattr(os, "MFD_ALLOW_SEALING", 2)
_ADD_SEALS = getattr(fcntl, "F_ADD_SEALS", 1033)
_SEALS = getattr(fcntl, "F_SEAL_SHRINK", 2) | getattr(fcntl, "F_SEAL_GROW", 4) | getattr(fcntl, "F_SEAL_SEAL", 1)
_ALIGN = 64  # outputs start on a cache line
Call = Callable[..., Dict[str, Any]]


def available() -> bool:
    """Whether this Python can make sealed anonymous segments (Linux, Python 3.8+)."""
    return sys.platform.startswith("linux") and _MEMFD_CREATE is not None and fcntl is not None


def _rounded(size: int, to: int) -> int:
    return -(-size // to) * to


class Segment:
    """One sealed memfd of ``slots`` slots of ``slot_bytes``, mapped here."""

    def __init__(self, slot_bytes: int, slots: int) -> None:
        self.slot_bytes = _rounded(slot_bytes, mmap.PAGESIZE)
        self.nbytes = SHARED_HEADER_BYTES + slots * self.slot_bytes
        self.id = ""  # the bridge's name for it, once attached
        self.free = list(range(slots))
        self.slots = slots
        self.fd = _MEMFD_CREATE("rvm-bridge", _MFD_FLAGS)  # type: ignore[misc]
        try:
            os.ftruncate(self.fd, self.nbytes)
            fcntl.fcntl(self.fd, _ADD_SEALS, _SEALS)
            self.memory = mmap.mmap(self.fd, self.nbytes)
        except BaseException:
            os.close(self.fd)
            raise
        token = os.urandom(SHARED_TOKEN_BYTES)
        self.memory[:SHARED_TOKEN_BYTES] = token
        self.token = token.hex()

    def close(self) -> None:
        if self.fd >= 0:
            self.memory.close()
            os.close(self.fd)
            self.fd = -1


class Slot:
    """One frame's room in a segment: its pixels at ``offset``, its outputs at ``outputs``."""

    def __init__(self, segment: Segment, index: int, input_bytes: int) -> None:
        self.segment = segment
        self.index = index
        self.offset = SHARED_HEADER_BYTES + index * segment.slot_bytes
        self.outputs = self.offset + _rounded(input_bytes, _ALIGN)
        self.end = self.offset + segment.slot_bytes

    def put(self, data: Any, shape: List[int], dtype: str) -> Dict[str, Any]:
        """Copy a frame's pixels into the slot; returns the request's ``source.shared``."""
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        self.segment.memory[self.offset:self.offset + len(view)] = view
        return {"segment": self.segment.id, "offset": self.offset, "shape": shape, "dtype": dtype}

    def output_spec(self) -> Dict[str, Any]:
        return {"segment": self.segment.id, "offset": self.outputs, "bytes": self.end - self.outputs}

    def read(self, name: str, spec: Dict[str, Any], nbytes: int, into: Optional[memoryview] = None) -> Any:
        """A copy of the output the reply names (it must lie in this slot's output room), made in
        ``into`` (``nbytes`` writable bytes) when given, else as new bytes."""
        offset = spec.get("offset")
        if spec.get("segment") != self.segment.id or not isinstance(offset, int) or isinstance(offset, bool) \
                or not self.outputs <= offset <= offset + nbytes <= self.end:
            raise BadBuffer(f"reply's inline {name!r} names shared memory outside this frame's slot")
        if into is None:
            return self.segment.memory[offset:offset + nbytes]
        with memoryview(self.segment.memory) as memory:
            into[:] = memory[offset:offset + nbytes]
        return into


class SharedFrames:
    """The segments one client lends its bridge. ``call(op, fields, timeout=, retries=)`` sends a
    request and returns the reply's header (the client's own ``call``); it is used only outside a
    run of frames, never while replies of one are awaited on the same socket."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.segments: List[Segment] = []
        self.retired: List[Segment] = []
        self.enabled = available()
        self.note = "" if self.enabled else "shared memory needs Linux and Python 3.8+ (os.memfd_create)"

    def off(self, why: str) -> None:
        """Send inline frames over ZeroMQ from now on, and say why in the log (once)."""
        if self.enabled:
            self.enabled = False
            self.note = why
            log.info("rvm-bridge client: inline frames go over ZeroMQ: %s", why)

    def ensure(self, slot_bytes: int, slots: int, limit: int) -> bool:
        """Have at least ``slots`` slots of ``slot_bytes`` lent to the bridge (attaching a segment
        if needed, within the bridge's ``limit``); false when shared memory is off."""
        self.detach_retired()
        if not self.enabled:
            return False
        fitting = [segment for segment in self.segments if segment.slot_bytes >= slot_bytes]
        for segment in [s for s in self.segments if s not in fitting and len(s.free) == s.slots]:
            self._retire(segment)  # another size of frame: let its memory go
        missing = slots - sum(segment.slots for segment in fitting)
        if missing <= 0:
            return True
        missing = min(missing, (limit - SHARED_HEADER_BYTES) // _rounded(slot_bytes, mmap.PAGESIZE))
        if missing <= 0:
            self.note = f"a frame of {slot_bytes} bytes is over the bridge's shared-memory limit ({limit})"
            log.info("rvm-bridge client: this frame goes over ZeroMQ: %s", self.note)
            return bool(fitting)
        try:
            segment = Segment(slot_bytes, missing)
        except OSError as error:
            self.off(f"cannot make a shared-memory segment: {error}")
            return False
        try:
            reply = self.call("attach_shared", {"pid": os.getpid(), "fd": segment.fd, "bytes": segment.nbytes,
                                                "token": segment.token})
        except BridgeError as error:
            segment.close()
            if error.code in ("timeout", "access_refused"):
                raise
            if fitting:  # more slots were refused (the bridge is near its limit): the ones lent serve
                self.note = f"the bridge took no more of this client's memory: {error}"
                return True
            self.off(f"the bridge did not take this client's memory: {error}")
            return False
        segment.id = str(reply.get("segment", ""))
        self.segments.append(segment)
        return True

    def lease(self, pixels: int, outputs: int) -> Optional[Slot]:
        """A free slot with room for a frame's ``pixels`` and ``outputs`` bytes, or None."""
        for segment in self.segments:
            if segment.free and segment.slot_bytes >= slot_bytes(pixels, outputs):
                return Slot(segment, segment.free.pop(), pixels)
        return None

    def release(self, slot: Slot) -> None:
        """The slot's reply came and was read: the slot may take another frame."""
        if slot.segment in self.segments:
            slot.segment.free.append(slot.index)

    def abandon(self, slots: Iterable[Slot]) -> None:
        """These slots' replies will not be read: the bridge may still write into them, so their
        segments are never used again."""
        for segment in {id(slot.segment): slot.segment for slot in slots}.values():
            if segment in self.segments:
                self._retire(segment)

    def forget(self) -> None:
        """Let every segment go here, without a word to the bridge."""
        for segment in self.segments + self.retired:
            segment.close()
        self.segments, self.retired = [], []

    def close(self, detach: bool = True) -> None:
        """Let every segment go, telling the bridge unless ``detach`` is false (it is gone)."""
        for segment in list(self.segments):
            self._retire(segment)
        if detach:
            self.detach_retired()
        self.forget()

    def detach_retired(self) -> None:
        """Tell the bridge to let retired segments go (it also does when this process ends)."""
        retired, self.retired = self.retired, []
        for segment in retired:
            try:
                self.call("detach_shared", {"segment": segment.id, "token": segment.token}, timeout=2.0, retries=0)
            except BridgeError as error:
                if error.code == "timeout":
                    return  # the bridge is gone: waiting on it again for each segment helps nobody

    def _retire(self, segment: Segment) -> None:
        self.segments.remove(segment)
        segment.memory.close()
        os.close(segment.fd)
        segment.fd = -1
        self.retired.append(segment)


def slot_bytes(pixels: int, outputs: int) -> int:
    """The room a frame of ``pixels`` bytes with ``outputs`` bytes of inline outputs takes."""
    return _rounded(pixels, _ALIGN) + outputs


def frame_room(shape: Tuple[int, int, int], dtype: str, settings: Dict[str, Any]) -> Tuple[int, int]:
    """Bytes of a frame's pixels and of its inline outputs (alpha and foreground) for a clip with
    ``settings``."""
    height, width, channels = shape
    pixels = height * width * channels * INLINE_DTYPES.get(dtype, 4)
    if not settings.get("inline_outputs"):
        return pixels, 0
    return pixels, height * width * 4 * INLINE_DTYPES.get(str(settings.get("inline_dtype") or "float16"), 2)
