"""tachyon: a lock-free single-producer single-consumer shared-memory bus.

    with tachyon.Bus.listen("/tmp/demo.sock", 1 << 16) as bus:   # one process
        for msg in bus:
            print(msg.type_id, msg.data)

    with tachyon.Bus.connect("/tmp/demo.sock") as bus:           # the other
        bus.send(b"hello", type_id=1)

Every per-message call (send, send_many, recv, try_recv, iteration, the
zero-copy guards) is implemented in C in tachyon._core; this package
re-exports it and adds what is not per-message.
"""
from typing import NamedTuple, Optional

from . import _core
from ._core import (
    AbiMismatchError,
    BusClosedError,
    BusFullError,
    ConnectTimeoutError,
    HandshakeError,
    Message,
    PeerClosedError,
    PeerDeadError,
    RingCorruptError,
    RxBatchGuard,
    RxGuard,
    RxMsgView,
    TachyonBus,
    TachyonError,
    TachyonTimeoutError,
    TxGuard,
    make_type_id,
    msg_type,
    route_id,
)

__version__ = "0.1.0"

__all__ = [
    "AbiMismatchError",
    "Bus",
    "BusClosedError",
    "BusFullError",
    "BusStats",
    "ConnectTimeoutError",
    "HandshakeError",
    "Message",
    "PeerClosedError",
    "PeerDeadError",
    "RingCorruptError",
    "RxBatchGuard",
    "RxGuard",
    "RxMsgView",
    "TachyonBus",
    "TachyonError",
    "TachyonTimeoutError",
    "TxGuard",
    "__version__",
    "make_type_id",
    "msg_type",
    "route_id",
]


class BusStats(NamedTuple):
    """A snapshot of one bus end (Bus.stats)."""

    ring_capacity: int
    """Data ring size in bytes."""
    ring_occupancy: int
    """Bytes published and not yet released (shared head - shared tail)."""
    consumer_state: int
    """The consumer wait word: 0 awake, 1 sleeping, 2 pure spin."""
    state: int
    """The ring state word: 2 ready, 3 closed, 4 fatal."""
    pinned_bytes: int
    """Consumer end: bytes read but held back by live zero-copy exports."""
    lost_wakeups: int
    """Consumer end: futex waits that timed out although data had arrived."""
    peer_pid: Optional[int]
    """The peer's pid, None when unknown."""


_core._register_stats_type(BusStats)


class Bus(TachyonBus):
    """The high-level bus: one end of a shared-memory ring.

    Create it with ``Bus.listen(path, capacity)`` (creates the ring and waits
    for one peer) or ``Bus.connect(path)``. The first data call fixes the
    end's role: ``send*`` make it the producer; ``recv``, ``try_recv``,
    iteration, ``recv_zero_copy`` and ``drain_batch`` the consumer. Two-way
    traffic uses two buses.
    """

    __slots__ = ()

