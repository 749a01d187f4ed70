"""What a running bridge holds: loaded models, open clips, the frames each clip has made.

Models are loaded once per (variant, checkpoint, refiner) and shared by every clip that uses
them. Clips hold their recurrent states (one per scheduler head) and a record of the frames
they made, so a request for a frame already made from the same source is answered from that
record. Memory (recurrent states and inline outputs) is kept under a budget by dropping the
states and inline outputs of the least recently used idle clips; their next frame re-warms
them by pre-roll. Everything here is guarded by the server's lock, except model loading.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .errors import RemoteError
from .scheduler import ClipOrder


@dataclass
class Output:
    """A frame a clip made: the source it came from, how it was made, where it went."""

    fingerprint: Any
    made: Dict[str, Any]
    plates: Dict[str, str] = field(default_factory=dict)
    images: List[Tuple[str, List[int], str, bytes]] = field(default_factory=list)
    done: bool = False
    waiters: List[Any] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(len(data) for _, _, _, data in self.images)


class Clip:
    """One open clip: settings (server paths), frame order, recurrent states, outputs."""

    def __init__(self, clip_id: str, settings: Dict[str, Any], model: Any, order: ClipOrder) -> None:
        self.id = clip_id
        self.settings = settings
        self.model = model
        self.order = order
        self.states: Dict[int, Any] = {}
        self.outputs: Dict[int, Output] = {}
        self.busy = False
        self.last_used = time.monotonic()
        self.frames_run = 0

    @property
    def kind(self) -> str:
        return "sequence" if self.order.sequence else "stream"

    def memory(self, state_nbytes: Callable[[Any], int]) -> int:
        return sum(state_nbytes(state) for state in self.states.values()) + \
            sum(output.nbytes for output in self.outputs.values())

    def sync_states(self) -> None:
        """Drop engine states whose scheduler head is gone (failed run, eviction)."""
        alive = {head.id for head in self.order.heads}
        for head_id in [key for key in self.states if key not in alive]:
            del self.states[head_id]

    def forget(self) -> None:
        """Drop recurrent states and inline outputs (memory eviction)."""
        self.order.drop_heads()
        self.states.clear()
        for frame in [f for f, out in self.outputs.items() if out.images and out.done]:
            del self.outputs[frame]

    def describe(self, state_nbytes: Callable[[Any], int], now: float) -> Dict[str, Any]:
        return {
            "clip": self.id, "kind": self.kind, "variant": self.settings.get("variant"),
            "heads": self.order.describe(), "queued": len(self.order.pending), "busy": self.busy,
            "frames_run": self.frames_run, "frames_made": len(self.order.made),
            "memory_bytes": self.memory(state_nbytes), "idle_s": round(now - self.last_used, 3),
        }


class ModelCache:
    """Models by (variant, checkpoint, refiner), each loaded once, shared by clips."""

    def __init__(self, load: Callable[[str, Optional[str], str], Any]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._loading: Dict[Tuple[str, Optional[str], str], threading.Lock] = {}
        self.models: Dict[Tuple[str, Optional[str], str], Any] = {}

    def get(self, variant: str, checkpoint: Optional[str], refiner: str) -> Any:
        """The model, loading it on first use (other keys load in parallel; the same key once)."""
        key = (variant, checkpoint, refiner)
        with self._lock:
            if key in self.models:
                return self.models[key]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self.models:
                    return self.models[key]
            model = self._load(variant, checkpoint, refiner)
            with self._lock:
                self.models[key] = model
            return model

    def describe(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [{"variant": v, "checkpoint": c, "refiner": r} for (v, c, r) in self.models]


class ClipRegistry:
    """Open clips, bounded in number and in memory."""

    def __init__(self, *, max_clips: int, memory_budget: int, state_nbytes: Callable[[Any], int]) -> None:
        self.max_clips = max_clips
        self.memory_budget = memory_budget
        self.state_nbytes = state_nbytes
        self.clips: Dict[str, Clip] = {}

    def get(self, clip_id: str) -> Clip:
        """The open clip; raises RemoteError ``unknown_clip``."""
        clip = self.clips.get(clip_id)
        if clip is None:
            raise RemoteError(f"clip {clip_id} is not open on this server (closed, evicted or never opened); "
                              "open it again", "unknown_clip")
        return clip

    def make_room(self) -> Optional[str]:
        """At the clip limit, close the least recently used idle clip; returns its id.

        Raises RemoteError ``too_many_clips`` when every clip is busy or has queued frames.
        """
        if len(self.clips) < self.max_clips:
            return None
        idle = [clip for clip in self.clips.values() if not clip.busy and not clip.order.pending
                and all(out.done for out in clip.outputs.values())]
        if not idle:
            raise RemoteError(f"the server holds {self.max_clips} clips, all working; close some or retry later",
                              "too_many_clips")
        oldest = min(idle, key=lambda clip: clip.last_used)
        del self.clips[oldest.id]
        return oldest.id

    def memory(self) -> int:
        return sum(clip.memory(self.state_nbytes) for clip in self.clips.values())

    def enforce_budget(self) -> List[str]:
        """Forget the states and inline outputs of least recently used idle clips until the
        total is within the budget; returns the ids of the clips that lost them."""
        total = self.memory()
        evicted = []
        for clip in sorted(self.clips.values(), key=lambda c: c.last_used):
            if total <= self.memory_budget:
                break
            if clip.busy:
                continue
            before = clip.memory(self.state_nbytes)
            if before:
                clip.forget()
                total -= before - clip.memory(self.state_nbytes)
                evicted.append(clip.id)
        return evicted
