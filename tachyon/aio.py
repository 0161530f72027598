"""asyncio for tachyon buses: ``await bus.recv_async()``, ``async for msg in bus``,
``await bus.send_async(data)``.

How a receive waits, in this order:

1. ``try_recv`` once, then again in a short spin inside the event loop (at most
   ``SPIN_NS``, 30 us by default): a peer that answers at once (request/reply)
   is met here, without a thread hop. The loop is held for no longer than that.
2. Otherwise the bus's waiter thread (one per bus, started on first use,
   ending after ``LINGER_S`` without work) sits in ``_wait_any``, the core's
   readiness wait, with the GIL released, and wakes the loop with
   ``call_soon_threadsafe`` once a receive would return at once.
3. The coroutine then takes the message itself with ``try_recv``, in the loop.

The waiter never takes a message, so a cancelled ``recv_async`` loses
nothing: either it had returned the message, or the message is still in the
ring for the next receive.

``send_async`` tries a non-blocking send; when the ring is full it retries
in the loop for at most ``SPIN_NS``, then hands the wait for room to the
bus's waiter thread the same way (``_wait_room``: the core's wait for room,
which reserves nothing and sleeps on the producer wait word that our
consumer wakes as it frees room), and sends from the loop once woken. A
cancelled ``send_async`` has either sent its message whole or not at all:
only the coroutine ever sends.
"""
import asyncio
import threading
import time
from typing import (TYPE_CHECKING, Any, AsyncIterator, Callable, Dict, List, Optional, SupportsIndex, Tuple,
                    TypeVar, Union)

from ._core import (BusFullError, Message, PeerClosedError, TachyonTimeoutError, _as_int, _wait_any,
                    _wait_room)

if TYPE_CHECKING:
    from . import Bus

__all__ = ["recv_async", "send_async", "iterate", "request_async", "request_array_async", "SPIN_NS",
           "LINGER_S"]

#: How long a receive keeps trying inside the event loop before it hands the
#: wait to the bus's waiter thread.
SPIN_NS = 30_000
#: How long an idle waiter thread stays before it ends.
LINGER_S = 2.0
#: A waiter thread looks at its requests at least this often (cancelled
#: ones are dropped, deadlines checked).
_SLICE_S = 0.2

# (loop, future, deadline, room): room is None for a receive's wait, else the
# payload size a send waits to find room for.
_Request = Tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]", Optional[float], Optional[int]]


def _resolve(fut: "asyncio.Future[None]", err: Optional[BaseException]) -> None:
    if fut.done():
        return
    if err is None:
        fut.set_result(None)
    else:
        fut.set_exception(err)


class _Waiter:
    """The thread that waits for a bus's readiness on behalf of its awaiters:
    a message on a consumer end, room on a producer end (an end has one role,
    so one waiter never sees both kinds)."""

    def __init__(self, key: int) -> None:
        self._key = key
        self._cond = threading.Condition(threading.Lock())
        self._pending: List[_Request] = []
        self._bus: "Optional[Bus]" = None
        self._alive = True
        threading.Thread(target=self._run, name="tachyon-aio-waiter", daemon=True).start()

    def submit(self, bus: "Bus", req: _Request) -> bool:
        """Queue req; False when this waiter has ended (use a new one)."""
        with self._cond:
            if not self._alive:
                return False
            self._bus = bus
            self._pending.append(req)
            self._cond.notify()
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    # holds no bus while idle: the bus may be collected
                    self._bus = None
                    if not self._cond.wait(LINGER_S) and not self._pending:
                        self._alive = False
                        with _registry_lock:
                            if _registry.get(self._key) is self:
                                del _registry[self._key]
                        return
                bus = self._bus
                assert bus is not None  # submit() sets it with every request
                now = time.monotonic()
                slice_s = _SLICE_S
                room: Optional[int] = None
                for _, _, deadline, size in self._pending:
                    if deadline is not None:
                        slice_s = min(slice_s, max(deadline - now, 0.0))
                    if size is not None:
                        # the smallest wakes first; each send retries its own
                        room = size if room is None else min(room, size)
            err: Optional[BaseException] = None
            ready = False
            try:
                if room is None:
                    ready = bool(_wait_any([bus], slice_s))
                else:
                    ready = _wait_room(bus, room, slice_s)
            except BaseException as e:  # handed to the awaiter, which raises it
                err = e
            del bus
            now = time.monotonic()
            with self._cond:
                wake, keep = [], []
                for req in self._pending:
                    loop, fut, deadline, _ = req
                    if fut.done():
                        continue  # cancelled: nothing was taken for it
                    if ready or err is not None or (deadline is not None and now >= deadline):
                        wake.append(req)
                    else:
                        keep.append(req)
                self._pending = keep
            for loop, fut, _, _ in wake:
                try:
                    loop.call_soon_threadsafe(_resolve, fut, err)
                except RuntimeError:
                    pass  # the loop was closed meanwhile


_registry: Dict[int, _Waiter] = {}
_registry_lock = threading.Lock()


def _submit(bus: "Bus", req: _Request) -> None:
    # Keyed by id: a key reused by a later bus only reuses the thread, since
    # every request carries its own bus and a waiter with requests pending
    # holds their bus.
    key = id(bus)
    while True:
        with _registry_lock:
            w = _registry.get(key)
            if w is None:
                w = _registry[key] = _Waiter(key)
        if w.submit(bus, req):
            return


async def _ready(bus: "Bus", deadline: Optional[float], room: Optional[int] = None) -> None:
    """Until the waiter thread saw a message (room None) or room for a
    payload of `room` bytes, or the deadline passed."""
    loop = asyncio.get_running_loop()
    fut: "asyncio.Future[None]" = loop.create_future()
    _submit(bus, (loop, fut, deadline, room))
    await fut


def _spin_try(bus: "Bus") -> Optional[Message]:
    end = time.perf_counter_ns() + SPIN_NS
    while True:
        m = bus.try_recv()
        if m is not None or time.perf_counter_ns() >= end:
            return m


def _seconds(timeout: "Optional[Union[float, SupportsIndex]]", who: str) -> Optional[float]:
    """A timeout by the rules of the C calls: None, a float, or an integer
    (any object with __index__, numpy's too), never a bool."""
    if timeout is None or isinstance(timeout, float):
        return timeout
    try:
        return _as_int(timeout, "timeout")
    except TypeError:
        raise TypeError(f"{who}: timeout must be a number of seconds or None, "
                        f"not {type(timeout).__name__}") from None


async def recv_async(bus: "Bus", timeout: "Optional[Union[float, SupportsIndex]]" = None) -> Message:
    """Receive one Message without blocking the event loop.

    TachyonTimeoutError after ``timeout`` seconds (None: no limit); the
    errors of ``recv`` otherwise. Cancelling it never loses a message.
    """
    m = bus.try_recv()
    if m is not None:
        return m
    timeout = _seconds(timeout, "recv_async")
    if timeout is not None and timeout < 0:
        raise ValueError("recv_async: timeout must be >= 0 or None")
    deadline = None if timeout is None else time.monotonic() + timeout
    if timeout != 0:
        m = _spin_try(bus)
        if m is not None:
            return m
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            raise TachyonTimeoutError(f"recv_async: no message within {timeout} s")
        await _ready(bus, deadline)
        m = bus.try_recv()
        if m is not None:
            return m


async def iterate(bus: "Bus") -> AsyncIterator[Message]:
    """Messages until the peer closed and everything was delivered."""
    while True:
        try:
            m = await recv_async(bus)
        except PeerClosedError:
            return
        yield m


async def send_async(bus: "Bus", data: Any, type_id: SupportsIndex = 0,
                     timeout: "Optional[Union[float, SupportsIndex]]" = None) -> None:
    """Send one message, waiting in the event loop while the ring is full.

    BusFullError after ``timeout`` seconds without room (None: no limit); the
    errors of ``send`` otherwise.
    """
    timeout = _seconds(timeout, "send_async")
    try:
        bus.send(data, type_id, timeout=0)
        return
    except BusFullError:
        if timeout == 0:
            raise
    if timeout is not None and timeout < 0:
        raise ValueError("send_async: timeout must be >= 0 or None")
    deadline = None if timeout is None else time.monotonic() + timeout
    await _when_room(bus, memoryview(data).nbytes, deadline, lambda: bus.send(data, type_id, timeout=0))


_T = TypeVar("_T")


async def _when_room(bus: "Bus", size: int, deadline: Optional[float], attempt: Callable[[], _T]) -> _T:
    """attempt() (a send with timeout=0) once there is room for size bytes on
    producer end bus: retried in the loop for SPIN_NS, then after each wake
    of the waiter thread. BusFullError once the deadline passed."""
    end = time.perf_counter_ns() + SPIN_NS
    while True:
        try:
            return attempt()
        except BusFullError:
            if deadline is not None and time.monotonic() >= deadline:
                raise
        if time.perf_counter_ns() < end:
            continue
        await _ready(bus, deadline, size)


async def request_async(rpc: Any, payload: Any, msg_type: int,
                        timeout: Optional[float] = None) -> Message:
    """``RpcBus.request`` without blocking the event loop.

    The call is sent as ``send_async`` sends (waiting in the loop for room);
    the reply is awaited as ``recv_async`` awaits a message, on the reply
    ring. Cancelled or timed out after the call went out, the call is given
    up: its reply is dropped when it arrives, and the next request goes on.
    """
    reply: Message = await _round_trip(
        rpc, memoryview(payload).nbytes, lambda: rpc.call(payload, msg_type, timeout=0),
        rpc._reply_message, timeout, "request_async")
    return reply


async def request_array_async(rpc: Any, obj: Any, msg_type: int,
                              timeout: Optional[float] = None) -> Any:
    """``RpcBus.request_array`` without blocking the event loop, with the
    rules of ``request_async``: the reply's tensor frame as a read-only
    numpy array over the reply's copy."""
    size = _FRAME_HEADER_SIZE + _nbytes(obj)
    return await _round_trip(rpc, size, lambda: rpc.call_array(obj, msg_type, timeout=0),
                             rpc._reply_array, timeout, "request_array_async")


#: The bytes a tensor frame's header takes before its data (ABI.md, "Tensor
#: frames"); a frame sent by call_array is this plus the data in C order.
_FRAME_HEADER_SIZE = 192


def _nbytes(obj: Any) -> int:
    """The data size of an array-like (numpy and torch say it; a buffer's
    memoryview does)."""
    n = getattr(obj, "nbytes", None)
    if isinstance(n, int):
        return n
    with memoryview(obj) as view:
        return view.nbytes


async def _round_trip(rpc: Any, size: int, call: Callable[[], int],
                      take: Callable[[int, int], _T], timeout: Optional[float], who: str) -> _T:
    """call() (sending with timeout=0) once there is room for size bytes,
    then take(cid, 0) until the reply is there, awaiting both in the loop."""
    if timeout is not None and timeout < 0:
        raise ValueError(f"{who}: timeout must be >= 0 or None")
    deadline = None if timeout is None else time.monotonic() + timeout
    # A size that can never fit would make every wait for room end at once:
    # capped, the wait ends once a largest message fits, and the call itself
    # reports what is wrong.
    cid = await _when_room(rpc.requests, min(size, rpc.requests.max_payload), deadline, call)
    try:
        end = time.perf_counter_ns() + SPIN_NS
        while True:
            try:
                return take(cid, 0)
            except TachyonTimeoutError:
                pass
            if time.perf_counter_ns() < end:
                continue
            if deadline is not None and time.monotonic() >= deadline:
                raise TachyonTimeoutError(f"{who}: no reply within {timeout} s")
            await _ready(rpc.replies, deadline)
    except BaseException:
        rpc._abandon(cid)
        raise
