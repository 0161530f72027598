"""The tcp:// bus between two network namespaces joined by a veth pair: a
real link that a test can cut (`ip link set ... down`), unlike loopback.

Needs root and iproute2's `ip`; elsewhere the tests skip and say why. CI
sets TACHYON_REQUIRE_NETNS=1 (.ci/run), which turns that skip into a failure."""
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ISOLATED, finish, isolated_env

pytest.importorskip("zmq", reason="pyzmq is not installed (pip install 'tachyon-ipc[net]')")

CAP = 256 << 10
MAXP = CAP // 2 - 64
A_ADDR, B_ADDR = "10.231.0.1", "10.231.0.2"


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def _unavailable(reason):
    if os.environ.get("TACHYON_REQUIRE_NETNS") == "1":
        pytest.fail(f"network namespaces are required here (TACHYON_REQUIRE_NETNS=1): {reason}")
    pytest.skip(reason)


class Veth:
    """Namespaces a and b, with interfaces dev_a (A_ADDR) and dev_b (B_ADDR)
    joined by a veth pair."""

    def __init__(self):
        tag = f"{os.getpid() % 100000}"
        self.a, self.b = f"tcyn-a-{tag}", f"tcyn-b-{tag}"
        self.dev_a, self.dev_b = f"tcyna{tag}", f"tcynb{tag}"

    def up(self):
        _ip("netns", "add", self.a)
        _ip("netns", "add", self.b)
        _ip("link", "add", self.dev_a, "netns", self.a, "type", "veth",
            "peer", "name", self.dev_b, "netns", self.b)
        for ns, dev, addr in ((self.a, self.dev_a, A_ADDR), (self.b, self.dev_b, B_ADDR)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def down(self):
        # deleting a namespace deletes its end of the veth, and with it the pair
        for ns in (self.a, self.b):
            _ip("netns", "del", ns, check=False)

    def cut(self, up=False):
        _ip("-n", self.a, "link", "set", self.dev_a, "up" if up else "down")

    def run(self, ns, *args, env=None):
        """bridge_peer.py with args in namespace ns, as a Popen."""
        e = isolated_env()
        e["PYTHONPATH"] = str(ISOLATED) + os.pathsep + e["PYTHONPATH"]
        e["TACHYON_TEST_INSECURE"] = "1"
        e.update(env or {})
        return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                                 str(ISOLATED / "bridge_peer.py"), *map(str, args)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)


@pytest.fixture
def veth():
    if os.geteuid() != 0:
        _unavailable("network namespaces need root (ip netns add)")
    if shutil.which("ip") is None:
        _unavailable("iproute2's ip command is not installed")
    pair = Veth()
    try:
        try:
            pair.up()
        except subprocess.CalledProcessError as e:
            _unavailable(f"cannot make the namespaces: {' '.join(e.cmd)}: {e.stderr.strip()}")
        yield pair
    finally:
        pair.down()


def test_checked_stream_across_the_veth(veth):
    n, seed = 3000, 41
    url = f"tcp://{B_ADDR}:5701"
    cons = veth.run(veth.b, "consume", url, "listen", CAP, n, seed, MAXP)
    prod = veth.run(veth.a, "produce", url, "connect", 0, n, seed, MAXP)
    (pc, po, pe), (cc, co, ce) = finish(prod, cons)
    assert pc == 0 and po.split()[:2] == ["ready", "sent"], pe
    assert cc == 0 and co.split() == ["ready", "got", *po.split()[2:]], co + ce
    print(f"{po.split()[2]} messages, {po.split()[3]} bytes checked across the veth")


def test_cut_longer_than_liveness_is_dead_at_both_ends(veth):
    """The link goes down for three times the liveness while a stream runs:
    both ends raise PeerDeadError within liveness + 1 s (5x margin here)."""
    live = 1.0
    url = f"tcp://{B_ADDR}:5702"
    env = {"TACHYON_TEST_LIVENESS": str(live)}
    cons = veth.run(veth.b, "consume", url, "listen", CAP, 10 ** 6, 43, MAXP, env=env)
    prod = veth.run(veth.a, "produce", url, "connect", 0, 10 ** 6, 43, MAXP, env=env)
    try:
        for p in (cons, prod):
            assert p.stdout.readline().strip() == "ready", p.communicate(timeout=10)
        time.sleep(0.5)  # the stream is running
        assert cons.poll() is None and prod.poll() is None
        veth.cut()
        t0 = time.monotonic()
        took, restored = {}, False
        while len(took) < 2 and time.monotonic() - t0 < 5 * (live + 1):
            for name, p in (("consumer", cons), ("producer", prod)):
                if name not in took and p.poll() is not None:
                    took[name] = time.monotonic() - t0
            if not restored and time.monotonic() - t0 > 3 * live:
                veth.cut(up=True)  # back up: too late for the bus, the verdict stands
                restored = True
            time.sleep(0.02)
    finally:
        (cc, co, ce), (pc, po, pe) = finish(cons, prod, timeout=10)
    print(f"PeerDeadError after the cut: {took} (liveness {live} s)")
    assert (cc, pc) == (3, 3), (co + ce, po + pe)
    assert "dead:" in co and "dead:" in po
    assert set(took) == {"consumer", "producer"}
    assert max(took.values()) <= 5 * (live + 1)
