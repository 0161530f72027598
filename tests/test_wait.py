"""tachyon.wait: a message on any of several buses (docs/PYTHON_API.md, "Waiting on
several buses"), across real processes: which buses it reports, that it takes
nothing, the deadline, close from another thread, a dead peer, Ctrl-C, the
argument checks, an idle wait's CPU time, and its wake latency beside recv."""
import os
import resource
import signal
import threading
import time

import pytest

import tachyon
from conftest import make_pair, popen_isolated, run_isolated

WATCHDOG = 0.2
MARGIN = 5
NBUS = 3


def listen_all(paths):
    """Consumer ends listening on every path (in threads), the peer process
    connecting to all of them; returns (buses, peer process)."""
    box = {}

    def listen(i, p):
        box[i] = tachyon.Bus.listen(p, 1 << 14, timeout=20, role="consumer")

    threads = [threading.Thread(target=listen, args=(i, p)) for i, p in enumerate(paths)]
    for t in threads:
        t.start()
    return box, threads


@pytest.fixture
def paths(sock_path):
    ps = [f"{sock_path}.{i}" for i in range(NBUS)]
    yield ps
    for p in ps:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def open_peer(paths, *args):
    box, threads = listen_all(paths)
    proc = popen_isolated("wait_peer.py", *args, *paths, stdin=__import__("subprocess").PIPE)
    for t in threads:
        t.join()
    assert proc.stdout.readline().strip() == "connected"
    return [box[i] for i in range(len(paths))], proc


def close_peer(buses, proc):
    try:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
        if proc.stdin and not proc.stdin.closed:
            proc.stdin.close()
        for b in buses:
            b.close()


def test_reports_the_bus_that_has_a_message_and_takes_nothing(paths):
    buses, proc = open_peer(paths, "send", 1, 0.3)
    try:
        assert tachyon.wait(buses, timeout=0) == []
        t0 = time.monotonic()
        got = tachyon.wait(buses, timeout=10)
        took = time.monotonic() - t0
        line = proc.stdout.readline().split()
        assert line[0] == "sent"
        assert got == [buses[1]]
        print(f"woke {(time.monotonic() - float(line[1])) * 1e3:.2f} ms after the send (waited {took:.3f} s)")
        # Nothing was taken: asking again says the same, and recv has it.
        assert tachyon.wait(buses, timeout=0) == [buses[1]]
        m = buses[1].try_recv()
        assert m is not None and m.data == b"hello" and m.type_id == 7
        assert tachyon.wait(buses, timeout=0.05) == []
    finally:
        close_peer(buses, proc)


def test_peer_close_and_death_are_ready(paths):
    buses, proc = open_peer(paths, "hold")
    try:
        proc.kill()
        proc.wait(timeout=20)
        killed = time.monotonic()
        got = tachyon.wait(buses, timeout=10)
        late = time.monotonic() - killed
        print(f"a killed peer reported after {late * 1e3:.1f} ms (bound {WATCHDOG * MARGIN * 1e3:.0f} ms)")
        assert late < WATCHDOG * MARGIN
        # each bus is reported once its peer is seen dead: all of them soon
        deadline = time.monotonic() + WATCHDOG * MARGIN
        while len(got) < NBUS and time.monotonic() < deadline:
            got = tachyon.wait(buses, timeout=0.05)
        assert got == buses
        with pytest.raises(tachyon.PeerDeadError):
            buses[0].recv(timeout=0)
    finally:
        close_peer(buses, proc)


def test_close_from_another_thread_wakes_it(sock_path):
    ends = [make_pair(f"{sock_path}.{i}") for i in range(NBUS)]
    prods = [p for p, _ in ends]
    conss = [c for _, c in ends]
    try:
        closed_at = []

        def closer():
            time.sleep(0.3)
            closed_at.append(time.monotonic())
            conss[2].close()

        t = threading.Thread(target=closer)
        t.start()
        got = tachyon.wait(conss, timeout=10)
        late = time.monotonic() - closed_at[0]
        t.join()
        print(f"close from another thread woke wait after {late * 1e3:.2f} ms")
        assert got == [conss[2]]
        assert late < WATCHDOG * MARGIN
        with pytest.raises(tachyon.BusClosedError):
            conss[2].recv(timeout=0)
        # a closed bus stays ready
        assert tachyon.wait(conss, timeout=0) == [conss[2]]
        # the peer closing is ready too
        prods[0].close()
        assert tachyon.wait(conss[:2], timeout=5) == [conss[0]]
        with pytest.raises(tachyon.PeerClosedError):
            conss[0].recv(timeout=0)
    finally:
        for p, c in ends:
            p.close()
            c.close()


def test_arguments(pair):
    prod, cons = pair
    with pytest.raises(ValueError):
        tachyon.wait([])
    with pytest.raises(TypeError):
        tachyon.wait([cons, "bus"])  # type: ignore[list-item]
    with pytest.raises(tachyon.RoleError):
        tachyon.wait([cons, prod], timeout=0)
    with pytest.raises(ValueError):
        tachyon.wait([cons], timeout=-1)
    # a generator is fine, and the result is the caller's objects
    assert tachyon.wait((b for b in [cons]), timeout=0) == []
    prod.send(b"x")
    assert tachyon.wait(iter([cons]), timeout=1) == [cons]


def test_idle_wait_uses_no_cpu(pair):
    """No busy loop while idle: ten seconds of waiting cost almost no CPU."""
    prod, cons = pair
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    assert tachyon.wait([cons], timeout=10) == []
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(f"idle tachyon.wait for {wall:.2f} s used {cpu * 1e3:.1f} ms of CPU")
    assert wall >= 10
    assert cpu < 0.3


def test_sigint_interrupts_wait():
    proc = run_isolated("sigint_wait.py", timeout=60)
    print(proc.stdout.strip())


def test_wake_latency_beside_recv(sock_path):
    """Printed, not asserted: the median wake latency of wait over three buses
    and of recv on one, a message sent by a thread 5 ms after the wait began."""
    ends = [make_pair(f"{sock_path}.{i}") for i in range(NBUS)]
    prod, cons = ends[-1]
    conss = [c for _, c in ends]

    def measure(use_wait):
        lat = []
        for _ in range(40):
            sent = []

            def later():
                time.sleep(0.005)
                sent.append(time.perf_counter())
                prod.send(b"x")

            t = threading.Thread(target=later)
            t.start()
            if use_wait:
                tachyon.wait(conss, timeout=5)
                back = time.perf_counter()
                cons.recv(timeout=0)
            else:
                cons.recv(timeout=5)
                back = time.perf_counter()
            t.join()
            lat.append(back - sent[0])
        lat.sort()
        return lat[len(lat) // 2]

    try:
        w, r = measure(True), measure(False)
        print(f"wake latency (median of 40): tachyon.wait over {NBUS} buses {w * 1e6:.0f} us, "
              f"recv on one {r * 1e6:.0f} us")
    finally:
        for p, c in ends:
            p.close()
            c.close()
