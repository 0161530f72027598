"""The request/reply bus (RpcBus, ABI.md "The request/reply bus").

Two processes in both roles with checked random calls; the reply-order
rules; a callee killed mid-call; hostile rings and the wrong kind of
listener (a fake peer written from the wire format); the dispatcher's
error reply; timeouts, close from another thread, Ctrl-C, DLPack views."""
import contextlib
import os
import signal
import struct
import sys
import threading
import time
import _thread

import numpy as np
import pytest

import tachyon
from conftest import ISOLATED, popen_isolated, run_isolated

sys.path.insert(0, str(ISOLATED))
import fakepeer  # noqa: E402

PEER_DEATH_BOUND = 0.5  # seconds, docs/RELIABILITY.md (liveness bounds)
MARGIN = 5
CALLS = 100_000
WALL_CAP_S = 90.0


@contextlib.contextmanager
def peer_process(*args, script="rpc_peer.py"):
    """tests/isolated/<script> with args; killed and reaped if still running at the end."""
    peer = popen_isolated(script, *args)
    try:
        yield peer
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait()
        peer.stdout.close()
        peer.stderr.close()


def rpc_pair(path, cap=1 << 14):
    """(callee, caller) in this process: the callee listens in a thread."""
    box = {}

    def listen():
        try:
            box["bus"] = tachyon.RpcBus.rpc_listen(path, cap, cap, timeout=10)
        except BaseException as exc:  # surfaced below
            box["exc"] = exc

    t = threading.Thread(target=listen)
    t.start()
    caller = tachyon.RpcBus.rpc_connect(path, timeout=10)
    t.join()
    if "exc" in box:
        caller.close()
        raise box["exc"]
    return box["bus"], caller


@pytest.fixture
def rpc(sock_path):
    callee, caller = rpc_pair(sock_path)
    yield callee, caller
    caller.close()
    callee.close()


def serve_reply(callee, transform=lambda b: b[::-1], timeout=5):
    with callee.serve(timeout=timeout) as rx:
        cid, mt, data = rx.correlation_id, rx.type_id, bytes(rx)
    callee.reply(cid, transform(data), mt)
    return cid


# ---------------------------------------------------------------------------
# two processes, both roles


def test_caller_here_callee_in_another_process(sock_path):
    """100,000 checked calls of random sizes against a callee process."""
    import random

    with peer_process("callee", sock_path) as peer:
        rng = random.Random(1)
        count = 0
        end = time.monotonic() + WALL_CAP_S
        with tachyon.RpcBus.rpc_connect(sock_path, timeout=10) as bus:
            assert peer.stdout.readline().strip() == "listening"
            while count < CALLS and time.monotonic() < end:
                size = rng.choice((0, 1, rng.randrange(2, 64), rng.randrange(64, 4096)))
                payload = rng.randbytes(size)
                mt = rng.randrange(0, 0xFFFF)
                if count % 2:
                    m = bus.request(payload, mt, timeout=10)
                    got_cid, got_mt, got = None, m.type_id, m.data
                else:
                    cid = bus.call(payload, mt, timeout=10)
                    with bus.wait(cid, timeout=10) as rx:
                        got_cid, got_mt, got = rx.correlation_id, rx.type_id, bytes(rx)
                    assert got_cid == cid == count + 1
                assert got == payload[::-1] and got_mt == (mt + 1) & 0xFFFF, f"call {count}"
                count += 1
        print(f"caller here: {count} checked calls")
        assert count == CALLS
        assert peer.wait(10) == 0


def test_callee_here_caller_in_another_process(sock_path):
    """The other way round: the peer process calls, this one serves."""
    served = 0
    with peer_process("caller", sock_path, CALLS, 7, WALL_CAP_S) as peer:
        with tachyon.RpcBus.rpc_listen(sock_path, 1 << 16, 1 << 16, timeout=10) as bus:
            while True:
                try:
                    with bus.serve(timeout=30) as rx:
                        cid, mt, data = rx.correlation_id, rx.type_id, bytes(rx)
                except tachyon.PeerClosedError:
                    break
                assert cid == served + 1  # ids from 1, in order
                bus.reply(cid, data[::-1], (mt + 1) & 0xFFFF)
                served += 1
        out = peer.stdout.read()
        assert peer.wait(10) == 0, out + peer.stderr.read()
        print(f"callee here: {served} requests served; peer: {out.strip()}")
        assert out.strip() == f"calls {CALLS}"
        assert served == CALLS


def test_callee_killed_mid_call(sock_path):
    """kill -9 of the callee while a call waits: PeerDeadError within the bound."""
    with peer_process("hang", sock_path) as peer:
        with tachyon.RpcBus.rpc_connect(sock_path, timeout=10) as bus:
            cid = bus.call(b"anyone there?", 1)
            assert peer.stdout.readline().strip() == "served"
            t0 = time.monotonic()
            peer.send_signal(signal.SIGKILL)
            with pytest.raises(tachyon.PeerDeadError):
                bus.wait(cid, timeout=10)
            took = time.monotonic() - t0
        print(f"PeerDeadError {took * 1000:.0f} ms after the kill")
        assert took < PEER_DEATH_BOUND * MARGIN


def test_dispatcher_in_another_process(sock_path):
    """A handled type is answered; an unknown one gets the error reply, and
    the dispatcher goes on serving."""
    with peer_process("dispatch", sock_path) as peer:
        with tachyon.RpcBus.rpc_connect(sock_path, timeout=10) as bus:
            assert peer.stdout.readline().strip() == "listening"
            m = bus.request(b"ab", 1, timeout=5)
            assert (m.type_id, m.data) == (1, b"abab")
            m = bus.request(b"x", 42, timeout=5)
            assert m.type_id == tachyon.MSG_TYPE_ERROR
            assert m.data == struct.pack("!H", 42)
            assert tachyon.rpc.decode_error(m.data) == 42
            assert bus.request(b"c", 1, timeout=5).data == b"cc"
        assert peer.stdout.readline().strip() == "done"
        assert peer.wait(10) == 0


# ---------------------------------------------------------------------------
# ids and order


def test_ids_and_reply_order(rpc):
    callee, caller = rpc
    ids = [caller.call(b"r%d" % i, 10 + i) for i in range(3)]
    assert ids == [1, 2, 3]
    with pytest.raises(ValueError, match="wait for 1 first"):
        caller.wait(2, timeout=0)
    with pytest.raises(ValueError, match="no call with this id"):
        caller.wait(9, timeout=0)
    with pytest.raises(ValueError, match="still wait for their replies"):
        caller.request(b"x", 1, timeout=0)
    served = []
    for _ in range(3):
        with callee.serve(timeout=2) as rx:
            served.append((rx.correlation_id, rx.type_id, bytes(rx)))
    assert served == [(1, 10, b"r0"), (2, 11, b"r1"), (3, 12, b"r2")]
    with pytest.raises(ValueError, match="request order"):
        callee.reply(2, b"early", 1)
    with pytest.raises(ValueError, match="request order"):
        callee.reply_zero_copy(3, 8, 1)
    for cid in ids:
        callee.reply(cid, b"ok%d" % cid, 20)
    for cid in ids:
        with caller.wait(cid, timeout=2) as rx:
            assert (rx.correlation_id, rx.type_id, bytes(rx)) == (cid, 20, b"ok%d" % cid)
    with pytest.raises(ValueError, match="no call is waiting"):
        caller.wait(4, timeout=0)


def test_sides_are_fixed(rpc):
    callee, caller = rpc
    assert callee.is_callee and not caller.is_callee
    with pytest.raises(tachyon.RoleError):
        callee.call(b"x", 1)
    with pytest.raises(tachyon.RoleError):
        caller.serve(timeout=0)
    with pytest.raises(tachyon.RoleError):
        caller.reply(1, b"x", 1)


def test_request_gives_up_and_the_late_reply_is_dropped(rpc):
    callee, caller = rpc
    with pytest.raises(tachyon.TachyonTimeoutError):
        caller.request(b"slow", 1, timeout=0.05)
    # the callee answers late; the next request must not see that reply
    serve_reply(callee, lambda b: b"late " + b)
    t = threading.Thread(target=serve_reply, args=(callee,))
    t.start()
    m = caller.request(b"next", 2, timeout=5)
    t.join()
    assert (m.type_id, m.data) == (2, b"txen")


def test_zero_copy_both_ways(rpc):
    callee, caller = rpc
    with caller.call_zero_copy(64, 5) as tx:
        assert tx.out_cid is None
        with memoryview(tx) as mv:
            mv[:3] = b"abc"
        tx.actual_size = 3
    cid = tx.out_cid
    assert cid == 1
    with callee.serve(timeout=2) as rx:
        assert (rx.correlation_id, rx.type_id, rx.actual_size, bytes(rx)) == (1, 5, 3, b"abc")
    with callee.reply_zero_copy(cid, 16, 6) as tx:
        assert tx.out_cid == cid
        tx.msg_type = 7
        with memoryview(tx) as mv:
            mv[:2] = b"hi"
        tx.actual_size = 2
    with caller.wait(cid, timeout=2) as rx:
        assert (rx.type_id, bytes(rx)) == (7, b"hi")
    # an exception in the block sends nothing and uses no id
    with pytest.raises(RuntimeError):
        with caller.call_zero_copy(8, 1):
            raise RuntimeError("changed my mind")
    assert caller.call(b"z", 1) == 2


def test_dlpack_on_request_and_reply_views(rpc):
    callee, caller = rpc
    payload = np.arange(16, dtype=np.uint8).tobytes()
    cid = caller.call(payload, 3)
    with callee.serve(timeout=2) as rx:
        arr = np.from_dlpack(rx)
        assert arr.tobytes() == payload
        doubled = (arr * 2).tobytes()
        del arr
    callee.reply(cid, doubled, 3)
    with caller.wait(cid, timeout=2) as rx:
        assert np.from_dlpack(rx).tobytes() == doubled


def test_timeouts_close_from_thread_and_ctrl_c(rpc):
    callee, caller = rpc
    with pytest.raises(tachyon.TachyonTimeoutError):
        callee.serve(timeout=0.05)
    cid = caller.call(b"q", 1)
    with pytest.raises(tachyon.TachyonTimeoutError):
        caller.wait(cid, timeout=0.05)
    # Ctrl-C while waiting
    threading.Timer(0.1, _thread.interrupt_main).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        caller.wait(cid, timeout=10)
    assert time.monotonic() - t0 < 0.2 * MARGIN + 0.1
    # close from another thread ends a blocked wait
    threading.Timer(0.1, caller.close).start()
    t0 = time.monotonic()
    with pytest.raises(tachyon.BusClosedError):
        caller.wait(cid, timeout=10)
    took = time.monotonic() - t0
    print(f"close from another thread ended wait after {took * 1000:.0f} ms")
    assert took < 0.2 * MARGIN + 0.1
    assert caller.closed


def test_wait_many_takes_rpc_buses(rpc, sock_path):
    callee, caller = rpc
    assert tachyon.wait([callee, caller], timeout=0.01) == []
    cid = caller.call(b"q", 1)
    assert tachyon.wait([callee, caller], timeout=2) == [callee]
    serve_reply(callee)
    assert tachyon.wait([callee, caller], timeout=2) == [caller]
    caller.wait(cid).__exit__(None, None, None)


def test_request_async(rpc):
    """request_async round trips; one cancelled while its reply is still to
    come: the late reply is dropped and the next request gets its own."""
    import asyncio

    callee, caller = rpc
    stop = threading.Event()
    serving = threading.Event()
    serving.set()

    def serve_loop():
        while not stop.is_set():
            if not serving.wait(0.05):
                continue
            try:
                serve_reply(callee, timeout=0.05)
            except tachyon.TachyonTimeoutError:
                pass

    t = threading.Thread(target=serve_loop)
    t.start()

    async def main():
        out = [await caller.request_async(b"abc%d" % i, 4, timeout=5) for i in range(50)]
        serving.clear()
        await asyncio.sleep(0.1)  # the server is paused now
        task = asyncio.ensure_future(caller.request_async(b"zzz", 4))
        await asyncio.sleep(0.05)  # sent, waiting for its reply
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        serving.set()  # the reply to "zzz" comes now, to nobody
        out.append(await caller.request_async(b"end", 4, timeout=5))
        return out

    try:
        out = asyncio.run(main())
    finally:
        stop.set()
        t.join()
    assert [m.data for m in out] == [(b"abc%d" % i)[::-1] for i in range(50)] + [b"dne"]


# ---------------------------------------------------------------------------
# hostile and foreign peers


@contextlib.contextmanager
def fake_callee(path, cap=4096, *, flags=1, nfds=2):
    """A request/reply listener written from the wire format: yields the
    (forward, reverse) regions' producer views after the handshake."""
    fwd, rev = fakepeer.region_fd(cap), fakepeer.region_fd(cap)
    srv = fakepeer.listening_socket(path)
    box = {}

    def run():
        srv.settimeout(10)
        conn, _ = srv.accept()
        hs = fakepeer.handshake(cap, capacity2=cap if flags else 0,
                                shm_size2=(fakepeer.HEADER + cap) if flags else 0, flags=flags)
        fakepeer.send_with_fds(conn, hs, [fwd, rev][:nfds])
        box["conn"] = conn

    t = threading.Thread(target=run, daemon=True)
    t.start()
    prod = fakepeer.Producer(rev, cap)
    try:
        yield fwd, prod, t
    finally:
        t.join(10)
        prod.close()
        if "conn" in box:
            box["conn"].close()
        srv.close()
        os.close(fwd)
        os.close(rev)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def test_foreign_callee_reply_with_the_right_id(sock_path):
    """The header fields as a foreign callee writes them are what we read."""
    with fake_callee(sock_path) as (_, prod, t):
        with tachyon.RpcBus.rpc_connect(sock_path, timeout=5) as bus:
            t.join(5)
            cid = bus.call(b"q", 3)
            assert prod.try_send(b"answer", 3, correlation_id=cid)
            with bus.wait(cid, timeout=2) as rx:
                assert (rx.correlation_id, rx.type_id, bytes(rx)) == (cid, 3, b"answer")


def test_foreign_callee_reply_with_the_wrong_id(sock_path):
    """A reply carrying another id marks the reverse ring fatal, as 0.5.1 does."""
    with fake_callee(sock_path) as (_, prod, t):
        with tachyon.RpcBus.rpc_connect(sock_path, timeout=5) as bus:
            t.join(5)
            cid = bus.call(b"q", 3)
            assert prod.try_send(b"evil", 3, correlation_id=cid + 1)
            with pytest.raises(tachyon.RingCorruptError, match="correlation id"):
                bus.wait(cid, timeout=2)
            assert prod.state == fakepeer.STATE_FATAL
            with pytest.raises(tachyon.RingCorruptError):
                bus.replies.try_recv()


def test_hostile_reverse_ring_head(sock_path):
    """The plain ring's checks hold on the reverse ring: a head that is not
    a multiple of 64 is fatal and nothing is exposed."""
    with fake_callee(sock_path) as (_, prod, t):
        with tachyon.RpcBus.rpc_connect(sock_path, timeout=5) as bus:
            t.join(5)
            cid = bus.call(b"q", 3)
            prod._head.value = 100
            with pytest.raises(tachyon.RingCorruptError):
                bus.wait(cid, timeout=2)
            assert prod.state == fakepeer.STATE_FATAL


def test_hostile_forward_ring_tail(sock_path):
    """And on the forward ring: a tail beyond head is fatal for the caller."""
    with fake_callee(sock_path) as (fwd, _, t):
        import mmap

        with tachyon.RpcBus.rpc_connect(sock_path, timeout=5) as bus:
            t.join(5)
            bus.call(b"q", 3)
            mm = mmap.mmap(fwd, fakepeer.HEADER + 4096)
            struct.pack_into("<Q", mm, fakepeer.OFF_TAIL, 4096 * 4)
            mm.close()
            with pytest.raises(tachyon.RingCorruptError):
                for _ in range(200):
                    bus.call(b"x" * 1000, 3, timeout=0)


def test_kind_mismatch_is_an_abi_mismatch(sock_path):
    """A request/reply connector meeting a plain listener, and a plain
    connector meeting a request/reply listener: AbiMismatchError."""
    with fake_callee(sock_path, flags=0, nfds=1):
        with pytest.raises(tachyon.AbiMismatchError, match="plain bus"):
            tachyon.RpcBus.rpc_connect(sock_path, timeout=3)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault(
        "bus", tachyon.RpcBus.rpc_listen(sock_path, 4096, 4096, timeout=10)))
    t.start()
    with pytest.raises(tachyon.AbiMismatchError, match="request/reply"):
        tachyon.Bus.connect(sock_path, timeout=3)
    t.join()
    box["bus"].close()


def test_dispatcher_unknown_type_in_process(rpc):
    """serve_once: the unknown type is answered with MSG_TYPE_ERROR before
    KeyError is raised; a failing handler likewise before RuntimeError."""
    callee, caller = rpc
    d = tachyon.RpcDispatcher()

    @d.handler(1)
    def fails(view):
        raise ZeroDivisionError("boom")

    with pytest.raises(ValueError):
        d.register(tachyon.RpcEndpoint(lambda v: b"", 1))
    with pytest.raises(ValueError):
        tachyon.tachyon_rpc(tachyon.MSG_TYPE_ERROR)
    cid = caller.call(b"?", 77)
    with pytest.raises(KeyError, match="msg_type=77"):
        d.serve_once(callee, timeout=2)
    with caller.wait(cid, timeout=2) as rx:
        assert rx.type_id == tachyon.MSG_TYPE_ERROR
        assert bytes(rx) == struct.pack("!H", 77)
    cid = caller.call(b"?", 1)
    with pytest.raises(RuntimeError, match="boom") as ei:
        d.serve_once(callee, timeout=2)
    assert isinstance(ei.value.__cause__, ZeroDivisionError)
    with caller.wait(cid, timeout=2) as rx:
        assert (rx.type_id, bytes(rx)) == (tachyon.MSG_TYPE_ERROR, struct.pack("!H", 1))


def test_endpoint_decorator(rpc):
    callee, caller = rpc

    @tachyon.tachyon_rpc(9)
    def upper(view):
        return bytes(view).upper()

    assert upper(b"local") == b"LOCAL"
    assert upper.msg_type == 9 and upper.__name__ == "upper"
    d = tachyon.RpcDispatcher().register(upper)
    t = threading.Thread(target=d.serve_once, args=(callee,), kwargs={"timeout": 5})
    t.start()
    assert upper.call(caller, b"remote") == b"REMOTE"
    t.join()


def test_request_reply_handshake_with_one_descriptor(sock_path):
    """flags 1 with only the forward ring's fd is a bad handshake, and every
    descriptor received is closed (the fd-count fixture checks that)."""
    with fake_callee(sock_path, nfds=1):
        with pytest.raises(tachyon.HandshakeError, match="exactly two"):
            tachyon.RpcBus.rpc_connect(sock_path, timeout=3)
