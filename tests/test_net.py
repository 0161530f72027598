"""The bus across hosts (tcp:// addresses, tachyon/net.py) over loopback TCP,
with the other end in a second process where the behaviour is about two
processes (a stream, back-pressure, a killed or stopped peer)."""
import gc
import os
import platform
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import tachyon
from conftest import ISOLATED, isolated_env, popen_isolated, run_isolated

zmq = pytest.importorskip("zmq", reason="pyzmq is not installed (pip install 'tachyon-ipc[net]')")
sys.path.insert(0, str(ISOLATED))
from streamcheck import payload_of, sizes, type_id_of  # noqa: E402

from tachyon import _netwire as W  # noqa: E402


def free_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def local_pair(capacity=1 << 16, liveness=1.0):
    """A listener and a connector in this process (the listener's handshake
    runs in a thread); returns (listener, connector)."""
    url = free_url()
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "l", tachyon.Bus.listen(url, capacity, timeout=10, liveness=liveness)))
    t.start()
    c = tachyon.Bus.connect(url, timeout=10, liveness=liveness)
    t.join()
    return out["l"], c


def stop(peer):
    """Kill a peer process (running or stopped) and close its pipes."""
    peer.kill()
    peer.communicate()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_same_api_as_bus():
    lis, con = local_pair(1 << 12)
    with lis, con:
        assert isinstance(con, tachyon.Bus) and isinstance(lis, tachyon.Bus)
        assert con.max_payload == lis.max_payload == (1 << 12) // 2 - 64
        assert con.capacity == 1 << 12 and con.peer_pid is None
        con.set_polling_mode(1)
        con.send(b"abc", type_id=7)
        assert con.role == "producer"
        msg = lis.recv(timeout=5)
        assert (msg.type_id, msg.data) == (7, b"abc") and lis.role == "consumer"
        assert lis.try_recv() is None
        assert con.send_many([b"1", b"22", memoryview(b"333")], type_id=2) == 3
        with con.send_zero_copy(5, type_id=3) as tx:
            memoryview(tx)[:] = b"hello"
            tx.actual_size = 4
        con.flush()
        with lis.drain_batch(timeout=5) as batch:
            got = [bytes(v) for v in batch]
        while len(got) < 4:
            got.append(lis.recv(timeout=5).data)
        assert got == [b"1", b"22", b"333", b"hell"]
        with pytest.raises(ValueError):
            con.send(b"x" * (con.max_payload + 1))
        with pytest.raises(tachyon.RoleError):
            con.recv(timeout=0)
        s = con.stats
        assert s.ring_capacity == 1 << 12 and s.sent_messages == 5 and s.peer_pid is None


def test_checked_stream_across_processes():
    """Log-uniform sizes 0..max_payload at capacity 256 KiB, with type_ids,
    every byte checked; the peer's orderly close arrives after the last."""
    url = free_url()
    n, seed, cap_bytes, wall = 20000, 17, 64 << 20, 60.0
    peer = popen_isolated("net_peer.py", "produce", url, n, seed, cap_bytes)
    try:
        with tachyon.Bus.listen(url, 256 << 10, timeout=20) as bus:
            deadline = time.monotonic() + wall
            got = total = 0
            expected = sizes(seed, (256 << 10) // 2 - 64, n)
            with pytest.raises(tachyon.PeerClosedError):
                while time.monotonic() < deadline:
                    if got % 2:
                        msg = bus.recv(timeout=20)
                        tid, data = msg.type_id, msg.data
                    else:
                        with bus.recv_zero_copy(timeout=20) as rx:
                            tid, data = rx.type_id, bytes(rx)
                    size = next(expected)
                    assert tid == type_id_of(got), got
                    assert data == payload_of(got, size), got
                    got += 1
                    total += size
        out, err = peer.communicate(timeout=30)
    finally:
        stop(peer)
    print(f"checked {got} messages, {total} bytes")
    assert peer.returncode == 0, err
    assert out.split() == ["sent", str(got), str(total)]


def test_stalled_consumer_bounds_memory_and_is_not_dead():
    """A consumer that never reads: the producer gets BusFullError once the
    capacity is in flight, however long it keeps trying, and the consumer's
    memory stays flat; after several liveness periods it is still not dead."""
    url, cap, live = free_url(), 1 << 20, 0.5
    peer = popen_isolated("net_peer.py", "stall", url, cap, live)
    try:
        with tachyon.Bus.connect(url, timeout=20, liveness=live) as bus:
            chunk = b"x" * (bus.max_payload // 4)
            sent = 0
            with pytest.raises(tachyon.BusFullError):
                for _ in range(1000):
                    bus.send(chunk, timeout=0.2)
                    sent += 1
            assert sent * (len(chunk) + 64) <= cap
            base = rss_kb(peer.pid)
            tries = 0
            end = time.monotonic() + 6 * live
            while time.monotonic() < end:
                with pytest.raises(tachyon.BusFullError):
                    bus.send(chunk, timeout=0.1)
                tries += 1
            grown = rss_kb(peer.pid) - base
            print(f"sent {sent} x {len(chunk)} B, then {tries} refused tries; consumer RSS +{grown} KiB")
            assert grown < 8 << 10
    finally:
        stop(peer)


@pytest.mark.parametrize("how", ["kill", "stop"])
@pytest.mark.parametrize("peer_is", ["listener", "connector"])
def test_dead_peer_is_reported_within_liveness(how, peer_is):
    live = 1.0
    url = free_url()
    if peer_is == "listener":
        peer = popen_isolated("net_peer.py", "hang", url, 1 << 16, live, "producer")
        time.sleep(0.3)
        bus = tachyon.Bus.connect(url, timeout=20, liveness=live)
    else:
        peer = popen_isolated("net_peer.py", "hang", url, 0, live, "producer")
        bus = tachyon.Bus.listen(url, 1 << 16, timeout=20, liveness=live)
    try:
        assert peer.stdout.readline().strip() == "ready"
        os.kill(peer.pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        t0 = time.monotonic()
        with pytest.raises(tachyon.PeerDeadError):
            bus.recv(timeout=5 * (live + 1))
        took = time.monotonic() - t0
        print(f"{how} of the {peer_is}: PeerDeadError after {took:.2f} s (liveness {live} s)")
        assert took <= 5 * (live + 1)
    finally:
        bus.close()
        stop(peer)


def test_orderly_close_delivers_everything_first():
    lis, con = local_pair()
    with lis:
        for i in range(100):
            con.send(i.to_bytes(4, "little"), timeout=5)
        con.close()
        got = [int.from_bytes(m.data, "little") for m in lis]
        assert got == list(range(100))
        with pytest.raises(tachyon.PeerClosedError):
            lis.recv(timeout=1)


def test_close_from_another_thread_ends_a_blocked_recv():
    lis, con = local_pair()
    with con:
        res = {}

        def recv():
            t0 = time.monotonic()
            try:
                lis.recv(timeout=30)
            except Exception as e:
                res["e"], res["t"] = e, time.monotonic() - t0

        t = threading.Thread(target=recv)
        t.start()
        time.sleep(0.3)
        t1 = time.monotonic()
        lis.close()
        t.join(10)
        took = time.monotonic() - t1
        print(f"close seen by the blocked recv after {took:.3f} s")
        assert isinstance(res.get("e"), tachyon.BusClosedError)
        assert took < 5 * 0.2


def test_role_conflict_goes_to_the_listener():
    lis, con = local_pair()
    with lis, con:
        lis.send(b"from the listener")
        with pytest.raises(tachyon.RoleError):
            con.send(b"me too", timeout=1)
        assert con.role is None
        assert con.recv(timeout=5).data == b"from the listener"


def test_a_claim_the_listener_can_only_grant_needs_no_verdict():
    """The listener took the producer's role (its data is here): the
    connector's claim of the consumer's is granted whenever the listener's
    program next calls, so the receive does not wait for that call (a
    ping-pong over two buses stalled for a liveness at its first message)."""
    lis, con = local_pair(liveness=10.0)
    with lis, con:
        lis.send(b"ping")
        t0 = time.monotonic()
        assert con.recv(timeout=30).data == b"ping"
        took = time.monotonic() - t0
        print(f"first receive after {took:.3f} s")
        assert took < 2.0
        assert con.role == "consumer"
        # the verdict, when the listener's program calls again, agrees
        assert lis.send(b"again") is None
        assert con.recv(timeout=5).data == b"again"
        assert con.role == "consumer"


def test_received_views_read_only_aligned_dlpack():
    torch = pytest.importorskip("torch")
    lis, con = local_pair(1 << 20)
    with lis, con:
        arr = np.arange(1000, dtype=np.float64)
        con.send(arr, type_id=5)
        with lis.recv_zero_copy(timeout=5) as rx:
            mv = memoryview(rx)
            assert mv.readonly and len(mv) == arr.nbytes
            with pytest.raises(TypeError):
                mv[0] = 1
            got = np.from_dlpack(rx)  # 1-D uint8, in place
            assert got.ctypes.data % 64 == 0
            assert np.array_equal(got.view(np.float64), arr)
            t = torch.from_dlpack(rx)
            assert t.dtype == torch.uint8 and t.numel() == arr.nbytes
            del mv, got, t
        # a tensor frame (made by a local bus's send_array) keeps its dtype
        frame = _frame_bytes(arr.reshape(10, 100))
        con.send(frame.data, type_id=frame.type_id)
        with lis.recv_zero_copy(timeout=5) as rx:
            a = rx.array()
            assert a.dtype == np.float64 and a.shape == (10, 100)
            assert np.array_equal(a, arr.reshape(10, 100)) and not a.flags.writeable
            t = torch.from_dlpack(rx)
            assert t.dtype == torch.float64 and tuple(t.shape) == (10, 100)
            del a, t


def _frame_bytes(arr):
    import tempfile

    path = os.path.join(tempfile.gettempdir(), f"tachyon-net-frame-{os.getpid()}.sock")
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("c", tachyon.Bus.connect(path, timeout=10)))
    t.start()
    with tachyon.Bus.listen(path, 1 << 20, timeout=10) as lis:
        t.join()
        with out["c"] as con:
            lis.send_array(arr)
            return con.recv(timeout=5)


def _unaligned_float64_owner():
    buf = np.zeros(800 + 128, np.uint8)
    off = (-buf.ctypes.data) % 64 + 8
    owner = buf[off:off + 800]  # starts 8 bytes past a 64-byte boundary
    owner.view(np.float64)[:] = np.arange(100.0)
    return owner


def test_unaligned_payload_is_copied_once_into_aligned_memory():
    owner = _unaligned_float64_owner()
    fv = tachyon._core._ForeignView(owner, 0)
    a = np.from_dlpack(fv)
    owner[:] = 0  # DLPack reads the view's own aligned copy
    assert a.ctypes.data % 64 == 0 and fv.copied
    assert np.array_equal(a.view(np.float64), np.arange(100.0))
    b = np.from_dlpack(fv)  # the copy is made once, then shared
    assert b.ctypes.data == a.ctypes.data


def test_unaligned_payload_buffer_export_is_in_place():
    owner = _unaligned_float64_owner()
    fv = tachyon._core._ForeignView(owner, 0)
    got = np.frombuffer(fv, np.uint8)
    assert got.ctypes.data == owner.ctypes.data and not fv.copied  # no copy
    assert not got.flags.writeable
    owner[:8] = 7
    assert bytes(memoryview(fv)[:8]) == bytes([7] * 8)  # the owner's bytes, seen in place
    del got
    assert not fv.copied
    # DLPack still gets 64-byte aligned float64 data
    a = np.from_dlpack(fv)
    assert a.ctypes.data % 64 == 0 and fv.copied
    assert a.view(np.float64)[1:].tolist() == list(np.arange(1.0, 100.0))


# -- refusals: the listener answers strangers and keeps serving ---------------


@pytest.fixture
def zctx():
    """A ZeroMQ context of the test's own, terminated after it (no descriptor
    outlives the test)."""
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def _dealer(ctx, url, hello_version=W.PROTOCOL_VERSION, parts=None):
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    d.connect(url)
    if parts is None:
        head = struct.pack("<4sBBHIQQQ", W.MAGIC, hello_version, W.K_HELLO, 0, 0, 99, 0, 0)
        parts = [head, W.TERMS.pack(0, 0, 1000, 0)]
    d.send_multipart(parts)
    return d


def _refusal(d, timeout=5.0):
    assert d.poll(int(timeout * 1000)), "no answer from the listener"
    parts = d.recv_multipart()
    h = W.parse(parts[0])
    assert h is not None and h[1] == W.K_REFUSE, parts
    return h[2]


def test_strangers_are_refused_and_the_listener_keeps_serving(zctx):
    url = free_url()
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "l", tachyon.Bus.listen(url, 1 << 16, timeout=20)))
    t.start()
    time.sleep(0.2)
    port = int(url.rsplit(":", 1)[1])
    # garbage bytes on the TCP port: libzmq's ZMTP handshake drops them
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(os.urandom(4096))
    # a truncated frame, another magic, a version mismatch: refusals
    d1 = _dealer(zctx, url, parts=[b"TCYN\x01\x01"])
    assert _refusal(d1) == W.R_PROTOCOL
    d2 = _dealer(zctx, url, parts=[b"\x00" * W.HEADER.size, W.TERMS.pack(0, 0, 0, 0)])
    assert _refusal(d2) == W.R_PROTOCOL
    d3 = _dealer(zctx, url, hello_version=99)
    assert _refusal(d3) == W.R_VERSION
    # an oversized claim: libzmq drops the connection (ZMQ_MAXMSGSIZE)
    d4 = _dealer(zctx, url, parts=[b"y" * (1 << 20)])
    assert not d4.poll(300)
    for d in (d1, d2, d3, d4):
        d.close(0)
    # the real connector still gets in
    con = tachyon.Bus.connect(url, timeout=10)
    t.join()
    lis = out["l"]
    with lis, con:
        # the listener answers strangers while its program is in a call
        got = {}
        r = threading.Thread(target=lambda: got.setdefault("m", lis.recv(timeout=20)))
        r.start()
        # a second connector while one is live
        with pytest.raises(tachyon.HandshakeError, match="already has its connector"):
            tachyon.Bus.connect(url, timeout=5)
        d5 = _dealer(zctx, url, hello_version=2)
        assert _refusal(d5) == W.R_VERSION
        d5.close(0)
        con.send(b"still serving", timeout=5)
        r.join(20)
        assert got["m"].data == b"still serving"


@pytest.mark.parametrize("reply_version", [2, W.PROTOCOL_VERSION])
def test_version_mismatch_is_abi_mismatch_at_our_connector(zctx, reply_version):
    """A listener of another version: its reply's own version, or (a
    listener that still writes ours) its refusal's reason, says so."""
    url = free_url()
    r = zctx.socket(zmq.ROUTER)
    r.setsockopt(zmq.LINGER, 0)
    r.bind(url)
    try:
        def fake_listener():
            ident, head, _ = r.recv_multipart()
            reply = struct.pack("<4sBBHIQQQ", W.MAGIC, reply_version, W.K_REFUSE, W.R_VERSION,
                                0, 1, 0, 0)
            r.send_multipart([ident, reply, b"this listener speaks version 2"])

        t = threading.Thread(target=fake_listener)
        t.start()
        with pytest.raises(tachyon.AbiMismatchError, match="version 2"):
            tachyon.Bus.connect(url, timeout=5)
        t.join()
    finally:
        r.close(0)


def test_listener_arbitrates_a_role_claim_that_crossed_its_own(zctx):
    """A connector's claim that arrives after the listener took the same role
    (the two claims crossed on the wire) is refused: the tie goes to the
    listener."""
    url = free_url()
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "l", tachyon.Bus.listen(url, 1 << 12, timeout=10, liveness=1.0)))
    t.start()
    session = 12345
    d = _dealer(zctx, url, parts=[W.header(W.K_HELLO, session), W.TERMS.pack(0, 0, 1000, 0)])
    t.join()
    lis = out["l"]
    with lis:
        assert d.poll(5000) and W.parse(d.recv_multipart()[0])[1] == W.K_WELCOME

        def produce():  # no credit comes back: the listener ends up waiting (and serving)
            with pytest.raises(tachyon.BusFullError):
                while True:
                    lis.send(b"z" * 1000, timeout=3)

        p = threading.Thread(target=produce)
        p.start()
        d.send_multipart([W.header(W.K_CLAIM, session, flags=W.ROLE_PRODUCER)])
        verdict = None
        while verdict is None and d.poll(5000):
            h = W.parse(d.recv_multipart()[0])
            if h[1] == W.K_VERDICT:
                verdict = h[2]
        p.join()
        d.close(0)
        assert verdict == 0


def test_connect_times_out_without_a_listener():
    t0 = time.monotonic()
    with pytest.raises(tachyon.ConnectTimeoutError):
        tachyon.Bus.connect(free_url(), timeout=0.5)
    assert time.monotonic() - t0 < 5 * 0.5


def test_without_pyzmq_import_works_and_tcp_names_the_install_line():
    code = (
        "import sys; sys.modules['zmq'] = None\n"
        "import tachyon\n"
        "try:\n"
        "    tachyon.Bus.connect('tcp://127.0.0.1:9', timeout=0)\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=isolated_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert 'pip install "tachyon-ipc[net]"' in proc.stdout, proc.stdout


def test_local_path_spelled_tcp_is_written_dot_slash():
    with pytest.raises(ValueError, match=r"\./tcp://"):
        tachyon.Bus.connect("tcp://no-port", timeout=0)


def test_ctrl_c_interrupts_a_blocked_recv():
    proc = run_isolated("net_sigint.py", timeout=60)
    print(proc.stdout.strip())
    words = proc.stdout.split()
    assert words[0] == "interrupted", proc.stdout
    assert float(words[2]) < 5 * 0.2


def test_roles_given_at_the_handshake():
    """role= travels in the handshake: a connector asking for the listener's
    role is refused with RoleError, and the listener waits on for a fitting one."""
    url = free_url()
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "l", tachyon.Bus.listen(url, 1 << 16, timeout=20, role="producer", liveness=1.0)))
    t.start()
    with pytest.raises(tachyon.RoleError):
        tachyon.Bus.connect(url, timeout=5, role="producer")
    con = tachyon.Bus.connect(url, timeout=5, role="consumer", liveness=1.0)
    t.join()
    with out["l"] as lis, con:
        assert (lis.role, con.role) == ("producer", "consumer")
        lis.send(b"ok")
        assert con.recv(timeout=5).data == b"ok"


def test_a_dropped_receive_guard_gives_its_credit_back():
    lis, con = local_pair(1 << 12)
    with lis, con:
        chunk = b"c" * (con.max_payload // 2)
        for i in range(20):  # ten times the capacity
            con.send(chunk, timeout=5)
            got = lis.recv_zero_copy(timeout=5)  # no with block
            assert got.actual_size == len(chunk)
            del got
            lis.try_recv()  # a call: the credit due goes out


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the heap thresholds are glibc's")
def test_a_consumer_receives_into_memory_it_freed_not_fresh_pages():
    """A consumer that catches up and frees a window of large messages at a
    time receives the next window into the memory it freed: the kernel
    does not have to fault in and zero fresh pages for every window (the
    page faults of the consumer's process, after a first window, stay far
    below the pages it received)."""
    url, cap, n = free_url(), 8 << 20, 150
    peer = popen_isolated("net_peer.py", "refill", url, cap, n)
    try:
        with tachyon.Bus.connect(url, timeout=20) as bus:
            payload = b"r" * (1 << 20)
            for _ in range(n):
                bus.send(payload, timeout=20)
        out, err = peer.communicate(timeout=60)
    finally:
        stop(peer)
    assert peer.returncode == 0, err
    _, faults, _, pages = out.split()
    print(f"{faults} minor page faults while receiving {pages} pages")
    assert int(faults) < int(pages) // 50


def test_the_heap_thresholds_a_program_set_are_its_own(monkeypatch):
    from tachyon import net

    calls = []
    monkeypatch.setattr(net, "_mallopt", lambda: lambda option, value: calls.append((option, value)) or 1)
    monkeypatch.setattr(net, "_heap_kept", 0)
    for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.setenv(name, "glibc.malloc.trim_threshold=1" if name == "GLIBC_TUNABLES" else "1")
        net._keep_freed_payloads(8 << 20)
        monkeypatch.delenv(name)
    assert calls == []
    net._keep_freed_payloads(8 << 20)
    assert calls == [(net._M_MMAP_THRESHOLD, 32 << 20), (net._M_TRIM_THRESHOLD, 64 << 20)]
    net._keep_freed_payloads(1 << 20)  # never lowered
    net._keep_freed_payloads(1 << 28)  # a larger capacity: its whole window is kept
    assert calls[2:] == [(net._M_MMAP_THRESHOLD, 32 << 20), (net._M_TRIM_THRESHOLD, 1 << 28)]


def test_listening_beyond_loopback_needs_insecure():
    # No encryption or authentication yet: a reachable port must be asked for.
    for url in ("tcp://0.0.0.0:5999", "tcp://[::]:5999", "tcp://10.1.2.3:5999", "tcp://example.org:5999"):
        with pytest.raises(ValueError, match="insecure=True"):
            tachyon.Bus.listen(url, 1 << 16, timeout=0)
    with pytest.raises(TypeError, match="tcp:// addresses only"):
        tachyon.Bus.listen("/tmp/not-tcp", 1 << 16, insecure=True)
    port = free_url().rpartition(":")[2]
    # Asked for: it binds every interface and waits for its connector (here: none comes).
    with pytest.raises(tachyon.ConnectTimeoutError):
        tachyon.Bus.listen(f"tcp://0.0.0.0:{port}", 1 << 16, timeout=0.2, insecure=True)
    for url in (f"tcp://127.0.0.1:{port}", f"tcp://localhost:{port}"):
        with pytest.raises(tachyon.ConnectTimeoutError):
            tachyon.Bus.listen(url, 1 << 16, timeout=0.2)


def test_guards_have_every_member_of_the_local_ones():
    """Bus.listen / Bus.connect are typed to return a Bus, whose stub gives
    TxGuard, RxGuard, RxBatchGuard and RxMsgView: a tcp bus's guards and
    views (other classes) have every public member of those, and the bus
    every method of a Bus."""
    def members(obj):
        return {n for n in dir(obj) if not n.startswith("_")} | {
            n for n in ("__enter__", "__exit__", "__len__", "__iter__", "__getitem__",
                        "__dlpack__", "__dlpack_device__") if hasattr(obj, n)}

    lis, con = local_pair(1 << 16)
    with lis, con:
        assert members(tachyon.Bus) - {"listen", "connect"} <= members(con)
        with con.send_zero_copy(4) as tx:
            assert members(tachyon.TxGuard) <= members(tx)
        con.send_many([b"a", b"b", b"c"])
        with lis.recv_zero_copy(timeout=5) as rx:
            assert members(tachyon.RxGuard) <= members(rx)
        with lis.drain_batch(timeout=5) as batch:
            assert members(tachyon.RxBatchGuard) <= members(batch)
            assert members(tachyon.RxMsgView) <= members(batch[0])


@pytest.mark.parametrize("payload", ["ring slot", "bytearray"])
def test_a_send_that_times_out_keeps_no_hold_on_the_payload(sock_path, payload):
    """send() without credit raises BusFullError, and the caller's buffer is
    its own again at once, not once the garbage collector finds the
    exception: a received slot of a local ring goes back to the ring's
    producer at the end of its with block (as the bridge forwards; a slot
    kept until a collection stopped its stream after a cut), a bytearray
    can be resized. The collector is off, so that only reference counting
    can let go."""
    from conftest import make_pair

    lis, con = local_pair(1 << 16)
    ring_prod, ring_cons = make_pair(sock_path, 1 << 16)
    with lis, con, ring_prod, ring_cons:
        con.send(b"c" * 30000, timeout=5)
        con.send(b"c" * 30000, timeout=5)  # the listener takes nothing: no credit is left
        gc.disable()
        try:
            if payload == "ring slot":
                ring_prod.send(b"s" * 30000, timeout=5)
                with ring_cons.recv_zero_copy(timeout=5) as slot:
                    with pytest.raises(tachyon.BusFullError):
                        con.send(slot, 7, timeout=0.05)
                assert ring_cons.stats.pinned_bytes == 0
                assert ring_cons.stats.ring_occupancy == 0
            else:
                data = bytearray(b"b" * 30000)
                with pytest.raises(tachyon.BusFullError):
                    con.send(data, 7, timeout=0.05)
                data.extend(b"more")  # BufferError while an export of it is alive
        finally:
            gc.enable()
