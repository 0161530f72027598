"""Shutdown errors tell the truth, on both sides (docs/PYTHON_API.md,
"Closing and peer loss").

A ring whose state word says closed was closed cleanly: PeerClosedError,
whether the peer's process has exited since (reaped or still a zombie) and
whether this end read `stats` in between (which notices the exit). Only a
peer that exited without closing is PeerDeadError. A producer's error says
how much of what it sent the consumer never released, in the message and
as `unreleased_bytes` / `unreleased_messages`; a consumer's says that
everything was delivered, which it was, and carries None."""
import os
import subprocess
import sys
import threading
import time

import pytest

import tachyon
from conftest import ISOLATED, isolated_env

N = 20
SLOT = 128  # an 8-byte payload behind its 64-byte header, rounded to 64


def spawn(path, role, count, then):
    return subprocess.Popen([sys.executable, str(ISOLATED / "shutdown_peer.py"), path, role, str(count), then],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=isolated_env())


def finish(proc, reap):
    """Wait for the peer's "done"; reap it now, or leave it a zombie."""
    assert proc.stdout.readline().strip() == "done"
    if reap:
        proc.wait(10)
        proc.stdout.close()
    else:  # wait for the exit, but leave the process unreaped
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)


def cleanup(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    for f in (proc.stdin, proc.stdout):
        if f and not f.closed:
            f.close()


MATRIX = [(then, unread, stats, reap) for then in ("close", "die") for unread in (0, N)
          for stats in (False, True) for reap in (True, False)]


def ids(case):
    then, unread, stats, reap = case
    return f"{then}-{unread}unread-{'stats' if stats else 'nostats'}-{'reaped' if reap else 'zombie'}"


@pytest.mark.parametrize("case", MATRIX, ids=ids)
def test_producer_side(sock_path, case):
    then, unread, stats, reap = case
    proc = spawn(sock_path, "consumer", N - unread, then)
    try:
        with tachyon.Bus.listen(sock_path, 1 << 14, timeout=20, role="producer") as prod:
            for i in range(N):
                prod.send(i.to_bytes(8, "little"), timeout=None)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            finish(proc, reap)
            if stats:
                prod.stats  # polls the peer: it has exited, closed or not
            extra = 0  # sends that went out before this end noticed a death
            deadline = time.monotonic() + 5  # 25 watchdog periods
            with pytest.raises((tachyon.PeerClosedError, tachyon.PeerDeadError)) as info:
                while time.monotonic() < deadline:
                    prod.send(b"late", timeout=None)
                    extra += 1
                    time.sleep(0.02)
            err = info.value
            print(f"{ids(case)}: {type(err).__name__} after {extra} more sends: {err}")
            want = tachyon.PeerClosedError if then == "close" else tachyon.PeerDeadError
            assert type(err) is want
            if then == "close":
                assert extra == 0  # the close is seen at the first send
            assert err.unreleased_messages == unread + extra
            assert err.unreleased_bytes == SLOT * (unread + extra)
            if unread + extra:
                assert f"{unread + extra} message" in str(err) and "never released" in str(err)
            else:
                assert "released everything" in str(err)
            assert "delivered" not in str(err)
    finally:
        cleanup(proc)


@pytest.mark.parametrize("case", [c for c in MATRIX if c[1] == 0], ids=ids)
def test_consumer_side(sock_path, case):
    then, _, stats, reap = case
    proc = spawn(sock_path, "producer", N, then)
    try:
        with tachyon.Bus.listen(sock_path, 1 << 14, timeout=20, role="consumer") as cons:
            finish(proc, reap)
            if stats:
                cons.stats
            got = [int.from_bytes(cons.recv(timeout=5).data, "little") for _ in range(N)]
            assert got == list(range(N))
            want = tachyon.PeerClosedError if then == "close" else tachyon.PeerDeadError
            with pytest.raises(want) as info:
                cons.recv(timeout=5)
            err = info.value
            print(f"consumer {ids(case)}: {type(err).__name__}: {err}")
            assert "delivered" in str(err)
            assert err.unreleased_bytes is None and err.unreleased_messages is None
    finally:
        cleanup(proc)


def test_producer_side_against_a_0_5_1_consumer(sock_path):
    """A consumer that does not carry our marker publishes its tail only
    every 32 messages: the bytes are still stated, the message count is not."""
    sys.path.insert(0, str(ISOLATED))
    import fakepeer

    box = {}
    t = threading.Thread(target=lambda: box.setdefault("fd", fakepeer.legacy_listen(sock_path, 4096)))
    t.start()
    prod = tachyon.Bus.connect(sock_path, timeout=10, role="producer")
    t.join()
    try:
        for i in range(3):
            prod.send(i.to_bytes(8, "little"), timeout=0)
        os.pwrite(box["fd"], (fakepeer.STATE_CLOSED).to_bytes(4, "little"), fakepeer.OFF_STATE)
        with pytest.raises(tachyon.PeerClosedError) as info:
            prod.send(b"late", timeout=0)
        err = info.value
        print(f"against a 0.5.1 consumer: {err}")
        assert err.unreleased_bytes == 3 * SLOT
        assert err.unreleased_messages is None
        assert f"{3 * SLOT} bytes of the ring" in str(err) and "0.5.1" in str(err)
    finally:
        prod.close()
        os.close(box["fd"])
