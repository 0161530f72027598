"""A tcp:// bus through a misbehaving network: cuts and stalls made by a
forwarding proxy (tests/isolated/tcp_proxy.py), a stopped producer, a
restarted one. Two real processes over loopback TCP, a test liveness of
1 s (0.5 s where only a bound is measured)."""
import contextlib
import gc
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import tachyon
from conftest import ISOLATED, finish, popen_isolated

zmq = pytest.importorskip("zmq", reason="pyzmq is not installed (pip install 'tachyon-ipc[net]')")
sys.path.insert(0, str(ISOLATED))
from streamcheck import group_type_id, payload_of, sizes, type_id_of  # noqa: E402

CAP = 256 << 10


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    """tcp_proxy.py between the producer (which connects to self.url) and
    the consumer (listening on upstream_url)."""

    def __init__(self):
        self.port, upstream = free_port(), free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.upstream_url = f"tcp://127.0.0.1:{upstream}"
        self.proc = popen_isolated("tcp_proxy.py", self.port, upstream, stdin=subprocess.PIPE)
        assert self.proc.stdout.readline().strip() == "listening"
        self.answers = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.answers.put(float(line.split()[1]))

    def __call__(self, command):
        """Send a command; returns the monotonic time it took effect."""
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.answers.get(timeout=10)

    def close(self):
        self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def proxy():
    p = Proxy()
    yield p
    p.close()


def producer(url, n, seed, live, *extra):
    return popen_isolated("net_resume_peer.py", url, n, seed, live, *extra,
                          stdin=subprocess.PIPE)


def stop(proc):
    proc.kill()
    proc.communicate()


def check_stream(bus, seed, got, deadline, on_message=None, tid=type_id_of):
    """Receive the checked stream from message `got` on, every byte, size and
    type_id (tid(seq)) checked, until PeerClosedError; returns the count."""
    expected = sizes(seed, CAP // 2 - 64, 1 << 40)
    for _ in range(got):
        next(expected)
    with pytest.raises(tachyon.PeerClosedError):
        while time.monotonic() < deadline:
            msg = bus.recv(timeout=20)
            size = next(expected)
            assert msg.type_id == tid(got), f"message {got}: wrong type_id"
            assert msg.data == payload_of(got, size), f"message {got}: lost, repeated or torn"
            got += 1
            if on_message:
                on_message(got)
    return got


@pytest.mark.parametrize("how", ["send", "send_many"])
def test_short_cuts_and_stalls_lose_and_repeat_nothing(proxy, how):
    """A stream at capacity 256 KiB through two resets that drop what was
    in flight (0.3 s and 0.5 s of refused connections), a 0.6 s stall
    (longer than the heartbeat, so both ends see the connection die) and a
    0.6 s SIGSTOP of the producer, all under the 1 s liveness: every
    message arrives once, in order, intact. With send_many, the small
    messages travel several to a frame, and are resent so."""
    live, seed = 1.0, 29
    many = how == "send_many"
    peer = producer(proxy.url, 0, seed, live, *(["many"] if many else []))
    try:
        with tachyon.Bus.listen(proxy.upstream_url, CAP, timeout=30, liveness=live) as bus:
            done = threading.Event()

            def mischief():
                time.sleep(0.5)
                proxy("cut 0.3")
                time.sleep(1.0)
                proxy("pause")
                time.sleep(0.6)
                proxy("resume")
                time.sleep(1.0)
                os.kill(peer.pid, signal.SIGSTOP)
                time.sleep(0.6)
                os.kill(peer.pid, signal.SIGCONT)
                time.sleep(1.0)
                proxy("cut 0.5")
                time.sleep(1.0)
                peer.stdin.write("stop\n")
                peer.stdin.flush()
                done.set()

            t = threading.Thread(target=mischief)
            t.start()
            got = check_stream(bus, seed, 0, time.monotonic() + 60,
                               tid=group_type_id if many else type_id_of)
            t.join()
            resumes, dropped = bus._resumes, bus._dropped
            batched = bus._batches
        out, err = peer.communicate(timeout=30)
    finally:
        stop(peer)
    print(f"checked {got} messages through the cuts ({how}, {batched} batch frames taken); "
          f"{resumes} resumes, {dropped} frames dropped as repeats or behind a gap")
    assert done.is_set()
    assert peer.returncode == 0, err
    words = out.split()
    assert words[:2] == ["sent", str(got)], out
    assert resumes >= 3  # the cuts did cut
    assert (batched > 0) == many


def test_slots_of_a_local_ring_forwarded_across_cuts_keep_flowing(proxy, sock_path):
    """Large payloads forwarded from the slots of a local ring to a tcp bus
    (what the bridge does), through two cuts: while the link is down the
    sends run out of credit and time out (BusFullError), and each slot must
    still go back to the ring at the end of its with block. A slot kept
    until a garbage collection (the collector is off here) stops the ring's
    tail, and with it the stream, at the ring's capacity. The consumer
    checks every byte, the order and the type_ids; the stream must end
    within a bound that only a stall misses (60 s; it takes about 2)."""
    n, ring_cap, tcp_cap, large = 2000, 8 << 20, 2 << 20, 1 << 18
    maxp = tcp_cap // 2 - 64
    peers = [popen_isolated("bridge_peer.py", *args) for args in (
        ("consume", proxy.upstream_url, "listen", tcp_cap, n, 29, maxp, large),
        ("produce", sock_path, "connect", 0, n, 29, maxp, large))]
    timeouts = forwarded = 0
    cuts = threading.Thread(target=lambda: (proxy("cut 0.3"), time.sleep(0.3), proxy("cut 0.3")))
    gc.disable()
    try:
        with tachyon.Bus.listen(sock_path, ring_cap, timeout=30, role="consumer") as ring, \
                tachyon.Bus.connect(proxy.url, timeout=30, role="producer") as tcp:
            began = time.monotonic()
            deadline = began + 60
            while time.monotonic() < deadline:
                try:
                    slot = ring.recv_zero_copy(timeout=1)
                except tachyon.TachyonTimeoutError:
                    continue
                except tachyon.PeerClosedError:
                    break
                with slot:
                    while True:
                        try:
                            tcp.send(slot, slot.type_id, timeout=0.05)
                            break
                        except tachyon.BusFullError:
                            timeouts += 1
                forwarded += 1
                if forwarded == 50:
                    cuts.start()
            resumes, took = tcp._resumes, time.monotonic() - began
        (pc, po, pe), (cc, co, ce) = finish(peers[1], peers[0], timeout=30)
    finally:
        gc.enable()
        if cuts.is_alive():
            cuts.join()
        for p in peers:
            if p.poll() is None:
                stop(p)
    print(f"forwarded {forwarded} slots in {took:.1f} s, {timeouts} sends timed out, "
          f"{resumes} resumes")
    assert resumes >= 1 and timeouts > 0  # the cuts came mid-stream, and sends waited
    assert pc == 0 and po.split()[:2] == ["ready", "sent"], pe
    assert cc == 0, co + ce
    assert co.split() == ["ready", "got", *po.split()[2:]]
    assert forwarded == n


@pytest.mark.parametrize("how", ["cut", "stall"])
def test_a_cut_longer_than_liveness_is_peer_dead_at_both_ends(proxy, how):
    """Connections reset and refused for 3 s, or a network that carries
    nothing (each end then learns of it from the ZMTP heartbeat): both ends
    get PeerDeadError within liveness + 1 s (asserted with a 5x margin),
    never before the liveness, with the last acknowledged message."""
    live, seed = 1.0, 31
    peer = producer(proxy.url, 0, seed, live)
    try:
        with tachyon.Bus.listen(proxy.upstream_url, CAP, timeout=30, liveness=live) as bus:
            expected = sizes(seed, CAP // 2 - 64, 1 << 40)
            got = 0
            for _ in range(200):
                msg = bus.recv(timeout=20)
                assert msg.data == payload_of(got, next(expected))
                got += 1
            t_cut = proxy("cut 3" if how == "cut" else "pause")
            deadline = time.monotonic() + 30  # the wall cap; the verdict comes well before
            with pytest.raises(tachyon.PeerDeadError) as info:
                while time.monotonic() < deadline:
                    msg = bus.recv(timeout=30)
                    assert msg.data == payload_of(got, next(expected))
                    got += 1
            took = time.monotonic() - t_cut
        out, err = peer.communicate(timeout=30)
    finally:
        stop(peer)
    words = out.split()
    assert words[0] == "dead", (out, err)
    peer_took, peer_acked = float(words[1]) - t_cut, int(words[2])
    print(f"{how}, liveness {live} s: PeerDeadError after {took:.2f} s at the consumer "
          f"(last_acked_seq {info.value.last_acked_seq}, {got} received), {peer_took:.2f} s at "
          f"the producer (last_acked_seq {peer_acked})")
    assert peer.returncode == 3
    assert info.value.last_acked_seq == got
    assert peer_acked <= got
    for t in (took, peer_took):
        assert live - 0.05 <= t <= 5 * (live + 1)


@pytest.mark.parametrize("peer", ["connector", "listener"])
def test_a_restarted_producer_ends_the_old_session(peer):
    """kill -9 of the producer and a new process in its place. A restarted
    connector is refused by the listener, which declares the old session
    dead; a restarted listener refuses the old connector's resume. Either
    way the consumer gets what the old session delivered, in order, then
    PeerDeadError well before the liveness; a new bus (listen or connect
    anew) carries the new producer's stream whole."""
    live = 5.0
    url = f"tcp://127.0.0.1:{free_port()}"
    extra = ("listen",) if peer == "listener" else ()

    def open_bus():
        if peer == "listener":
            return tachyon.Bus.connect(url, timeout=30, liveness=live)
        return tachyon.Bus.listen(url, CAP, timeout=30, liveness=live)

    old = producer(url, 0, 41, live, *extra)
    new = None
    try:
        expected = sizes(41, CAP // 2 - 64, 1 << 40)
        got = 0
        with open_bus() as bus:
            for _ in range(300):
                assert bus.recv(timeout=20).data == payload_of(got, next(expected))
                got += 1
            old.kill()
            t_kill = time.monotonic()
            new = producer(url, 300, 43, live, *extra)
            deadline = time.monotonic() + 30  # the wall cap; the verdict comes well before
            with pytest.raises(tachyon.PeerDeadError) as info:
                while time.monotonic() < deadline:
                    assert bus.recv(timeout=30).data == payload_of(got, next(expected))
                    got += 1
            took = time.monotonic() - t_kill
        print(f"restarted {peer}: {got} messages of the old session in order, then "
              f"PeerDeadError {took:.2f} s after kill -9: {info.value}")
        assert ("restarted" if peer == "listener" else "new session") in str(info.value)
        assert info.value.last_acked_seq == got
        assert took < live
        with open_bus() as bus:
            n = check_stream(bus, 43, 0, time.monotonic() + 60)
        out, err = new.communicate(timeout=30)
        assert new.returncode == 0, err
        assert out.split()[:2] == ["sent", str(n)] and n == 300
    finally:
        stop(old)
        if new is not None:
            stop(new)


def test_close_across_a_cut_delivers_everything_first(proxy):
    """The producer (the listener, whose ROUTER loses what it sends while
    the connection is down) closes during a cut: its close waits for the
    consumer's acknowledgement, sending the CLOSE and what the consumer
    lacks again, and the consumer gets PeerClosedError only after the last
    message."""
    live, seed, n = 1.0, 37, 400
    # the consumer stops reading where the rest fits in the producer's
    # credit, so the producer's last send and its close come during the cut
    cost = [s + 64 for s in sizes(seed, CAP // 2 - 64, n)]
    pause_at = next(i for i in range(n) if sum(cost[i:]) <= CAP * 7 // 10)
    peer = producer(proxy.upstream_url, n, seed, live, "hold", "listen")
    told = threading.Event()

    def cut_then_close():
        assert peer.stdout.readline().strip() == "last-sent"
        proxy("cut 0.3")
        peer.stdin.write("close\n")
        peer.stdin.flush()
        told.set()

    try:
        with tachyon.Bus.connect(proxy.url, timeout=30, liveness=live) as bus:
            t = threading.Thread(target=cut_then_close)
            t.start()
            got = check_stream(bus, seed, 0, time.monotonic() + 60,
                               lambda got: got == pause_at and told.wait(20))
            t.join()
            resumes = bus._resumes
        # not communicate(): it would miss what the readline() above buffered
        (_, out, err), = finish(peer, timeout=30)
    finally:
        stop(peer)
    print(f"{got} messages (a cut after {pause_at}), then PeerClosedError; {resumes} resumes; "
          f"producer: {out.strip()}")
    assert told.is_set() and resumes >= 1
    assert peer.returncode == 0, err
    assert got == n and out.split()[:2] == ["sent", str(n)]
    close_took = float(out.split()[3])
    assert close_took <= 5 * live


def test_close_waits_at_most_the_liveness_for_an_absent_acknowledgement():
    """A consumer that never calls (so never acknowledges): the producer's
    close gives up after the liveness, and returns."""
    live = 0.5
    url = f"tcp://127.0.0.1:{free_port()}"
    peer = popen_isolated("net_peer.py", "hang", url, 1 << 16, live, "consumer")
    try:
        bus = tachyon.Bus.connect(url, timeout=20, liveness=live)
        assert peer.stdout.readline().strip() == "ready"
        bus.send(b"unacknowledged", timeout=5)
        t0 = time.monotonic()
        bus.close()
        took = time.monotonic() - t0
    finally:
        stop(peer)
    print(f"close without an acknowledgement returned after {took:.2f} s (liveness {live} s)")
    assert live - 0.05 <= took <= 5 * live


def pair_through(proxy, live=1.0):
    """A listener in this process and a connector reaching it through the
    proxy, neither with a role yet: (connector, listener)."""
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("l", tachyon.Bus.listen(
        proxy.upstream_url, 1 << 16, timeout=10, liveness=live)))
    t.start()
    con = tachyon.Bus.connect(proxy.url, timeout=10, liveness=live)
    t.join()
    return con, out["l"]


def test_a_producer_claim_lost_in_a_cut_is_known_from_the_data(proxy):
    """The connector's role claim is on the wire when the link is cut and
    is lost; its message follows after the resume, and only a producer
    sends data: the listener program's own send is a RoleError (not a
    second producer whose peer's messages go unread), and its receive
    gets the message."""
    con, lis = pair_through(proxy)
    try:
        proxy("pause")
        sender = threading.Thread(target=con.send, args=(b"after the cut",),
                                  kwargs=dict(timeout=5))
        sender.start()      # its claim waits in the stalled link
        time.sleep(0.2)
        proxy("cut 0.2")    # and is lost with the connection
        proxy("resume")
        sender.join()       # no verdict within the liveness: provisional
        time.sleep(0.5)     # the connection is back, and the message with it
        with pytest.raises(tachyon.RoleError, match="the peer is the producer"):
            lis.send(b"a second producer", timeout=1)
        assert lis.recv(timeout=5).data == b"after the cut"
        assert con.role == "producer" and lis.role == "consumer"
    finally:
        con.close()
        lis.close()


def test_a_consumer_claim_lost_in_a_cut_ends_the_waiting_receive(proxy):
    """Both ends want to receive, and the connector's claim is lost in a
    cut: the listener takes the consumer's role, its claim reaches the
    connector, and the connector's receive, waiting since before the cut,
    ends in RoleError instead of both ends waiting for ever."""
    con, lis = pair_through(proxy)
    errors = []

    def receive():
        try:
            con.recv(timeout=8)
        except Exception as e:  # looked at below
            errors.append(e)

    try:
        proxy("pause")
        receiver = threading.Thread(target=receive)
        receiver.start()    # its claim waits in the stalled link
        time.sleep(0.2)
        proxy("cut 0.2")    # and is lost with the connection
        proxy("resume")
        time.sleep(1.5)     # past the claim's wait: the role holds provisionally
        with pytest.raises(tachyon.TachyonTimeoutError):
            lis.recv(timeout=1)  # the listener takes the consumer's role too
        t0 = time.monotonic()
        receiver.join(8)
        took = time.monotonic() - t0
        assert len(errors) == 1 and isinstance(errors[0], tachyon.RoleError), errors
        print(f"the connector's receive ended {took:.2f} s after the listener's: {errors[0]}")
        assert took < 2
    finally:
        con.close()
        lis.close()


@contextlib.contextmanager
def hand_written_producer(session, flags=0):
    """A listener in this process and, connected to it, a DEALER that
    speaks our protocol by hand: yields (bus, dealer, welcome header) once
    the HELLO was answered."""
    from tachyon import _netwire as W

    url = f"tcp://127.0.0.1:{free_port()}"
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "l", tachyon.Bus.listen(url, 1 << 16, timeout=10, liveness=1.0)))
    t.start()
    ctx = zmq.Context()
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    try:
        d.connect(url)
        d.send_multipart([W.header(W.K_HELLO, session, flags=flags), W.TERMS.pack(0, 0, 1000, 0)])
        t.join()
        assert d.poll(5000)
        welcome = W.parse(d.recv_multipart()[0])
        assert welcome[1] == W.K_WELCOME
        with out["l"] as bus:
            yield bus, d, welcome
    finally:
        d.close(0)
        ctx.term()


def test_repeats_and_frames_behind_a_gap_never_reach_the_program():
    """A producer of our protocol written by hand sends what a resume can
    produce: repeats, a frame ahead of a gap, a CLOSE ahead of the last
    message. The program gets each message once, in order, and
    PeerClosedError only after the last."""
    from tachyon import _netwire as W

    session = 77
    with hand_written_producer(session) as (bus, d, _):
        for seq in (1, 2, 2, 1, 4, 3, 4, 3, 5):
            d.send(W.header(W.K_DATA, session, flags=W.F_INLINE, type_id=seq, seq=seq)
                   + b"m%d" % seq)
        d.send(W.header(W.K_CLOSE, session, seq=6))
        got = [bus.recv(timeout=5).data for _ in range(5)]
        assert got == [b"m1", b"m2", b"m3", b"m4", b"m5"]
        with pytest.raises(tachyon.TachyonTimeoutError):
            bus.recv(timeout=0.3)  # closed after message 6, which is not here yet
        d.send(W.header(W.K_DATA, session, flags=W.F_INLINE, type_id=6, seq=6) + b"m6")
        assert bus.recv(timeout=5).data == b"m6"
        with pytest.raises(tachyon.PeerClosedError):
            bus.recv(timeout=5)


def test_batches_are_taken_whole_or_dropped_whole():
    """BATCH frames written by hand: a good one gives each message its own
    type_id, in order; one whose count, item lengths or end do not add up,
    an empty one, or a repeat is dropped whole (and counted), and nothing
    of it reaches the program."""
    from tachyon import _netwire as W

    session = 78

    def item(tid, data):
        return W.ITEM.pack(tid, len(data)) + data

    def batch(seq, body, count):
        return W.header(W.K_BATCH, session, type_id=count, seq=seq) + body

    with hand_written_producer(session, flags=W.F_BATCH) as (bus, d, welcome):
        assert welcome[2] & W.F_BATCH
        d.send(batch(1, item(11, b"one") + item(12, b"") + item(13, b"three"), 3))
        got = [bus.recv(timeout=5) for _ in range(3)]
        assert [(m.type_id, m.data) for m in got] == [(11, b"one"), (12, b""), (13, b"three")]
        dropped = bus._dropped
        lies = [
            batch(4, item(1, b"a") + item(2, b"b"), 3),           # count beyond the items
            batch(4, item(1, b"a") + W.ITEM.pack(2, 9) + b"b", 2),  # a size past the end
            batch(4, item(1, b"a") + item(2, b"b") + b"x", 2),    # bytes after the last
            batch(4, b"", 0),                                     # no messages
            batch(4, item(1, b"a")[:5], 1),                       # a torn item header
            batch(4, W.ITEM.pack(1, 1 << 31), 1),                 # a size over max_payload
            batch(1, item(11, b"one"), 1),                        # a repeat
        ]
        for lie in lies:
            d.send(lie)
        with pytest.raises(tachyon.TachyonTimeoutError):
            bus.recv(timeout=0.3)
        assert bus._dropped - dropped == len(lies)
        d.send(batch(4, item(4, b"m4") + item(5, b"m5"), 2))
        d.send(W.header(W.K_DATA, session, flags=W.F_INLINE, type_id=6, seq=6) + b"m6")
        d.send(W.header(W.K_CLOSE, session, seq=6))
        got = [bus.recv(timeout=5) for _ in range(3)]
        assert [(m.type_id, m.data) for m in got] == [(4, b"m4"), (5, b"m5"), (6, b"m6")]
        with pytest.raises(tachyon.PeerClosedError):
            bus.recv(timeout=5)
