"""Hostile input never crashes the process (R4, and the ring checks of R1-R3
seen from Python): a fake listener written in Python sends wrong things, or a
peer scribbles on the ring after an honest handshake. Each case is a typed
exception of the tree in docs/PYTHON_API.md, raised within the connect timeout, whose
message says what the peer did wrong; the autouse fixture checks that the
descriptor count is unchanged (every fd the kernel installed for us was closed)."""
import contextlib
import ctypes
import fcntl
import itertools
import mmap
import os
import socket
import struct
import re
import sys
import threading
import time

import pytest

import tachyon
from conftest import ISOLATED

sys.path.insert(0, str(ISOLATED))
import fakepeer  # noqa: E402

CAP = 4096
TIMEOUT = 3.0  # connect timeout of the cases that fail at once
HANG_TIMEOUT = 0.6  # connect timeout of the cases where the listener stalls


@contextlib.contextmanager
def fake_listener(path, behave):
    """A listener that accepts one connection and runs behave(conn); it then
    keeps the connection open until the connector gives up (closes it)."""
    srv = fakepeer.listening_socket(path)
    errors = []

    def run():
        try:
            srv.settimeout(10)
            conn, _ = srv.accept()
            with conn:
                behave(conn)
                if conn.fileno() >= 0:
                    conn.settimeout(10)
                    with contextlib.suppress(OSError):
                        while conn.recv(64):
                            pass
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield
    finally:
        t.join(15)
        srv.close()
        assert not t.is_alive(), "the fake listener did not finish"
        if errors:
            raise errors[0]


def sends(data, *fd_makers):
    """behave(): send data with the fds the makers return, then close them."""

    def behave(conn):
        fds = [make() for make in fd_makers]
        try:
            fakepeer.send_with_fds(conn, data, fds)
        finally:
            for fd in fds:
                os.close(fd)

    return behave


def region(**header):
    return lambda: fakepeer.region_fd(CAP, **header)


def memfd(size, seals=fakepeer.SEALS):
    def make():
        fd = fakepeer.make_memfd(size, seals=0)
        try:
            if size >= fakepeer.HEADER:
                fakepeer.format_region(fd, CAP)
            if seals:
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
        except BaseException:
            os.close(fd)
            raise
        return fd

    return make


def pipe_end():
    r, w = os.pipe()
    os.close(w)
    return r


def socket_end():
    a, b = socket.socketpair()
    b.close()
    return a.detach()


def disk_file(tmpdir):
    def make():
        fd = os.open(os.path.join(tmpdir, "region"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(fd, fakepeer.HEADER + CAP)
        fakepeer.format_region(fd, CAP)
        return fd

    return make


def shm_file():
    path = f"/dev/shm/tachyon-fake-{os.getpid()}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.unlink(path)
    os.ftruncate(fd, fakepeer.HEADER + CAP)
    fakepeer.format_region(fd, CAP)
    return fd


def write_sealed():
    fd = fakepeer.make_memfd(fakepeer.HEADER + CAP, seals=0)
    fakepeer.format_region(fd, CAP)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fakepeer.SEALS | fcntl.F_SEAL_WRITE)
    return fd


def split_fds_late(conn):
    """Half the handshake without fds, the rest with the memfd: fds must come first."""
    hs = fakepeer.handshake(CAP)
    conn.sendall(hs[:16])
    time.sleep(0.05)
    fd = fakepeer.region_fd(CAP)
    try:
        fakepeer.send_with_fds(conn, hs[16:], [fd])
    finally:
        os.close(fd)


def close_after(data):
    def behave(conn):
        conn.sendall(data)
        conn.shutdown(socket.SHUT_RDWR)
        conn.close()

    return behave


HS = fakepeer.handshake(CAP)
HE, ABI = tachyon.HandshakeError, tachyon.AbiMismatchError

# (id, behave, exception type, what the message must say)
CASES = [
    ("pipe", sends(HS, pipe_end), HE, "is a pipe, not a memfd"),
    ("socket", sends(HS, socket_end), HE, "is a socket, not a memfd"),
    ("char-device", sends(HS, lambda: os.open("/dev/null", os.O_RDWR)), HE, "character device"),
    ("directory", sends(HS, lambda: os.open("/", os.O_RDONLY | os.O_DIRECTORY)), HE, "directory"),
    ("disk-file", None, HE, "not a memfd|not sealed against shrinking"),  # behave built per test
    ("tmpfs-file", sends(HS, shm_file), HE, "not sealed against shrinking"),
    ("unsealed-memfd", sends(HS, memfd(fakepeer.HEADER + CAP, seals=0)), HE, "not sealed against shrinking"),
    ("grow-only-seal", sends(HS, memfd(fakepeer.HEADER + CAP, seals=fcntl.F_SEAL_GROW)), HE,
     "not sealed against shrinking"),
    ("short-memfd", sends(HS, memfd(fakepeer.HEADER + CAP // 2)), HE, "holds 2816 bytes, less than the 4864"),
    ("empty-memfd", sends(HS, memfd(0)), HE, "holds 0 bytes"),
    ("write-sealed", sends(HS, write_sealed), HE, "cannot be mapped"),
    ("capacity-100", sends(fakepeer.handshake(100), region()), HE, "capacity of 100 bytes"),
    ("capacity-32", sends(fakepeer.handshake(32), region()), HE, "capacity of 32 bytes"),
    ("capacity-0", sends(fakepeer.handshake(0), region()), HE, "capacity of 0 bytes"),
    ("shm-size", sends(fakepeer.handshake(CAP, shm_size=CAP), region()), HE, "768 \\+ capacity = 4864"),
    ("second-ring", sends(fakepeer.handshake(CAP, capacity2=CAP, shm_size2=768 + CAP), region()), HE,
     "second ring"),
    ("magic", sends(fakepeer.handshake(CAP, magic=0x12345678), region()), ABI, "magic 0x12345678"),
    ("version-3", sends(fakepeer.handshake(CAP, version=3), region()), ABI, "wire version 3"),
    ("version-5", sends(fakepeer.handshake(CAP, version=5), region()), ABI, "wire version 5"),
    ("alignment", sends(fakepeer.handshake(CAP, alignment=128), region()), ABI, "alignment of 128"),
    ("rpc-listener", sends(fakepeer.handshake(CAP, capacity2=CAP, shm_size2=768 + CAP, flags=1), region(),
                           region()), ABI, "request/reply"),
    ("flags-2", sends(fakepeer.handshake(CAP, flags=2), region()), ABI, "flags 0x2"),
    ("no-fd", sends(HS), HE, "without a descriptor"),
    ("two-fds", sends(HS, region(), region()), HE, "2 descriptors"),
    ("many-fds", sends(HS, *[region()] * 6), HE, "control data was truncated"),
    ("fds-late", split_fds_late, HE, "descriptors after the first 16"),
    ("region-magic", sends(HS, region(magic=0xDEADBEEF)), HE, "magic 0xdeadbeef"),
    ("region-capacity", sends(HS, region(region_capacity=2 * CAP)), HE, "capacity 8192 in its header"),
    ("region-state-0", sends(HS, region(state=0)), HE, "state 0"),
    ("region-fatal", sends(HS, region(state=4)), HE, "state 4"),
    ("truncated-then-close", close_after(HS[:16]), HE, "16 of the 32 handshake bytes, then closed"),
    ("nothing-then-close", close_after(b""), HE, "closed the connection without sending the handshake"),
]
HANG_CASES = [
    ("truncated-then-hang", lambda conn: conn.sendall(HS[:16]), "sent 16 of the 32 handshake bytes"),
    ("nothing-then-hang", lambda conn: None, "sent 0 of the 32 handshake bytes"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fake_listener_sends_wrong_thing(sock_path, tmp_path, case):
    name, behave, exc_type, says = case
    if name == "disk-file":
        behave = sends(HS, disk_file(str(tmp_path)))
    if name == "tmpfs-file" and not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm on this machine: no tmpfs file to send")
    with fake_listener(sock_path, behave):
        t0 = time.monotonic()
        with pytest.raises(tachyon.TachyonError) as ei:
            tachyon.Bus.connect(sock_path, timeout=TIMEOUT)
        elapsed = time.monotonic() - t0
    exc = ei.value
    print(f"{name}: {type(exc).__name__} after {elapsed * 1e3:.1f} ms: {exc}")
    assert type(exc) is exc_type
    assert isinstance(exc, ConnectionError)
    assert sock_path in str(exc)
    ei.match(says)
    assert elapsed < TIMEOUT


@pytest.mark.parametrize("case", HANG_CASES, ids=[c[0] for c in HANG_CASES])
def test_fake_listener_stalls(sock_path, case):
    """A listener that stalls mid-handshake: ConnectTimeoutError at the connect timeout."""
    name, behave, says = case
    with fake_listener(sock_path, behave):
        t0 = time.monotonic()
        with pytest.raises(tachyon.ConnectTimeoutError) as ei:
            tachyon.Bus.connect(sock_path, timeout=HANG_TIMEOUT)
        elapsed = time.monotonic() - t0
    print(f"{name}: ConnectTimeoutError after {elapsed * 1e3:.1f} ms (timeout {HANG_TIMEOUT * 1e3:.0f} ms): "
          f"{ei.value}")
    ei.match(says)
    assert HANG_TIMEOUT * 0.9 <= elapsed < HANG_TIMEOUT + 1.0


def test_listener_process_gone_before_handshake(sock_path):
    """The listening socket's process died: connect is refused until the timeout."""
    srv = fakepeer.listening_socket(sock_path)
    srv.close()  # the file stays, nobody listens: ECONNREFUSED, retried
    t0 = time.monotonic()
    with pytest.raises(tachyon.ConnectTimeoutError, match="no listener"):
        tachyon.Bus.connect(sock_path, timeout=0.3)
    assert time.monotonic() - t0 < 0.3 + 1.0


# ---------------------------------------------------------------------------
# An honest foreign (0.5.1-style) listener, then hostile writes to the ring


@contextlib.contextmanager
def foreign_bus(path, capacity=CAP, **header):
    """Connect to a Python listener that sends a good handshake; yields
    (bus, mapping of the region as the peer sees it)."""
    fd = fakepeer.region_fd(capacity, **header)
    try:
        def behave(conn):  # as 0.5.1 does: send, then close everything
            fakepeer.send_with_fds(conn, fakepeer.handshake(capacity), [fd])
            conn.close()

        with fake_listener(path, behave):
            bus = tachyon.Bus.connect(path, timeout=TIMEOUT)
        mm = mmap.mmap(fd, fakepeer.HEADER + capacity)
    finally:
        os.close(fd)
    try:
        with bus:
            yield bus, mm
    finally:
        mm.close()


class MapProducer(fakepeer.Producer):
    """fakepeer.Producer (0.5.1-style) over the test's own mapping of the region."""

    def __init__(self, mm, capacity=CAP):
        self.capacity, self.wake, self.mm = capacity, True, mm
        self._head = ctypes.c_uint64.from_buffer(mm, fakepeer.OFF_HEAD)
        self._tail = ctypes.c_uint64.from_buffer(mm, fakepeer.OFF_TAIL)
        self._cwait = ctypes.c_uint32.from_buffer(mm, fakepeer.OFF_CWAIT)
        self._state = ctypes.c_uint32.from_buffer(mm, fakepeer.OFF_STATE)
        self.head = self._head.value

    def close(self):
        del self._head, self._tail, self._cwait, self._state


def test_honest_foreign_listener(sock_path):
    """The fake is right: a 0.5.1-style Python producer's messages arrive intact."""
    with foreign_bus(sock_path) as (bus, mm):
        p = MapProducer(mm)
        try:
            for i in range(300):  # wraps the 4 KiB ring many times
                p.send(i.to_bytes(4, "little") * (i % 40), i)
                msg = bus.recv(timeout=1)
                assert (msg.type_id, msg.data) == (i, i.to_bytes(4, "little") * (i % 40))
                # finding the ring empty publishes our tail (else only every 32 messages,
                # and this single-threaded producer would wait for room for ever)
                assert bus.try_recv() is None
        finally:
            p.close()
        assert bus.stats.state == fakepeer.STATE_READY
        assert struct.unpack_from("<I", mm, fakepeer.OFF_CMARK)[0] != 0, "our connector marks its end"
        print(f"300 messages from a Python wire-4 producer, {bus.stats}")


# Scribbles: the consumer has read one good message and stands at `at` (128).
# Each writes what a hostile producer could publish next.


def put_head(mm, value):
    struct.pack_into("<Q", mm, fakepeer.OFF_HEAD, value)


def put_slot(mm, pos, size, type_id, reserved):
    struct.pack_into("<III", mm, fakepeer.HEADER + (pos & (CAP - 1)), size, type_id, reserved)


def head_unaligned(mm, at):
    put_slot(mm, at, 0, 0, 64)
    put_head(mm, at + 100)


def head_beyond_capacity(mm, at):
    put_slot(mm, at, 0, 0, 64)
    put_head(mm, at + CAP + 64)  # more than a capacity above our tail


def head_backwards(mm, at):
    put_head(mm, at - 64)


def reserved_huge(mm, at):
    put_slot(mm, at, 10, 1, 2 * CAP)
    put_head(mm, at + 128)


def reserved_unaligned(mm, at):
    put_slot(mm, at, 10, 1, 100)
    put_head(mm, at + 128)


def size_over_slot(mm, at):
    put_slot(mm, at, 65, 1, 128)  # 65 payload bytes cannot fit a 128-byte slot
    put_head(mm, at + 128)


def slot_past_head(mm, at):
    put_slot(mm, at, 10, 1, 256)  # a 256-byte slot, but head publishes only 128 bytes of it
    put_head(mm, at + 128)


def slot_past_ring_end(mm, at):
    put_slot(mm, at, 0, 0, CAP - 128 - at)  # an empty message up to 128 bytes before the end
    put_slot(mm, CAP - 128, 10, 1, 256)  # then a slot that runs 128 bytes past the end
    put_head(mm, CAP - 128 + 256)


def skip_at_offset_0(mm, at):
    put_slot(mm, at, 0, 0, CAP - at)  # an empty message up to the end of the ring
    struct.pack_into("<I", mm, fakepeer.HEADER, 0xFFFFFFFF)  # then SKIP padding at physical offset 0
    put_head(mm, CAP + 64)


def skip_not_published_whole(mm, at):
    put_slot(mm, at, 0xFFFFFFFF, 0, 0)  # SKIP: padding to the end of the ring...
    put_head(mm, at + 64)  # ...but head ends inside it


def state_fatal(mm, at):
    struct.pack_into("<I", mm, fakepeer.OFF_STATE, fakepeer.STATE_FATAL)


RING_CASES = [head_unaligned, head_beyond_capacity, head_backwards, reserved_huge, reserved_unaligned,
              size_over_slot, slot_past_head, slot_past_ring_end, skip_at_offset_0, skip_not_published_whole,
              state_fatal]

# What the message says the peer did wrong (tachyon_bus_fatal_reason).
RING_REASONS = {
    "head_unaligned": "head is not a multiple of 64",
    "head_beyond_capacity": "head claims more than the capacity",
    "head_backwards": "moved head backwards",
    "reserved_huge": "reserved_size is larger than the ring",
    "reserved_unaligned": "reserved_size is not a multiple of 64",
    "size_over_slot": "size is larger than its slot",
    "slot_past_head": "beyond the published head",
    "slot_past_ring_end": "a slot runs past the end of the ring",
    "skip_at_offset_0": "a SKIP marker at offset 0",
    "skip_not_published_whole": "SKIP marker whose padding was not published whole",
    "state_fatal": "the peer marked the ring fatal",
}


@pytest.mark.parametrize("how", ["recv", "drain_batch", "recv_zero_copy", "iter"])
@pytest.mark.parametrize("scribble", RING_CASES, ids=[f.__name__ for f in RING_CASES])
def test_hostile_producer_breaks_ring(sock_path, scribble, how):
    """After one good message the peer breaks the ring: the good message is
    delivered, then RingCorruptError (and from every later call), state 4 for
    both ends; no crash, nothing exposed from the broken part."""
    with foreign_bus(sock_path) as (bus, mm):
        put_slot(mm, 0, 4, 7, 128)
        mm[fakepeer.HEADER + 64:fakepeer.HEADER + 68] = b"good"
        put_head(mm, 128)
        assert bus.recv(timeout=1).data == b"good"
        # finding the ring empty publishes our tail: we stand at 128
        assert bus.try_recv() is None
        scribble(mm, 128)
        t0 = time.monotonic()
        with pytest.raises(tachyon.PeerDeadError) as ei:
            # Two cases publish an empty filler message first, to bring the
            # bad slot to the end of the ring; only fillers may come out.
            for _ in range(3):
                if how == "recv":
                    sizes = [bus.recv(timeout=2).size]
                elif how == "drain_batch":
                    with bus.drain_batch(timeout=2) as batch:
                        sizes = [len(v) for v in batch]
                elif how == "recv_zero_copy":
                    with bus.recv_zero_copy(timeout=2) as rx:
                        sizes = [rx.actual_size]
                else:
                    sizes = [msg.size for msg in itertools.islice(bus, 1)]
                assert sizes == [0], "only the empty filler messages are valid"
        elapsed = time.monotonic() - t0
        assert type(ei.value) is tachyon.RingCorruptError, repr(ei.value)
        ei.match("corrupt")
        ei.match(re.escape(RING_REASONS[scribble.__name__]))
        # later calls say it again
        with pytest.raises(tachyon.RingCorruptError, match=re.escape(RING_REASONS[scribble.__name__])):
            bus.try_recv()
        assert bus.stats.state == fakepeer.STATE_FATAL
        assert struct.unpack_from("<I", mm, fakepeer.OFF_STATE)[0] == fakepeer.STATE_FATAL
    print(f"{scribble.__name__}/{how}: RingCorruptError after {elapsed * 1e3:.1f} ms: {ei.value}")
    assert elapsed < 2.0  # at once, not at the receive's timeout


def tail_unaligned(mm, head):
    struct.pack_into("<Q", mm, fakepeer.OFF_TAIL, 100)


def tail_ahead_of_head(mm, head):
    struct.pack_into("<Q", mm, fakepeer.OFF_TAIL, head + 2 * CAP)


def tail_far_behind(mm, head):
    struct.pack_into("<Q", mm, fakepeer.OFF_TAIL, head + 64 - 2 * CAP if head > 2 * CAP else 0)
    struct.pack_into("<Q", mm, fakepeer.OFF_HEAD, head)


TAIL_CASES = [tail_unaligned, tail_ahead_of_head]
TAIL_REASONS = {
    "tail_unaligned": "the consumer's tail is not a multiple of 64",
    "tail_ahead_of_head": "the consumer's tail moved backwards or past the committed head",
}


@pytest.mark.parametrize("scribble", TAIL_CASES, ids=[f.__name__ for f in TAIL_CASES])
def test_hostile_consumer_tail(sock_path, scribble):
    """Our producer against a consumer that publishes an impossible tail:
    RingCorruptError from send, never a write outside the ring."""
    with foreign_bus(sock_path) as (bus, mm):
        bus.send(b"x" * 100)  # our end is the producer
        scribble(mm, struct.unpack_from("<Q", mm, fakepeer.OFF_HEAD)[0])
        sent = 0
        with pytest.raises(tachyon.PeerDeadError) as ei:
            for sent in range(4 * CAP // 192):  # needs the tail before the ring is full
                bus.send(b"y" * 100, timeout=0.5)
        assert type(ei.value) is tachyon.RingCorruptError, repr(ei.value)
        ei.match("corrupt")
        ei.match(re.escape(TAIL_REASONS[scribble.__name__]))
        assert bus.stats.state == fakepeer.STATE_FATAL
    print(f"{scribble.__name__}: RingCorruptError after {sent} more sends: {ei.value}")


@pytest.mark.parametrize("head,tail", [(100, 0), (CAP + 64, 0), (0, 64), (128, 64 + 1)],
                         ids=["head-unaligned", "head-beyond-capacity", "tail-ahead", "tail-unaligned"])
@pytest.mark.parametrize("role", ["consumer", "producer"])
def test_region_with_impossible_starting_indices(sock_path, head, tail, role):
    """The region arrives with indices no honest creator writes: the first
    data call (which attaches the ring end) raises RingCorruptError."""
    with foreign_bus(sock_path, head=head, tail=tail) as (bus, mm):
        with pytest.raises(tachyon.RingCorruptError, match="attaching the .* end of the ring") as ei:
            if role == "consumer":
                bus.recv(timeout=1)
            else:
                bus.send(b"x")
        assert bus.stats.state == fakepeer.STATE_FATAL
    print(f"head {head}, tail {tail}, {role}: {ei.value}")
