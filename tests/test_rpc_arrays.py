"""Tensor frames on the request/reply bus (ABI.md, "Tensor frames on the
request/reply bus"): call_array, reply_array and request_array write them;
rx.array() finds them by the payload's own header, since the type_id of a
request or reply is the user's msg_type. Two processes both ways with numpy
and torch; hostile headers from a fake callee; payloads that are no frame."""
import asyncio
import contextlib
import struct
import sys
import threading

import numpy as np
import pytest

import tachyon
from conftest import ISOLATED, torch
from test_rpc import fake_callee, peer_process, rpc_pair

sys.path.insert(0, str(ISOLATED))
import array_cases  # noqa: E402
import rpc_array_peer  # noqa: E402

HEADER = 192


def array_peer(mode, path):
    """tests/isolated/rpc_array_peer.py in mode, as test_rpc runs its peer."""
    return peer_process(mode, path, script="rpc_array_peer.py")


@pytest.fixture
def rpc(sock_path):
    callee, caller = rpc_pair(sock_path, cap=1 << 16)
    yield callee, caller
    caller.close()
    callee.close()


def same(got, want):
    return got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)


# ---------------------------------------------------------------------------
# two processes


@pytest.mark.torch
@pytest.mark.skipif(torch is None, reason="torch is not installed (the test extra installs it)")
def test_arrays_to_a_callee_in_another_process(sock_path):
    """This end calls: numpy by request_array and by call_array + wait, torch
    by call_array (the peer answers torch with torch); a plain request's
    reply is no frame."""
    cases = array_cases.numpy_cases()
    with array_peer("callee", sock_path) as peer:
        with tachyon.RpcBus.rpc_connect(sock_path, timeout=20) as bus:
            assert peer.stdout.readline().strip() == "listening"
            for i, (name, sent, want) in enumerate(cases):
                got = bus.request_array(sent, i, timeout=20)
                assert same(got, want), name
                assert not got.flags.writeable
                cid = bus.call_array(sent, i, timeout=20)
                with bus.wait(cid, timeout=20) as rx:
                    assert rx.type_id == i  # the user's msg_type, route 0
                    got = rx.array()
                    assert same(got, want), name
                    del got
            for i, (name, t) in enumerate(rpc_array_peer.torch_cases()):
                cid = bus.call_array(t, rpc_array_peer.TORCH_BASE + i, timeout=20)
                with bus.wait(cid, timeout=20) as rx:
                    got = torch.from_dlpack(rx.array()).clone()
                assert got.dtype == t.dtype and torch.equal(got, t.contiguous()), name
            cid = bus.call(b"plain bytes", 7, timeout=20)
            with bus.wait(cid, timeout=20) as rx:
                assert bytes(rx) == b"no frame"
                with pytest.raises(TypeError, match="holds no tensor frame"):
                    rx.array()
        assert peer.wait(20) == 0, peer.stderr.read()
    print(f"{len(cases)} numpy and {len(rpc_array_peer.torch_cases())} torch round trips")


@pytest.mark.torch
@pytest.mark.skipif(torch is None, reason="torch is not installed (the test extra installs it)")
def test_arrays_from_a_caller_in_another_process(sock_path):
    """The peer calls; this end serves with rx.array() and answers with
    reply_array, torch tensors to torch requests."""
    cases = array_cases.numpy_cases()
    tcases = rpc_array_peer.torch_cases()
    served = 0
    with array_peer("caller", sock_path) as peer:
        with tachyon.RpcBus.rpc_listen(sock_path, 1 << 16, 1 << 16, timeout=20) as bus:
            while True:
                try:
                    with bus.serve(timeout=30) as rx:
                        cid, mt = rx.correlation_id, rx.type_id
                        got = np.array(rx.array())
                except tachyon.PeerClosedError:
                    break
                if mt >= rpc_array_peer.TORCH_BASE:
                    name, t = tcases[mt - rpc_array_peer.TORCH_BASE]
                    assert torch.equal(torch.from_numpy(got), t.contiguous()), name
                else:
                    name, _, want = cases[mt]
                    assert same(got, want), name
                bus.reply_array(cid, rpc_array_peer.as_reply(got, mt), mt, timeout=20)
                served += 1
        out = peer.stdout.read()
        assert peer.wait(20) == 0, out + peer.stderr.read()
    lines = out.splitlines()
    print(f"served {served}; peer: {len(lines)} lines")
    assert served == len(cases) + len(tcases)
    assert len(lines) == served and all(line.endswith(" ok") for line in lines), out


# ---------------------------------------------------------------------------
# one process: what is and is not a frame


@pytest.mark.torch
@pytest.mark.skipif(torch is None, reason="torch is not installed (the test extra installs it)")
def test_request_and_reply_views_in_process(rpc):
    """A float64 2-D array there and a torch tensor back, 0-d and empty
    shapes; __dlpack__ of a frame view stays the flat payload."""
    callee, caller = rpc
    a = np.arange(12.0).reshape(3, 4)
    cid = caller.call_array(a, 5)
    with callee.serve(timeout=2) as rx:
        got = rx.array()
        assert same(got, a) and rx.type_id == 5
        flat = np.from_dlpack(rx)
        assert flat.dtype == np.uint8 and flat.shape == (HEADER + a.nbytes,)
        assert flat[:4].tobytes() == b"TFRM"
        del got, flat
    callee.reply_array(cid, torch.from_numpy(a).T * 2, 6)
    with caller.wait(cid, timeout=2) as rx:
        assert rx.type_id == 6 and same(rx.array(), a.T * 2)
    for arr in (np.array(3, dtype=np.int16), np.zeros((2, 0), dtype=np.float32),
                memoryview(b"\x01\x02\x03")):
        cid = caller.call_array(arr, 1)
        with callee.serve(timeout=2) as rx:
            assert same(rx.array(), np.asarray(arr))
        callee.reply(cid, b"", 1)
        with caller.wait(cid, timeout=2):
            pass


def test_request_array_async(rpc):
    """request_array_async: the reply's frame as a read-only array; a call
    cancelled while its reply is still to come leaves the next call its own
    reply; with the request ring full it waits for room, then goes out."""
    callee, caller = rpc
    stop = threading.Event()
    serving = threading.Event()
    serving.set()

    def serve_loop():
        while not stop.is_set():
            if not serving.wait(0.05):
                continue
            try:
                with callee.serve(timeout=0.05) as rx:
                    cid, arr = rx.correlation_id, rx.array() * 2
                callee.reply_array(cid, arr, 3, timeout=5)
            except tachyon.TachyonTimeoutError:
                pass

    t = threading.Thread(target=serve_loop)
    t.start()
    big = np.arange(4000, dtype=np.float64)  # 32 kB + header: one fits the 64 KiB ring at a time

    async def main():
        out = [await caller.request_array_async(np.arange(i * 3, dtype=np.int32).reshape(i, 3), 2,
                                                timeout=5) for i in range(1, 6)]
        serving.clear()
        await asyncio.sleep(0.1)  # the callee is paused now
        task = asyncio.ensure_future(caller.request_array_async(big, 2))
        await asyncio.sleep(0.05)  # sent, waiting for its reply
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # The cancelled request still sits in the ring: this one waits for room.
        late = asyncio.ensure_future(caller.request_array_async(big + 1, 2, timeout=5))
        await asyncio.sleep(0.1)
        waited = not late.done()
        serving.set()
        out.append(await late)
        return out, waited

    try:
        out, waited = asyncio.run(main())
    finally:
        stop.set()
        t.join()
    for i, got in enumerate(out[:5], 1):
        assert same(got, np.arange(i * 3, dtype=np.int32).reshape(i, 3) * 2)
        assert not got.flags.writeable
    assert same(out[5], (big + 1) * 2)
    assert waited


def test_payloads_that_are_no_frame_raise_type_error(rpc):
    """Plain bytes, and bytes that start with the magic but are shorter than
    a header, are no frame: TypeError, also from request_array."""
    callee, caller = rpc
    for payload in (b"hello", b"TFRM" + bytes(HEADER - 5), b""):
        cid = caller.call(payload, 3)
        with callee.serve(timeout=2) as rx:
            with pytest.raises(TypeError, match="holds no tensor frame"):
                rx.array()
        callee.reply(cid, payload, 3)
        with caller.wait(cid, timeout=2) as rx:
            with pytest.raises(TypeError, match="holds no tensor frame"):
                rx.array()

    def answer_with_bytes():
        with callee.serve(timeout=5) as rx:
            cid = rx.correlation_id
        callee.reply(cid, b"not an array", 2)

    t = threading.Thread(target=answer_with_bytes)
    t.start()
    with pytest.raises(TypeError, match="holds no tensor frame"):
        caller.request_array(np.ones(3), 2, timeout=5)
    t.join()
    with pytest.raises(TypeError, match="buffer protocol or __dlpack__"):
        caller.call_array(object(), 1)
    assert caller.call(b"next", 1) == 5  # the refused call used no id


def test_array_sends_keep_the_reply_order_and_sides(rpc):
    callee, caller = rpc
    with pytest.raises(tachyon.RoleError):
        callee.call_array(np.ones(1), 1)
    with pytest.raises(tachyon.RoleError):
        caller.reply_array(1, np.ones(1), 1)
    c1 = caller.call_array(np.ones(1), 1)
    c2 = caller.call_array(np.ones(2), 1)
    for _ in range(2):
        with callee.serve(timeout=2):
            pass
    with pytest.raises(ValueError, match="request order"):
        callee.reply_array(c2, np.ones(1), 1)
    with pytest.raises(ValueError, match="still wait for their replies"):
        caller.request_array(np.ones(1), 1, timeout=1)
    callee.reply_array(c1, np.ones(1), 1)
    callee.reply_array(c2, np.ones(2), 1)
    for cid, n in ((c1, 1), (c2, 2)):
        with caller.wait(cid, timeout=2) as rx:
            assert rx.array().shape == (n,)


# ---------------------------------------------------------------------------
# hostile headers from a callee written from the wire format


def frame_bytes(arr):
    """A valid frame of arr, written the way ABI.md lays it out."""
    arr = np.ascontiguousarray(arr)
    code = {"i": 0, "u": 1, "f": 2}[arr.dtype.kind]
    shape = list(arr.shape) + [0] * (8 - arr.ndim)
    head = struct.pack("<IHHBBHIQQ8q8q32x", 0x4D524654, 1, 0, code, arr.itemsize * 8, 1,
                       arr.ndim, HEADER, arr.nbytes, *shape, *[0] * 8)
    return head + arr.tobytes()


def patched(frame, fmt, offset, value):
    b = bytearray(frame)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


GOOD = frame_bytes(np.arange(6, dtype=np.float64).reshape(2, 3))
HOSTILE = {
    "version": patched(GOOD, "<H", 4, 2),
    "flags": patched(GOOD, "<H", 6, 0x80),
    "dtype": patched(GOOD, "<B", 8, 9),
    "lanes": patched(GOOD, "<H", 10, 4),
    "ndim": patched(GOOD, "<I", 12, 9),
    "data_offset": patched(GOOD, "<Q", 16, 100),
    "data_size": patched(GOOD, "<Q", 24, 1 << 40),
    "negative shape": patched(GOOD, "<q", 32, -2),
    "shape past the data": patched(GOOD, "<q", 40, 300),
    "reserved": patched(GOOD, "<B", 170, 1),
}


def test_hostile_frame_headers_on_the_reply_ring(sock_path):
    """Every header check of the core decoder holds on a reply: ValueError,
    no array made, no export left (the slot goes back, the ring goes on)."""
    with fake_callee(sock_path, cap=1 << 14) as (_, prod, t):
        with tachyon.RpcBus.rpc_connect(sock_path, timeout=5) as bus:
            t.join(5)
            cid = bus.call(b"q", 3)
            assert prod.try_send(GOOD, 3, correlation_id=cid)
            with bus.wait(cid, timeout=2) as rx:
                assert same(rx.array(), np.arange(6.0).reshape(2, 3))  # the writer is right
            for what, payload in HOSTILE.items():
                cid = bus.call(b"q", 3)
                assert prod.try_send(payload, 3, correlation_id=cid)
                with bus.wait(cid, timeout=2) as rx:
                    with pytest.raises(ValueError, match="corrupt tensor frame"):
                        rx.array()
                # nothing exposed: no export pins the slot, so it went back
                assert prod._tail.value == prod.head, what
                # request_array's call takes the next id; its reply is ready first
                assert prod.try_send(payload, 3, correlation_id=cid + 1)
                with pytest.raises(ValueError, match="corrupt tensor frame"):
                    bus.request_array(np.ones(1), 3, timeout=2)
                assert prod._tail.value == prod.head, what
    print(f"{len(HOSTILE)} hostile headers refused")
