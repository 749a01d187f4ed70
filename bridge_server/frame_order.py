"""Frame order for one clip: which queued frame runs next, and from which recurrent state.

RVM's matte for frame N depends on the frames before it, so a clip keeps a few recurrent
states ("heads"), each with the frame it last ran and whether it is *exact*: the state a render
in frame order from the clip's first frame holds there. Given the queued frames,
``ClipOrder.take`` picks the next one and says how to make it:

- a frame that follows a head runs on it (``sequence``); an exact head wins over another head
  at the same frame, and when two heads meet on one frame only the better one is kept; on a
  sequence clip a frame that follows only a head that is not exact is pre-rolled exactly
  instead, when an exact route lies within the pre-roll limit;
- on a clip whose source frames the server can read (``sequence`` kind), a frame ahead of a
  head pre-rolls the frames between, preferring in turn: an exact head within
  ``preroll_limit``, a cold start at the clip's first frame within the limit (exact), another
  head within the limit, and last a cold start ``cold_preroll`` frames before N (not exact). A
  head that another chunk is still advancing (its next frame is queued, or it ran within
  ``live_s`` seconds) is *cloned* for the pre-roll, never moved away from under that chunk;
- on a clip whose frames only arrive with requests (``stream`` kind), a frame whose
  predecessor has not come waits up to ``wait_s`` seconds from its arrival (re-renders too),
  then runs on a new state (``cold``). A stream clip opened without a first frame takes the
  first frame it receives as its first frame, so it does not wait for nothing.

This module has no threads and no I/O; the server calls it under its lock.
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
    """A queued frame. ``tickets`` are the requests waiting for it (requests naming the same
    source share one run); ``deferred`` are requests for the same frame with another source,
    queued again once this entry leaves the queue. ``write`` is the union of the outputs the
    tickets ask to write (None: all of the clip's)."""

    frame: int
    arrived: float
    tickets: List[Any] = field(default_factory=list)
    prepared: bool = False
    source: Any = None
    refresh: bool = False
    write: Optional[Set[str]] = None
    deferred: List[Any] = field(default_factory=list)
    nbytes: int = 0  # pixels held while queued (the request's buffer, then the read plate)


@dataclass
class Plan:
    """How to make ``pending.frame``: on ``head`` (reset first if ``cold``; copied from
    ``clone_of`` first if set), after running ``preroll`` frames without writing them.
    ``probe`` means a cold start on a sequence clip whose first frame is unknown; the caller
    finds its start with ``resolve_cold_start`` (it needs the file system)."""

    pending: Pending
    head: Head
    cold: bool
    preroll: List[int]
    how: str
    exact: bool
    use: str = "continued"  # continued | cloned | new
    clone_of: Optional[Head] = None
    probe: bool = False

    @property
    def frame(self) -> int:
        return self.pending.frame


def cold_start(frame: int, first_frame: Optional[int], preroll_limit: int, cold_preroll: int,
               exists: Callable[[int], bool]) -> Tuple[int, bool]:
    """Where a cold state for ``frame`` starts, and whether that start is the clip's first frame.

    With ``first_frame`` known: the first frame if ``frame`` is at most ``preroll_limit`` past
    it, else ``frame - cold_preroll``. Unknown: walk back while the source frames ``exists``,
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
                 cold_preroll: int = 12, wait_s: float = 3.0, max_heads: int = 4, live_s: float = 30.0) -> None:
        self.sequence = sequence
        self.first_frame = first_frame
        self.preroll_limit = max(0, preroll_limit)
        self.cold_preroll = min(max(0, cold_preroll), self.preroll_limit)
        self.wait_s = wait_s
        self.max_heads = max(1, max_heads)
        self.live_s = live_s
        self.heads: List[Head] = []
        self.pending: Dict[int, Pending] = {}
        self.made: Set[int] = set()
        self._ids = itertools.count(1)

    # -- queue ---------------------------------------------------------------------------------
    def add(self, frame: int, ticket: Any, now: float) -> Tuple[Pending, bool]:
        """Queue ``ticket`` for ``frame`` (the caller checked the entry's source is the same);
        returns the entry and whether it is new (needs reading)."""
        if self.first_frame is None and not self.sequence and not self.made and not self.pending:
            self.first_frame = frame  # a stream clip starts at the first frame it is sent
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

    # -- what exists ---------------------------------------------------------------------------
    def live(self, head: Head, now: float) -> bool:
        """A head some chunk is still advancing: its next frame is queued, or it ran lately."""
        return head.frame is not None and (head.frame + 1 in self.pending or now - head.last_used < self.live_s)

    # -- planning ------------------------------------------------------------------------------
    def take(self, now: float) -> Optional[Plan]:
        """The next frame to run and how, removed from the queue; None if nothing can run yet
        (the chosen frame is still being read, or every stream frame is still waiting)."""
        if not self.pending:
            return None
        following: Dict[int, Head] = {}
        for head in self.heads:
            if head.frame is not None:
                held = following.get(head.frame + 1)
                if held is None or (head.exact and not held.exact):
                    following[head.frame + 1] = head
        successors = [entry for frame, entry in self.pending.items() if frame in following]
        if successors:
            ready = [entry for entry in successors if entry.prepared]
            if not ready:
                return None
            # Oldest first: interleaved chunks take turns instead of the lowest frame starving the rest.
            entry = min(ready, key=lambda e: (e.arrived, e.frame))
            head = following[entry.frame]
            if not head.exact and self._exact_jump(entry.frame):
                return self._plan_jump(entry.frame, now)  # exactness first: pre-roll an exact state
            return self._plan(entry.frame, head, False, [], "sequence", head.exact, "continued")
        for frame in sorted(self.pending):
            if not self.sequence and self._waiting(frame, now):
                continue
            return self._plan_jump(frame, now) if self.pending[frame].prepared else None
        return None

    def put_back(self, plan: Plan) -> None:
        """Undo ``take`` (the caller chose not to run the plan now): the frame is queued again as it
        was. ``take`` changes nothing else, so the next ``take`` plans it the same way."""
        self.pending[plan.frame] = plan.pending

    def _exact_jump(self, frame: int) -> bool:
        """Whether a sequence clip can make ``frame`` exact by pre-roll: from an exact state or
        its first frame, within the pre-roll limit."""
        if not self.sequence:
            return False
        first = self.first_frame
        if first is not None and first <= frame <= first + self.preroll_limit:
            return True
        return any(h.exact and h.frame is not None and 0 < frame - 1 - h.frame <= self.preroll_limit
                   for h in self.heads)

    def _waiting(self, frame: int, now: float) -> bool:
        if frame == self.first_frame:
            return False
        return frame - 1 in self.pending or now < self.pending[frame].arrived + self.wait_s

    def _plan_jump(self, frame: int, now: float) -> Plan:
        """A frame that follows no head: a cold start, or a pre-roll on (a clone of) a head."""
        first = self.first_frame
        if frame == first:
            return self._plan(frame, self._new_head(now), True, [], "sequence", True, "new")
        if not self.sequence:
            return self._plan(frame, self._new_head(now), True, [], "cold", False, "new")
        near = [h for h in self.heads if h.frame is not None and 0 < frame - 1 - h.frame <= self.preroll_limit]
        exact = [h for h in near if h.exact]
        if exact:
            return self._preroll_on(max(exact, key=lambda h: h.frame or 0), frame, now)
        if first is not None and first < frame <= first + self.preroll_limit:
            return self._plan(frame, self._new_head(now), True, list(range(first, frame)), "preroll", True, "new")
        if near:
            return self._preroll_on(max(near, key=lambda h: h.frame or 0), frame, now)
        if first is None:
            plan = self._plan(frame, self._new_head(now), True, [], "cold", False, "new")
            plan.probe = True
            return plan
        start = max(first, frame - self.cold_preroll) if frame > first else frame
        return self._plan(frame, self._new_head(now), True, list(range(start, frame)),
                          "preroll" if start < frame else "cold", start == first, "new")

    def _preroll_on(self, head: Head, frame: int, now: float) -> Plan:
        assert head.frame is not None
        frames = list(range(head.frame + 1, frame))
        if not self.live(head, now):
            return self._plan(frame, head, False, frames, "preroll", head.exact, "continued")
        clone = self._new_head(now, keep=head)
        plan = self._plan(frame, clone, False, frames, "preroll", head.exact, "cloned")
        plan.clone_of = head
        return plan

    def resolve_cold_start(self, plan: Plan, exists: Callable[[int], bool]) -> None:
        """Fill in a probing plan's pre-roll from ``cold_start`` (outside the lock: it stats files)."""
        start, exact = cold_start(plan.frame, self.first_frame, self.preroll_limit, self.cold_preroll, exists)
        plan.preroll = list(range(start, plan.frame))
        plan.exact = exact
        plan.how = "preroll" if plan.preroll else ("sequence" if exact else "cold")
        plan.probe = False

    def _plan(self, frame: int, head: Head, cold: bool, preroll: List[int], how: str, exact: bool, use: str) -> Plan:
        return Plan(self.pending.pop(frame), head, cold, preroll, how, exact, use)

    def _new_head(self, now: float, keep: Optional[Head] = None) -> Head:
        if len(self.heads) < self.max_heads:
            return Head(next(self._ids))
        # Reuse the least recently used state, idle ones first; its engine state is reset or
        # overwritten before the run. ``keep`` (the head being cloned) is never the one reused.
        others = [h for h in self.heads if h is not keep] or self.heads
        return min(others, key=lambda h: (self.live(h, now), h.last_used))

    # -- outcome -------------------------------------------------------------------------------
    def finish(self, plan: Plan, ok: bool, now: float) -> List[int]:
        """Record a run: on success the head holds ``plan.frame``; on failure it is dropped (its
        state is unknown) and the next frame that needs it starts again. Returns the ids of
        heads dropped (so their engine states can go)."""
        head = plan.head
        if not ok:
            self.heads = [h for h in self.heads if h.id != head.id]
            return [head.id]
        head.frame, head.exact, head.last_used = plan.frame, plan.exact, now
        if all(h.id != head.id for h in self.heads):
            self.heads.append(head)
        self.made.add(plan.frame)
        # Two heads on one frame: keep one, the exact one if there is one.
        twins = [h for h in self.heads if h.frame == plan.frame and h.id != head.id]
        dropped = [h.id for h in twins if head.exact or not h.exact]
        self.heads = [h for h in self.heads if h.id not in dropped]
        if any(h.exact for h in twins) and not head.exact:
            self.heads = [h for h in self.heads if h.id != head.id]
            dropped.append(head.id)
        return dropped

    def upstream_changed(self, frame: int) -> None:
        """Frame ``frame``'s source changed since it was made: states at or past it came from the
        old pixels, so they are no longer exact."""
        for head in self.heads:
            if head.frame is not None and head.frame >= frame:
                head.exact = False

    def drop_heads(self, ids: Optional[Set[int]] = None) -> List[int]:
        """Forget recurrent states (memory eviction): those in ``ids``, or all. Queued frames stay."""
        dropped = [h.id for h in self.heads if ids is None or h.id in ids]
        self.heads = [h for h in self.heads if h.id not in dropped]
        return dropped

    def describe(self) -> List[Dict[str, Any]]:
        return [{"frame": head.frame, "exact": head.exact} for head in self.heads]
