"""tachyon.wait with tcp:// buses (docs/ACROSS_HOSTS.md): alone and beside a
local bus, the producer in another process. It reports the bus that has a
message and takes nothing (a message a tcp bus already took in from its
socket counts), returns [] after the timeout, and a close from another thread
or Ctrl-C ends it."""
import subprocess
import threading
import time

import pytest

import tachyon
from conftest import popen_isolated, run_isolated

zmq = pytest.importorskip("zmq", reason="pyzmq is not installed (pip install 'tachyon-ipc[net]')")

from test_net import free_url  # noqa: E402

SLICE = 0.2
MARGIN = 5


def open_ends(addresses, *peer_args):
    """Consumer ends listening on every address (in threads), the wait_peer.py
    process connecting to all of them; returns (buses, peer)."""
    box = {}

    def listen(i, a):
        box[i] = tachyon.Bus.listen(a, 1 << 16, timeout=20, role="consumer")

    threads = [threading.Thread(target=listen, args=(i, a)) for i, a in enumerate(addresses)]
    for t in threads:
        t.start()
    peer = popen_isolated("wait_peer.py", *peer_args, *addresses, stdin=subprocess.PIPE)
    for t in threads:
        t.join()
    assert peer.stdout.readline().strip() == "connected"
    return [box[i] for i in range(len(addresses))], peer


def close_ends(buses, peer):
    try:
        if peer.poll() is None:
            peer.stdin.close()
            peer.wait(timeout=20)
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait()
        for f in (peer.stdin, peer.stdout, peer.stderr):
            if f and not f.closed:
                f.close()
        for b in buses:
            b.close()


@pytest.fixture
def addresses(sock_path):
    return [free_url(), sock_path]


def test_one_tcp_bus_reported_and_nothing_taken():
    (bus,), peer = open_ends([free_url()], "send", 0, 0.3)
    try:
        assert tachyon.wait([bus], timeout=0) == []
        t0 = time.monotonic()
        assert tachyon.wait([bus], timeout=10) == [bus]
        print(f"woke after {time.monotonic() - t0:.3f} s (the peer sent at 0.3 s)")
        assert peer.stdout.readline().startswith("sent")
        # The frame was taken in from the socket, not handed out: the bus
        # holds it, so asking again says the same, and recv has it.
        assert len(bus._rx) == 1
        assert tachyon.wait([bus], timeout=0) == [bus]
        m = bus.try_recv()
        assert m is not None and (m.data, m.type_id) == (b"hello", 7)
        assert tachyon.wait([bus], timeout=0.05) == []
    finally:
        close_ends([bus], peer)


@pytest.mark.parametrize("which", [0, 1], ids=["tcp-has-data", "local-has-data"])
def test_tcp_beside_local_reports_the_one_with_data(addresses, which):
    buses, peer = open_ends(addresses, "send", which, 0.3)
    try:
        assert tachyon.wait(buses, timeout=0) == []
        t0 = time.monotonic()
        got = tachyon.wait(buses, timeout=10)
        print(f"woke after {time.monotonic() - t0:.3f} s (the peer sent at 0.3 s)")
        assert got == [buses[which]]
        assert tachyon.wait(buses, timeout=0) == [buses[which]]  # still there
        assert buses[which].recv(timeout=0).data == b"hello"
        assert buses[1 - which].try_recv() is None
        assert tachyon.wait(buses, timeout=0.05) == []
    finally:
        close_ends(buses, peer)


@pytest.mark.parametrize("kind", ["tcp", "tcp-and-local"])
def test_timeout_returns_empty_in_about_the_timeout(addresses, kind):
    buses, peer = open_ends(addresses if kind != "tcp" else addresses[:1], "hold")
    try:
        for timeout in (0.05, 0.3):
            t0 = time.monotonic()
            assert tachyon.wait(buses, timeout=timeout) == []
            took = time.monotonic() - t0
            print(f"timeout {timeout}: returned after {took:.3f} s")
            assert timeout <= took < timeout + SLICE * MARGIN
    finally:
        close_ends(buses, peer)


@pytest.mark.parametrize("kind", ["tcp", "tcp-and-local"])
def test_close_from_another_thread_ends_the_wait(addresses, kind):
    buses, peer = open_ends(addresses if kind != "tcp" else addresses[:1], "hold")
    tcp = buses[0]
    try:
        closed_at = []

        def closer():
            time.sleep(0.3)
            closed_at.append(time.monotonic())
            tcp.close()

        t = threading.Thread(target=closer)
        t.start()
        got = tachyon.wait(buses, timeout=30)
        took = time.monotonic() - closed_at[0]
        t.join()
        print(f"close from another thread ended the wait after {took * 1e3:.1f} ms")
        assert got == [tcp]
        assert took < SLICE * MARGIN
        with pytest.raises(tachyon.BusClosedError):
            tcp.recv(timeout=0)
    finally:
        close_ends(buses, peer)


def test_peer_close_is_ready():
    (bus,), peer = open_ends([free_url()], "hold")
    try:
        peer.stdin.close()  # the peer closes its end
        assert tachyon.wait([bus], timeout=10) == [bus]
        with pytest.raises(tachyon.PeerClosedError):
            bus.recv(timeout=0)
    finally:
        close_ends([bus], peer)


def test_a_producer_end_is_refused():
    url = free_url()
    box = {}
    t = threading.Thread(target=lambda: box.setdefault(
        "l", tachyon.Bus.listen(url, 1 << 12, timeout=10, role="producer")))
    t.start()
    con = tachyon.Bus.connect(url, timeout=10)
    t.join()
    with box["l"] as lis, con:
        with pytest.raises(tachyon.RoleError):
            tachyon.wait([lis], timeout=0)
        with pytest.raises(TypeError, match=r"buses\[1\]"):
            tachyon.wait([con, object()], timeout=0)


@pytest.mark.parametrize("mode", ["wait", "wait-mixed"])
def test_ctrl_c_interrupts_the_wait(mode):
    proc = run_isolated("net_sigint.py", mode, timeout=60)
    print(proc.stdout.strip())
    words = proc.stdout.split()
    assert words[0] == "interrupted", proc.stdout
    assert float(words[2]) < SLICE * MARGIN


def test_tcp_beside_an_rpc_bus(sock_path):
    """An RpcBus counts as the ring it receives on, beside a tcp bus too."""
    from test_net import local_pair

    lis, con = local_pair()
    box = {}
    t = threading.Thread(target=lambda: box.setdefault(
        "callee", tachyon.RpcBus.rpc_listen(sock_path, 1 << 12, 1 << 12, timeout=10)))
    t.start()
    caller = tachyon.RpcBus.rpc_connect(sock_path, timeout=10)
    t.join()
    callee = box["callee"]
    with lis, con, callee, caller:
        assert tachyon.wait([lis, callee], timeout=0) == []
        caller.call(b"q", 1)
        assert tachyon.wait([lis, callee], timeout=5) == [callee]
        con.send(b"x")
        deadline = time.monotonic() + 5
        while tachyon.wait([lis, callee], timeout=1) != [lis, callee]:
            assert time.monotonic() < deadline
        assert lis.recv(timeout=0).data == b"x"
