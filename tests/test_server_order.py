"""Frame order on one clip: which frame runs next and from which recurrent state."""

from __future__ import annotations

from bridge_server.frame_order import ClipOrder, cold_start


def queue(order, frame, now=0.0, prepared=True):
    entry, _ = order.add(frame, f"ticket-{frame}", now)
    entry.prepared = prepared
    return entry


def run(order, now=0.0):
    """Take the next plan and record it as done; returns (frame, how, preroll, exact)."""
    plan = order.take(now)
    if plan is None:
        return None
    if plan.probe:
        order.resolve_cold_start(plan, lambda frame: frame >= 1001)
    order.finish(plan, True, now)
    return plan.frame, plan.how, plan.preroll, plan.exact


def test_frames_in_order_continue_the_held_state():
    order = ClipOrder(sequence=True, first_frame=1001)
    for frame in (1001, 1002, 1003):
        queue(order, frame)
    assert [run(order) for _ in range(3)] == [
        (1001, "sequence", [], True), (1002, "sequence", [], True), (1003, "sequence", [], True)]


def test_queued_frames_run_in_frame_order_whatever_order_they_arrived_in():
    order = ClipOrder(sequence=True, first_frame=1001)
    for frame in (1003, 1001, 1002):
        queue(order, frame)
    assert [run(order)[0] for _ in range(3)] == [1001, 1002, 1003]


def test_a_jump_ahead_within_the_limit_prerolls_the_gap_from_the_held_state():
    order = ClipOrder(sequence=True, first_frame=1001, preroll_limit=8, cold_preroll=2)
    queue(order, 1001)
    run(order)
    queue(order, 1005)
    assert run(order) == (1005, "preroll", [1002, 1003, 1004], True)


def test_a_jump_past_the_limit_starts_cold_a_fixed_number_of_frames_before():
    order = ClipOrder(sequence=True, first_frame=1001, preroll_limit=8, cold_preroll=3)
    queue(order, 1001)
    run(order)
    queue(order, 1050)
    assert run(order) == (1050, "preroll", [1047, 1048, 1049], False)


def test_a_cold_clip_prerolls_from_its_first_frame_when_that_is_close():
    order = ClipOrder(sequence=True, first_frame=1001, preroll_limit=8, cold_preroll=2)
    queue(order, 1004)
    assert run(order) == (1004, "preroll", [1001, 1002, 1003], True)


def test_without_a_declared_first_frame_the_start_is_found_on_disk():
    assert cold_start(1004, None, 8, 2, lambda f: f >= 1001) == (1001, True)
    assert cold_start(1100, None, 8, 2, lambda f: f >= 1001) == (1098, False)
    assert cold_start(1001, None, 8, 2, lambda f: f >= 1001) == (1001, True)


def test_going_back_without_a_cached_plate_prerolls_again_on_a_new_state():
    order = ClipOrder(sequence=True, first_frame=1001, preroll_limit=8, cold_preroll=2)
    for frame in (1001, 1002, 1003, 1004):
        queue(order, frame)
        run(order)
    queue(order, 1003)
    plan = order.take(0.0)
    assert plan.cold and plan.probe
    order.resolve_cold_start(plan, lambda frame: True)
    assert (plan.preroll, plan.exact, plan.how) == ([1001, 1002], True, "preroll")


def test_interleaved_chunks_keep_a_state_each():
    order = ClipOrder(sequence=True, first_frame=1, preroll_limit=4, cold_preroll=2, max_heads=2)
    made = []
    for a, b in zip(range(1, 6), range(51, 56)):
        queue(order, a)
        made.append(run(order, now=a))
        queue(order, b)
        made.append(run(order, now=b))
    chunk_b = [entry for entry in made if entry[0] > 50]
    assert chunk_b[0] == (51, "preroll", [49, 50], False)
    assert all(how == "sequence" and preroll == [] for _, how, preroll, _ in chunk_b[1:])
    assert all(entry[1] == "sequence" and entry[3] for entry in made if entry[0] < 50)


def test_the_least_recently_used_state_is_reused_when_the_clip_has_its_fill():
    order = ClipOrder(sequence=True, first_frame=1, preroll_limit=2, cold_preroll=0, max_heads=2)
    for now, frame in enumerate((1, 20, 40)):
        queue(order, frame)
        run(order, now=float(now))
    assert sorted(head.frame for head in order.heads) == [20, 40]


def test_a_frame_still_being_read_holds_back_the_frames_after_it():
    order = ClipOrder(sequence=True, first_frame=1001)
    queue(order, 1001)
    run(order)
    queue(order, 1002, prepared=False)
    queue(order, 1003)
    assert order.take(0.0) is None


def test_a_failed_frame_drops_its_state_so_the_next_starts_fresh():
    order = ClipOrder(sequence=True, first_frame=1001)
    queue(order, 1001)
    run(order)
    queue(order, 1002)
    plan = order.take(0.0)
    order.finish(plan, False, 0.0)
    assert order.heads == []


def test_requests_for_the_same_queued_frame_share_one_run():
    order = ClipOrder(sequence=True, first_frame=1001)
    first, new_first = order.add(1001, "a", 0.0)
    second, new_second = order.add(1001, "b", 0.0)
    assert first is second and (new_first, new_second) == (True, False)
    assert first.tickets == ["a", "b"]


def test_an_inline_frame_ahead_waits_for_the_frames_before_it():
    order = ClipOrder(sequence=False, first_frame=1001, wait_s=2.0)
    queue(order, 1003, now=0.0)
    assert order.take(1.0) is None
    assert order.deadline(1.0) == 2.0
    queue(order, 1001, now=1.0)
    queue(order, 1002, now=1.0)
    assert [run(order, now=1.5) for _ in range(3)] == [
        (1001, "sequence", [], True), (1002, "sequence", [], True), (1003, "sequence", [], True)]


def test_an_inline_frame_goes_on_cold_once_its_wait_is_over():
    order = ClipOrder(sequence=False, first_frame=1001, wait_s=2.0)
    queue(order, 1003, now=0.0)
    queue(order, 1004, now=0.5)
    assert order.take(1.9) is None
    assert run(order, now=2.1) == (1003, "cold", [], False)
    assert run(order, now=2.1) == (1004, "sequence", [], False)


def test_an_inline_frame_whose_predecessor_was_already_made_does_not_wait():
    order = ClipOrder(sequence=False, first_frame=1001, wait_s=60.0)
    for frame in (1001, 1002, 1003):
        queue(order, frame)
        run(order)
    queue(order, 1002)  # sent again after its plate was lost: 1001 will not come again
    assert run(order, now=0.1) == (1002, "cold", [], False)
    assert sorted(head.frame for head in order.heads) == [1002, 1003]


def test_the_first_frame_of_an_inline_clip_runs_at_once():
    order = ClipOrder(sequence=False, first_frame=1001, wait_s=60.0)
    queue(order, 1001)
    assert run(order) == (1001, "sequence", [], True)
