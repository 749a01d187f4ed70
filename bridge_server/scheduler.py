"""Frame order for one clip: which queued frame runs next, and from which recurrent state.

RVM's matte for frame N depends on the frames before it, so a clip keeps a few recurrent
states ("heads"), each with the frame it last ran and whether it is *exact* (equal to a
sequential run from the clip's first frame). Given the queued frames, ``ClipOrder.take``
picks the next one and says how to make it:

- a frame that follows a head runs on it (``sequence``);
- on a clip whose source frames the server can read (``sequence`` kind), a frame ahead of a
  head by at most ``preroll_limit`` pre-rolls the frames between; further ahead, or with no
  head, it starts cold at the clip's first frame if that is within the limit, else a fixed
  ``cold_preroll`` frames before N (``cold_start``);
- on a clip whose frames only arrive with requests (``stream`` kind), a frame whose
  predecessor may still come waits up to ``wait_s`` seconds, then runs on a fresh state.

Several heads let interleaved chunks (two render processes on one clip) each keep their own
state instead of pre-rolling on every switch. This module has no threads and no I/O; the
server calls it under its lock.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple


@dataclass
class Head:
    """One recurrent state of a clip; ``frame`` is None while it is cold."""

    id: int
    frame: Optional[int] = None
    exact: bool = False
    last_used: float = 0.0


@dataclass
class Pending:
    """A queued frame; ``tickets`` are the requests waiting for it (duplicates share one run)."""

    frame: int
    arrived: float
    tickets: List[Any] = field(default_factory=list)
    prepared: bool = False
    source: Any = None


@dataclass
class Plan:
    """How to make ``pending.frame``: on ``head`` (reset first if ``cold``), after running
    ``preroll`` frames without writing them. ``probe`` means a cold start on a sequence clip
    whose start frame the caller finds with ``cold_start`` (it needs the file system)."""

    pending: Pending
    head: Head
    cold: bool
    preroll: List[int]
    how: str
    exact: bool
    probe: bool = False

    @property
    def frame(self) -> int:
        return self.pending.frame


def cold_start(frame: int, first_frame: Optional[int], preroll_limit: int, cold_preroll: int,
               exists: Callable[[int], bool]) -> Tuple[int, bool]:
    """Where a cold state for ``frame`` starts, and whether that start is the clip's first frame.

    With ``first_frame`` known: the first frame if ``frame`` is at most ``preroll_limit`` past
    it, else ``frame - cold_preroll``. Unknown: walk back while the source frames ``exist``,
    at most ``preroll_limit`` frames.
    """
    if first_frame is not None:
        if frame <= first_frame:
            return frame, frame == first_frame
        if frame - first_frame <= preroll_limit:
            return first_frame, True
        return max(first_frame, frame - cold_preroll), False
    for back in range(1, preroll_limit + 1):
        if not exists(frame - back):
            return frame - back + 1, True
    return frame - cold_preroll, False


class ClipOrder:
    """The queue and recurrent-state bookkeeping of one clip (see the module docstring)."""

    def __init__(self, *, sequence: bool, first_frame: Optional[int] = None, preroll_limit: int = 48,
                 cold_preroll: int = 12, wait_s: float = 3.0, max_heads: int = 4) -> None:
        if not 0 <= cold_preroll <= preroll_limit:
            raise ValueError(f"cold_preroll {cold_preroll} must be in 0..preroll_limit ({preroll_limit})")
        self.sequence = sequence
        self.first_frame = first_frame
        self.preroll_limit = preroll_limit
        self.cold_preroll = cold_preroll
        self.wait_s = wait_s
        self.max_heads = max(1, max_heads)
        self.heads: List[Head] = []
        self.pending: Dict[int, Pending] = {}
        self.made: Set[int] = set()
        self._ids = itertools.count(1)

    # -- queue ---------------------------------------------------------------------------------
    def add(self, frame: int, ticket: Any, now: float) -> Tuple[Pending, bool]:
        """Queue ``ticket`` for ``frame``; returns the entry and whether it is new (needs reading)."""
        entry = self.pending.get(frame)
        if entry is not None:
            entry.tickets.append(ticket)
            return entry, False
        entry = self.pending[frame] = Pending(frame, now, [ticket])
        return entry, True

    def discard(self, frame: int) -> Optional[Pending]:
        """Remove a queued frame (served from the cache, or failed before running)."""
        return self.pending.pop(frame, None)

    def deadline(self, now: float) -> Optional[float]:
        """The next time after ``now`` when a waiting stream frame stops waiting (None: no frame
        waits on a clock; anything else that makes a frame runnable comes with a notification)."""
        ends = [entry.arrived + self.wait_s for entry in self.pending.values() if entry.arrived + self.wait_s > now]
        return None if self.sequence or not ends else min(ends)

    # -- planning ------------------------------------------------------------------------------
    def take(self, now: float) -> Optional[Plan]:
        """The next frame to run and how, removed from the queue; None if nothing can run yet
        (the chosen frame is still being read, or every stream frame is still waiting)."""
        if not self.pending:
            return None
        frames = sorted(self.pending)
        following = {head.frame + 1: head for head in self.heads if head.frame is not None}
        successors = [frame for frame in frames if frame in following]
        if successors:
            ready = [frame for frame in successors if self.pending[frame].prepared]
            if not ready:
                return None
            head = following[ready[0]]
            return self._plan(ready[0], head, False, [], "sequence", head.exact)
        for frame in frames:
            if self.sequence or not self._waiting(frame, now):
                return self._plan_cold_or_preroll(frame) if self.pending[frame].prepared else None
        return None

    def _waiting(self, frame: int, now: float) -> bool:
        if frame - 1 in self.pending:
            return True
        if self.first_frame is not None and frame <= self.first_frame:
            return False
        return frame - 1 not in self.made and now < self.pending[frame].arrived + self.wait_s

    def _plan_cold_or_preroll(self, frame: int) -> Plan:
        if self.first_frame is not None and frame == self.first_frame:
            return self._plan(frame, self._new_head(), True, [], "sequence", True)
        if not self.sequence:
            return self._plan(frame, self._new_head(), True, [], "cold", False)
        behind = [(head.frame, head) for head in self.heads
                  if head.frame is not None and 0 < frame - 1 - head.frame <= self.preroll_limit]
        if behind:
            last, head = max(behind, key=lambda item: item[0])
            return self._plan(frame, head, False, list(range(last + 1, frame)), "preroll", head.exact)
        plan = self._plan(frame, self._new_head(), True, [], "cold", False)
        plan.probe = True
        return plan

    def resolve_cold_start(self, plan: Plan, exists: Callable[[int], bool]) -> None:
        """Fill in a probing plan's pre-roll from ``cold_start`` (outside the lock: it stats files)."""
        start, exact = cold_start(plan.frame, self.first_frame, self.preroll_limit, self.cold_preroll, exists)
        plan.preroll = list(range(start, plan.frame))
        plan.exact = exact
        plan.how = "preroll" if plan.preroll else ("sequence" if exact else "cold")
        plan.probe = False

    def _plan(self, frame: int, head: Head, cold: bool, preroll: List[int], how: str, exact: bool) -> Plan:
        return Plan(self.pending.pop(frame), head, cold, preroll, how, exact)

    def _new_head(self) -> Head:
        if len(self.heads) < self.max_heads:
            return Head(next(self._ids))
        # Reuse the least recently used state; its engine state is reset before the run.
        return min(self.heads, key=lambda head: head.last_used)

    # -- outcome -------------------------------------------------------------------------------
    def finish(self, plan: Plan, ok: bool, now: float) -> None:
        """Record a run: on success the head holds ``plan.frame``; on failure it is dropped
        (its state is unknown) and the next frame that needs it starts cold."""
        head = plan.head
        if not ok:
            self.heads = [h for h in self.heads if h.id != head.id]
            return
        head.frame, head.exact, head.last_used = plan.frame, plan.exact, now
        if all(h.id != head.id for h in self.heads):
            self.heads.append(head)
        self.made.add(plan.frame)

    def drop_heads(self) -> None:
        """Forget every recurrent state (memory eviction); queued frames stay queued."""
        self.heads = []

    def describe(self) -> List[Dict[str, Any]]:
        return [{"frame": head.frame, "exact": head.exact} for head in self.heads]
