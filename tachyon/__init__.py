"""tachyon: a lock-free single-producer single-consumer shared-memory bus.

    with tachyon.Bus.listen("/tmp/demo.sock", 1 << 16) as bus:   # one process
        for msg in bus:
            print(msg.type_id, msg.data)

    with tachyon.Bus.connect("/tmp/demo.sock") as bus:           # the other
        bus.send(b"hello", type_id=1)

Every per-message call (send, send_many, recv, try_recv, iteration, the
zero-copy guards) is implemented in C in tachyon._core, and so is BusStats,
the named tuple Bus.stats returns; this package re-exports them and adds
what is not per-message.
"""
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
    RingCorruptError,
    RoleError,
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
    "RoleError",
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


class Bus(TachyonBus):
    """The high-level bus: one end of a shared-memory ring.

    Create it with ``Bus.listen(path, capacity)`` (creates the ring and waits
    for one peer) or ``Bus.connect(path)``. The first data call fixes the
    end's role: ``send*`` make it the producer; ``recv``, ``try_recv``,
    iteration, ``recv_zero_copy`` and ``drain_batch`` the consumer. Two-way
    traffic uses two buses: a second end claiming a role the other end holds
    raises ``RoleError`` and stays usable in the other role.
    """

    __slots__ = ()

