"""A foreign wire-4 peer written in plain Python (ABI.md, "The handshake" and
"Publication and waking"), for tests that need a peer which is not our C
core: fake listeners that send wrong things (R4), and a producer that
behaves like tachyon-ipc 0.5.1 (R5, R6): it closes its socket right after
the handshake, publishes head after every message and
wakes a sleeping consumer the 0.5.1 way (FUTEX_WAKE without a compare-and-swap),
or never (a broken producer: lost wakes are then expected).

Only the standard library: socket.send_fds, os.memfd_create, fcntl seals,
mmap and ctypes for the 8-byte atomic stores and the futex syscall.
"""
import ctypes
import fcntl
import mmap
import os
import platform
import socket
import struct
import time

MAGIC = 0x54414348
VERSION = 4
ALIGN = 64
SKIP = 0xFFFFFFFF
HEADER = 768
OFF_STATE, OFF_LMARK, OFF_CMARK = 16, 20, 24
OFF_HEAD, OFF_TAIL, OFF_CWAIT = 128, 256, 384
STATE_READY, STATE_CLOSED, STATE_FATAL = 2, 3, 4
HANDSHAKE = struct.Struct("<8I")  # magic version capacity shm_size capacity2 shm_size2 alignment flags

SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}.get(platform.machine())
_FUTEX_WAKE = 1  # shared futex: no FUTEX_PRIVATE_FLAG (two processes share the word)


def handshake(capacity, *, magic=MAGIC, version=VERSION, shm_size=None, capacity2=0, shm_size2=0,
              alignment=ALIGN, flags=0):
    if shm_size is None:
        shm_size = HEADER + capacity
    return HANDSHAKE.pack(magic, version, capacity, shm_size, capacity2, shm_size2, alignment, flags)


def make_memfd(size, *, seals=SEALS, name="fake-wire4"):
    """A memfd of size bytes (close-on-exec) with the given seals added."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, size)
        if seals:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


def format_region(fd, capacity, *, magic=MAGIC, version=VERSION, region_capacity=None,
                  alignment=ALIGN, state=STATE_READY, head=0, tail=0):
    """Write a region header into fd (at least 768 bytes) the way a creator does."""
    hdr = bytearray(HEADER)
    struct.pack_into("<5I", hdr, 0, magic, version,
                     capacity if region_capacity is None else region_capacity, alignment, state)
    struct.pack_into("<Q", hdr, OFF_HEAD, head)
    struct.pack_into("<Q", hdr, OFF_TAIL, tail)
    os.pwrite(fd, bytes(hdr), 0)


def region_fd(capacity, **header):
    """A sealed memfd holding a formatted region, as an honest listener makes it."""
    fd = make_memfd(HEADER + capacity)
    try:
        format_region(fd, capacity, **header)
    except BaseException:
        os.close(fd)
        raise
    return fd


def listening_socket(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.bind(path)
        s.listen(4)
    except BaseException:
        s.close()
        raise
    return s


def send_with_fds(conn, data, fds):
    """One sendmsg: data plus fds in one SCM_RIGHTS message (none when fds is empty)."""
    if fds:
        socket.send_fds(conn, [data], list(fds))
    else:
        conn.sendall(data)


class Producer:
    """A 0.5.1-style producer over a mapped region it created (the listener side).

    publish() after every message, as 0.5.1's flush does; wake=True does what
    0.5.1 does after publishing (reads the consumer's wait word and calls
    FUTEX_WAKE when it is 1, never changing the word itself); wake=False never
    wakes (a broken producer)."""

    def __init__(self, fd, capacity, *, wake=True):
        self.capacity = capacity
        self.wake = wake
        self.mm = mmap.mmap(fd, HEADER + capacity)
        self._head = ctypes.c_uint64.from_buffer(self.mm, OFF_HEAD)
        self._tail = ctypes.c_uint64.from_buffer(self.mm, OFF_TAIL)
        self._cwait = ctypes.c_uint32.from_buffer(self.mm, OFF_CWAIT)
        self._state = ctypes.c_uint32.from_buffer(self.mm, OFF_STATE)
        self.head = self._head.value

    @property
    def state(self):
        return self._state.value

    def try_send(self, data, type_id=0, correlation_id=None):
        """Write one message and publish head; False when there is no room.
        correlation_id: write the request/reply header fields (0 at offset
        12, the id at offset 16), as a request/reply ring carries them."""
        cap = self.capacity
        slot = (64 + len(data) + 63) & ~63
        phys = self.head & (cap - 1)
        pad = cap - phys if cap - phys < slot else 0
        if self.head - self._tail.value + pad + slot > cap:
            return False
        pos = self.head
        if pad:
            struct.pack_into("<III", self.mm, HEADER + phys, SKIP, 0, 0)
            pos += pad
        p = HEADER + (pos & (cap - 1))
        self.mm[p + 64:p + 64 + len(data)] = data
        struct.pack_into("<III", self.mm, p, len(data), type_id, slot)
        if correlation_id is not None:
            struct.pack_into("<IQ", self.mm, p + 12, 0, correlation_id)
        self.head = pos + slot
        # One aligned 8-byte store (ctypes writes the u64 in one instruction);
        # the slot's bytes were written before it, and x86-64 keeps stores in order.
        self._head.value = self.head
        if self.wake and self._cwait.value == 1:
            futex_wake(self._cwait)
        return True

    def send(self, data, type_id=0, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not self.try_send(data, type_id):
            if time.monotonic() > deadline:
                raise TimeoutError("fake producer: no room")
            time.sleep(0.0005)

    def close(self):
        del self._head, self._tail, self._cwait, self._state
        self.mm.close()


def futex_wake(word):
    if _SYS_FUTEX is None:
        return
    _libc.syscall(_SYS_FUTEX, ctypes.c_void_p(ctypes.addressof(word)), _FUTEX_WAKE, 0x7FFFFFFF, None,
                  None, 0)


def legacy_listen(path, capacity, *, accept_timeout=10.0):
    """Listen the 0.5.1 way: create the region, accept one peer, send the
    handshake and the memfd, then close the connection, the listening socket
    and the path. Returns the region's memfd (the caller maps it)."""
    fd = region_fd(capacity)
    s = listening_socket(path)
    try:
        s.settimeout(accept_timeout)
        conn, _ = s.accept()
        with conn:
            send_with_fds(conn, handshake(capacity), [fd])
    finally:
        s.close()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    return fd


def socket_fds():
    """This process's socket descriptors."""
    out = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                out.append(int(name))
        except OSError:
            pass
    return out
