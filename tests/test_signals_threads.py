"""Ctrl-C and threads (docs/RELIABILITY.md R12, docs/PYTHON_API.md "Threads")."""
import threading
import time

import pytest

import tachyon
from conftest import finish, make_pair, popen_isolated

WATCHDOG = 0.2
MARGIN = 5


@pytest.mark.parametrize("delivery", ["direct", "masked"])
def test_sigint_during_blocking_recv(delivery):
    import signal

    proc = popen_isolated("sigint_recv.py", delivery)
    try:
        assert proc.stdout.readline().strip() == "blocking"
        time.sleep(0.5)  # well inside the blocking recv (spin done, asleep on the futex)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        line = proc.stdout.readline().split()
        assert line[0] == "interrupted", line
        latency = float(line[1]) - sent
        # not communicate(): it would miss what readline() buffered
        (_, out, err), = finish(proc, timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    print(f"{delivery}: KeyboardInterrupt {latency * 1e3:.1f} ms after SIGINT (bound {WATCHDOG * 1e3:.0f} ms)")
    assert latency < WATCHDOG * MARGIN
    assert proc.returncode == 0, err
    assert out.strip() == "after ok 20"


@pytest.mark.parametrize("side", ["recv", "send", "drain_batch", "lock_wait"])
def test_close_wakes_blocked_call(pair, side):
    prod, cons = pair
    errors, woke = [], []
    if side == "send":
        while True:
            try:
                prod.send(b"x" * 500)
            except tachyon.BusFullError:
                break
        bus = prod
        call = lambda: prod.send(b"x" * 500, timeout=None)  # noqa: E731
    elif side == "recv":
        bus, call = cons, cons.recv
    elif side == "drain_batch":
        bus, call = cons, cons.drain_batch
    else:
        bus, call = cons, cons.recv
        blocker = threading.Thread(target=lambda: pytest.raises(tachyon.BusClosedError, cons.recv))
        blocker.start()
        time.sleep(0.1)  # the second caller below waits for the consumer family

    def worker():
        try:
            call()
        except BaseException as exc:
            errors.append(exc)
        woke.append(time.monotonic())

    t = threading.Thread(target=worker)
    t.start()
    time.sleep(0.4)
    assert t.is_alive()
    closed = time.monotonic()
    bus.close()
    t.join(5)
    assert not t.is_alive()
    latency = woke[0] - closed
    print(f"{side}: woken {latency * 1e3:.1f} ms after close() (bound {WATCHDOG * 1e3:.0f} ms)")
    assert len(errors) == 1 and isinstance(errors[0], tachyon.BusClosedError), errors
    assert latency < WATCHDOG * MARGIN
    if side == "lock_wait":
        blocker.join(5)


def test_other_thread_progresses_while_one_blocks(sock_path, pair):
    prod1, cons1 = pair
    blocked = threading.Thread(target=lambda: pytest.raises(tachyon.BusClosedError, cons1.recv))
    blocked.start()
    prod2, cons2 = make_pair(sock_path + "2", 1 << 14)
    try:
        t0 = time.monotonic()
        for i in range(2000):
            prod2.send(i.to_bytes(4, "little"))
            assert cons2.recv(timeout=5).data == i.to_bytes(4, "little")
        elapsed = time.monotonic() - t0
        print(f"2000 round trips on another bus in {elapsed * 1e3:.0f} ms while a recv blocks")
        assert blocked.is_alive()
    finally:
        cons1.close()
        blocked.join(5)
        prod2.close()
        cons2.close()


def test_two_consumer_threads_share_one_end(pair):
    prod, cons = pair
    n = 4000
    got = [[], []]
    errors = []

    def consumer(k):
        try:
            while True:
                got[k].append(int.from_bytes(cons.recv(timeout=5).data, "little"))
        except tachyon.PeerClosedError:
            pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=consumer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for i in range(n):
        prod.send(i.to_bytes(4, "little"), timeout=None)
    prod.close()
    for t in threads:
        t.join(20)
    assert not errors, errors
    assert sorted(got[0] + got[1]) == list(range(n))
    assert got[0] == sorted(got[0]) and got[1] == sorted(got[1])
    print(f"thread shares: {len(got[0])} / {len(got[1])}")


def test_two_producer_threads_share_one_end(pair):
    prod, cons = pair
    n = 3000
    errors = []

    def producer(k):
        try:
            for i in range(n):
                prod.send(bytes([k]) + i.to_bytes(4, "little"), timeout=None)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    seen = {0: [], 1: []}
    for _ in range(2 * n):
        d = cons.recv(timeout=10).data
        seen[d[0]].append(int.from_bytes(d[1:], "little"))
    for t in threads:
        t.join(10)
    assert not errors, errors
    assert seen[0] == list(range(n)) and seen[1] == list(range(n))


def test_exports_released_from_other_thread_while_recv_blocks(pair):
    """A release deferred while another thread waits in recv is applied within the watchdog."""
    prod, cons = pair
    prod.send(b"p" * 1000)
    with cons.recv_zero_copy(timeout=1) as rx:
        mv = memoryview(rx)
    result = []
    t = threading.Thread(target=lambda: result.append(cons.recv(timeout=5)))
    t.start()
    time.sleep(0.3)  # the worker holds the consumer family, asleep
    mv.release()  # deferred: the RX family is busy
    deadline = time.monotonic() + WATCHDOG * MARGIN
    while cons.stats.pinned_bytes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cons.stats.pinned_bytes == 0
    prod.send(b"q")
    t.join(5)
    assert result[0].data == b"q"


def test_signal_handler_reentering_the_bus_does_not_hang(pair):
    """A handler run from inside our wait that calls recv again gets RuntimeError, not a deadlock."""
    import signal

    prod, cons = pair
    seen = []

    def handler(signum, frame):
        seen.append(signum)
        cons.recv()  # the interrupted recv holds the consumer family: re-entry

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(RuntimeError, match="re-entrant"):
            cons.recv(timeout=10)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert seen == [signal.SIGALRM]
    prod.send(b"still fine")
    assert cons.recv(timeout=1).data == b"still fine"


def test_sigint_storm_loses_nothing():
    """R12 under fire: 300 SIGINTs at random moments while the main thread
    iterates (resuming after each KeyboardInterrupt): 20000 messages, each
    once, in order."""
    from conftest import run_isolated

    t0 = time.monotonic()
    proc = run_isolated("sigint_storm.py", 20000, 300, int(t0), timeout=120)
    words = proc.stdout.split()
    assert words[:2] == ["storm", "ok"], proc.stdout
    messages, sent, caught = map(int, words[2:5])
    print(f"{messages} messages in order through {caught} KeyboardInterrupts ({sent} SIGINTs sent) "
          f"in {time.monotonic() - t0:.1f} s")
    assert messages == 20000 and caught > 0
