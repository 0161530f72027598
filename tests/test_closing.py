"""Closing and peer loss (docs/PYTHON_API.md "Closing and peer loss", docs/RELIABILITY.md R5)."""
import os
import signal
import threading
import time

import pytest

import tachyon
from conftest import popen_isolated

PEER_DEATH_BOUND = 0.5  # seconds, docs/RELIABILITY.md (liveness bounds)
MARGIN = 5


def expect(i, msg):
    assert msg.type_id == i and msg.data == i.to_bytes(4, "little") * 8


def test_stop_iteration_after_peer_close(sock_path):
    proc = popen_isolated("peer_producer.py", sock_path, 3000, "close")
    try:
        with tachyon.Bus.listen(sock_path, 4096, timeout=20) as bus:
            n = 0
            for msg in bus:
                expect(n, msg)
                n += 1
            assert n == 3000  # nothing lost before StopIteration
            with pytest.raises(StopIteration):
                next(iter(bus))
            for call in (bus.recv, bus.try_recv, bus.recv_zero_copy, bus.drain_batch):
                with pytest.raises(tachyon.PeerClosedError) as ei:
                    call()
                assert isinstance(ei.value, EOFError)
    finally:
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


def test_iteration_resumes_after_timeout_error(pair):
    """An exception out of next(it) itself leaves the iterator usable and
    loses nothing. The exception comes from a SIGALRM handler while next()
    is blocked on an empty ring: the usual way to put a deadline on a loop
    over a bus, since iteration itself has no timeout."""
    prod, cons = pair
    it = iter(cons)
    prod.send(b"a")
    assert next(it).data == b"a"
    # A timeout of another call between two next() calls changes nothing.
    with pytest.raises(tachyon.TachyonTimeoutError):
        cons.recv(timeout=0.01)

    def deadline(signum, frame):
        raise tachyon.TachyonTimeoutError("application deadline")

    old = signal.signal(signal.SIGALRM, deadline)
    try:
        t0 = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(tachyon.TachyonTimeoutError, match="application deadline"):
            next(it)
        # It waited for the alarm, so the error came out of the blocked next().
        assert time.monotonic() - t0 >= 0.04
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    prod.send(b"b")
    prod.send(b"c")
    assert next(it).data == b"b"
    assert next(it).data == b"c"
    prod.close()
    assert list(it) == []


@pytest.mark.parametrize("blocked", [False, True])
def test_peer_dead_after_kill9(sock_path, blocked):
    proc = popen_isolated("peer_producer.py", sock_path, 500, "hang")
    try:
        with tachyon.Bus.listen(sock_path, 1 << 16, timeout=20) as bus:
            assert proc.stdout.readline().strip() == "sent 500"
            got = 0
            if blocked:
                for i in range(500):
                    expect(i, bus.recv(timeout=5))
                got = 500
                killed_at = []
                threading.Timer(0.3, lambda: (killed_at.append(time.monotonic()), proc.kill())).start()
                with pytest.raises(tachyon.PeerDeadError):
                    bus.recv()  # blocked when the peer dies
                latency = time.monotonic() - killed_at[0]
            else:
                proc.kill()
                proc.wait()
                killed = time.monotonic()
                try:
                    while True:
                        expect(got, bus.recv(timeout=5))
                        got += 1
                except tachyon.PeerDeadError:
                    latency = time.monotonic() - killed
            assert got == 500  # everything published before the death first
            print(f"PeerDeadError {latency * 1e3:.1f} ms after kill -9 (bound {PEER_DEATH_BOUND * 1e3:.0f} ms)")
            assert latency < PEER_DEATH_BOUND * MARGIN
            with pytest.raises(tachyon.PeerDeadError):
                bus.try_recv()
    finally:
        proc.kill()
        proc.communicate()


def test_peer_exit_without_close_is_dead(sock_path):
    proc = popen_isolated("peer_producer.py", sock_path, 100, "exit")
    try:
        with tachyon.Bus.listen(sock_path, 1 << 16, timeout=20) as bus:
            for i in range(100):
                expect(i, bus.recv(timeout=5))
            with pytest.raises(tachyon.PeerDeadError):
                bus.recv(timeout=5)
    finally:
        proc.communicate(timeout=20)


def test_producer_sees_consumer_close(sock_path):
    proc = popen_isolated("peer_consumer.py", sock_path, 4096, "close")
    try:
        bus = tachyon.Bus.connect(sock_path, timeout=20)
        with bus:
            assert proc.stdout.readline().strip() == "closed"
            with pytest.raises(tachyon.PeerClosedError):
                for _ in range(1000):
                    bus.send(b"x" * 100, timeout=1)
    finally:
        proc.kill()
        proc.communicate()


def test_producer_blocked_sees_consumer_death(sock_path):
    proc = popen_isolated("peer_consumer.py", sock_path, 4096, "hang")
    try:
        with tachyon.Bus.connect(sock_path, timeout=20) as bus:
            assert proc.stdout.readline().strip() == "ready"
            with pytest.raises(tachyon.BusFullError):
                while True:
                    bus.send(b"x" * 100)
            killed_at = []
            threading.Timer(0.3, lambda: (killed_at.append(time.monotonic()), os.kill(proc.pid, signal.SIGKILL))).start()
            with pytest.raises(tachyon.PeerDeadError):
                bus.send(b"x" * 100, timeout=None)  # waits for room the dead consumer never frees
            latency = time.monotonic() - killed_at[0]
            print(f"blocked send: PeerDeadError {latency * 1e3:.1f} ms after kill -9")
            assert latency < PEER_DEATH_BOUND * MARGIN
    finally:
        proc.kill()
        proc.communicate()


def test_close_publishes_committed(pair):
    prod, cons = pair
    prod.send_many([b"1", b"2", b"3"])
    prod.close()
    assert [m.data for m in cons] == [b"1", b"2", b"3"]


def test_close_is_idempotent_with_live_exports(pair):
    prod, cons = pair
    prod.send(b"live")
    with cons.recv_zero_copy(timeout=1) as rx:
        mv = memoryview(rx)
    cons.close()
    cons.close()
    assert mv == b"live"
    with pytest.raises(tachyon.PeerClosedError):
        prod.send(b"more")
    mv.release()


def test_dealloc_of_unclosed_bus_closes_it(sock_path):
    import gc

    from conftest import make_pair

    prod, cons = make_pair(sock_path, 4096)
    prod.send(b"last words")
    del prod
    gc.collect()
    assert [m.data for m in cons] == [b"last words"]  # the peer's close, not its death
    cons.close()


def test_corrupt_ring_is_fatal_on_both_ends(pair):
    """A slot header that breaks the wire format: RingCorruptError at once, nothing more delivered."""
    import ctypes
    import struct

    prod, cons = pair
    prod.send(b"good")
    assert cons.recv(timeout=1).data == b"good"
    with prod.send_zero_copy(size=8) as tx:
        c = ctypes.c_char.from_buffer(tx)
        payload = ctypes.addressof(c)
        del c
        tx.actual_size = 8
    # scribble on the committed slot's header as a hostile peer would: reserved_size 3
    ctypes.memmove(payload - 64 + 8, struct.pack("<I", 3), 4)
    with pytest.raises(tachyon.RingCorruptError) as ei:
        cons.recv(timeout=1)
    assert isinstance(ei.value, tachyon.PeerDeadError)
    with pytest.raises(tachyon.RingCorruptError):
        cons.try_recv()
    assert cons.stats.state == 4
    with pytest.raises(tachyon.RingCorruptError):
        prod.send(b"more")
