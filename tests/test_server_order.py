"""Frame order on a real bridge, told as a compositor or a TD lives it: looks checked cold, farm
chunks interleaving, scrubbing, jumps, re-renders after an upstream change, and the promise
that a render in frame order from the first frame is the batch render, bit for bit."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from bridge_server.client import BridgeClient, InlineFrame
from bridge_server.client.protocol import encode, request_header

from .test_server_support import FIRST, RawPeer, frame_path, reference_render, same_plate, start_bridge, write_shot

FRAMES = list(range(FIRST, FIRST + 12))


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("order"))
    pattern = write_shot(os.path.join(root, "plates"), count=len(FRAMES))
    other = write_shot(os.path.join(root, "other"), count=2, name="other")  # another plate for frame 1001
    reference = reference_render(pattern, FRAMES, os.path.join(root, "reference"))
    return SimpleNamespace(root=root, pattern=pattern, other=other, reference=reference["alpha"])


@pytest.fixture(scope="module")
def bridge(shot):
    server = start_bridge(shot.root, "--inline-wait", "1.0", "--preroll-limit", "6", "--cold-preroll", "2")
    yield server
    assert server.stop() == 0, server.log_tail()


@pytest.fixture
def client(bridge):
    with BridgeClient(bridge.address, timeout=60, name="pytest") as connection:
        yield connection


def output(shot, name):
    return os.path.join(shot.root, name, "alpha.####.exr")


def open_sequence(client, shot, name, clip_id=None, **settings):
    settings.setdefault("first_frame", FIRST)
    return client.open_clip(clip_id, source=shot.pattern, outputs={"alpha": output(shot, name)}, **settings)


def matches_reference(shot, name, frame):
    return same_plate(output(shot, name), shot.reference, frame)


def clip_status(client, clip_id):
    return next(clip for clip in client.status()["clips"] if clip["clip"] == clip_id)


def inline(shot, frame, scale=1.0):
    from rvm_engine.plates import read_plate

    rgb = np.ascontiguousarray(read_plate(frame_path(shot.pattern, frame)).pixels * scale, np.float32)
    return InlineFrame(rgb.tobytes(), rgb.shape[0], rgb.shape[1], 3, "float32")


def test_a_frame_matted_cold_to_check_a_look_does_not_spoil_the_render_in_order(shot, client):
    clip = open_sequence(client, shot, "look")
    look = clip.frame(FRAMES[-2])
    assert (look.how, look.exact) == ("preroll", False)
    results = list(clip.frames(FRAMES))
    assert all(result.exact for result in results)
    again = results[-2]
    assert again.how == "sequence"  # made again, exact, instead of served from the cache
    assert all(matches_reference(shot, "look", frame) for frame in FRAMES)
    heads = clip_status(client, clip.id)["heads"]
    assert heads and all(head["exact"] for head in heads), heads  # the look's head was not kept


def test_an_inline_frame_matted_cold_first_is_made_again_when_its_predecessors_come(shot, client):
    clip = client.open_clip(first_frame=FIRST, outputs={"alpha": output(shot, "inline-look")})
    look = clip.frame(FRAMES[5], image=inline(shot, FRAMES[5]))
    assert (look.how, look.exact) == ("cold", False)
    results = list(clip.frames([(frame, None, inline(shot, frame)) for frame in FRAMES[:7]]))
    assert all(result.exact and result.how == "sequence" for result in results)
    assert all(matches_reference(shot, "inline-look", frame) for frame in FRAMES[:7])


def test_two_farm_chunks_interleave_on_one_clip_and_neither_restarts_cold(shot, bridge):
    chunks = {"A": FRAMES[:6], "B": FRAMES[6:]}
    results, errors = {}, []
    started = threading.Barrier(2)

    def render(name):
        try:
            with BridgeClient(bridge.address, timeout=120) as client:
                clip = open_sequence(client, shot, "chunks", "chunked-clip")
                started.wait(30)
                results[name] = [clip.frame(frame) for frame in chunks[name]]
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=render, args=(name,)) for name in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []
    for name, made in results.items():
        assert [r.frame for r in made] == chunks[name]
        assert all(r.how == "sequence" and r.head == "continued" for r in made[1:]), (name, made)
        assert all(r.exact for r in made)
    assert results["B"][0].head in ("cloned", "new")  # B never took over A's state
    assert all(matches_reference(shot, "chunks", frame) for frame in FRAMES)


def test_scrubbing_back_three_frames_serves_the_cached_plate(shot, client):
    clip = open_sequence(client, shot, "scrub")
    list(clip.frames(FRAMES[:5]))
    plate = frame_path(output(shot, "scrub"), FRAMES[1])
    written = os.stat(plate).st_mtime_ns
    again = clip.frame(FRAMES[1])
    assert (again.how, again.made_as, again.exact) == ("cache", "sequence", True)
    assert again.plates["alpha"] == plate and os.stat(plate).st_mtime_ns == written
    assert [head["frame"] for head in clip_status(client, clip.id)["heads"]] == [FRAMES[4]]


def test_asking_for_a_refresh_makes_a_cached_frame_again(shot, client):
    clip = open_sequence(client, shot, "refresh")
    list(clip.frames(FRAMES[:3]))
    plate = frame_path(output(shot, "refresh"), FRAMES[2])
    written = os.stat(plate).st_mtime_ns
    again = clip.frame(FRAMES[2], refresh=True)
    assert again.how != "cache" and again.exact
    assert os.stat(plate).st_mtime_ns != written and matches_reference(shot, "refresh", FRAMES[2])


def test_a_source_plate_rewritten_upstream_is_matted_again_and_later_plates_are_no_longer_trusted(shot, client):
    clip = open_sequence(client, shot, "upstream")
    list(clip.frames(FRAMES[:5]))
    source = frame_path(shot.pattern, FRAMES[1])
    stat = os.stat(source)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # re-rendered upstream
    again = clip.frame(FRAMES[1])
    assert again.how != "cache"
    later = clip.frame(FRAMES[4])
    assert later.how != "cache" and later.exact  # made again from the new upstream, exactly


def test_a_deleted_output_plate_is_made_again(shot, client):
    clip = open_sequence(client, shot, "deleted")
    list(clip.frames(FRAMES[:3]))
    os.remove(frame_path(output(shot, "deleted"), FRAMES[1]))
    again = clip.frame(FRAMES[1])
    assert again.how != "cache" and os.path.isfile(frame_path(output(shot, "deleted"), FRAMES[1]))
    assert matches_reference(shot, "deleted", FRAMES[1])


def test_jumping_ahead_prerolls_the_missing_frames_and_says_so(shot, client):
    clip = open_sequence(client, shot, "jump")
    clip.frame(FIRST)
    jumped = clip.frame(FIRST + 4)
    assert (jumped.how, jumped.preroll_frames, jumped.exact) == ("preroll", 3, True)
    assert jumped.timings["preroll"] > 0
    assert matches_reference(shot, "jump", FIRST + 4)
    assert not os.path.exists(frame_path(output(shot, "jump"), FIRST + 2))


def test_a_jump_past_the_preroll_limit_starts_cold_a_fixed_number_of_frames_before(shot, client):
    clip = open_sequence(client, shot, "far")
    far = clip.frame(FIRST + 11)
    assert (far.how, far.preroll_frames, far.exact) == ("preroll", 2, False)


def test_going_back_past_the_held_state_without_a_plate_prerolls_again_from_the_first_frame(shot, client):
    clip = open_sequence(client, shot, "back")
    assert clip.frame(FIRST + 5).how == "preroll"
    back = clip.frame(FIRST + 2)
    assert (back.how, back.preroll_frames, back.exact) == ("preroll", 2, True)
    assert matches_reference(shot, "back", FIRST + 2)


def test_strict_order_refuses_a_frame_that_would_need_preroll(shot, client):
    from bridge_server.client.errors import OrderError

    clip = open_sequence(client, shot, "strict")
    assert clip.frame(FIRST, strict=True).how == "sequence"
    with pytest.raises(OrderError):
        clip.frame(FIRST + 3, strict=True)
    assert clip.frame(FIRST + 1, strict=True).exact


def test_a_range_re_sent_out_of_order_after_an_upstream_change_waits_for_its_predecessors(shot, client):
    clip = client.open_clip(first_frame=FIRST, outputs={"alpha": output(shot, "resent")})
    list(clip.frames([(frame, None, inline(shot, frame)) for frame in FRAMES[:3]]))
    peer = RawPeer(client.address)
    try:
        for frame in (FRAMES[2], FRAMES[0], FRAMES[1]):  # render threads finish in their own order
            image = inline(shot, frame, scale=0.9)  # the grade changed upstream
            header = request_header("frame", f"resent-{frame}", clip=clip.id, frame=frame,
                                    source={"inline": image.spec()})
            peer.send(encode(header, [image.data]))
        replies = {reply["frame"]: reply for reply in (peer.reply(60)[0] for _ in range(3))}
    finally:
        peer.close()
    assert all(replies[frame]["made"]["how"] == "sequence" and replies[frame]["made"]["exact"]
               for frame in FRAMES[:3]), replies


def test_a_stream_clip_opened_without_a_first_frame_starts_where_it_is_sent_without_waiting(shot, client):
    clip = client.open_clip(outputs={"alpha": output(shot, "unstarted")})
    first = clip.frame(FRAMES[3], image=inline(shot, FRAMES[3]))
    assert (first.how, first.exact) == ("sequence", True)


def test_the_same_frame_sent_with_another_plate_is_made_from_that_plate_not_merged(shot, client):
    clip = client.open_clip(first_frame=FIRST, outputs={"alpha": output(shot, "two-sources")})
    peer = RawPeer(client.address)
    try:
        for name, pattern in (("a", shot.pattern), ("b", shot.other)):
            peer.send(encode(request_header("frame", f"two-{name}", clip=clip.id, frame=FIRST,
                                            source={"path": frame_path(pattern, FIRST)})))
        replies = {reply["id"]: reply for reply in (peer.reply(60)[0] for _ in range(2))}
    finally:
        peer.close()
    assert replies["two-a"]["ok"] and replies["two-b"]["ok"]
    assert clip_status(client, clip.id)["frames_run"] == 2  # one run per source, not one shared


def test_a_frame_asked_for_again_while_its_plate_is_being_written_waits_for_that_plate(shot):
    # Two artists on one shot: the second asks for the frame whose plate the first one's run is
    # writing. It is answered with that plate once written, not pre-rolled and matted again.
    from bridge_server.server import BridgeServer
    from bridge_server.server_config import ServerConfig

    server = BridgeServer(ServerConfig(roots=[shot.root], address="tcp://127.0.0.1:0", preload=(), threads=1))
    writing, release = threading.Event(), threading.Event()
    write = server.engine.write

    def held_write(*args, **kwargs):
        writing.set()
        release.wait(60)
        return write(*args, **kwargs)

    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    first, second, watcher = (BridgeClient(server.endpoint, timeout=60) for _ in range(3))
    replies = {}
    try:
        clips = [open_sequence(client, shot, "being-written", "shared-shot") for client in (first, second)]
        clips[0].frame(FIRST)
        server.engine.write = held_write
        ask = [threading.Thread(target=lambda n=n: replies.__setitem__(n, clips[n].frame(FIRST + 1))) for n in (0, 1)]
        ask[0].start()
        assert writing.wait(60)
        ask[1].start()
        # Once the second request is in and its clip has nothing queued or running, it has been planned.
        for _ in range(3000):
            status = clip_status(watcher, "shared-shot")
            if sum(r.op == "frame" for r in (job.request for job in list(server.in_flight.values()))) == 2 \
                    and not status["queued"] and not status["busy"]:
                break
            time.sleep(0.01)
        release.set()
        for thread in ask:
            thread.join(60)
        assert replies[1].preroll_frames == 0 and replies[1].plates == replies[0].plates, replies[1]
        assert clip_status(watcher, "shared-shot")["frames_run"] == 2  # frames 1001 and 1002, once each
        assert matches_reference(shot, "being-written", FIRST + 1)
    finally:
        release.set()
        for client in (first, second, watcher):
            client.close()
        server.stop()
        serving.join(30)
