"""Defaults and the edges of every numeric argument.

A zero-copy send commits the whole reservation unless told less. Every size,
count, timeout and type_id argument either works or raises a clear error at
once, never hangs; each call below runs under a wall-time bound
(faulthandler ends the run with every thread's stack instead of stalling).
The semantics, as docs/PYTHON_API.md states them:
  - bool is refused (TypeError) wherever a size, count, timeout or type_id
    is expected: send(data, True) is a mistake, not type_id 1;
  - sizes and counts are ints (or objects with __index__), never floats;
  - a timeout is seconds >= 0 as an int or float: 0 does not wait, None,
    inf and anything over a century wait without limit; NaN and negative
    values are refused (ValueError);
  - spin_threshold is 0..2**32-1, max_msgs 1..2**20, type_id 0..2**32-1;
    out of range is ValueError, whatever the magnitude.
And BusFullError and the placement error say what happened and what helps."""
import contextlib
import faulthandler
import math
import os
import threading
import time

import pytest

import tachyon
from conftest import make_pair

BOUND = 10.0  # seconds any single call may take here (the slowest expected is ~0.1 s)
DELAY = 0.05  # when the peer acts, in the cases that wait for it

EDGES = [0, -1, 2**31, 2**32, 2**62, 2**63 - 1, 2**64, True, False, 0.5, math.nan, math.inf, -math.inf]


def edge_id(v):
    if isinstance(v, int) and not isinstance(v, bool) and v > 2**64:
        return "10**%d" % (len(str(v)) - 1)
    return repr(v)


_WATCHDOG = {"file": None, "outer": 0.0}


@pytest.fixture(autouse=True)
def _watchdog_terms(pytestconfig):
    """Where a hang's stacks go: the stderr pytest kept aside for its own
    faulthandler (fd capture would swallow them otherwise), and pytest's own
    per-test timeout, re-armed after each bounded call."""
    try:  # pytest's private key; without it the stacks go to sys.stderr
        from _pytest.faulthandler import fault_handler_stderr_fd_key

        _WATCHDOG["file"] = pytestconfig.stash.get(fault_handler_stderr_fd_key, None)
    except ImportError:
        _WATCHDOG["file"] = None
    _WATCHDOG["outer"] = float(pytestconfig.getini("faulthandler_timeout") or 0)
    yield


@contextlib.contextmanager
def bounded(seconds=BOUND):
    """A call that hangs (even holding the GIL) ends the run with every
    thread's stack instead of stalling it."""
    out = _WATCHDOG["file"]
    kw = {"file": out} if out is not None else {}
    faulthandler.dump_traceback_later(seconds, exit=True, **kw)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        if _WATCHDOG["outer"] > 0:
            faulthandler.dump_traceback_later(_WATCHDOG["outer"], **kw)


def later(fn, delay=DELAY):
    """Run fn in a thread after delay; join() the returned thread."""
    box = {}

    def run():
        time.sleep(delay)
        try:
            box["result"] = fn()
        except BaseException as exc:  # surfaced by the caller through box
            box["exc"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.box = box
    return t


@pytest.fixture
def ring(sock_path):
    prod, cons = make_pair(sock_path, 4096)
    yield prod, cons
    prod.close()
    cons.close()


# ---------------------------------------------------------------------------
# send_zero_copy: actual_size defaults to the reserved size


@pytest.mark.parametrize("method", ["send_zero_copy", "acquire_tx"])
def test_zero_copy_send_commits_the_whole_reservation_by_default(ring, method):
    prod, cons = ring
    with getattr(prod, method)(size=5, type_id=3) as tx:
        assert tx.actual_size == 5
        with memoryview(tx) as mv:
            mv[:] = b"hello"
    m = cons.recv(timeout=5)
    assert (m.type_id, m.data) == (3, b"hello")


def test_zero_copy_send_smaller_or_empty_still_works(ring):
    prod, cons = ring
    with prod.send_zero_copy(size=8) as tx:
        with memoryview(tx) as mv:
            mv[:3] = b"abc"
        tx.actual_size = 3
    with prod.send_zero_copy(size=8) as tx:
        tx.actual_size = 0
    assert cons.recv(timeout=5).data == b"abc"
    assert cons.recv(timeout=5).data == b""
    with prod.send_zero_copy(size=4) as tx:
        with pytest.raises(TypeError, match="actual_size must be an int, not bool"):
            tx.actual_size = True
        assert tx.actual_size == 4
        tx.actual_size = 0
    assert cons.recv(timeout=5).data == b""


# ---------------------------------------------------------------------------
# sizes and counts


def size_expect(v):
    if isinstance(v, (bool, float)):
        return TypeError
    if v < 0 or v > 4096 - 64:
        return ValueError
    return "works"


@pytest.mark.parametrize("method", ["send_zero_copy", "acquire_tx"])
@pytest.mark.parametrize("v", EDGES + [1984, 4032, 2**31 - 1], ids=edge_id)
def test_zero_copy_size_edges(ring, method, v):
    prod, cons = ring
    want = size_expect(v)
    call = getattr(prod, method)
    with bounded():
        if want == "works":
            if v > prod.max_payload:  # fits an empty ring at offset 0 only
                assert v <= prod.capacity - 64
            with call(size=v) as tx:
                assert tx.size == v
            assert cons.recv(timeout=5).size == v
            return
        with pytest.raises(want) as ei:
            call(size=v)
    msg = str(ei.value)
    if want is TypeError:
        assert "size must be an int" in msg, msg
    elif v < 0:
        assert "size must be >= 0" in msg, msg
    elif v >= 2**31:
        assert "can never fit in a tachyon ring" in msg and str(v) in msg, msg
    # the bus is still usable
    with bounded():
        prod.send(b"after")
        assert cons.recv(timeout=5).data == b"after"


def count_expect(v, lo, hi):
    if isinstance(v, (bool, float)):
        return TypeError
    return "works" if lo <= v <= hi else ValueError


@pytest.mark.parametrize("v", EDGES + [1, 2**20, 2**20 + 1], ids=edge_id)
def test_drain_batch_max_msgs_edges(ring, v):
    prod, cons = ring
    want = count_expect(v, 1, 2**20)
    with bounded():
        prod.send_many([b"x", b"y"])
        if want == "works":
            with cons.drain_batch(max_msgs=v, timeout=5) as batch:
                assert [bytes(m) for m in batch] == [b"x", b"y"][: min(v, 2)]
            return
        with pytest.raises(want, match="max_msgs must be"):
            cons.drain_batch(max_msgs=v, timeout=5)
        with cons.drain_batch(timeout=5) as batch:  # still usable
            assert len(batch) == 2


@pytest.mark.parametrize("method", ["drain_batch", "acquire_rx"])
@pytest.mark.parametrize("v", EDGES + [1, 2**32 - 1], ids=edge_id)
def test_spin_threshold_edges(ring, method, v):
    """In range: the call still waits for a message that comes later (a spin
    budget of 0, or of 2**32-1, changes how it waits, not whether)."""
    prod, cons = ring
    want = count_expect(v, 0, 2**32 - 1)
    call = getattr(cons, method)
    with bounded():
        if want == "works":
            t = later(lambda: prod.send(b"late"))
            t0 = time.monotonic()
            with call(spin_threshold=v, timeout=5) as got:
                data = bytes(got[0]) if method == "drain_batch" else bytes(got)
            t.join()
            assert data == b"late"
            assert time.monotonic() - t0 < 5
            return
        with pytest.raises(want, match="spin_threshold must be"):
            call(spin_threshold=v, timeout=0)


def type_id_expect(v):
    if isinstance(v, (bool, float)):
        return TypeError
    return "works" if 0 <= v <= 2**32 - 1 else ValueError


TYPE_ID_CALLS = {
    "send": lambda prod, v: prod.send(b"t", v),
    "send kw": lambda prod, v: prod.send(b"t", type_id=v),
    "send_many": lambda prod, v: prod.send_many([b"t"], type_id=v),
    "send_zero_copy": lambda prod, v: prod.send_zero_copy(1, type_id=v).__exit__(None, None, None),
}


def set_guard_type_id(prod, v):
    with prod.send_zero_copy(1) as tx:
        tx.type_id = v


TYPE_ID_CALLS["TxGuard.type_id"] = set_guard_type_id


@pytest.mark.parametrize("call", list(TYPE_ID_CALLS), ids=str)
@pytest.mark.parametrize("v", EDGES + [2**32 - 1], ids=edge_id)
def test_type_id_edges(ring, call, v):
    prod, cons = ring
    want = type_id_expect(v)
    with bounded():
        if want == "works":
            TYPE_ID_CALLS[call](prod, v)
            assert cons.recv(timeout=5).type_id == v
            return
        with pytest.raises(want, match="type_id must be"):
            TYPE_ID_CALLS[call](prod, v)
        assert cons.try_recv() is None  # nothing half-sent
        prod.send(b"after", 1)
        assert cons.recv(timeout=5).type_id == 1


@pytest.mark.parametrize("v", EDGES + [64, 2**31 + 1, 3 * 2**30, 10**30, 4096.0], ids=edge_id)
def test_listen_capacity_edges(sock_path, v):
    if isinstance(v, (bool, float)):
        want = TypeError
    else:
        want = "works" if v in (64, 2**31) else ValueError
    with bounded():
        if want == "works":
            t = later(lambda: tachyon.Bus.connect(sock_path, timeout=5))
            with tachyon.Bus.listen(sock_path, v, timeout=5) as cons:
                t.join()
                assert "exc" not in t.box, t.box
                with t.box["result"] as prod:
                    assert cons.capacity == v and prod.capacity == v
                    assert prod.max_payload == max(0, v // 2 - 64)
                    data = b"big ring" if v > 64 else b""  # a 64-byte ring carries empty messages
                    prod.send(data, 5)
                    assert cons.recv(timeout=5).data == data
            return
        with pytest.raises(want, match="capacity must be"):
            tachyon.Bus.listen(sock_path, v, timeout=0)
    assert not os.path.exists(sock_path)


# ---------------------------------------------------------------------------
# timeouts


def timeout_expect(v):
    if isinstance(v, bool):
        return TypeError
    if (isinstance(v, float) and math.isnan(v)) or v < 0:
        return ValueError
    return "now" if v < 1e-9 else "wait"  # below a nanosecond is no wait


TIMEOUT_EDGES = EDGES + [-0.0, 10**400, 1e-12]


def fill(prod):
    """Fill the ring until a non-waiting send says it is full."""
    n = 0
    with pytest.raises(tachyon.BusFullError):
        while True:
            prod.send(b"f" * 400)
            n += 1
    return n


def drain(cons, n):
    return [cons.recv(timeout=5) for _ in range(n)]


RECV_CALLS = {
    "recv": lambda cons, t: cons.recv(timeout=t).data,
    "recv positional": lambda cons, t: cons.recv(t).data,
    "recv_zero_copy": lambda cons, t: consume_guard(cons.recv_zero_copy(timeout=t)),
    "acquire_rx": lambda cons, t: consume_guard(cons.acquire_rx(timeout=t)),
    "drain_batch": lambda cons, t: consume_batch(cons.drain_batch(timeout=t)),
}


def consume_guard(rx):
    with rx:
        return bytes(rx)


def consume_batch(batch):
    with batch:
        return bytes(batch[0])


@pytest.mark.parametrize("call", list(RECV_CALLS), ids=str)
@pytest.mark.parametrize("v", TIMEOUT_EDGES, ids=edge_id)
def test_receive_timeout_edges(ring, call, v):
    prod, cons = ring
    want = timeout_expect(v)
    fn = RECV_CALLS[call]
    with bounded():
        if want == "wait":
            # a real wait: nothing is there yet, the message comes later
            t = later(lambda: prod.send(b"late"))
            assert fn(cons, v) == b"late"
            t.join()
            return
        t0 = time.monotonic()
        with pytest.raises(tachyon.TachyonTimeoutError if want == "now" else want, match=None if want == "now" else "timeout"):
            fn(cons, v)
        if want == "now":
            assert time.monotonic() - t0 < 1.0  # did not wait
        prod.send(b"now")
        assert fn(cons, v if want == "now" else 5) == b"now"


SEND_CALLS = {
    "send": lambda prod, t: prod.send(b"s" * 400, timeout=t),
    "send_many": lambda prod, t: prod.send_many([b"s" * 400], timeout=t),
    "send_zero_copy": lambda prod, t: prod.send_zero_copy(400, timeout=t).__exit__(None, None, None),
    "acquire_tx": lambda prod, t: prod.acquire_tx(400, timeout=t).__exit__(None, None, None),
}


@pytest.mark.parametrize("call", list(SEND_CALLS), ids=str)
@pytest.mark.parametrize("v", TIMEOUT_EDGES, ids=edge_id)
def test_send_timeout_edges(ring, call, v):
    prod, cons = ring
    want = timeout_expect(v)
    fn = SEND_CALLS[call]
    with bounded():
        n = fill(prod)
        if want == "wait":
            # a real wait: the ring is full, the consumer frees it later
            t = later(lambda: drain(cons, n))
            fn(prod, v)
            t.join()
            assert "exc" not in t.box, t.box
            assert cons.recv(timeout=5).size == 400
            return
        t0 = time.monotonic()
        with pytest.raises(tachyon.BusFullError if want == "now" else want, match=None if want == "now" else "timeout"):
            fn(prod, v)
        if want == "now":
            assert time.monotonic() - t0 < 1.0
        drain(cons, n)
        assert cons.try_recv() is None


@pytest.mark.parametrize("v", TIMEOUT_EDGES, ids=edge_id)
def test_connect_timeout_edges(sock_path, v):
    want = timeout_expect(v)
    with bounded():
        if want == "wait":
            t = later(lambda: tachyon.Bus.listen(sock_path, 4096, timeout=5))
            with tachyon.Bus.connect(sock_path, timeout=v) as prod:
                t.join()
                assert "exc" not in t.box, t.box
                with t.box["result"] as cons:
                    prod.send(b"hi")
                    assert cons.recv(timeout=5).data == b"hi"
            return
        t0 = time.monotonic()
        with pytest.raises(tachyon.ConnectTimeoutError if want == "now" else want, match=None if want == "now" else "timeout"):
            tachyon.Bus.connect(sock_path, timeout=v)
        assert time.monotonic() - t0 < 1.0


@pytest.mark.parametrize("v", TIMEOUT_EDGES, ids=edge_id)
def test_listen_timeout_edges(sock_path, v):
    want = timeout_expect(v)
    with bounded():
        if want == "wait":
            t = later(lambda: tachyon.Bus.connect(sock_path, timeout=5))
            with tachyon.Bus.listen(sock_path, 4096, timeout=v) as cons:
                t.join()
                assert "exc" not in t.box, t.box
                with t.box["result"] as prod:
                    prod.send(b"hi")
                    assert cons.recv(timeout=5).data == b"hi"
            return
        t0 = time.monotonic()
        with pytest.raises(tachyon.TachyonTimeoutError if want == "now" else want, match=None if want == "now" else "timeout"):
            tachyon.Bus.listen(sock_path, 4096, timeout=v)
        assert time.monotonic() - t0 < 1.0
    assert not os.path.exists(sock_path)


def test_timeout_type_errors_name_the_argument(ring):
    prod, cons = ring
    for bad in (True, False):
        with pytest.raises(TypeError, match="timeout must be a number of seconds or None, not bool"):
            cons.recv(timeout=bad)
    with pytest.raises(ValueError, match="got nan"):
        prod.send(b"x", timeout=math.nan)


# ---------------------------------------------------------------------------
# what BusFullError and the placement error say


def test_bus_full_without_timeout_says_pass_a_timeout(ring):
    prod, cons = ring
    fill(prod)
    in_use = prod.stats.ring_occupancy
    with pytest.raises(tachyon.BusFullError) as ei:
        prod.send(b"x" * 900)
    msg = str(ei.value)
    print(msg)
    assert "900-byte" in msg and "pass a timeout (or timeout=None)" in msg, msg
    assert f"not released {in_use} of the ring's 4096 bytes" in msg, msg


@pytest.mark.parametrize("call", ["send", "send_many", "send_zero_copy"])
def test_bus_full_after_a_timeout_says_what_happened(ring, call):
    prod, cons = ring
    fill(prod)
    in_use = prod.stats.ring_occupancy
    with pytest.raises(tachyon.BusFullError) as ei:
        if call == "send":
            prod.send(b"x" * 900, timeout=0.05)
        elif call == "send_many":
            prod.send_many([b"x" * 900], timeout=0.05)
        else:
            prod.send_zero_copy(900, timeout=0.05)
    msg = str(ei.value)
    print(msg)
    assert msg.startswith(call + ":"), msg
    assert "900-byte" in msg and "within 0.05 s" in msg, msg
    assert f"not released {in_use} of the ring's 4096 bytes" in msg, msg
    assert "pass a timeout" not in msg, msg  # one was passed


def test_payload_over_max_payload_at_an_unlucky_offset(ring):
    prod, cons = ring
    assert prod.max_payload == 1984
    # at offset 0 a 3000-byte payload (a 3072-byte slot) fits an empty ring ...
    prod.send(b"p" * 3000)
    assert cons.recv(timeout=5).size == 3000
    # ... and at 3072 too, behind 1024 bytes of padding; then two 1088-byte
    # slots (the first wraps) leave head at offset 1088 ...
    prod.send(b"p" * 3000)
    assert cons.recv(timeout=5).size == 3000
    for _ in range(2):
        prod.send(b"s" * 1000)
        assert cons.recv(timeout=5).size == 1000
    # ... where it fits neither before the end of the lap nor behind it
    with pytest.raises(ValueError) as ei:
        prod.send(b"q" * 3000)
    msg = str(ei.value)
    print(msg)
    assert "never" not in msg, msg
    assert "3000-byte payload" in msg and "4096-byte ring" in msg, msg
    assert "only at some" in msg and "not at the current one" in msg, msg
    assert "max_payload 1984" in msg and "capacity >= 8192" in msg, msg
    # a payload larger than the ring itself can never fit: said so
    with pytest.raises(ValueError, match="can never fit in this ring.*capacity >= 16384"):
        prod.send(b"r" * 5000)
    prod.send(b"still usable")
    assert cons.recv(timeout=5).data == b"still usable"
