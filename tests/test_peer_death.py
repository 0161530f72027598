"""Peer death is reported, a live peer never is (R5).

The kill storm (tests/isolated/kill_storm.py) kills peers of every kind at
random moments; here it runs in its short form, two processes side by side
(the runs mostly wait for the watchdog, so two fit on two vCPUs). The other
tests keep a peer alive and idle, with its socket closed as tachyon-ipc
0.5.1 does, or stopped with SIGSTOP: never reported dead."""
import json
import os
import signal
import time

import pytest

import tachyon
from conftest import ISOLATED, isolated_env, popen_isolated

PEER_DEATH_BOUND = 0.5  # seconds, docs/RELIABILITY.md (liveness bounds)
MARGIN = 5
STORM_RUNS = 200
STORM_JOBS = 2


def test_kill_storm():
    """kill -9 at random moments in 200 runs: everything published arrives
    intact and in order, then PeerDeadError within the bound."""
    import subprocess
    import sys

    env = isolated_env()
    seed = int(time.time())
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, str(ISOLATED / "kill_storm.py"), "--runs", str(STORM_RUNS // STORM_JOBS),
             "--seed", str(seed + j), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for j in range(STORM_JOBS)
    ]
    summaries = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=240)
            print(out)
            assert p.returncode == 0, f"kill_storm.py exited {p.returncode}\n{out}\n{err}"
            summaries.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    runs = sum(s["runs"] for s in summaries)
    worst = max(s["max_latency_ms"] for s in summaries)
    messages = sum(s["messages"] for s in summaries)
    print(f"kill storm: {runs} runs ({STORM_JOBS} processes, seeds {seed}..{seed + STORM_JOBS - 1}) in "
          f"{time.monotonic() - t0:.1f} s, {messages} messages checked, max detection latency {worst} ms "
          f"(bound {PEER_DEATH_BOUND * 1e3:.0f} ms)")
    assert runs == STORM_RUNS
    assert worst < PEER_DEATH_BOUND * MARGIN * 1e3
    for s in summaries:
        assert s["fds_before"] == s["fds_after"]
        assert all(d["runs"] > 0 for d in s["by_scenario"].values()), s["by_scenario"]


class Peer:
    """tests/isolated/idle_peer.py, driven line by line."""

    CAP = 60  # seconds: the wall-time cap of a test that drives a peer

    def __init__(self, path, style):
        import subprocess
        import threading

        self.proc = popen_isolated("idle_peer.py", path, style, stdin=subprocess.PIPE)
        # a peer that hangs must not hang the test: killed at the cap, its
        # readline() then sees EOF and the test fails
        self.cap = threading.Timer(self.CAP, self.proc.kill)
        self.cap.daemon = True
        self.cap.start()

    def expect(self, word):
        line = self.proc.stdout.readline().split()
        assert line and line[0] == word, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        return line

    def cmd(self, text, reply):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self.expect(reply)

    def close(self):
        self.cap.cancel()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def expect_msg(bus, i, timeout=5):
    msg = bus.recv(timeout=timeout)
    assert (msg.type_id, msg.data) == (i, i.to_bytes(4, "little") * 8)


IDLE = 2.0  # seconds of silence: ten watchdog periods
STOPPED = 3.0  # seconds in SIGSTOP


@pytest.mark.parametrize("style", ["ours-closed-socket", "legacy"])
def test_live_peer_never_reported_dead(sock_path, style):
    """A producer that closed its socket right after the handshake (as 0.5.1
    does), then idles, then is stopped: never dead; it goes on afterwards;
    and once really dead it is reported within the bound."""
    peer = Peer(sock_path, style)
    try:
        if style == "legacy":  # the Python 0.5.1-style peer listens; we connect
            bus = tachyon.Bus.connect(sock_path, timeout=20, role="consumer")
        else:
            bus = tachyon.Bus.listen(sock_path, 4096, timeout=20, role="consumer")
        with bus:
            peer.expect("ready")
            assert bus.peer_pid == peer.proc.pid
            peer.cmd("send 1", "sent")
            expect_msg(bus, 0)

            t0 = time.monotonic()  # idle, its socket long closed
            with pytest.raises(tachyon.TachyonTimeoutError):
                bus.recv(timeout=IDLE)
            with pytest.raises(tachyon.TachyonTimeoutError):
                with bus.drain_batch(timeout=0.5):
                    pass
            idle = time.monotonic() - t0
            peer.cmd("send 1", "sent")
            expect_msg(bus, 1)

            os.kill(peer.proc.pid, signal.SIGSTOP)
            t0 = time.monotonic()
            try:
                with pytest.raises(tachyon.TachyonTimeoutError):
                    bus.recv(timeout=STOPPED)
                assert bus.stats.peer_pid == peer.proc.pid
            finally:
                os.kill(peer.proc.pid, signal.SIGCONT)
            stopped = time.monotonic() - t0
            peer.cmd("send 3", "sent")
            with bus.drain_batch(timeout=5) as batch:
                first = [v.type_id for v in batch]
            for i in range(2 + len(first), 5):
                expect_msg(bus, i)
            assert first and first[0] == 2

            killed = time.monotonic()
            peer.proc.kill()
            with pytest.raises(tachyon.PeerDeadError) as ei:
                bus.recv(timeout=10)
            latency = time.monotonic() - killed
            assert type(ei.value) is tachyon.PeerDeadError
        print(f"{style}: idle {idle:.1f} s and stopped {stopped:.1f} s without a false death; "
              f"after kill -9 PeerDeadError in {latency * 1e3:.1f} ms (bound {PEER_DEATH_BOUND * 1e3:.0f} ms)")
        assert latency < PEER_DEATH_BOUND * MARGIN
    finally:
        peer.close()


def test_stopped_consumer_is_not_dead(sock_path):
    """A send waiting for room while the consumer is stopped: BusFullError at
    its timeout, never PeerDeadError; after SIGCONT the waiting send goes through."""
    peer = Peer(sock_path, "consumer")
    try:
        with tachyon.Bus.listen(sock_path, 4096, timeout=20, role="producer") as bus:
            peer.expect("ready")
            n = 0
            with pytest.raises(tachyon.BusFullError):
                while True:
                    bus.send(n.to_bytes(4, "little") * 8, type_id=n)
                    n += 1
            os.kill(peer.proc.pid, signal.SIGSTOP)
            t0 = time.monotonic()
            try:
                with pytest.raises(tachyon.BusFullError):
                    bus.send(n.to_bytes(4, "little") * 8, type_id=n, timeout=STOPPED)
            finally:
                os.kill(peer.proc.pid, signal.SIGCONT)
            stopped = time.monotonic() - t0
            peer.proc.stdin.write(f"recv {n + 1}\n")
            peer.proc.stdin.flush()
            bus.send(n.to_bytes(4, "little") * 8, type_id=n, timeout=10)  # room comes once it reads
            peer.expect("got")
        print(f"producer waited {stopped:.1f} s on a stopped consumer without a false death; "
              f"{n + 1} messages then delivered")
    finally:
        peer.close()
