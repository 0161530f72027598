"""The bus across hosts: the same API over a ZeroMQ TCP connection.

``Bus.listen("tcp://ADDR:PORT", capacity)`` and ``Bus.connect("tcp://HOST:PORT")``
return a :class:`NetBus`. The listener holds a ROUTER socket, the connector a
DEALER (both reconnect by themselves, and a stranger cannot take the
connector's place); the frames are in ``tachyon._netwire``.

What carries over from a local bus, and how:

- ``capacity`` bounds the payload bytes in flight. The consumer grants credit
  as its program takes messages (the first ``capacity`` bytes are granted by
  the handshake); a producer without credit gets ``BusFullError`` at
  ``timeout=0`` or waits, as at a full ring. Memory stays bounded in both
  processes whatever the consumer does.
- Roles: the first data call fixes them; the listener arbitrates, and a tie
  goes to the listener. The loser gets ``RoleError`` and stays usable in the
  other role.
- An orderly close is ``PeerClosedError`` at the other end once everything
  sent before it was delivered. ZMTP heartbeats, answered by libzmq's own
  thread, keep the connection of a consumer that merely stops reading
  alive; a peer killed or stopped is ``PeerDeadError`` within ``liveness``
  + 1 s at the other end.
- A cut connection is resumed: libzmq reconnects, the connector says
  HELLO again with its session, and each producer sends again what the
  consumer had not acknowledged (it keeps those messages, at most its
  credit's worth). The consumer takes only the next sequence number, so
  nothing is lost, repeated or reordered. A connection lost for longer than
  ``liveness`` is ``PeerDeadError`` at both ends, carrying
  ``last_acked_seq``. A new session (a restarted peer) while the old one is
  lost is refused and ends the old one.
- Blocking calls wait in slices of at most 200 ms, so Ctrl-C, and ``close()``
  from another thread (ZeroMQ sockets belong to one thread: ``close`` then
  only sets a flag that the call in progress acts on), are seen within one
  slice. All calls on one NetBus are serialized by one lock.

- Arrays: ``send_array`` and ``send_array_zero_copy`` write the local bus's
  tensor frames (the header by the same C code) into memory of their own,
  sent as any message; ``tachyon.wait`` takes NetBus ends, alone or beside
  local buses (``wait_any`` below).

Not carried over: ``peer_pid`` is None, ``set_polling_mode`` and
``set_numa_node`` are accepted and do nothing, ``stats`` counts this end
only. The guards and views are classes of their own with every member of
the local ones (``TxGuard``, ``RxGuard``, ``RxBatchGuard``, ``RxMsgView``),
not instances of them.
"""
import asyncio
import collections
import ctypes
import os
import secrets
import select
import struct
import threading
import time
from typing import (TYPE_CHECKING, Any, AsyncIterator, ContextManager, Deque, Dict, Iterable,
                    Iterator, List, Optional, Sequence, SupportsIndex, Tuple, cast)

import zmq
from zmq.backend import Socket as _ZSocket
from zmq.utils.monitor import recv_monitor_message

from . import _netsec
from . import _netwire as W
from ._core import (
    AbiMismatchError,
    BusClosedError,
    BusFullError,
    BusStats,
    ConnectTimeoutError,
    HandshakeError,
    Message,
    PeerClosedError,
    PeerDeadError,
    RoleError,
    TachyonBus,
    TachyonTimeoutError,
    _as_int,
    _ForeignView,
    _frame_bytes,
    _wait_any,
)

if TYPE_CHECKING:
    from numpy.typing import DTypeLike, NDArray

PREFIX = "tcp://"
SLICE = 0.2          # the longest a blocking call waits between checks
_SLICE_MS = int(SLICE * 1000)
EVENTS_EVERY = 0.05  # the longest between two looks at connection events while busy (_pump)
_FOREVER = None
# At or above this size, an immutable payload (bytes) goes to libzmq without a copy.
_ZERO_COPY_MIN = 1 << 16
# The route half of every tensor frame's type_id (ABI.md, "Tensor frames").
_FRAME_ROUTE = 0xFFFF0000
# Up to this size a payload travels in the header's part (one ZeroMQ part, one copy).
_INLINE_MAX = 2048
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)  # plain ints: enum arithmetic costs
_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
# pyzmq's own socket calls, below its Python layer (which adds routing_id and
# group handling we never use, an enum per getsockopt, and, in send_multipart,
# a buffer check per part): a third to half of a small message's socket work.
_zsend, _zrecv, _zget = _ZSocket.send, _ZSocket.recv, _ZSocket.get
# send_many packs payloads up to this size, several to a BATCH frame (tachyon._netwire),
# up to _BATCH_BYTES of payload and _BATCH_MAX messages a frame.
_BATCH_ITEM_MAX = _INLINE_MAX
_BATCH_BYTES = 1 << 16
_BATCH_MAX = 4096
_ITEM_PACK, _ITEM_UNPACK = W.ITEM.pack, W.ITEM.unpack_from
_HSIZE, _ISIZE = W.HEADER.size, W.ITEM.size
# The common frames, told apart and built with fewer fields: a header's first
# 8 bytes (magic, version, kind, flags) read as one integer, then type_id,
# session, seq and value (W.HEADER's layout).
_LEADING = struct.Struct("<QIQQQ")
_LEADING_PACK, _LEADING_UNPACK = _LEADING.pack, _LEADING.unpack_from
assert _LEADING.size == _HSIZE
_INLINE_DATA = _LEADING_UNPACK(W.header(W.K_DATA, 0, flags=W.F_INLINE))[0]
_BATCH = _LEADING_UNPACK(W.header(W.K_BATCH, 0))[0]
_OVERHEAD = W.MSG_OVERHEAD  # (a global name: read per message, W.'s attribute costs a lookup more)
_MONITOR_EVENTS = (zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | _netsec.FAILURES)
# How long a closing listener of the shared context waits for libzmq to have
# closed its listening descriptor (the port is free once it has).
_UNBIND_WAIT = 2.0

_REASONS = {
    W.R_PROTOCOL: "the listener does not speak this protocol, or a frame came out of turn",
    W.R_VERSION: "the listener speaks another protocol version",
    W.R_BUSY: "the bus already has its connector (one connector per bus, as locally)",
    W.R_CLOSED: "the bus was closed",
    W.R_ROLE: "the listener holds the role this end asked for",
    W.R_RESTARTED: "the bus still held an earlier connector's session, whose connection was "
                   "lost; it declared that session dead, and takes a connector again once its "
                   "program listens anew",
    W.R_SESSION: "the listener does not hold this end's session (it restarted)",
    W.R_DEAD: "the listener declared this end's session dead (lost for longer than its "
              "liveness)",
}


def _deadline(timeout: Any) -> Optional[float]:
    """Seconds (a float, or an integer by _int's rule; None: forever) to a deadline."""
    if timeout is None:
        return None
    if type(timeout) is int and timeout >= 0:  # (send's default: 0)
        return time.monotonic() + timeout
    # the C calls' rule: seconds as a float or an integer, never a bool
    seconds: float = timeout if isinstance(timeout, float) else _as_int(timeout, "timeout")
    if not seconds >= 0:  # also NaN
        raise ValueError(f"timeout must be >= 0 or None, got {timeout}")
    return time.monotonic() + seconds


def _left(deadline: Optional[float]) -> float:
    """Seconds to wait in this slice: at most SLICE, 0 once the deadline passed."""
    if deadline is None:
        return SLICE
    return max(0.0, min(SLICE, deadline - time.monotonic()))


# The errors a send raises are made by these, never held in a variable of the
# raising call: its frame holds the caller's payload and a memoryview of it
# (_send_data), and an exception in a local of the frame its traceback holds
# is a reference cycle, freed only by a garbage collection. Until then the
# export stays alive: a bytearray cannot be resized, and a received slot of
# a local ring is not handed back at the end of its with block, which stops
# that ring's tail (the bridge's stream stopped after a cut, when sends had
# timed out for credit, until a collection came).


def _bus_full(message: str, sent: int) -> BusFullError:
    e = BusFullError(message)
    e.sent = sent
    return e


def _peer_dead(message: str, last_acked: int) -> PeerDeadError:
    e = PeerDeadError(message)
    e.last_acked_seq = last_acked
    return e


def _lost_claim(call: str, role: Optional[str]) -> RoleError:
    other = "consumer" if role == "producer" else "producer"
    return RoleError(f"{call}: the peer took the {role} role first; this end can only be the {other}")


def _check_capacity(capacity: int) -> int:
    cap = _as_int(capacity, "capacity")
    if cap < 64 or cap > 1 << 31 or cap & (cap - 1):
        raise ValueError(f"capacity must be a power of two from 64 to 2**31, got {capacity}")
    return cap


def _check_liveness(liveness: float) -> float:
    live = float(liveness)
    if not 0.1 <= live <= 3600:
        raise ValueError(f"liveness must be from 0.1 to 3600 seconds, got {liveness}")
    return live


def _socket(ctx: "zmq.Context[zmq.Socket[bytes]]", kind: int, liveness: float,
            max_msg: int) -> "zmq.Socket[bytes]":
    s = ctx.socket(kind)
    ms = int(liveness * 1000)
    # A closed socket delivers what it holds for at most the liveness.
    s.setsockopt(zmq.LINGER, ms)
    # Credit bounds what is in flight; a ZeroMQ high-water mark would drop
    # (ROUTER) or block behind it instead.
    s.setsockopt(zmq.SNDHWM, 0)
    s.setsockopt(zmq.RCVHWM, 0)
    # libzmq closes a silent connection after hb ms (at most 0.6 s); the bus
    # then gives the reconnect a whole liveness (see NetBus._pump), so a
    # cut of under the liveness resumes, and a longer one (silent or
    # refused) is a verdict within liveness + hb + a poll slice < +1 s.
    hb = max(40, min(ms * 2 // 5, 600))
    s.setsockopt(zmq.HEARTBEAT_IVL, max(10, hb // 4))
    s.setsockopt(zmq.HEARTBEAT_TIMEOUT, hb)
    s.setsockopt(zmq.HEARTBEAT_TTL, max(100, hb))
    s.setsockopt(zmq.MAXMSGSIZE, max_msg)
    s.setsockopt(zmq.RECONNECT_IVL, 50)
    # Retries a tenth of the liveness apart at most: a cut that ends before
    # 90% of the liveness has passed is resumed in time.
    s.setsockopt(zmq.RECONNECT_IVL_MAX, max(50, min(500, ms // 10)))
    return s


# glibc's malloc: the options of mallopt() set below (malloc.h), and the
# environment by which a program sets them itself.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_",
               "MALLOC_MMAP_MAX_")
_heap_kept = 0  # the trim threshold set so far (0: none)


def _mallopt() -> Any:
    """glibc's mallopt, or None (another C library, or none to be found)."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc's alone
        fn = libc.mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn


def _keep_freed_payloads(capacity: int) -> None:
    """Let glibc keep the memory of freed messages for the next ones.

    libzmq receives each large message into a buffer it mallocs, and the
    program frees it when done with the message. glibc returns a free heap
    top larger than its trim threshold (at first 128 KiB, then twice the
    largest mmapped block freed so far) to the kernel. A consumer that catches up frees
    several messages in a row, so the next ones were received into fresh
    pages, each faulted in and zeroed by the kernel inside libzmq's recv:
    about a third of the throughput of a 1 MiB stream (docs/ACROSS_HOSTS.md).
    Set here: what glibc's own adjustment arrives at once a 32 MiB block was
    freed (64-bit), blocks up to 32 MiB from the heap and a free top of up
    to 64 MiB kept, or up to the capacity, the memory the bus may hold in
    flight anyway, if that is larger. Never lowered; left alone when the
    program chose malloc's thresholds itself (the environment or
    GLIBC_TUNABLES), and where the C library is not glibc.
    """
    global _heap_kept
    # glibc's largest mmap threshold, HEAP_MAX_SIZE / 2: 32 MiB on 64-bit
    mmap_max = (4 << 20) * ctypes.sizeof(ctypes.c_long)
    trim = min(max(2 * mmap_max, capacity), (1 << 31) - 1)  # mallopt takes an int
    if trim <= _heap_kept:
        return
    if any(k in os.environ for k in _MALLOC_ENV) \
            or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return
    mallopt = _mallopt()
    if mallopt is not None and mallopt(_M_MMAP_THRESHOLD, mmap_max) \
            and mallopt(_M_TRIM_THRESHOLD, trim):
        _heap_kept = trim


# One ZeroMQ context, so one I/O thread, for every tcp bus of a process,
# except a CURVE listener that checks its clients. With a context per bus, a
# round trip over two buses (one each way) ran two I/O threads in each
# process, each woken for its own direction; on two vCPUs the shared thread
# made the round trip of benchmarks/python/net.py 174-193 us against
# 200-224 us, in four alternating pairs of runs. A CURVE listener with allowed_clients
# keeps a context of its own, since its ZAP handler would answer for every
# socket of a shared one. The shared context is never terminated: its
# sockets are closed one by one with a bounded linger (close, _teardown),
# and a process that exits takes its I/O thread along. A fork gets a new one.
_shared_context: "Optional[zmq.Context[zmq.Socket[bytes]]]" = None
_shared_context_pid = 0
_shared_context_lock = threading.Lock()


def _context(own: bool) -> "zmq.Context[zmq.Socket[bytes]]":
    """A context of the bus's own (own=True), or the process's shared one."""
    global _shared_context, _shared_context_pid
    if own:
        return zmq.Context(1)
    with _shared_context_lock:
        if _shared_context is None or _shared_context_pid != os.getpid():
            ctx: "zmq.Context[zmq.Socket[bytes]]" = zmq.Context(1)
            # (libzmq's default of 1023 sockets per context was per bus before)
            ctx.set(zmq.MAX_SOCKETS, ctx.get(zmq.SOCKET_LIMIT))
            _shared_context, _shared_context_pid = ctx, os.getpid()
        return _shared_context


def _endpoint(url: str) -> str:
    rest = url[len(PREFIX):]
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{url!r}: a tcp address is tcp://HOST:PORT with a port from 1 to "
                         "65535 (a local socket path starting with tcp:// is written ./tcp://...)")
    return url


def _is_loopback(url: str) -> bool:
    """Whether a tcp:// listen address binds loopback only (127.0.0.0/8, ::1, localhost)."""
    host = url[len(PREFIX):].rpartition(":")[0].strip("[]").lower()
    return host == "localhost" or host == "::1" or host.startswith("127.")


def listen(url: str, capacity: int, *, timeout: Optional[float] = None,
           role: Optional[str] = None, liveness: float = 5.0,
           allow_uids: Optional[Iterable[int]] = None, insecure: bool = False,
           curve_secret: Optional[Any] = None, allowed_clients: Optional[Any] = None) -> "NetBus":
    """Bind url, wait for one connector's handshake, and return the bus.

    Without curve_secret the connection is neither encrypted nor
    authenticated: anyone who reaches the port can be the peer. A listener
    on anything but loopback then needs insecure=True, the caller's
    statement that the network is trusted. With curve_secret (tachyon._netsec)
    everything is encrypted and only allowed_clients may connect."""
    if allow_uids is not None:
        raise ValueError("allow_uids applies to local sockets; a tcp:// listener cannot see "
                         "the peer's uid")
    curve = _netsec.listen_terms(curve_secret, allowed_clients)
    if not insecure and curve is None and not _is_loopback(url):
        raise ValueError(f"{url!r} is reachable from other hosts, and a tcp:// bus is neither "
                         "encrypted nor authenticated without CURVE: pass curve_secret and "
                         "allowed_clients, or insecure=True to listen there anyway (a trusted "
                         "network only), or bind 127.0.0.1")
    cap = _check_capacity(capacity)
    live = _check_liveness(liveness)
    if role not in W.ROLE_CODES:
        raise ValueError(f"role must be 'producer', 'consumer' or None, got {role!r}")
    deadline = _deadline(timeout)
    maxp = max(0, cap // 2 - _OVERHEAD)
    own = curve is not None and curve[1] is not None  # clients checked: a ZAP handler
    ctx = _context(own)
    auth = None
    sock = None
    try:
        # the largest frame part: a header with an inline payload, or a payload
        sock = _socket(ctx, zmq.ROUTER, live, max(maxp, _INLINE_MAX) + W.HEADER.size)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # Our connector coming back over a new connection takes its routing
        # id over, even before this end noticed the old connection's loss.
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        auth = _netsec.serve(ctx, sock, curve)
        sock.bind(_endpoint(url))
    except BaseException:
        if auth is not None:
            auth.stop()
        if own:
            ctx.destroy(linger=0)
        elif sock is not None:
            sock.close(0)
        raise
    bus = NetBus(ctx, sock, url, cap, live, listener=True, role=role, own_context=own)
    bus._bound = cast(bytes, sock.getsockopt(zmq.LAST_ENDPOINT)).decode()
    bus._auth = auth
    try:
        bus._accept(deadline)
    except BaseException:
        bus._teardown(0)
        raise
    _keep_freed_payloads(cap)
    return bus


def connect(url: str, *, timeout: Optional[float] = 5.0, role: Optional[str] = None,
            liveness: float = 5.0, curve_server_key: Optional[Any] = None,
            curve_keypair: Optional[Any] = None) -> "NetBus":
    """Connect to a listener at url and complete the handshake within timeout
    (with CURVE when curve_server_key is given: tachyon._netsec)."""
    live = _check_liveness(liveness)
    if role not in W.ROLE_CODES:
        raise ValueError(f"role must be 'producer', 'consumer' or None, got {role!r}")
    deadline = _deadline(timeout)
    ctx = _context(own=False)
    sock = None
    try:
        # The listener's capacity is unknown until it answers: cap frames at 1 GiB.
        sock = _socket(ctx, zmq.DEALER, live, 1 << 30)
        curve = _netsec.dial(sock, curve_server_key, curve_keypair)
    except BaseException:
        if sock is not None:
            sock.close(0)
        raise
    bus = NetBus(ctx, sock, url, 0, live, listener=False, role=role, curve=curve)
    try:
        # A routing id of our own (never starting with a zero byte, which
        # ROUTER reserves) keeps our identity across a reconnect.
        sock.setsockopt(zmq.ROUTING_ID, b"T" + bus._session.to_bytes(8, "little"))
        sock.connect(_endpoint(url))
        bus._handshake(deadline)
    except BaseException:
        bus._teardown(0)
        raise
    _keep_freed_payloads(bus.capacity)
    return bus


class NetRxGuard(_ForeignView):
    """One received message, read in place (``recv_zero_copy``).

    A read-only buffer over the payload as it came off the network, with
    ``__dlpack__`` and ``array()`` as for a local RxGuard. The buffer
    protocol (``memoryview(rx)``, ``bytes(rx)``) reads the payload in place.
    libzmq gives no alignment guarantee, and DLPack and the tensor frames
    need 64-byte alignment: the first ``__dlpack__`` or ``array()`` of a
    payload that is not 64-byte aligned copies it once into an aligned
    block, which later exports share (``copied`` says so). The message's credit goes
    back to the producer when the guard exits; views taken from it keep
    the payload alive after that.
    """

    __slots__ = ("_bus", "_cost")
    _bus: Optional["NetBus"]
    _cost: int

    def __new__(cls, bus: "NetBus", type_id: int, payload: Any, cost: int) -> "NetRxGuard":
        self = super().__new__(cls, payload, type_id)
        self._bus = bus
        self._cost = cost
        return self

    def __enter__(self) -> "NetRxGuard":
        return self

    def __exit__(self, *exc: object) -> None:
        _give_back(self)

    def __del__(self) -> None:
        # a guard dropped without its with block gives its credit back too,
        # as a local RxGuard gives back its slot
        _give_back(self)


class NetRxBatch:
    """Several received messages read in place (``drain_batch``); their credit
    goes back when the batch exits."""

    __slots__ = ("_bus", "_views", "_cost")

    _bus: Optional["NetBus"]

    def __init__(self, bus: "NetBus", items: List[Tuple[int, Any, int]]) -> None:
        self._bus = bus
        self._views = [_ForeignView(p, t) for t, p, _ in items]
        self._cost = sum(c for _, _, c in items)

    def __len__(self) -> int:
        return len(self._views)

    def __iter__(self) -> Iterator[_ForeignView]:
        return iter(self._views)

    def __getitem__(self, index: int) -> _ForeignView:
        return self._views[index]

    def __enter__(self) -> "NetRxBatch":
        return self

    def __exit__(self, *exc: object) -> None:
        _give_back(self)

    def __del__(self) -> None:
        _give_back(self)


def _give_back(holder: "NetRxGuard | NetRxBatch") -> None:
    """The credit of what holder read goes back to the producer, once."""
    bus, holder._bus = holder._bus, None
    if bus is not None:
        bus._taken(holder._cost)


class NetTxGuard(bytearray):
    """A message being written in place (``send_zero_copy``): a writable
    buffer of ``size`` bytes. A clean exit sends its first ``actual_size``
    bytes; an exception discards it."""

    def __init__(self, bus: "NetBus", size: int, type_id: int,
                 timeout: Optional[float]) -> None:
        super().__init__(size)
        self._timeout = timeout
        self._bus: Optional[NetBus] = bus
        self.size = size
        self.actual_size = size
        self.type_id = type_id

    def __enter__(self) -> "NetTxGuard":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        bus, self._bus = self._bus, None
        if bus is not None and exc_type is None:
            n = self.actual_size
            if not 0 <= n <= self.size:
                raise ValueError(f"actual_size must be 0..{self.size}, got {n}")
            with memoryview(self) as mv:
                bus.send(mv[:n], self.type_id, timeout=self._timeout)


class NetBus:
    """One end of a bus across hosts; see the module docstring."""

    def __init__(self, ctx: "zmq.Context[zmq.Socket[bytes]]", sock: "zmq.Socket[bytes]",
                 url: str, capacity: int, liveness: float, *, listener: bool,
                 role: Optional[str], curve: bool = False, own_context: bool = False) -> None:
        self._ctx = ctx
        self._own_context = own_context  # else the process's shared one: never terminated
        self._bound: Optional[str] = None  # a listener's endpoint, for the unbind at close
        self._rcvtimeo = -1  # the data socket's receive timeout as last set (_recv_parts)
        self._sock = sock
        # (a listener's own closing is looked for at close: _unbind)
        self._monitor = sock.get_monitor_socket(_MONITOR_EVENTS | (zmq.EVENT_CLOSED if listener
                                                                   else 0))
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self._url = url
        self._capacity = capacity
        self._liveness = liveness
        self._listener = listener
        self._session = secrets.randbits(64) | 1
        self._peer_session = 0
        self._peer_ident = b""          # the connector's routing id (listener)
        self._peer_fd = -1              # its connection's fd (listener)
        self._prefix: List[bytes] = []  # the routing part of every frame we send
        self._lock = threading.Lock()
        self._closing = False           # close() from another thread: shut down in the call
        self._closed = False
        self._role = role
        self._peer_role: Optional[str] = None
        self._verdict: Optional[int] = None
        self._claims = 0  # the connector's role claims so far; a verdict echoes the number
        self._lost_role: Optional[str] = None  # a provisional role the listener took first
        self._peer_closed = False       # the peer closed and everything it sent arrived
        self._peer_close_seq: Optional[int] = None  # its CLOSE's last DATA, once it came
        self._close_sent = False
        self._close_acked = False
        self._dead: Optional[str] = None
        self._lost_since: Optional[float] = None
        self._connects = 0              # ZMTP handshakes completed (connector)
        self._refused = ""              # why a handshake was turned down, to retry
        # producer: what the consumer did not acknowledge yet, to send again
        # after a reconnect, as (seq, frame parts). Every entry holds credit,
        # so this never exceeds the capacity.
        self._unacked: Deque[Tuple[int, List[Any]]] = collections.deque()
        self._acked = 0                 # the consumer received every DATA up to this
        self._tx_seq = 0
        self._tx_cost = 0
        self._peer_taken = 0
        self._sent_bytes = 0
        self._sends = 0                 # send calls, to take in frames every 64th
        # consumer
        self._rx: Deque[Tuple[int, Any, int]] = collections.deque()
        self._rx_seq = 0
        self._rx_taken = 0
        self._rx_granted = 0
        self._rx_queued = 0
        self._recv_messages = 0
        self._recv_bytes = 0
        self._dropped = 0
        self._auth: Any = None          # the CURVE client check (listener), stopped at teardown
        # (final, why) when the security handshake failed (connector, tachyon._netsec)
        self._security_refusal: Optional[Tuple[bool, str]] = None
        self._curve = curve             # a connector with CURVE (its handshake hints say which)
        self._resumes = 0               # connections resumed (a test reads it)
        self._events_due = 0.0          # when the monitor is next looked at (_pump)
        self._peer_batches = False      # the peer takes BATCH frames (its HELLO/WELCOME said so)
        self._batches = 0               # BATCH frames taken in (a test reads it)

    # -- handshake ------------------------------------------------------------

    def _accept(self, deadline: Optional[float]) -> None:
        while not self._peer_ident:
            self._wait(deadline, "listen")
            if deadline is not None and time.monotonic() >= deadline and not self._peer_ident:
                raise ConnectTimeoutError(f"listen: no connector completed the handshake on "
                                          f"{self._url} within the timeout")

    def _handshake(self, deadline: Optional[float]) -> None:
        terms = W.TERMS.pack(0, 0, int(self._liveness * 1000), W.ROLE_CODES[self._role])
        self._sock.send_multipart([W.header(W.K_HELLO, self._session, flags=W.F_BATCH), terms])
        asked = time.monotonic()
        while not self._peer_session:
            if deadline is not None and time.monotonic() >= deadline:
                if self._refused:
                    raise ConnectTimeoutError(f"connect: the listener on {self._url} did not take "
                                              f"this end within the timeout (its last answer: "
                                              f"{self._refused})")
                hint = (f" ({self._security_refusal[1]})" if self._security_refusal is not None
                        else "")
                raise ConnectTimeoutError(f"connect: no listener answered on {self._url} within "
                                          f"the timeout{hint}")
            if self._refused and time.monotonic() - asked >= SLICE:
                # Turned down for a session the listener held before (this
                # process restarted): its program listens anew once it has
                # seen that session die; ask again, a slice apart.
                self._sock.send_multipart([W.header(W.K_HELLO, self._session, flags=W.F_BATCH), terms])
                asked = time.monotonic()
            self._poll(_left(deadline))
            # connection events too: a security handshake that failed for
            # good (a refused CURVE key) ends the wait at once
            self._events()
            if self._security_refusal is not None and self._security_refusal[0]:
                raise HandshakeError(f"connect: {self._url}: {self._security_refusal[1]}")
            parts = self._recv_parts()
            while parts is not None:
                self._handshake_reply(parts)
                if self._peer_session:
                    break
                parts = self._recv_parts()

    def _handshake_reply(self, parts: List[Any]) -> None:
        head = bytes(parts[0])
        version = W.version_of(head)
        if version is not None and version != W.PROTOCOL_VERSION:
            raise AbiMismatchError(f"connect: the listener at {self._url} speaks protocol "
                                   f"version {version}, this end {W.PROTOCOL_VERSION}")
        h = W.parse(head)
        if h is None:
            self._dropped += 1
            return
        _, kind, flags, _, session, _, _ = h
        body = bytes(parts[1]) if len(parts) > 1 else b""
        if kind == W.K_REFUSE:
            why = _REASONS.get(flags, "the listener refused")
            text = body.decode("utf-8", "replace")
            msg = f"connect: {self._url} refused the handshake: {why}" + (f" ({text})" if text else "")
            if flags == W.R_VERSION:
                raise AbiMismatchError(msg)
            if flags == W.R_ROLE:
                raise RoleError(msg)
            if flags == W.R_RESTARTED:
                self._refused = why
                return
            raise HandshakeError(msg)
        if kind != W.K_WELCOME or len(body) != W.TERMS.size:
            self._dropped += 1
            return
        cap, _maxp, _live, role = W.TERMS.unpack(body)
        self._peer_batches = bool(flags & W.F_BATCH)
        try:
            self._capacity = _check_capacity(cap)
        except ValueError:
            raise HandshakeError(f"connect: {self._url} offered capacity {cap}, not a power of "
                                 "two from 64 to 2**31") from None
        self._peer_role = W.ROLE_NAMES.get(role)
        self._peer_session = session

    def _on_stranger(self, ident: bytes, parts: List[Any]) -> None:
        """A frame from another routing id than our connector's (listener)."""
        head = bytes(parts[0]) if parts else b""
        version = W.version_of(head)
        h = W.parse(head)
        body = bytes(parts[1]) if len(parts) > 1 else b""
        if version is not None and version != W.PROTOCOL_VERSION:
            self._refuse(ident, W.R_VERSION, f"this listener speaks version {W.PROTOCOL_VERSION}")
        elif h is None or h[1] != W.K_HELLO or len(body) != W.TERMS.size or len(parts) != 2:
            self._refuse(ident, W.R_PROTOCOL, "expected a HELLO")
        elif h[2] & W.F_RESUME:
            # a connector resuming a session this end never held: this
            # listener was restarted, and that session is over
            self._refuse(ident, W.R_SESSION, "")
        elif self._closed or self._closing:
            self._refuse(ident, W.R_CLOSED, "")
        elif self._peer_ident and (self._lost_since is not None or self._dead is not None) \
                and not self._peer_closed:
            # A new session while ours has no connection: most likely our
            # connector's process restarted. Ours cannot resume any more
            # (the new process does not have what the old one sent); a gap
            # must not reach the program, so the old session ends here.
            if self._dead is None:
                self._dead = (f"a new session (a restarted peer?) connected while this one's "
                              f"connection was lost; what the old one sent after message "
                              f"{self._last_acked()} is lost")
            self._refuse(ident, W.R_RESTARTED, "")
        elif self._peer_ident:
            self._refuse(ident, W.R_BUSY, "")
        else:
            _, _, _, _, session, _, _ = h
            _c, _m, _l, role_code = W.TERMS.unpack(body)
            role = W.ROLE_NAMES.get(role_code)
            if role_code not in W.ROLE_NAMES:
                self._refuse(ident, W.R_PROTOCOL, f"role code {role_code}")
                return
            if role is not None and role == self._role:
                self._refuse(ident, W.R_ROLE, f"the listener is the {role}")
                return
            self._peer_ident = ident
            self._prefix = [ident]
            self._peer_session = session
            self._peer_role = role
            self._peer_fd = _srcfd(parts[0])
            self._peer_batches = bool(h[2] & W.F_BATCH)
            terms = W.TERMS.pack(self._capacity, self.max_payload, int(self._liveness * 1000),
                                 W.ROLE_CODES[self._role])
            self._send([W.header(W.K_WELCOME, self._session, flags=W.F_BATCH), terms])

    def _refuse(self, ident: bytes, reason: int, text: str) -> None:
        try:
            self._sock.send_multipart([ident, W.header(W.K_REFUSE, self._session, flags=reason),
                                       text.encode()], flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the stranger is gone already

    # -- the receive side of the socket ---------------------------------------

    def _poll(self, seconds: float) -> None:
        """Wait for the data socket or the monitor, at most seconds."""
        self._poller.poll(int(seconds * 1000))

    def _recv_parts(self, probe: bool = True, wait_ms: int = 0) -> Optional[List[Any]]:
        """The next frame for the bus (routing part removed), None when none is
        waiting. probe: ask the socket first (a flag read, cheaper than a
        receive that fails, dearer than one that succeeds). wait_ms: wait up
        to that long for the first part, in libzmq's own blocking receive."""
        sock = self._sock
        listener = self._listener
        while True:
            if probe and not _ready(sock):
                return None
            flags = _NOBLOCK
            if wait_ms > 0:
                flags = 0
                if wait_ms != self._rcvtimeo:
                    sock.setsockopt(zmq.RCVTIMEO, wait_ms)
                    self._rcvtimeo = wait_ms
            # Parts come as zmq.Frame objects (in place, and .more says
            # whether another part follows: a socket option read costs more),
            # except a ROUTER's routing part, always followed by the message
            # and compared as bytes: received as bytes, it costs two fifths.
            try:
                if listener:
                    ident = _zrecv(sock, flags)
                    part = _zrecv(sock, _NOBLOCK, False)  # (queued whole with its routing part)
                else:
                    part = _zrecv(sock, flags, False)
            except zmq.Again:
                return None
            if not flags:
                wait_ms = 0  # (a stranger's frame: the next look does not wait)
                # what the connection did before this frame came first, as
                # in _pump (a lost connection decides how a stranger's
                # HELLO is answered)
                self._events_when_due()
            parts = [part]
            while part.more:
                part = _zrecv(sock, _NOBLOCK, False)
                parts.append(part)
            if not listener:
                return parts
            if ident == self._peer_ident:
                # (frames still queued from a lost connection come this way
                # too: only a resuming HELLO says that the connector is back)
                return parts
            self._on_stranger(ident, parts)

    def _events(self) -> None:
        while _ready(self._monitor):
            try:
                ev = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            event, value = ev["event"], ev["value"]
            if event == zmq.EVENT_DISCONNECTED:
                # (a connector's attempts before the listener's WELCOME are
                # the handshake's business, bounded by its timeout: counted
                # here, one broken off would kill the bus a liveness later)
                if (self._peer_session if not self._listener else value == self._peer_fd):
                    if self._lost_since is None:
                        self._lost_since = time.monotonic()
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED and not self._listener:
                self._connects += 1
                if self._connects > 1 and self._peer_session and self._dead is None:
                    # a new connection under the same session: resume it
                    self._lost_since = None
                    self._send([W.header(W.K_HELLO, self._session,
                                         flags=W.F_RESUME | W.F_BATCH,
                                         seq=self._rx_seq, value=self._rx_granted),
                                W.TERMS.pack(0, 0, int(self._liveness * 1000),
                                             W.ROLE_CODES[self._role])])
            elif not self._listener and not self._peer_session:
                why = _netsec.failure(event, value, self._curve)
                # a final answer stands: a later event of the same batch
                # (a retry's break-off) does not make it a hint again
                if why is not None and not (self._security_refusal or (False,))[0]:
                    self._security_refusal = why

    def _events_when_due(self) -> None:
        now = time.monotonic()
        if now >= self._events_due:
            # Every look at the monitor is a system call in libzmq (it
            # drains the socket's command pipe), as every look at the data
            # socket is: connection events are looked at once every
            # EVENTS_EVERY (a waiting call waits on the data socket alone).
            self._events_due = now + EVENTS_EVERY
            self._events()

    def _pump(self, limit: int = 4096) -> None:
        """Take in what arrived: frames for the bus, refusals for strangers,
        connection events, and the liveness verdict."""
        self._events_when_due()
        for i in range(limit):
            # frames that came in a burst are taken without asking first
            parts = self._recv_parts(i < 4)
            if parts is None:
                break
            self._on_frame(parts)
        self._judge_liveness()

    def _judge_liveness(self) -> None:
        if (self._lost_since is not None and self._dead is None and not self._peer_closed
                and time.monotonic() - self._lost_since > self._liveness):
            self._dead = (f"the connection to the peer was lost for more than "
                          f"{self._liveness:g} s (liveness)")

    def _last_acked(self) -> int:
        """The last message known to have reached the consumer: acknowledged
        to this producer, or received by this consumer."""
        return self._acked if self._role == "producer" else self._rx_seq

    def _resend(self, acked: int, granted: int) -> None:
        """The peer resumed, having received every DATA up to acked and
        granted credit up to granted: send again, in order, what it lacks."""
        self._resumes += 1
        self._on_ack(acked, granted)
        for _, parts in self._unacked:
            self._send(parts)
        if self._close_sent:
            self._send([W.header(W.K_CLOSE, self._session, seq=self._tx_seq)])

    def _on_ack(self, acked: int, granted: int) -> None:
        if granted > self._peer_taken and granted <= self._tx_cost:
            self._peer_taken = granted
        if self._acked < acked <= self._tx_seq:
            self._acked = acked
            unacked = self._unacked
            while unacked and unacked[0][0] <= acked:
                unacked.popleft()

    def _on_frame(self, parts: List[Any]) -> None:
        head = parts[0].buffer
        if len(parts) == 1 and len(head) >= _HSIZE:
            # the common frames first, without the general checks below
            leading, type_id, session, seq, _ = _LEADING_UNPACK(head)
            if (leading == _INLINE_DATA and session == self._peer_session
                    and seq == self._rx_seq + 1 and self._role != "producer"
                    and not self._peer_closed and self._dead is None):
                size = len(head) - _HSIZE
                if size > self._capacity // 2 - _OVERHEAD:
                    self._dropped += 1
                    return
                self._rx_seq = seq
                if self._peer_role is None:
                    self._peer_is_producer()
                c = size + _OVERHEAD
                self._rx.append((type_id, head[_HSIZE:], c))
                self._rx_queued += c
                if self._peer_close_seq == seq:
                    self._closed_by_peer()
                return
            if leading == _BATCH:
                if session == self._peer_session and seq == self._rx_seq + 1:
                    self._on_batch(head, type_id, seq)
                else:
                    self._dropped += 1  # a repeat, behind a gap, or not ours
                return
        h = W.parse(head)
        if h is not None and h[1] == W.K_REFUSE and not self._listener and self._dead is None \
                and h[2] in (W.R_SESSION, W.R_DEAD, W.R_CLOSED):
            # The listener turned our session down after a reconnect (it
            # restarted, or it declared us dead): the session is over.
            why = _REASONS.get(h[2], "the listener refused the session")
            self._dead = f"{why}; messages after {self._last_acked()} are lost"
            return
        if h is None or h[0] != W.PROTOCOL_VERSION or h[4] != self._peer_session:
            self._dropped += 1
            return
        _, kind, flags, type_id, _, seq, value = h
        if kind == W.K_DATA:
            if seq != self._rx_seq + 1:
                # A repeat, or a frame behind a gap that a cut left: the
                # producer sends the gap and what follows it again, in order.
                self._dropped += 1
                return
            if len(parts) != (1 if flags & W.F_INLINE else 2) or self._role == "producer" \
                    or self._peer_closed or self._dead is not None:
                self._dropped += 1
                return
            payload = parts[1] if len(parts) == 2 else parts[0].buffer[W.HEADER.size:]
            size = len(payload)
            if size > self.max_payload:
                self._dropped += 1
                return
            self._rx_seq = seq
            self._peer_is_producer()
            c = W.cost(size)
            self._rx.append((type_id, payload, c))
            self._rx_queued += c
            if self._peer_close_seq == seq:
                self._closed_by_peer()
        elif kind == W.K_CREDIT:
            self._on_ack(seq, value)
        elif kind == W.K_CLAIM:
            role = W.ROLE_NAMES.get(flags)
            if role is None:
                self._dropped += 1
                return
            if self._listener:
                granted = role != self._role
                if granted:
                    self._peer_role = role
                self._send([W.header(W.K_VERDICT, self._session,
                                     flags=flags if granted else 0, seq=seq)])
            else:
                self._peer_role = role
                if self._role == role:
                    # Our claim of this role crossed the listener's, and the
                    # listener wins: give the role up at once, so that the
                    # data it sends right after its claim is taken, not
                    # dropped as arriving at a producer; the call is told.
                    self._role, self._lost_role = None, role
        elif kind == W.K_VERDICT and not self._listener:
            if seq == self._claims:  # else the answer to a claim given up since
                self._verdict = flags
        elif kind == W.K_CLOSE:
            # Closed once everything it sent is here; what a cut lost is on
            # its way again, and the CLOSE with it.
            self._peer_close_seq = seq
            if seq <= self._rx_seq or self._role == "producer":
                self._closed_by_peer()
        elif kind == W.K_CLOSE_ACK:
            self._close_acked = True
        elif kind == W.K_HELLO and self._listener:
            if self._dead is not None:
                self._send([W.header(W.K_REFUSE, self._session, flags=W.R_DEAD), b""])
                return
            # our connector over a new connection (F_RESUME), or repeating
            # its first HELLO (the WELCOME was lost in a cut)
            resume = flags & W.F_RESUME
            terms = W.TERMS.pack(self._capacity, self.max_payload, int(self._liveness * 1000),
                                 W.ROLE_CODES[self._role])
            self._send([W.header(W.K_WELCOME, self._session, flags=resume | W.F_BATCH,
                                 seq=self._rx_seq,
                                 value=self._rx_granted), terms])
            if resume:
                self._lost_since = None
                self._peer_fd = _srcfd(parts[0])
                self._resend(seq, value)
        elif kind == W.K_WELCOME and not self._listener and flags & W.F_RESUME:
            self._resend(seq, value)
        else:
            self._dropped += 1

    def _on_batch(self, buf: Any, count: int, first: int) -> None:
        """A BATCH frame whose first message is the next one: take all its
        messages, or, when any length in it does not add up, none (a frame
        that lies is dropped whole, and counted)."""
        end = len(buf)
        maxp = self._capacity // 2 - _OVERHEAD
        if (count < 1 or count * _ISIZE > end - _HSIZE or self._role == "producer"
                or self._peer_closed or self._dead is not None):
            self._dropped += 1
            return
        items = []
        total = 0
        off = _HSIZE
        for _ in range(count):
            if off + _ISIZE > end:
                self._dropped += 1
                return
            type_id, size = _ITEM_UNPACK(buf, off)
            off += _ISIZE
            if size > maxp or off + size > end:
                self._dropped += 1
                return
            c = size + _OVERHEAD
            items.append((type_id, buf[off:off + size], c))
            total += c
            off += size
        if off != end:
            self._dropped += 1
            return
        last = first + count - 1
        self._batches += 1
        self._rx.extend(items)
        self._rx_seq = last
        self._peer_is_producer()
        self._rx_queued += total
        if self._peer_close_seq is not None and first <= self._peer_close_seq <= last:
            self._closed_by_peer()

    def _peer_is_producer(self) -> None:
        """Data came: only a producer sends it. A claim of the peer's that a
        cut lost, or one not yet here, is known from this too, so that this
        end's own claim of the producer's role is refused, not granted to a
        second producer whose peer's messages would go unread."""
        if self._peer_role is None:
            self._peer_role = "producer"

    def _closed_by_peer(self) -> None:
        self._peer_closed = True
        self._send([W.header(W.K_CLOSE_ACK, self._session)])

    def _send(self, parts: List[Any]) -> bool:
        """Hand a frame to libzmq; False while the peer is not connected."""
        sock = self._sock
        try:
            # part by part (a multipart message is queued whole, at its last
            # part); a ROUTER refuses an absent peer at the routing part
            if self._prefix:
                _zsend(sock, self._prefix[0], _NOBLOCK_MORE)
            if len(parts) == 1:
                _zsend(sock, parts[0], _NOBLOCK)
                return True
            last = len(parts) - 1
            for i, p in enumerate(parts):
                _zsend(sock, p, _NOBLOCK if i == last else _NOBLOCK_MORE)
            return True
        except zmq.Again:
            return False
        except zmq.ZMQError as e:
            if e.errno == zmq.EHOSTUNREACH:
                return False
            raise

    def _wait(self, deadline: Optional[float], call: str) -> None:
        """One slice of a blocking call: wait for a frame and take it in."""
        if self._closing:
            self._teardown(0)
            raise BusClosedError(f"{call}: the bus was closed by another thread")
        # Credit still held back here is under a quarter of the capacity,
        # which leaves the producer room for a largest message: granting it
        # before every wait would only double the frames.
        if self._rx_taken - self._rx_granted >= self._capacity // 4:
            self._grant()
        # The data socket alone, in libzmq's blocking receive: it sleeps on
        # the socket's command pipe and takes the frame when woken, where a
        # poll looks at the socket's events before and after it sleeps and
        # the receive after it looks again (a system call each look). The
        # receive looks before it sleeps, so callers need no look of their
        # own first; after it, neither a frame nor a slice that passed
        # without one calls for another look at the data socket: frames
        # queued behind this one are taken by the next receive, without a
        # system call. Connection events are looked at when due
        # (EVENTS_EVERY).
        parts = self._recv_parts(False, _SLICE_MS if deadline is None
                                 else int(_left(deadline) * 1000))
        if parts is not None:
            self._on_frame(parts)
        else:
            self._events_when_due()
            self._judge_liveness()
        if self._verdict is not None and not self._listener and self._role is not None:
            self._check_verdict(call)
        if self._lost_role is not None and self._role is None:
            # given up while this call waited (the listener's claim of the
            # same role came): the call says so, as the next one would
            lost, self._lost_role = self._lost_role, None
            raise _lost_claim(call, lost)

    # -- calls ------------------------------------------------------------------

    def _enter(self, call: str, role: Optional[str], deadline: Optional[float]) -> None:
        self._lock.acquire()
        try:
            if self._closed or self._closing:
                if self._closing and not self._closed:
                    self._teardown(0)
                raise BusClosedError(f"{call}: the bus is closed")
            if self._verdict is not None and not self._listener:
                self._check_verdict(call)
                # it granted the role (a refusal raised): nothing is left to
                # check at every call and every wait after this one
                self._verdict = None
            if self._lost_role is not None:
                lost, self._lost_role = self._lost_role, None
                raise _lost_claim(call, lost)
            if role is not None and self._role != role:
                self._claim(call, role, deadline)
        except BaseException:
            self._lock.release()
            raise

    def _claim(self, call: str, role: str, deadline: Optional[float]) -> None:
        if self._role is not None:
            raise RoleError(f"{call}: this end is the {self._role}; two-way traffic uses two "
                            "buses")
        self._pump()
        if self._peer_role == role:
            raise RoleError(f"{call}: the peer is the {role}; this end can only be the "
                            f"{'consumer' if role == 'producer' else 'producer'}")
        code = W.ROLE_CODES[role]
        if self._listener:
            self._role = role
            self._send([W.header(W.K_CLAIM, self._session, flags=code)])
            return
        # The listener arbitrates when its program next calls. Within this
        # call's timeout (a first call only) wait for its verdict; without
        # one by then the role holds provisionally, and a refusal arriving
        # later is this end's RoleError at its next call (what it sent
        # meanwhile is dropped by the listener, which holds the role).
        self._verdict = None
        self._role = role
        self._claims += 1
        self._send([W.header(W.K_CLAIM, self._session, flags=code, seq=self._claims)])
        until = time.monotonic() + self._liveness
        if deadline is not None:
            until = min(until, deadline)
        while self._verdict is None and time.monotonic() < until:
            if self._peer_role is not None and self._peer_role != role:
                # The listener holds the other role (its claim, or its data,
                # came): its verdict can only grant ours, and waiting for it
                # would wait for its program's next call, which may be a
                # while (blocked on another bus, say: the ping-pong of two
                # buses stalled for a liveness at its first message).
                break
            self._raise_if_gone(call, consumer=False)
            self._wait(until, call)
            if self._lost_role is not None:
                # The listener's own claim crossed ours (see _on_frame); its
                # refusal of ours carries this claim's number, which a later
                # claim ignores.
                self._lost_role = None
                raise _lost_claim(call, role)
        self._check_verdict(call)

    def _check_verdict(self, call: str) -> None:
        if self._verdict is not None and self._verdict != W.ROLE_CODES[self._role]:
            role, self._role, self._verdict = self._role, None, None
            self._peer_role = role
            raise _lost_claim(call, role)

    def _raise_if_gone(self, call: str, consumer: bool) -> None:
        if consumer and self._rx:
            return
        if self._dead is not None:
            raise _peer_dead(f"{call}: the peer is dead: {self._dead}", self._last_acked())
        if self._peer_closed:
            what = ("everything it sent was delivered" if consumer
                    else "it takes no more messages")
            raise PeerClosedError(f"{call}: the peer closed the bus ({what})")

    def _check_payload(self, data: Any) -> memoryview:
        mv = data if isinstance(data, memoryview) else memoryview(data)
        if not mv.c_contiguous:
            raise ValueError("send: the buffer must be C-contiguous")
        if mv.nbytes > self.max_payload:
            raise ValueError(f"send: a {mv.nbytes}-byte message does not fit this bus "
                             f"(max_payload {self.max_payload}, capacity {self._capacity})")
        return mv

    def _send_data(self, call: str, data: Any, type_id: int, deadline: Optional[float],
                   sent: int, *, pinned: Any = None) -> None:
        if type(type_id) is not int:
            type_id = _as_int(type_id, "type_id")
        if not 0 <= type_id <= 0xFFFFFFFF:
            raise ValueError(f"{call}: type_id must be 0..2**32-1, got {type_id}")
        mv: Any
        if type(data) is bytes and len(data) <= _INLINE_MAX:
            mv = data  # (bytes + bytes below: no memoryview needed)
            n = len(data)
            if n > self._capacity // 2 - _OVERHEAD:
                self._check_payload(data)  # raises, saying why
        else:
            mv = self._check_payload(data)
            n = mv.nbytes
        c = n + _OVERHEAD
        pumped = False
        while True:
            if self._dead is not None or self._peer_closed:
                self._raise_if_gone(call, consumer=False)
            room = self._capacity - (self._tx_cost - self._peer_taken)
            if room < c and not pumped:
                self._pump()  # take in the credit granted meanwhile
                pumped = True
                continue
            if room >= c:
                seq = self._tx_seq + 1
                frame: List[Any]
                if n <= _INLINE_MAX:
                    # one part: header and payload together
                    frame = [_LEADING_PACK(_INLINE_DATA, type_id, self._session, seq, 0) + mv]
                else:
                    # Kept until acknowledged (and sent again from there), so
                    # a zmq.Frame that libzmq shares on every send. bytes from
                    # _ZERO_COPY_MIN up are used in place (below, pyzmq's copy
                    # is the cheaper way); anything else is first copied into
                    # bytes of its own: a Frame made from the caller's buffer
                    # holds its export until the frame is dropped, which would
                    # keep a local receive view's slot (the bridge's) pinned
                    # until the acknowledgement, and a bytearray unresizable.
                    if pinned is not None:
                        payload = pinned  # _send_pinned's: the caller's memory, in place
                    else:
                        own = data if type(data) is bytes else bytes(mv)
                        payload = zmq.Frame(own, copy_threshold=_ZERO_COPY_MIN)
                    frame = [W.header(W.K_DATA, self._session, type_id=type_id, seq=seq),
                             payload]
                # Sent, or kept for the resume when the connection is down
                # (a listener's ROUTER refuses to queue for an absent peer).
                self._send(frame)
                self._unacked.append((seq, frame))
                self._tx_seq = seq
                self._tx_cost += c
                self._sent_bytes += n
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise _bus_full(f"{call}: no credit from the consumer for a {n}-byte message "
                                f"within the timeout ({sent} sent by this call)", sent)
            self._wait(deadline, call)
            if self._closed:
                raise BusClosedError(f"{call}: the bus was closed")

    def send(self, data: Any, type_id: int = 0, *, timeout: Optional[float] = 0) -> None:
        deadline = _deadline(timeout)
        self._enter("send", "producer", deadline)
        try:
            self._sends += 1
            if not self._sends & 63:
                self._pump()
            self._send_data("send", data, type_id, deadline, 0)
        finally:
            self._lock.release()

    # -- in place, for the bridge (tachyon/bridge.py) ---------------------------
    #
    # send() copies a payload once, into a frame this end keeps until the
    # consumer acknowledges it: the caller's buffer is free on return. The
    # bridge forwards from a local ring and can keep a received slot (its
    # RxGuard) instead: _send_pinned hands the slot to libzmq without the
    # copy and keeps that frame for a resend; the returned tracker says when
    # the slot may be released. Acknowledgements come only every quarter of
    # the capacity, so a caller that holds slots while its source has
    # nothing more, or needs their room back, calls _unpin: it copies them
    # and lets their trackers finish once libzmq has written its queue.

    def _send_pinned(self, owner: Any, type_id: int, timeout: Optional[float]) -> Tuple[int, Any]:
        """send(owner, type_id, timeout=timeout) without the copy: owner's
        buffer (larger than _INLINE_MAX) goes to libzmq in place, and stays
        kept in place until acknowledged. Returns its sequence number and a
        zmq.MessageTracker, done once this end dropped the frame
        (acknowledged, _unpin'ed, or the bus ended) and libzmq let go of
        every copy it queued: until then owner must stay alive and unchanged."""
        deadline = _deadline(timeout)
        self._enter("send", "producer", deadline)
        try:
            self._pump()  # acknowledgements first: they finish earlier trackers
            frame = zmq.Frame(owner, copy=False, track=True)
            self._send_data("send", frame, type_id, deadline, 0, pinned=frame)
            return self._tx_seq, frame.tracker
        finally:
            self._lock.release()

    def _unpin(self, upto: Optional[int] = None) -> None:
        """Take in acknowledgements, then give each payload of _send_pinned's
        still kept for a resend, up to sequence number upto (None: all), a
        copy of this end's own."""
        if not self._lock.acquire(blocking=False):
            return  # a call of another thread is in progress; the caller retries
        try:
            if self._closed:
                return
            self._pump()
            for seq, parts in self._unacked:
                if upto is not None and seq > upto:
                    break
                # (only _send_pinned's frames are tracked)
                if len(parts) == 2 and parts[1].tracker is not None:
                    parts[1] = zmq.Frame(parts[1].bytes, copy_threshold=_ZERO_COPY_MIN)
        finally:
            self._lock.release()

    def send_array(self, obj: Any, type_id: int = 0, *, timeout: Optional[float] = 0) -> None:
        """Send obj (numpy, a torch CPU tensor, anything with the buffer
        protocol or DLPack) as a tensor frame (ABI.md, "Tensor frames"):
        dtype and shape travel with it, and the receiver's ``view.array()``
        or ``recv_array()`` gives the array back. type_id is the frame's
        16-bit message type. The frame is built once in memory of its own
        (no ring to write into), then sent as ``send`` sends."""
        tag = _as_int(type_id, "type_id")
        if not 0 <= tag <= 0xFFFF:
            raise ValueError(f"send_array: type_id is the frame's 16-bit message type (0..65535), "
                             f"got {type_id}; the route half of a frame's type_id is always 0xFFFF")
        self.send(_frame_bytes(obj), _FRAME_ROUTE | tag, timeout=timeout)

    def send_many(self, buffers: Iterable[Any], type_id: int = 0, *,
                  timeout: Optional[float] = 0) -> int:
        """Send each buffer as a message of its own, in order; the number
        sent. Payloads of up to 2 KiB travel several to a frame (each keeps
        its own sequence number, type_id and credit cost); a larger one, or
        one that waits for credit, goes as ``send`` sends it."""
        deadline = _deadline(timeout)
        self._enter("send_many", "producer", deadline)
        try:
            self._pump()
            if not self._peer_batches:
                n = 0
                for b in buffers:
                    self._send_data("send_many", b, type_id, deadline, n)
                    n += 1
                return n
            return self._send_batched(buffers, type_id, deadline)
        finally:
            self._lock.release()

    def _send_batched(self, buffers: Iterable[Any], type_id: int,
                      deadline: Optional[float]) -> int:
        tid = _as_int(type_id, "type_id")
        if not 0 <= tid <= 0xFFFFFFFF:
            raise ValueError(f"send_many: type_id must be 0..2**32-1, got {type_id}")
        self._raise_if_gone("send_many", consumer=False)
        n = 0                   # messages handed to libzmq
        parts: List[Any] = []   # the batch being built: ITEM, payload, ITEM, ...
        count = held = nbytes = 0
        try:
            for b in buffers:
                if type(b) is bytes and len(b) <= _BATCH_ITEM_MAX:
                    m: Any = b
                    size = len(b)
                else:
                    mv = self._check_payload(b)
                    size = mv.nbytes
                    m = mv.tobytes() if size <= _BATCH_ITEM_MAX else mv
                c = size + _OVERHEAD
                if size <= _BATCH_ITEM_MAX:
                    if count and (count >= _BATCH_MAX or nbytes + size > _BATCH_BYTES
                                  or self._capacity - (self._tx_cost + held - self._peer_taken) < c):
                        n += self._send_batch(parts, count, held, nbytes)
                        parts, count, held, nbytes = [], 0, 0, 0
                    if self._capacity - (self._tx_cost + held - self._peer_taken) >= c:
                        parts.append(_ITEM_PACK(tid, size))
                        parts.append(m)
                        count += 1
                        held += c
                        nbytes += size
                        continue
                elif count:
                    n += self._send_batch(parts, count, held, nbytes)
                    parts, count, held, nbytes = [], 0, 0, 0
                # larger than a batch takes, or no credit for it: alone, as send does
                self._send_data("send_many", m, tid, deadline, n)
                n += 1
                self._raise_if_gone("send_many", consumer=False)
        finally:
            # what was taken before an error goes out, as sent messages
            # would have (its credit is held already)
            if count and self._dead is None and not self._peer_closed:
                n += self._send_batch(parts, count, held, nbytes)
        return n

    def _send_batch(self, parts: List[Any], count: int, held: int, nbytes: int) -> int:
        """Send count messages as one BATCH frame (credit held for them
        already); kept, as a DATA is, until acknowledged."""
        seq = self._tx_seq + 1
        last = seq + count - 1
        frame = [_LEADING_PACK(_BATCH, count, self._session, seq, 0) + b"".join(parts)]
        self._send(frame)
        self._unacked.append((last, frame))
        self._tx_seq = last
        self._tx_cost += held
        self._sent_bytes += nbytes
        return count

    def send_zero_copy(self, size: int, type_id: int = 0, *,
                       timeout: Optional[float] = 0) -> NetTxGuard:
        """A writable buffer of size bytes, sent when the with block exits
        cleanly. Credit is taken at the exit, waiting up to timeout then."""
        size, type_id = _as_int(size, "size"), _as_int(type_id, "type_id")
        if not 0 <= size <= self.max_payload:
            raise ValueError(f"send_zero_copy: size must be 0..{self.max_payload}, got {size}")
        if not 0 <= type_id <= 0xFFFFFFFF:
            raise ValueError(f"send_zero_copy: type_id must be 0..2**32-1, got {type_id}")
        self._enter("send_zero_copy", "producer", _deadline(timeout))
        self._lock.release()
        return NetTxGuard(self, size, type_id, timeout)

    acquire_tx = send_zero_copy

    def send_array_zero_copy(self, shape: "SupportsIndex | Sequence[SupportsIndex]",
                             dtype: "DTypeLike", type_id: int = 0, *,
                             timeout: Optional[float] = 0) -> "ContextManager[NDArray[Any]]":
        """A writable numpy array of ``shape`` and ``dtype`` to fill in place,
        sent as a tensor frame when the with block exits cleanly (credit is
        taken then, waiting up to timeout); an exception sends nothing. The
        local bus's code: the frame's header is written into a NetTxGuard
        (send_zero_copy), the array is over the data after it, and after the
        block it is read-only."""
        from . import _array_in_place

        return _array_in_place(self, shape, dtype, type_id, timeout)

    def flush(self) -> None:
        """Everything sent is with libzmq already; nothing to do but check the bus."""
        self._enter("flush", None, None)
        self._lock.release()

    def _take(self, call: str, deadline: Optional[float]) -> Tuple[int, Any, int]:
        looked = False
        while True:
            if self._rx:
                item = self._rx.popleft()
                self._rx_queued -= item[2]
                self._recv_messages += 1
                self._recv_bytes += item[2] - _OVERHEAD
                return item
            if self._dead is not None or self._peer_closed:
                self._raise_if_gone(call, consumer=True)
            if looked and deadline is not None and time.monotonic() >= deadline:
                raise TachyonTimeoutError(f"{call}: no message within the timeout")
            # (a timeout of 0 too gets one look at the socket)
            self._wait(deadline, call)
            looked = True

    def _taken(self, c: int) -> None:
        """The program took messages worth c of credit: grant it when due."""
        self._rx_taken += c
        if self._rx_taken - self._rx_granted >= self._capacity // 4 \
                and self._lock.acquire(blocking=False):
            try:
                if not self._closed:
                    self._grant()
            finally:
                self._lock.release()

    def _grant(self) -> None:
        if self._send([W.header(W.K_CREDIT, self._session, seq=self._rx_seq,
                                value=self._rx_taken)]):
            self._rx_granted = self._rx_taken

    def recv(self, timeout: Optional[float] = None) -> Message:
        deadline = _deadline(timeout)
        self._enter("recv", "consumer", deadline)
        try:
            type_id, payload, c = self._take("recv", deadline)
            msg = Message(type_id, payload)
            self._rx_taken += c
            # Grant in quarters of the capacity: what is held back leaves the
            # producer room for a largest message (a half) whatever we do.
            if self._rx_taken - self._rx_granted >= self._capacity // 4:
                self._grant()
            return msg
        finally:
            self._lock.release()

    def try_recv(self) -> Optional[Message]:
        try:
            return self.recv(0)
        except TachyonTimeoutError:
            return None

    def __iter__(self) -> Iterator[Message]:
        while True:
            try:
                yield self.recv()
            except PeerClosedError:
                return

    # -- asyncio ------------------------------------------------------------

    async def _socket_stirs(self, deadline: Optional[float]) -> None:
        """Until the socket may have news (a frame, credit) or one slice
        passed, without a thread: the loop watches the socket's ZMQ_FD. That
        descriptor signals a change of the socket's events and stays readable
        until they are read again, which the pump did just before, so news
        that came after it is never missed; the slice bounds the wait anyway,
        so that the liveness verdict and a close from another thread are seen."""
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[None]" = loop.create_future()
        fd = cast(int, self._sock.getsockopt(zmq.FD))

        def stir() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_reader(fd, stir)
        try:
            await asyncio.wait_for(fut, _left(deadline))
        except asyncio.TimeoutError:
            pass
        finally:
            loop.remove_reader(fd)

    async def recv_async(self, timeout: Optional[float] = None) -> Message:
        """Receive one Message without blocking the event loop.

        TachyonTimeoutError after ``timeout`` seconds (None: no limit). The
        message is taken inside the loop by one non-blocking receive, so a
        cancelled ``recv_async`` loses nothing. Holds the loop for the frames
        that have arrived (at most 4096 per look), and the first call of an
        end without a role for its claim's answer: give ``role=`` to avoid it.
        """
        deadline = _deadline(timeout)
        while True:
            m = self.try_recv()
            if m is not None:
                return m
            if deadline is not None and time.monotonic() >= deadline:
                raise TachyonTimeoutError(f"recv_async: no message within {timeout} s")
            await self._socket_stirs(deadline)

    async def send_async(self, data: Any, type_id: int = 0,
                         timeout: Optional[float] = None) -> None:
        """Send one message, awaiting credit in the event loop while the
        consumer holds it all back. BusFullError after ``timeout`` seconds
        without credit (None: no limit). A cancelled ``send_async`` sent
        its message whole or not at all."""
        deadline = _deadline(timeout)
        while True:
            try:
                self.send(data, type_id, timeout=0)
                return
            except BusFullError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
            await self._socket_stirs(deadline)

    async def _aiterate(self) -> AsyncIterator[Message]:
        while True:
            try:
                m = await self.recv_async()
            except PeerClosedError:
                return
            yield m

    def __aiter__(self) -> AsyncIterator[Message]:
        """``async for msg in bus``: messages until the peer closed and
        everything was delivered."""
        return self._aiterate()

    def recv_zero_copy(self, timeout: Optional[float] = None) -> NetRxGuard:
        deadline = _deadline(timeout)
        self._enter("recv_zero_copy", "consumer", deadline)
        try:
            type_id, payload, c = self._take("recv_zero_copy", deadline)
        finally:
            self._lock.release()
        return NetRxGuard(self, type_id, payload, c)

    def acquire_rx(self, spin_threshold: int = 10000,
                   timeout: Optional[float] = None) -> NetRxGuard:
        return self.recv_zero_copy(timeout)

    def drain_batch(self, max_msgs: int = 1024, spin_threshold: int = 10000,
                    timeout: Optional[float] = None) -> NetRxBatch:
        max_msgs = _as_int(max_msgs, "max_msgs")
        if max_msgs < 1:
            raise ValueError(f"drain_batch: max_msgs must be >= 1, got {max_msgs}")
        deadline = _deadline(timeout)
        self._enter("drain_batch", "consumer", deadline)
        try:
            items = [self._take("drain_batch", deadline)]
            self._pump()
            while self._rx and len(items) < max_msgs:
                items.append(self._take("drain_batch", deadline))
        finally:
            self._lock.release()
        return NetRxBatch(self, items)

    def recv_array(self, timeout: Optional[float] = None) -> "NDArray[Any]":
        with self.recv_zero_copy(timeout) as rx:
            copy: "NDArray[Any]" = rx.array().copy()
            return copy

    # -- tachyon.wait ---------------------------------------------------------------

    def _wait_look(self) -> Tuple[bool, Optional[int]]:
        """tachyon.wait's look at this end: (ready, fd).

        ready: a receive would return or raise at once (a message taken in
        from the socket or already here, the bus closed, the peer closed or
        dead, the role lost). Otherwise fd is the socket's ZMQ_FD, which turns
        readable once frames or connection events may have come; this look
        read the socket's events last, so nothing that comes after it is
        missed. fd is None while another thread's call holds the bus (that
        call takes in what comes): look again after a slice. An end without
        a role becomes the consumer at once, without waiting for the
        listener's verdict (a refusal is then this end's RoleError, and ready).
        """
        if self._closed:
            return True, None
        if not self._lock.acquire(blocking=False):
            return bool(self._rx) or self._closing, None
        try:
            if self._closing:
                self._teardown(0)  # as a call in progress would (close() left it to us)
                return True, None
            if self._role != "consumer":
                self._claim("wait", "consumer", time.monotonic())
            self._pump()
            while not self._rx and _ready(self._sock):
                self._pump()  # more than one pump takes came in meanwhile
            lost = (self._lost_role is not None
                    or (self._verdict is not None and not self._listener
                        and self._role is not None
                        and self._verdict != W.ROLE_CODES[self._role]))
            if self._rx or self._dead is not None or self._peer_closed or lost:
                return True, None
            return False, cast(int, self._sock.getsockopt(zmq.FD))
        finally:
            self._lock.release()

    # -- closing ------------------------------------------------------------------

    def close(self) -> None:
        """Close this end: the peer gets PeerClosedError after everything sent
        before was delivered. A producer waits, at most the liveness, for the
        consumer's acknowledgement. From another thread while a call is in
        progress, the call closes the bus within 200 ms."""
        if self._closed:
            return
        if self._lock.acquire(blocking=False):
            try:
                self._teardown(self._liveness)
            finally:
                self._lock.release()
        else:
            self._closing = True

    destroy = close

    def _teardown(self, wait: float) -> None:
        if self._closed:
            return
        self._closed = True
        until = time.monotonic() + wait
        try:
            if self._peer_session and self._dead is None and not self._peer_closed and wait > 0:
                self._send([W.header(W.K_CLOSE, self._session, seq=self._tx_seq)])
                self._close_sent = True  # sent again with the data after a resume
                while (self._tx_seq and not self._close_acked and not self._peer_closed
                       and self._dead is None and time.monotonic() < until):
                    self._poll(min(SLICE, until - time.monotonic()))
                    self._pump()
        except zmq.ZMQError:
            pass
        finally:
            # What the peer acknowledged, or a peer that is gone, needs no
            # lingering; otherwise libzmq gets what is left of the wait.
            settled = self._close_acked or self._peer_closed or self._dead is not None
            linger = 0 if settled else int(max(0.0, until - time.monotonic()) * 1000)
            self._poller = zmq.Poller()
            if not self._own_context and self._bound is not None:
                self._unbind()
            self._sock.disable_monitor()
            self._monitor.close(0)
            self._sock.close(linger)
            if self._auth is not None:
                self._auth.stop()
            if self._own_context:
                self._ctx.term()

    def _unbind(self) -> None:
        """Free a listener's port before close returns, as a context of the
        bus's own did when close terminated it: libzmq closes the listening
        descriptor in its I/O thread, later, and a program that listens
        again on the same address right after close must find it free."""
        bound = self._bound
        if bound is None:
            return
        try:
            self._sock.unbind(bound)
        except zmq.ZMQError:
            return
        until = time.monotonic() + _UNBIND_WAIT
        while time.monotonic() < until:
            if not self._monitor.poll(int(max(0.0, until - time.monotonic()) * 1000) + 1):
                return
            try:
                ev = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                continue
            if ev["event"] == zmq.EVENT_CLOSED and ev["endpoint"].decode() == bound:
                return

    def __enter__(self) -> "NetBus":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            try:
                self._teardown(0)
            except Exception:
                pass

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("cannot pickle a NetBus: open a new bus in the other process")

    # -- properties -------------------------------------------------------------

    @property
    def role(self) -> Optional[str]:
        return self._role

    @property
    def closed(self) -> bool:
        return self._closed or self._closing

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def max_payload(self) -> int:
        return max(0, self._capacity // 2 - _OVERHEAD)

    @property
    def path(self) -> str:
        return self._url

    @property
    def peer_pid(self) -> None:
        return None

    @property
    def liveness(self) -> float:
        return self._liveness

    @property
    def stats(self) -> BusStats:
        in_flight = (self._tx_cost - self._peer_taken if self._role == "producer"
                     else self._rx_queued)
        state = 3 if self._closed else 4 if self._dead else 2
        s = BusStats(self._capacity, in_flight, 0, state, 0, 0, None)
        s.__dict__.update(sent_messages=self._tx_seq, sent_bytes=self._sent_bytes,
                          received_messages=self._recv_messages,
                          received_bytes=self._recv_bytes)
        return s

    def set_polling_mode(self, pure_spin: int) -> None:
        """Accepted for compatibility; a network end always waits in poll()."""

    def set_numa_node(self, node_id: int) -> None:
        """Accepted for compatibility; does nothing for a network end."""

    def __repr__(self) -> str:
        return (f"<NetBus {self._url!r} {'listener' if self._listener else 'connector'} "
                f"capacity={self._capacity} role={self._role}{' closed' if self._closed else ''}>")


def _ready(sock: "zmq.Socket[bytes]") -> bool:
    """A message waits on sock (a flag read, cheaper than a failed receive)."""
    return bool(cast(int, _zget(sock, _EVENTS)) & _POLLIN)


def _srcfd(frame: Any) -> int:
    try:
        return int(frame.get(zmq.SRCFD))
    except (zmq.ZMQError, AttributeError, TypeError):
        return -1


# -- tachyon.wait over tcp:// buses --------------------------------------------------

# Slices of a wait that has local rings too: it sleeps on the rings' futex
# words and looks at the tcp sockets between slices, from 50 us doubling up to
# 5 ms while nothing comes (as the local wait's own fallback rotates between
# words it cannot sleep on at once, csrc/core/waitany.c). Every slice is a
# wake-up that costs CPU (20 to 60 us on the 2-vCPU test machine); 5 ms keeps
# an idle wait at 1 to 2% of a CPU (docs/ACROSS_HOSTS.md).
_MIXED_SLICE_MIN = 50e-6
_MIXED_SLICE_MAX = 5e-3


def wait_any(buses: Sequence[Any], timeout: Any) -> List[int]:
    """tachyon.wait when some of ``buses`` are NetBus ends and the rest local
    rings (TachyonBus): the indices of those whose receive would return or
    raise at once, in order; [] once ``timeout`` passed.

    Takes no message: a tcp bus's frames are taken into the bus (where its
    next receive finds them), none is handed out. With tcp buses alone it
    sleeps in poll(2) on their sockets' ZMQ_FDs, at most SLICE at a time.
    With local rings too it cannot sleep on both at once (the rings are
    futex words, the sockets descriptors): it sleeps on the rings, spinning
    only before the first slice, and looks at the sockets' descriptors
    between slices (_MIXED_SLICE_*), so a message on a local bus wakes it
    at once and one on a tcp bus within a slice. Every tcp bus is looked at
    in full at least every SLICE (its liveness verdict); a close from
    another thread is seen within a slice. Ctrl-C: both sleeps run signal
    handlers at once.
    """
    net: List[Tuple[int, NetBus]] = []
    local_at: List[int] = []
    rings: List[Any] = []
    for i, b in enumerate(buses):
        if isinstance(b, NetBus):
            net.append((i, b))
        elif isinstance(b, TachyonBus):
            local_at.append(i)
            rings.append(b)
        else:
            raise TypeError(f"wait: buses[{i}] is a {type(b).__name__}, not a Bus")
    deadline = _deadline(timeout)
    local_ready = [local_at[k] for k in _wait_any(rings, 0)] if rings else []
    poller = select.poll()
    fds: Dict[int, int] = {}   # a tcp bus's index -> its socket's ZMQ_FD, registered
    due = [True] * len(net)    # look at this tcp bus in full this round
    next_full = 0.0            # when every tcp bus is next looked at in full
    nap = _MIXED_SLICE_MIN
    spin = 0                   # the local wait's default spin, before the first slice only
    while True:
        now = time.monotonic()
        if now >= next_full:
            due = [True] * len(net)
            next_full = now + SLICE
        ready = []
        for k, (i, b) in enumerate(net):
            if due[k]:
                ok, fd = b._wait_look()
                if fd is not None and fds.get(i) != fd:
                    fds[i] = fd
                    poller.register(fd, select.POLLIN)
            else:
                ok = b._closed or b._closing or bool(b._rx)
            if ok:
                ready.append(i)
        if ready or local_ready:
            return sorted(ready + local_ready)
        left = _left(deadline)
        if left <= 0 and deadline is not None:
            return []
        if rings:
            local_ready = [local_at[k] for k in _wait_any(rings, min(nap, left), spin=spin)]
            nap = min(2 * nap, _MIXED_SLICE_MAX)
            spin = 1
            stirred = poller.poll(0) if fds else []
        else:
            stirred = poller.poll(left * 1000)  # (ms, rounded up by poll)
        fired = {fd for fd, _ in stirred}
        due = [fds.get(i) in fired for i, _ in net]
