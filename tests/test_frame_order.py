"""Frame order on one clip, as a compositor or a farm would drive it: which frame runs next,
from which recurrent state, and whether the matte is the exact one (pure logic, no server)."""

from __future__ import annotations

from bridge_server.frame_order import ClipOrder, cold_start


def queue(order, frame, now=0.0, prepared=True):
    entry, _ = order.add(frame, f"ticket-{frame}", now)
    entry.prepared = prepared
    return entry


def run(order, now=0.0):
    """Take the next plan and record it as done; returns (frame, how, preroll, exact, use)."""
    plan = order.take(now)
    if plan is None:
        return None
    if plan.probe:
        order.resolve_cold_start(plan, lambda frame: frame >= 1001)
    order.finish(plan, True, now)
    return plan.frame, plan.how, plan.preroll, plan.exact, plan.use


def heads(order):
    return sorted((head.frame, head.exact) for head in order.heads)


def test_frames_in_order_continue_the_held_state():
    order = ClipOrder(sequence=True, first_frame=1001)
    for frame in (1001, 1002, 1003):
        queue(order, frame)
    assert [run(order) for _ in range(3)] == [
        (1001, "sequence", [], True, "new"), (1002, "sequence", [], True, "continued"),
        (1003, "sequence", [], True, "continued")]


def test_queued_frames_run_in_frame_order_whatever_order_they_arrived_in():
    order = ClipOrder(sequence=True, first_frame=1001)
    for frame in (1003, 1001, 1002):
        queue(order, frame)
    assert [run(order)[0] for _ in range(3)] == [1001, 1002, 1003]


def test_a_jump_ahead_on_an_idle_state_prerolls_the_gap_on_that_state():
    order = ClipOrder(sequence=True, first_frame=1001, preroll_limit=8, cold_preroll=2, live_s=30.0)
    queue(order, 1001)
    run(order, now=0.0)
    queue(order, 1005, now=100.0)  # the state has not moved for 100 s: nobody is advancing it
    assert run(order, now=100.0) == (1005, "preroll", [1002, 1003, 1004], True, "continued")
    assert heads(order) == [(1005, True)]


def test_a_chunk_jumping_ahead_clones_the_state_another_chunk_is_still_advancing():
    # Chunk A renders 1, 2, 3 ...; chunk B starts at 5 while A is still going.
    order = ClipOrder(sequence=True, first_frame=1, preroll_limit=8, cold_preroll=2, max_heads=4)
    queue(order, 1, now=1.0)
    assert run(order, now=1.0)[4] == "new"
    queue(order, 2, now=1.1)
    queue(order, 5, now=1.1)
    assert run(order, now=1.2)[:2] == (2, "sequence")  # A's next frame follows its state
    b = run(order, now=1.3)
    assert b == (5, "preroll", [3, 4], True, "cloned")  # B pre-rolls a copy: A's state stays at 2
    assert heads(order) == [(2, True), (5, True)]
    queue(order, 3, now=1.4)
    queue(order, 6, now=1.4)
    assert sorted(run(order, now=1.5)[:2] for _ in range(2)) == [(3, "sequence"), (6, "sequence")]


def test_interleaved_chunks_take_turns_instead_of_the_lowest_frame_starving_the_other():
    order = ClipOrder(sequence=True, first_frame=1, preroll_limit=60, cold_preroll=2, max_heads=4)
    for frame in (1, 51):
        queue(order, frame)
        run(order, now=0.0)
    queue(order, 52, now=1.0)
    queue(order, 2, now=1.5)
    queue(order, 3, now=1.6)
    assert run(order, now=2.0)[0] == 52  # B asked first: A's lower frames do not jump the queue


def test_a_jump_past_the_limit_starts_cold_a_fixed_number_of_frames_before():
    order = ClipOrder(sequence=True, first_frame=1001, preroll_limit=8, cold_preroll=3)
    queue(order, 1001)
    run(order)
    queue(order, 1050)
    assert run(order) == (1050, "preroll", [1047, 1048, 1049], False, "new")


def test_a_cold_clip_prerolls_from_its_first_frame_when_that_is_close():
    order = ClipOrder(sequence=True, first_frame=1001, preroll_limit=8, cold_preroll=2)
    queue(order, 1004)
    assert run(order) == (1004, "preroll", [1001, 1002, 1003], True, "new")


def test_an_exact_route_from_the_first_frame_beats_a_non_exact_state_nearer_by():
    order = ClipOrder(sequence=True, first_frame=1001, preroll_limit=20, cold_preroll=2)
    queue(order, 1030)
    assert run(order, now=0.0)[3] is False  # past the limit: cold, not exact
    queue(order, 1015, now=100.0)
    plan = order.take(100.0)
    assert (plan.preroll[0], plan.exact) == (1001, True)


def test_an_exact_state_wins_over_another_state_at_the_same_frame():
    order = ClipOrder(sequence=False, first_frame=1001, wait_s=0.0)
    queue(order, 1003)
    assert run(order, now=0.0)[1:4] == ("cold", [], False)  # matted cold to check a look
    for frame in (1001, 1002, 1003):
        queue(order, frame, now=1.0)
        run(order, now=1.0)
    # Both states held 1003 for a moment; only the exact one is kept, and 1004 follows it.
    assert heads(order) == [(1003, True)]
    queue(order, 1004, now=2.0)
    assert run(order, now=2.0)[1:4] == ("sequence", [], True)


def test_two_states_meeting_on_a_frame_keep_the_exact_one_whichever_arrives_second():
    order = ClipOrder(sequence=False, first_frame=1, wait_s=0.0)
    for frame in (1, 2):
        queue(order, frame)
        run(order)
    queue(order, 4)
    run(order, now=1.0)  # cold at 4, not exact
    queue(order, 3, now=2.0)
    run(order, now=2.0)  # exact head to 3
    queue(order, 5, now=2.0)
    assert run(order, now=2.0)[1:4] == ("sequence", [], False)  # 5 follows the cold state at 4
    queue(order, 4, now=3.0)
    run(order, now=3.0)  # exact head to 4: the non-exact state at 5 stays (another frame)
    queue(order, 5, now=4.0)
    run(order, now=4.0)  # exact head reaches 5: the non-exact twin goes
    assert heads(order) == [(5, True)]


def test_without_a_declared_first_frame_the_start_is_found_on_disk():
    assert cold_start(1004, None, 8, 2, lambda f: f >= 1001) == (1001, True)
    assert cold_start(1100, None, 8, 2, lambda f: f >= 1001) == (1098, False)
    assert cold_start(1001, None, 8, 2, lambda f: f >= 1001) == (1001, True)


def test_going_back_without_a_cached_plate_prerolls_again_from_the_first_frame():
    order = ClipOrder(sequence=True, first_frame=1001, preroll_limit=8, cold_preroll=2)
    for frame in (1001, 1002, 1003, 1004):
        queue(order, frame)
        run(order)
    queue(order, 1003)
    plan = order.take(0.0)
    assert (plan.preroll, plan.exact, plan.how, plan.cold) == ([1001, 1002], True, "preroll", True)


def test_the_least_recently_used_idle_state_is_reused_when_the_clip_has_its_fill():
    order = ClipOrder(sequence=True, first_frame=1, preroll_limit=2, cold_preroll=0, max_heads=2, live_s=5.0)
    for now, frame in ((0.0, 1), (10.0, 20), (20.0, 40)):
        queue(order, frame, now=now)
        run(order, now=now)
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
    assert order.finish(plan, False, 0.0) == [plan.head.id]
    assert order.heads == []


def test_an_inline_frame_ahead_waits_for_the_frames_before_it():
    order = ClipOrder(sequence=False, first_frame=1001, wait_s=2.0)
    queue(order, 1003, now=0.0)
    assert order.take(1.0) is None
    assert order.deadline(1.0) == 2.0
    queue(order, 1001, now=1.0)
    queue(order, 1002, now=1.0)
    assert [run(order, now=1.5)[:4] for _ in range(3)] == [
        (1001, "sequence", [], True), (1002, "sequence", [], True), (1003, "sequence", [], True)]


def test_an_inline_frame_goes_on_cold_once_its_wait_is_over():
    order = ClipOrder(sequence=False, first_frame=1001, wait_s=2.0)
    queue(order, 1003, now=0.0)
    queue(order, 1004, now=0.5)
    assert order.take(1.9) is None
    assert run(order, now=2.1)[:4] == (1003, "cold", [], False)
    assert run(order, now=2.1)[:4] == (1004, "sequence", [], False)


def test_a_range_re_sent_out_of_order_after_an_upstream_change_waits_for_its_predecessors_again():
    order = ClipOrder(sequence=False, first_frame=1001, wait_s=60.0)
    for frame in (1001, 1002, 1003):
        queue(order, frame)
        run(order)
    order.upstream_changed(1001)
    queue(order, 1003, now=10.0)  # a render thread sends 1003 first; 1002 was made once, long ago
    assert order.take(10.1) is None
    queue(order, 1001, now=10.2)
    queue(order, 1002, now=10.2)
    assert [run(order, now=10.3)[:4] for _ in range(3)] == [
        (1001, "sequence", [], True), (1002, "sequence", [], True), (1003, "sequence", [], True)]


def test_the_first_frame_of_an_inline_clip_runs_at_once():
    order = ClipOrder(sequence=False, first_frame=1001, wait_s=60.0)
    queue(order, 1001)
    assert run(order)[:4] == (1001, "sequence", [], True)


def test_a_stream_clip_opened_without_a_first_frame_starts_at_the_first_frame_it_is_sent():
    order = ClipOrder(sequence=False, first_frame=None, wait_s=60.0)
    queue(order, 57)
    assert run(order, now=0.0)[:4] == (57, "sequence", [], True)
    assert order.first_frame == 57


def test_a_changed_source_makes_the_states_at_and_past_it_not_exact():
    order = ClipOrder(sequence=True, first_frame=1, preroll_limit=50)
    for frame in (1, 2, 3, 4):
        queue(order, frame)
        run(order)
    order.upstream_changed(3)
    assert heads(order) == [(4, False)]
    queue(order, 5)
    plan = order.take(0.0)
    assert (plan.preroll[0], plan.exact) == (1, True)  # made again from the first frame, exactly


def test_a_frame_put_back_by_a_batch_that_did_not_want_it_is_planned_the_same_way_again():
    # The bridge's batches take a clip's next plan and put it back when it is a pre-roll.
    order = ClipOrder(sequence=True, first_frame=1001, preroll_limit=10)
    queue(order, 1001)
    run(order)
    queue(order, 1005)
    queue(order, 1002)
    first = order.take(0.0)
    order.put_back(first)
    assert sorted(order.pending) == [1002, 1005]
    again = order.take(0.0)
    assert (again.frame, again.how, again.preroll, again.head.id, again.pending) == \
        (first.frame, first.how, first.preroll, first.head.id, first.pending)
    order.finish(again, True, 0.0)
    jump = order.take(0.0)
    order.put_back(jump)
    assert (run(order)[:3]) == (jump.frame, jump.how, jump.preroll) == (1005, "preroll", [1003, 1004])
