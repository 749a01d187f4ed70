"""Inline frames through shared memory on one host: the same plates and outputs as over ZeroMQ,
nothing left behind when a client or the bridge is killed, and a hostile client's segments
refused by name while the bridge serves on. Real bridges, real sockets, real memfds (Linux)."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from bridge_server.client import BridgeClient, InlineFrame
from bridge_server.client.errors import BadBuffer, BridgeTimeout, SharedMemoryRefused, UnknownSegment
from bridge_server.client.protocol import Request, SharedAttach, SharedImage
from bridge_server.commands.status import format_status
from bridge_server.shared_segments import SharedSegments

from .test_server_support import FIRST, SIZE, has_a_person, same_plate, shot_frames, start_bridge, to_linear

pytestmark = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="shared memory is Linux-only")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
LIMIT = 64 * 1024 ** 2


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("shared"))
    server = start_bridge(root, "--shared-memory", str(LIMIT))
    yield SimpleNamespace(root=root, server=server, address=server.address)
    assert server.stop() == 0, server.log_tail()


def frames(count=6, dtype="float32", channels=3):
    images = []
    for rgb in shot_frames(count):
        pixels = to_linear(rgb)
        if channels == 4:
            pixels = np.concatenate([pixels, np.ones_like(pixels[..., :1])], axis=-1)
        data = np.ascontiguousarray(pixels, dtype=np.float16 if dtype == "float16" else np.float32)
        images.append(InlineFrame(data.tobytes(), SIZE, SIZE, channels, dtype))
    return [(FIRST + index, None, image) for index, image in enumerate(images)]


def segments_of(client, pid):
    return [segment for segment in client.status()["shared_memory"]["segments"] if segment["pid"] == pid]


def memfds_open():
    return [name for name in os.listdir("/proc/self/fd") if _link(f"/proc/self/fd/{name}").startswith("/memfd:")]


def _link(path):
    try:
        return os.readlink(path)
    except OSError:
        return ""


def test_a_stream_clip_through_shared_memory_makes_the_zeromq_paths_plates_and_outputs_bit_for_bit(bridge):
    made = {}
    for shared in (True, False):
        alpha = os.path.join(bridge.root, f"shared-{shared}", "alpha.####.exr")
        with BridgeClient(bridge.address, timeout=60, shared_memory=shared) as client:
            clip = client.open_clip(f"stream-{shared}", first_frame=FIRST, inline_outputs=True, inline_dtype="float32",
                                    outputs={"alpha": alpha})
            made[shared] = (alpha, list(clip.frames(frames(), window=3)))
            again = clip.frame(FIRST + 2, image=frames()[2][2])  # scrubbing back: served from the cache
            assert again.how == "cache" and again.images["alpha"].data == made[shared][1][2].images["alpha"].data
            lent = segments_of(client, os.getpid())
            assert bool(lent) is shared and client.shared_memory_note == ("" if shared else
                                                                          "shared memory is off for this client")
            clip.close()
        assert all(("shared_in" in result.timings) is shared for result in made[shared][1])
    with BridgeClient(bridge.address, timeout=10) as client:
        assert segments_of(client, os.getpid()) == []  # close let the memory go
    (alpha_shm, through_shm), (alpha_zmq, through_zmq) = made[True], made[False]
    assert [(r.how, r.exact) for r in through_shm] == [("sequence", True)] * 6
    for shm, zmq in zip(through_shm, through_zmq):
        assert same_plate(alpha_shm, alpha_zmq, shm.frame)
        for name in ("alpha", "foreground"):
            a, b = shm.images[name], zmq.images[name]
            assert type(a.data) is type(b.data) is bytes
            assert (a.data, a.height, a.width, a.channels, a.dtype) == (b.data, b.height, b.width, b.channels, b.dtype)
    assert has_a_person(np.frombuffer(through_shm[-1].images["alpha"].data, np.float32).reshape(SIZE, SIZE, 1))
    assert memfds_open() == []


def test_a_host_that_keeps_its_own_buffers_gets_each_frames_outputs_there_both_ways(bridge):
    """A host reusing its image buffers from frame to frame (``into``) gets the outputs copied
    there, equal to the outputs handed over as new bytes; a buffer of the wrong size is named."""
    from bridge_server.client import FrameRequest
    from bridge_server.client.errors import BadParameter

    for shared in (True, False):
        with BridgeClient(bridge.address, timeout=60, shared_memory=shared) as client:
            clip = client.open_clip(f"into-{shared}", first_frame=FIRST, inline_outputs=True, inline_dtype="float32")
            fresh = list(clip.frames(frames(count=3), window=2))
            clip.close()
            clip = client.open_clip(f"into-again-{shared}", first_frame=FIRST, inline_outputs=True,
                                    inline_dtype="float32")
            alpha, foreground = np.zeros((SIZE, SIZE, 1), np.float32), np.zeros((SIZE, SIZE, 3), np.float32)
            kept = {"alpha": alpha, "foreground": foreground}
            for want, (number, _, image) in zip(fresh, frames(count=3)):
                got = next(clip.frames([FrameRequest(number, image=image, into=kept)], window=1))
                assert got.images["alpha"].data is alpha and got.images["foreground"].data is foreground
                assert alpha.tobytes() == want.images["alpha"].data
                assert foreground.tobytes() == want.images["foreground"].data
            assert ("shared_in" in got.timings) is shared
            with pytest.raises(BadParameter, match="into\\['alpha'\\] holds 4 bytes"):
                clip.frame(FIRST + 3, image=frames(count=4)[3][2], into={"alpha": bytearray(4)})
            clip.close()


def test_a_bridge_that_lost_the_clients_segment_is_lent_it_again_and_the_frames_go_on(bridge):
    with BridgeClient(bridge.address, timeout=60) as client:
        clip = client.open_clip("relent", first_frame=FIRST, inline_outputs=True)
        items = frames(count=4, dtype="float16", channels=4)
        first = list(clip.frames(items[:2], window=2))
        lost = client.shared.segments[0]
        with BridgeClient(bridge.address, timeout=10, shared_memory=False) as other:
            other.call("detach_shared", {"segment": lost.id, "token": lost.token})
        rest = list(clip.frames(items[2:], window=2))
        assert [r.how for r in first + rest] == ["sequence"] * 4
        assert all("shared_in" in r.timings for r in rest) and client.shared.segments[0].id != lost.id
        assert len(segments_of(client, os.getpid())) == 1


KILLED_CLIENT = """
import sys, numpy as np
from bridge_server.client import BridgeClient, InlineFrame
client = BridgeClient(sys.argv[1], timeout=60)
clip = client.open_clip("doomed", first_frame=1001, inline_outputs=True)
image = InlineFrame(np.full((128, 128, 3), 0.25, np.float32).tobytes(), 128, 128, 3)
frame = 1001
while True:
    for result in clip.frames([(frame + n, None, image) for n in range(3)], window=3):
        pass
    frame += 3
    print("lent", client.shared.segments[0].id, flush=True)
"""


def test_a_client_killed_mid_run_leaves_nothing_behind_and_the_bridge_lets_its_segment_go(bridge):
    before = set(os.listdir("/dev/shm"))
    env = dict(os.environ, PYTHONPATH=REPO)
    doomed = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, bridge.address], stdout=subprocess.PIPE, env=env,
                              text=True)
    try:
        assert doomed.stdout.readline().startswith("lent"), "the client never sent a frame through shared memory"
        with BridgeClient(bridge.address, timeout=10) as watcher:
            assert len(segments_of(watcher, doomed.pid)) == 1
            assert f"process {doomed.pid}" in format_status(bridge.address, watcher.status())  # rvm-bridge status
            dropped = watcher.status()["shared_memory"]["dropped"]
            doomed.send_signal(signal.SIGKILL)  # mid-run: frames in flight, nothing cleaned up
            deadline = time.monotonic() + 5
            while segments_of(watcher, doomed.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            status = watcher.status()
            assert segments_of(watcher, doomed.pid) == [], "the bridge still maps a dead client's memory"
            assert status["shared_memory"]["dropped"] == dropped + 1
            assert any(f"process {doomed.pid}" in line for line in status["shared_memory"]["recent"])
            assert status["internal_errors"] == 0
    finally:
        doomed.kill()
        doomed.wait()
    assert set(os.listdir("/dev/shm")) == before
    with BridgeClient(bridge.address, timeout=60) as client:  # and serves on, through shared memory
        clip = client.open_clip("after", first_frame=FIRST, inline_outputs=True)
        assert "shared_in" in clip.frame(FIRST, image=frames(1)[0][2]).timings


def test_a_killed_bridge_fails_the_next_call_in_time_and_close_frees_the_segments_at_once(tmp_path):
    server = start_bridge(str(tmp_path))
    try:
        client = BridgeClient(server.address, timeout=3, retries=1)
        clip = client.open_clip("orphan", first_frame=FIRST, inline_outputs=True)
        items = frames(count=4)
        list(clip.frames(items[:2]))
        assert client.shared.segments and memfds_open()
        server.process.kill()
        server.process.wait()
        started = time.monotonic()
        with pytest.raises(BridgeTimeout):
            list(clip.frames(items[2:]))
        assert time.monotonic() - started < 6
        started = time.monotonic()
        client.close()
        assert time.monotonic() - started < 0.5  # no detach waits on a bridge known to be gone
        assert memfds_open() == [] and client.shared.segments == []
    finally:
        server.stop()


def test_a_bridge_without_shared_memory_gets_inline_frames_over_zeromq(tmp_path, monkeypatch):
    server = start_bridge(str(tmp_path), "--no-shared-memory")
    try:
        with BridgeClient(server.address, timeout=60) as client:
            assert client.hello()["shared_memory"] is False
            clip = client.open_clip("plain", first_frame=FIRST, inline_outputs=True)
            results = list(clip.frames(frames(count=2)))
            assert [r.how for r in results] == ["sequence"] * 2 and "shared_in" not in results[0].timings
            assert "offers no shared memory" in client.shared_memory_note and memfds_open() == []
            shared = client.status()["shared_memory"]
            assert shared["offered"] is False and shared["segments"] == []
        monkeypatch.setenv("RVM_BRIDGE_SHARED_MEMORY", "0")
        assert BridgeClient(server.address).shared is None
    finally:
        assert server.stop() == 0, server.log_tail()


# -- a hostile or broken client ----------------------------------------------------------------

def memfd(nbytes=4096 + 65536, seals=SEALS, token=b"\x0f" * 16):
    fd = os.memfd_create("hostile", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, nbytes)
    os.pwrite(fd, token, 0)
    if seals:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


def attach(client, fd, nbytes=4096 + 65536, pid=None, token="0f" * 16):
    return client.call("attach_shared", {"pid": pid or os.getpid(), "fd": fd, "bytes": nbytes, "token": token})[0]


OTHER_PROCESS = """
import os, fcntl, sys, time
fd = os.memfd_create("theirs", os.MFD_ALLOW_SEALING)
os.ftruncate(fd, 69632)
os.pwrite(fd, os.urandom(16), 0)
fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
print(fd, flush=True)
time.sleep(60)
"""


def test_a_hostile_clients_segments_and_regions_are_refused_by_name_and_the_bridge_serves_on(bridge, tmp_path):
    opened = []

    def keep(fd):
        opened.append(fd)
        return fd

    other = subprocess.Popen([sys.executable, "-c", OTHER_PROCESS], stdout=subprocess.PIPE, text=True)
    pipe_read, pipe_write = os.pipe()
    opened += [pipe_read, pipe_write]
    sock = socket.socket()
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"\x0f" * (4096 + 65536))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lookalike = f"/memfd:rvm-bridge-test-{os.getpid()}"  # a real file named like a memfd (needs root)
    try:
        theirs = int(other.stdout.readline())
        refused = {
            "unsealed memfd": (dict(fd=keep(memfd(seals=0))), "not sealed against shrinking"),
            "memfd that may grow": (dict(fd=keep(memfd(seals=fcntl.F_SEAL_SHRINK))), "not sealed"),
            "size not as announced": (dict(fd=keep(memfd()), nbytes=4096 + 4096), "not the 8192 announced"),
            "token mismatch": (dict(fd=keep(memfd(token=b"\x01" * 16))), "token"),
            "sealed against writing": (dict(fd=keep(memfd(seals=SEALS | fcntl.F_SEAL_WRITE))), "cannot map"),
            "a plain file": (dict(fd=keep(os.open(plain, os.O_RDWR))), "not a memfd"),
            "/dev/zero": (dict(fd=keep(os.open("/dev/zero", os.O_RDWR))), "not a memfd"),
            "a pipe": (dict(fd=pipe_read), "not a memfd"),
            "a socket": (dict(fd=sock.fileno()), "not a memfd"),
            "an fd that is not open": (dict(fd=999_999), "cannot see"),
            "a process that is gone": (dict(fd=0, pid=dead.pid), "no process"),
            "another process's memfd": (dict(fd=theirs, pid=other.pid), "token"),
            "over the bridge's limit": (dict(fd=keep(memfd(LIMIT + 4096)), nbytes=LIMIT + 4096), "limit"),
        }
        if os.access("/", os.W_OK):
            with open(lookalike, "wb") as named:
                named.write(b"\x0f" * (4096 + 65536))
            refused["a file named like a memfd"] = (dict(fd=keep(os.open(lookalike, os.O_RDWR))), "not a memfd")
        try:  # its faults can SIGBUS when no huge page is free; its token is never written, nor read
            huge = os.memfd_create("huge", os.MFD_HUGETLB | os.MFD_ALLOW_SEALING)
            os.ftruncate(huge, 2 << 20)
            fcntl.fcntl(huge, fcntl.F_ADD_SEALS, SEALS)
            refused["a huge-page memfd"] = (dict(fd=keep(huge), nbytes=2 << 20), "huge-page")
        except OSError:
            pass  # no hugetlbfs here
        with BridgeClient(bridge.address, timeout=30, shared_memory=False) as hostile:
            for story, (asked, phrase) in refused.items():
                with pytest.raises(SharedMemoryRefused) as caught:
                    attach(hostile, **asked)
                assert phrase in caught.value.message, (story, caught.value.message)
            fd = keep(memfd())
            with pytest.raises(PermissionError):
                os.ftruncate(fd, 4096)  # the seal the bridge insists on: the client cannot shrink it
            segment = attach(hostile, fd)["segment"]
            clip = hostile.open_clip("hostile", first_frame=FIRST, inline_outputs=True)
            shape = [SIZE // 4, SIZE // 4, 3]
            source = {"segment": segment, "offset": 4096, "shape": shape, "dtype": "float16"}
            outputs = {"segment": segment, "offset": 4096 + 8192, "bytes": 8192}

            def frame(source=source, outputs=outputs):
                return hostile.call("frame", {"clip": "hostile", "frame": FIRST, "source": {"shared": source},
                                              "shared_outputs": outputs})[0]

            for _story, asked, error in [
                    ("source past the end", dict(source=dict(source, offset=4096 + 65536 - 100)), BadBuffer),
                    ("outputs past the end", dict(outputs=dict(outputs, bytes=65536)), BadBuffer),
                    ("overlapping regions", dict(outputs=dict(outputs, offset=4096 + 64)), BadBuffer),
                    ("outputs too small", dict(outputs=dict(outputs, bytes=100)), BadBuffer),
                    ("an unknown segment", dict(source=dict(source, segment="feedfacefeedface")), UnknownSegment)]:
                with pytest.raises(error):
                    frame(**asked)
            with pytest.raises(UnknownSegment):
                hostile.call("detach_shared", {"segment": segment, "token": "01" * 16})
            mapped = os.fstat(fd).st_size
            pixels = np.full(shape, 0.5, np.float16).tobytes()
            os.pwrite(fd, pixels, 4096)
            reply = frame()
            alpha = reply["inline"]["alpha"]
            assert alpha["segment"] == segment and 4096 + 8192 <= alpha["offset"] < mapped
            assert hostile.status()["internal_errors"] == 0
            hostile.call("detach_shared", {"segment": segment, "token": "0f" * 16})
        with BridgeClient(bridge.address, timeout=60) as client:
            clip = client.open_clip("served-on", first_frame=FIRST, inline_outputs=True)
            assert "shared_in" in clip.frame(FIRST, image=frames(1)[0][2]).timings
    finally:
        other.kill()
        other.wait()
        sock.close()
        for fd in opened:
            os.close(fd)
        if os.path.exists(lookalike):
            os.remove(lookalike)



def test_a_segment_detached_under_its_own_queued_frame_counts_against_the_limit_until_the_frame_lets_go():
    # A hostile client lends 64 KiB, queues a frame on it, detaches and lends again, over and over:
    # each queued frame keeps its segment mapped, so the bridge must count it until it is unmapped.
    nbytes = 4096 + 65536
    shared = SharedSegments(nbytes + nbytes // 2)
    first, second = memfd(nbytes), memfd(nbytes)
    try:
        lent = shared.attach(SharedAttach(os.getpid(), first, nbytes, "0f" * 16))["segment"]
        queued = Request("frame", "f-1", shared=SharedImage(lent, 4096, (16, 16, 3), "float16"))
        shared.bind(queued, None)
        shared.detach(lent, "0f" * 16)
        with pytest.raises(SharedMemoryRefused, match="limit"):
            shared.attach(SharedAttach(os.getpid(), second, nbytes, "0f" * 16))
        assert shared.describe()["bytes"] == nbytes
        queued.buffers = [shared.copy_out(queued.buffers[0])]  # the reader's copy: the view goes
        assert shared.attach(SharedAttach(os.getpid(), second, nbytes, "0f" * 16))["bytes"] == nbytes
        assert shared.describe()["closing_bytes"] == 0
    finally:
        shared.close_all()
        os.close(first)
        os.close(second)
