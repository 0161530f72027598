"""tachyon: a lock-free single-producer single-consumer shared-memory bus.

    with tachyon.Bus.listen("/tmp/demo.sock", 1 << 16) as bus:   # one process
        for msg in bus:
            print(msg.type_id, msg.data)

    with tachyon.Bus.connect("/tmp/demo.sock") as bus:           # the other
        bus.send(b"hello", type_id=1)

Every per-message call (send, send_many, recv, try_recv, iteration, the
zero-copy guards) is implemented in C in tachyon._core, and so is BusStats,
the named tuple Bus.stats returns; this package re-exports them and adds
what is not per-message, and the two array helpers whose cost is the array's
(recv_array, send_array_zero_copy: a few microseconds beside a copy of the
array itself).
"""
import contextlib as _contextlib
import sys as _sys
import typing as _typing
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any
from typing import AbstractSet as _AbstractSet
from typing import AsyncIterator as _AsyncIterator
from typing import ContextManager as _ContextManager
from typing import Dict as _Dict
from typing import Iterable as _Iterable
from typing import Iterator as _Iterator
from typing import List as _List
from typing import Literal as _Literal
from typing import Optional as _Optional
from typing import Tuple as _Tuple
from typing import Sequence as _Sequence
from typing import TypeVar as _TypeVar
from typing import SupportsIndex as _SupportsIndex
from typing import Union as _Union

if _TYPE_CHECKING:
    from typing_extensions import Self as _Self

    from numpy.typing import DTypeLike as _DTypeLike

    from ._core import _Path, _Role
    from .net import NetBus as _NetBus
    from numpy.typing import NDArray as _NDArray

# A timeout: seconds as a float or an integer (anything with __index__).
_Seconds = _Union[float, _SupportsIndex]
# A CURVE key: Z85 text of 40 characters (tachyon.curve_keypair()).
_CurveKey = _Union[str, bytes]
# Whom a CURVE listener admits: a collection of client public keys, or "any"
# (a collection, not any iterable, so that a mistyped string is an error).
_AllowedClients = _Union[_Literal["any"], _List[_CurveKey], _Tuple[_CurveKey, ...],
                         _AbstractSet[_CurveKey]]

from ._core import (
    CORE_VERSION,
    AbiMismatchError,
    BusClosedError,
    BusFullError,
    BusState,
    BusStats,
    ConnectTimeoutError,
    ConsumerState,
    HandshakeError,
    Message,
    PeerClosedError,
    PeerDeadError,
    RingCorruptError,
    RoleError,
    RpcRxGuard,
    RpcTxGuard,
    RxBatchGuard,
    RxGuard,
    RxMsgView,
    TachyonBus,
    TachyonError,
    TachyonTimeoutError,
    TxGuard,
    _as_int,
    _frame_zero_copy,
    _wait_any,
    make_type_id,
    msg_type,
    route_id,
)
from ._core import RpcBus as _CoreRpcBus
from .rpc import (
    MSG_TYPE_ERROR,
    RpcBus,
    RpcDispatcher,
    RpcEndpoint,
    tachyon_rpc,
)

# One version source: TACHYON_VERSION_STRING in csrc/include/tachyon/tachyon.h.
__version__: str = CORE_VERSION

__all__ = [
    "AbiMismatchError",
    "Bus",
    "BusClosedError",
    "BusFullError",
    "BusState",
    "BusStats",
    "ConnectTimeoutError",
    "ConsumerState",
    "HandshakeError",
    "MSG_TYPE_ERROR",
    "Message",
    "PeerClosedError",
    "PeerDeadError",
    "RingCorruptError",
    "RoleError",
    "RpcBus",
    "RpcDispatcher",
    "RpcEndpoint",
    "RpcRxGuard",
    "RpcTxGuard",
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
    "tachyon_rpc",
    "wait",
    "curve_keypair",
]


# A tcp:// bus sets this on the PeerDeadError it raises (the last message
# known to have reached the consumer); a local bus's leaves it None.
PeerDeadError.last_acked_seq = None


class _BusMeta(type):
    """Lets a bus across hosts (tachyon.net.NetBus) count as a Bus for
    isinstance, as Bus.listen and Bus.connect are typed to return one."""

    def __instancecheck__(cls, obj: object) -> bool:
        if type.__instancecheck__(cls, obj):
            return True
        return cls is Bus and type(obj).__module__ == "tachyon.net" and type(obj).__name__ == "NetBus"


def _tcp(address: object) -> bool:
    """A tcp:// address (a local socket path spelled so is written ./tcp://...)."""
    if isinstance(address, str):
        return address.startswith("tcp://")
    if isinstance(address, bytes):
        return address.startswith(b"tcp://")
    return False


def _net() -> _Any:
    try:
        from . import net
    except ImportError as e:
        if (e.name or "").split(".")[0] == "zmq":
            raise ImportError('tcp:// addresses need pyzmq: pip install "tachyon-ipc[net]"') from e
        raise
    return net


class Bus(TachyonBus, metaclass=_BusMeta):
    """The high-level bus: one end of a shared-memory ring.

    Create it with ``Bus.listen(path, capacity)`` (creates the ring and waits
    for one peer) or ``Bus.connect(path)``. The first data call fixes the
    end's role: ``send*`` make it the producer; ``recv``, ``try_recv``,
    iteration, ``recv_zero_copy`` and ``drain_batch`` the consumer. Two-way
    traffic uses two buses: a second end claiming a role the other end holds
    raises ``RoleError`` and stays usable in the other role.
    """

    __slots__ = ()

    if _typing.TYPE_CHECKING:  # (the spelling mypy reads as the type checker's branch)
        @classmethod
        def listen(cls, socket_path: "_Path", capacity: "_SupportsIndex", *, timeout: "_Optional[_Seconds]" = None,
                   role: "_Role" = None, allow_uids: "_Optional[_Iterable[int]]" = None,
                   liveness: _Optional[float] = None, insecure: bool = False,
                   curve_secret: "_Optional[_CurveKey]" = None,
                   allowed_clients: "_Optional[_AllowedClients]" = None,
                   ) -> "_Self": ...

        @classmethod
        def connect(cls, socket_path: "_Path", *, timeout: "_Optional[_Seconds]" = 5.0,
                    role: "_Role" = None, liveness: _Optional[float] = None,
                    curve_server_key: "_Optional[_CurveKey]" = None,
                    curve_keypair: "_Optional[_Tuple[_CurveKey, _CurveKey]]" = None) -> "_Self": ...
    else:
        # Unannotated at run time, so that inspect.signature reads as the C
        # methods' do; the declarations above give the types.
        @classmethod
        def listen(cls, socket_path, capacity, *, timeout=None, role=None, allow_uids=None,
                   liveness=None, insecure=False, curve_secret=None, allowed_clients=None):
            """Create the ring at socket_path and wait for one peer; a
            tcp://ADDR:PORT address binds there instead and returns a bus across
            hosts (tachyon.net, needs pyzmq; ``liveness`` in seconds, default 5,
            ``insecure``, needed to listen beyond loopback without CURVE, and
            ``curve_secret`` with ``allowed_clients``, a list of client public
            keys or "any", apply to it only)."""
            if _tcp(socket_path):
                address = socket_path.decode() if isinstance(socket_path, bytes) else socket_path
                return _net().listen(address, capacity, timeout=timeout, role=role,
                                     allow_uids=allow_uids,
                                     liveness=5.0 if liveness is None else liveness,
                                     insecure=insecure, curve_secret=curve_secret,
                                     allowed_clients=allowed_clients)
            if (liveness is not None or insecure or curve_secret is not None
                    or allowed_clients is not None):
                raise TypeError("listen: liveness, insecure, curve_secret and allowed_clients "
                                "apply to tcp:// addresses only")
            return super().listen(socket_path, capacity, timeout=timeout, role=role,
                                  allow_uids=allow_uids)

        @classmethod
        def connect(cls, socket_path, *, timeout=5.0, role=None, liveness=None,
                    curve_server_key=None, curve_keypair=None):
            """Connect to the ring at socket_path; a tcp://HOST:PORT address
            connects to a listener across hosts instead (tachyon.net, needs
            pyzmq), with CURVE when ``curve_server_key`` (the listener's public
            key) is given; ``curve_keypair`` is this end's (public, secret)."""
            if _tcp(socket_path):
                address = socket_path.decode() if isinstance(socket_path, bytes) else socket_path
                return _net().connect(address, timeout=timeout, role=role,
                                      liveness=5.0 if liveness is None else liveness,
                                      curve_server_key=curve_server_key,
                                      curve_keypair=curve_keypair)
            if liveness is not None or curve_server_key is not None or curve_keypair is not None:
                raise TypeError("connect: liveness, curve_server_key and curve_keypair apply to "
                                "tcp:// addresses only")
            return super().connect(socket_path, timeout=timeout, role=role)

    async def recv_async(self, timeout: "_Optional[_Seconds]" = None) -> Message:
        """Receive one Message without blocking the event loop (tachyon.aio).

        TachyonTimeoutError after ``timeout`` seconds (None: no limit).
        Cancelling it loses nothing: the message stays for the next receive.
        """
        from . import aio

        return await aio.recv_async(self, timeout)

    async def send_async(self, data: _Any, type_id: _SupportsIndex = 0,
                         timeout: "_Optional[_Seconds]" = None) -> None:
        """Send one message, awaiting room while the ring is full (tachyon.aio).

        BusFullError after ``timeout`` seconds without room (None: no limit).
        """
        from . import aio

        await aio.send_async(self, data, type_id, timeout)

    def __aiter__(self) -> "_AsyncIterator[Message]":
        """``async for msg in bus``: messages until the peer closed and
        everything was delivered."""
        from . import aio

        return aio.iterate(self)

    def recv_array(self, timeout: "_Optional[_Seconds]" = None) -> "_NDArray[_Any]":
        """Receive one tensor frame as a writable numpy array of its own memory.

        The copy is made straight from the slot, which goes back to the
        producer at once. The message is consumed whatever it holds: a
        message that is not a frame raises TypeError, a frame whose header
        fails a check ValueError (both after the message was taken).
        """
        with self.recv_zero_copy(timeout) as rx:
            view = rx.array()
            try:
                # annotated: NumPy's stub types copy() as Any for Python 3.10
                copy: "_NDArray[_Any]" = view.copy()
                return copy
            finally:
                del view

    def send_array_zero_copy(
        self,
        shape: "_Union[_SupportsIndex, _Sequence[_SupportsIndex]]",
        dtype: "_DTypeLike",
        type_id: _SupportsIndex = 0,
        *,
        timeout: "_Optional[_Seconds]" = 0,
    ) -> "_ContextManager[_NDArray[_Any]]":
        """Reserve a tensor frame of ``shape`` and ``dtype`` and yield a writable
        numpy array over its data in the slot, to be filled in place.

        A clean exit commits and publishes the frame; an exception rolls it
        back. After the block the array is made read-only, since the slot
        then belongs to the consumer; do not keep writable views taken
        from it inside the block.
        """
        return _array_in_place(self, shape, dtype, type_id, timeout)


@_contextlib.contextmanager
def _array_in_place(
    bus: _Any,
    shape: "_Union[_SupportsIndex, _Sequence[_SupportsIndex]]",
    dtype: "_DTypeLike",
    type_id: _SupportsIndex,
    timeout: "_Optional[_Seconds]",
) -> "_Iterator[_NDArray[_Any]]":
    """send_array_zero_copy of a local bus and of a tcp:// one (tachyon.net):
    the frame's header is written into what ``bus.send_zero_copy`` gives (a
    slot's TxGuard, or a NetTxGuard's buffer, sent at its exit), and the
    array is numpy's over the data after it."""
    import numpy

    dt = numpy.dtype(dtype)
    code = _DLPACK_CODES.get(dt.kind)
    if code is None or dt.byteorder not in "=|" or dt.fields is not None:
        raise TypeError(f"send_array_zero_copy: dtype {dt} has no DLPack form a tensor frame "
                        "can carry (bool, int/uint 8-64, float 16-64, complex 64/128, native "
                        "byte order)")
    # integers as everywhere: anything with __index__, never a float
    dims = ((_as_int(shape, "shape"),) if isinstance(shape, _SupportsIndex)
            else tuple(_as_int(n, "shape") for n in shape))
    nbytes = dt.itemsize
    for n in dims:
        nbytes *= max(n, 0)
    with bus.send_zero_copy(_FRAME_HEADER + nbytes, type_id, timeout=timeout) as tx:
        tid = _as_int(type_id, "type_id")  # send_zero_copy checked it is one
        if not 0 <= tid <= 0xFFFF:
            raise ValueError("send_array_zero_copy: type_id is the frame's 16-bit message "
                             f"type (0..65535), got {tid}")
        tx.type_id = 0xFFFF0000 | tid
        arr = numpy.asarray(_SlotArray(_frame_zero_copy(tx, dims, code, dt.itemsize * 8,
                                                        dt.str), tx))
        try:
            yield arr
        finally:
            arr.flags.writeable = False


def curve_keypair() -> "_Tuple[str, str]":
    """A new CURVE keypair (public, secret) for a tcp:// bus, Z85 text of 40
    characters each (needs pyzmq). The listener keeps its secret and hands
    out its public key; each connector does the same with its own."""
    _net()
    from . import _netsec

    return _netsec.curve_keypair()


_Waitable = _TypeVar("_Waitable", bound=_Union[TachyonBus, _CoreRpcBus, "_NetBus"])


def wait(buses: "_Iterable[_Waitable]", timeout: "_Optional[_Seconds]" = None) -> "_List[_Waitable]":
    """The buses among ``buses`` that have a message now: those whose receive
    would return (or raise: closed, peer closed or dead) at once.

    Waits up to ``timeout`` seconds (None: no limit) for at least one and
    returns [] when the time passed. Takes no message, so any thread may
    receive on the buses meanwhile. Each bus is a consumer end (an end with
    no role becomes one). Spins briefly, then sleeps on every ring at once;
    a close of any of the buses from another thread ends the wait with that
    bus in the list, Ctrl-C raises KeyboardInterrupt within the watchdog
    period. An RpcBus counts as the ring it receives on: requests at the
    callee end, replies at the caller end.

    A tcp:// bus (tachyon.net.NetBus) may be among them: it is ready when a
    message has arrived (taken in from its socket, where its next receive
    finds it), and its close or its peer's close or death count as locally.
    Alone, tcp buses are waited on in poll(2) on their sockets; with local
    buses beside them the wait sleeps on the rings and looks at the sockets
    between slices of up to 5 ms, so a tcp message may be seen up to 5 ms late.
    """
    items = list(buses)
    rings: "_List[_Any]" = [(b.requests if b.is_callee else b.replies)
                             if isinstance(b, _CoreRpcBus) else b for b in items]
    net = _sys.modules.get("tachyon.net")  # (no tcp bus exists before it is imported)
    if net is not None and any(isinstance(b, net.NetBus) for b in rings):
        return [items[i] for i in net.wait_any(rings, timeout)]
    return [items[i] for i in _wait_any(rings, timeout)]


_DLPACK_CODES = {"b": 6, "i": 0, "u": 1, "f": 2, "c": 5}
_FRAME_HEADER = 192


class _SlotArray:
    """What numpy wraps for send_array_zero_copy: the frame's data in a slot.

    The array keeps this object, and through it the guard and the bus, alive,
    so the mapping outlives the array. (A tcp:// bus's NetTxGuard is a
    bytearray: the interface then names a memoryview of it as the data, which
    numpy keeps instead, so the bytearray outlives the array and cannot be
    resized under it.)
    """

    __slots__ = ("__array_interface__", "_guard")

    def __init__(self, interface: _Dict[str, _Any], guard: object) -> None:
        self.__array_interface__ = interface
        self._guard = guard

