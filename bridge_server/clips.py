"""Clips and models: what a running bridge holds, and the memory budget over it.

Models are loaded once per (variant, checkpoint, refiner) and shared by every clip that uses
them. A clip holds its recurrent states (one per frame-order head) and a record of the frames
it made (``Output``), so a request for a frame already made from the same source is answered
from that record.

The memory budget covers recurrent states, inline outputs kept for the cache (the reply store
that answers retries refers to these, it holds no pixels of its own) and frames queued with
their plates read. Over budget, the bridge drops, in this order: cached inline outputs (oldest
first), the states of idle clips (least recently used first), then the states of heads no chunk
is advancing. It never drops a state a render is advancing: a live matte never goes cold to
save memory; ``status`` says what was dropped and whether only live states remain.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

from .client.errors import TooManyClips, UnknownClip
from .frame_order import ClipOrder


@dataclass
class Output:
    """A frame a clip made: the source it came from, how, whether it is still exact, where it went."""

    fingerprint: Any
    made: Dict[str, Any]
    exact: bool
    plates: Dict[str, str] = field(default_factory=dict)
    kept: List[str] = field(default_factory=list)
    images: List[Tuple[str, List[int], str, bytes]] = field(default_factory=list)
    identities: Dict[str, Optional[Tuple[int, int, int]]] = field(default_factory=dict)  # path -> (inode, size, mtime)
    done: bool = False
    waiters: List[Any] = field(default_factory=list)
    made_at: float = 0.0
    writing: Set[str] = field(default_factory=set)  # the plates its write makes (``plates`` once done)

    @property
    def nbytes(self) -> int:
        return sum(len(data) for _, _, _, data in self.images)


class Clip:
    """One open clip: settings (server paths), frame order, recurrent states, outputs."""

    def __init__(self, clip_id: str, settings: Dict[str, Any], model: Any, order: ClipOrder) -> None:
        self.id = clip_id
        self.settings = settings
        self.requested = dict(settings)  # as asked (before the server filled anything in): for attaching
        self.model = model
        self.order = order
        self.states: Dict[int, Any] = {}
        self.outputs: Dict[int, Output] = {}
        self.busy = False
        self.last_used = time.monotonic()
        self.frames_run = 0
        self.states_dropped = 0

    @property
    def kind(self) -> str:
        return "sequence" if self.order.sequence else "stream"

    def idle(self, now: float) -> bool:
        return not self.busy and not self.order.pending and not any(self.order.live(h, now) for h in self.order.heads)

    def sync_states(self) -> None:
        """Drop engine states whose frame-order head is gone (failed run, twin, eviction)."""
        alive = {head.id for head in self.order.heads}
        for head_id in [key for key in self.states if key not in alive]:
            del self.states[head_id]

    def forget_outputs(self) -> None:
        """Drop the record of made frames and their pixels (clip closed or closed to make room)."""
        for output in self.outputs.values():
            output.images = []
        self.outputs.clear()

    def upstream_changed(self, frame: int) -> None:
        """Frame ``frame``'s source changed: every state and plate made after it came from the old
        pixels, so none of them is exact any more (they are made again when an exact route exists)."""
        self.order.upstream_changed(frame)
        for made, output in self.outputs.items():
            if made > frame:
                output.exact = False

    def describe(self, state_nbytes: Callable[[Any], int], now: float) -> Dict[str, Any]:
        return {
            "clip": self.id, "kind": self.kind, "variant": self.settings.get("variant"),
            "first_frame": self.order.first_frame, "heads": self.order.describe(),
            "queued": len(self.order.pending), "busy": self.busy, "frames_run": self.frames_run,
            "frames_made": len(self.order.made), "states_dropped": self.states_dropped,
            "memory_bytes": sum(state_nbytes(s) for s in self.states.values()) + sum(
                o.nbytes for o in self.outputs.values()), "idle_s": round(now - self.last_used, 3)}


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
    """Open clips, bounded in number and in memory (see the module docstring)."""

    def __init__(self, *, max_clips: int, memory_budget: int, state_nbytes: Callable[[Any], int]) -> None:
        self.max_clips = max_clips
        self.memory_budget = memory_budget
        self.state_nbytes = state_nbytes
        self.clips: Dict[str, Clip] = {}
        self.dropped = {"inline_outputs": 0, "inline_output_bytes": 0, "states": 0, "state_bytes": 0}
        self.recent_drops: Deque[str] = collections.deque(maxlen=20)
        self.over_budget = 0  # bytes over the budget held by live states alone, at the last check

    def get(self, clip_id: str) -> Clip:
        """The open clip; raises UnknownClip."""
        clip = self.clips.get(clip_id)
        if clip is None:
            raise UnknownClip(f"clip {clip_id} is not open on this server (closed, closed to make room, or never "
                              "opened); open it again")
        return clip

    def make_room(self, now: float) -> Optional[str]:
        """At the clip limit, close the least recently used idle clip; returns its id.

        Raises TooManyClips when every clip is working.
        """
        if len(self.clips) < self.max_clips:
            return None
        idle = [clip for clip in self.clips.values() if clip.idle(now) and all(o.done for o in clip.outputs.values())]
        if not idle:
            raise TooManyClips(f"the server holds {self.max_clips} clips, all working; close some or retry later")
        oldest = min(idle, key=lambda clip: clip.last_used)
        oldest.forget_outputs()
        del self.clips[oldest.id]
        return oldest.id

    def memory(self) -> Dict[str, int]:
        """Bytes held, by kind: recurrent states, cached inline outputs, queued frames."""
        states = outputs = queued = 0
        for clip in self.clips.values():
            states += sum(self.state_nbytes(state) for state in clip.states.values())
            outputs += sum(output.nbytes for output in clip.outputs.values())
            queued += sum(entry.nbytes for entry in clip.order.pending.values())
        return {"states": states, "inline_outputs": outputs, "queued": queued,
                "total": states + outputs + queued}

    def enforce_budget(self, now: float) -> List[str]:
        """Drop what the budget allows to drop, in order, until within it; returns log lines."""
        total = self.memory()["total"]
        lines: List[str] = []
        if total <= self.memory_budget:
            self.over_budget = 0
            return lines
        cached = sorted(((output.made_at, clip, frame, output) for clip in self.clips.values()
                         for frame, output in clip.outputs.items()
                         if output.images and output.done and not output.waiters), key=lambda item: item[0])
        freed: Dict[str, Tuple[int, int]] = {}
        for _, clip, _, output in cached:
            if total <= self.memory_budget:
                break
            size = output.nbytes
            output.images = []
            total -= size
            count, nbytes = freed.get(clip.id, (0, 0))
            freed[clip.id] = (count + 1, nbytes + size)
        for clip_id, (count, nbytes) in freed.items():
            self.dropped["inline_outputs"] += count
            self.dropped["inline_output_bytes"] += nbytes
            lines.append(f"dropped {count} cached inline outputs of clip {clip_id} ({nbytes / 2 ** 20:.1f} MiB)")
        if total > self.memory_budget:
            for clip in sorted(self.clips.values(), key=lambda c: (not c.idle(now), c.last_used)):
                if total <= self.memory_budget:
                    break
                ids = {h.id for h in clip.order.heads if not self.live_or_running(clip, h, now)}
                size = sum(self.state_nbytes(state) for head_id, state in clip.states.items() if head_id in ids)
                if not ids:
                    continue
                clip.order.drop_heads(ids)
                clip.sync_states()
                clip.states_dropped += len(ids)
                total -= size
                self.dropped["states"] += len(ids)
                self.dropped["state_bytes"] += size
                lines.append(f"dropped {len(ids)} recurrent state(s) of {'idle ' if clip.idle(now) else ''}clip "
                             f"{clip.id} ({size / 2 ** 20:.1f} MiB); its next frame re-warms by pre-roll")
        self.over_budget = max(0, total - self.memory_budget)
        if self.over_budget:
            lines.append(f"over the memory budget by {self.over_budget / 2 ** 20:.1f} MiB with only live states "
                         "and queued frames left: kept them (raise --memory-budget)")
        stamp = time.strftime("%H:%M:%S")
        self.recent_drops.extend(f"{stamp} {line}" for line in lines)
        return lines

    @staticmethod
    def live_or_running(clip: Clip, head: Any, now: float) -> bool:
        """A state not to drop: a chunk is advancing it, or the clip's run holds it now."""
        return clip.order.live(head, now) or clip.busy
