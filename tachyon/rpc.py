"""Request/reply over tachyon, with the names of tachyon-ipc 0.5.1.

``RpcBus`` (the C type, with ``request_async`` and ``request_array_async``
added here) carries requests
and replies; ``tachyon_rpc`` binds a handler function to a message type,
and ``RpcDispatcher`` runs the callee's loop over the handlers it holds.

A request nobody handles is still answered: the dispatcher replies with
message type ``MSG_TYPE_ERROR`` (0xFFFF), whose payload is the unhandled
message type as a big-endian u16, and only then raises on its side, so a
caller blocked in ``wait`` is never left hanging.
"""
import struct
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, TypeVar, Union

from ._core import Message, PeerDeadError, TachyonError
from ._core import RpcBus as _CoreRpcBus

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "MSG_TYPE_ERROR",
    "RpcBus",
    "RpcDispatcher",
    "RpcEndpoint",
    "decode_error",
    "tachyon_rpc",
]

#: Message type of an error reply; reserved, no handler may claim it.
MSG_TYPE_ERROR: int = 0xFFFF

_ERROR = struct.Struct("!H")

T = TypeVar("T")
Handler = Callable[[memoryview], bytes]


def encode_error(unhandled_msg_type: int) -> bytes:
    """The payload of an error reply for a request of ``unhandled_msg_type``."""
    return _ERROR.pack(unhandled_msg_type & 0xFFFF)


def decode_error(payload: Union[bytes, memoryview]) -> int:
    """The message type an error reply says was not handled."""
    value: int = _ERROR.unpack(bytes(payload[:2]))[0]
    return value


class RpcBus(_CoreRpcBus):
    """A request/reply bus: ``rpc_listen`` makes the callee end (``serve``,
    ``reply``), ``rpc_connect`` the caller end (``call``, ``wait``,
    ``request``). Every blocking call takes ``timeout`` (seconds; None: no
    limit) besides 0.5.1's arguments."""

    __slots__ = ()

    async def request_async(self, payload: bytes, msg_type: int,
                            timeout: Optional[float] = None) -> Message:
        """``request`` without blocking the event loop (tachyon.aio): the
        call is sent at once, the reply awaited. Cancelling it gives the
        call up: its reply is dropped when it arrives."""
        from . import aio
        return await aio.request_async(self, payload, msg_type, timeout)

    async def request_array_async(self, obj: Any, msg_type: int,
                                  timeout: Optional[float] = None) -> "NDArray[Any]":
        """``request_array`` without blocking the event loop, by the rules of
        ``request_async``: the reply's tensor frame as a read-only numpy
        array over the reply's copy."""
        from . import aio
        arr: "NDArray[Any]" = await aio.request_array_async(self, obj, msg_type, timeout)
        return arr


def _error_reply(bus: _CoreRpcBus, cid: int, msg_type: int) -> str:
    """Best effort: answer cid with an error reply. A dead or broken peer
    propagates; any other failure is only reported in the returned text, so
    it does not replace the failure being reported."""
    try:
        bus.reply(cid, encode_error(msg_type), MSG_TYPE_ERROR)
    except PeerDeadError:
        raise
    except TachyonError as exc:
        return f"the error reply could not be sent: {exc}"
    return "an error reply was sent to the caller"


class RpcEndpoint:
    """A handler (``memoryview -> bytes``) bound to one message type.

    Calling the endpoint runs the handler locally (bytes are wrapped in a
    memoryview), so it can be tested without a bus; ``call`` runs it
    remotely over a caller end.
    """

    def __init__(self, fn: Handler, msg_type: int) -> None:
        self._fn = fn
        self.msg_type = msg_type
        self.__name__ = getattr(fn, "__name__", "endpoint")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__module__ = getattr(fn, "__module__", __name__)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, payload: Union[bytes, bytearray, memoryview]) -> bytes:
        view = payload if isinstance(payload, memoryview) else memoryview(payload)
        return self._fn(view)

    def call(self, bus: _CoreRpcBus, payload: bytes,
             on_response: Optional[Callable[[memoryview], T]] = None,
             spin_threshold: int = 10000) -> Union[bytes, T]:
        """Call this endpoint over ``bus`` and return the reply's bytes, or
        what ``on_response`` makes of a view of it (valid during the call)."""
        cid = bus.call(payload, self.msg_type, spin_threshold=spin_threshold)
        with bus.wait(cid, spin_threshold=spin_threshold) as rx:
            with memoryview(rx) as view:
                if on_response is not None:
                    return on_response(view)
                return view.tobytes()

    def __repr__(self) -> str:
        return f"RpcEndpoint(msg_type={self.msg_type}, fn={self.__name__!r})"


def _check_msg_type(msg_type: int) -> None:
    if not 0 <= msg_type < MSG_TYPE_ERROR:
        raise ValueError(f"msg_type must be in [0, {MSG_TYPE_ERROR - 1}] "
                         f"({MSG_TYPE_ERROR:#06x} is reserved for error replies), got {msg_type}")


def tachyon_rpc(msg_type: int) -> Callable[[Handler], RpcEndpoint]:
    """Decorator: make a ``memoryview -> bytes`` function the endpoint of
    ``msg_type`` (0..65534). The view is valid only during the call."""
    _check_msg_type(msg_type)

    def decorate(fn: Handler) -> RpcEndpoint:
        return RpcEndpoint(fn, msg_type)

    return decorate


class RpcDispatcher:
    """Maps message types to endpoints and serves them on a callee end."""

    __slots__ = ("_handlers",)

    def __init__(self) -> None:
        self._handlers: Dict[int, RpcEndpoint] = {}

    def register(self, endpoint: RpcEndpoint) -> "RpcDispatcher":
        """Add an endpoint; ValueError for a taken or reserved message type.
        Returns the dispatcher, for chaining."""
        _check_msg_type(endpoint.msg_type)
        if endpoint.msg_type in self._handlers:
            taken = self._handlers[endpoint.msg_type].__name__
            raise ValueError(f"msg_type={endpoint.msg_type} is already handled by {taken!r}")
        self._handlers[endpoint.msg_type] = endpoint
        return self

    def handler(self, msg_type: int) -> Callable[[Handler], RpcEndpoint]:
        """Decorator: make an endpoint of ``msg_type`` and register it."""
        def decorate(fn: Handler) -> RpcEndpoint:
            endpoint = RpcEndpoint(fn, msg_type)
            self.register(endpoint)
            return endpoint
        return decorate

    def serve_once(self, bus: _CoreRpcBus, spin_threshold: int = 10000,
                   timeout: Optional[float] = None) -> None:
        """Serve one request: run its handler on a view of it and reply.

        Every request taken is answered. With no handler for its type, an
        error reply goes out, then KeyError is raised here; when the handler
        fails (raises, returns something reply cannot send, keeps a view of
        the request), an error reply goes out, then RuntimeError (the
        failure as its cause).
        """
        cid: Optional[int] = None
        endpoint: Optional[RpcEndpoint] = None
        mt = 0
        try:
            with bus.serve(spin_threshold=spin_threshold, timeout=timeout) as rx:
                cid = rx.correlation_id
                mt = rx.type_id
                endpoint = self._handlers.get(mt)
                if endpoint is not None:
                    with memoryview(rx) as view:
                        response = endpoint._fn(view)
            # the request's slot is released here
            if endpoint is not None:
                bus.reply(cid, response, mt)
        except PeerDeadError:
            raise
        except Exception as exc:
            response = None  # may be a view into the released slot
            if cid is None:
                raise  # serve itself failed: nothing was taken
            outcome = _error_reply(bus, cid, mt)
            name = endpoint.__name__ if endpoint is not None else "?"
            raise RuntimeError(f"handler {name!r} failed with {type(exc).__name__}: {exc} "
                               f"({outcome}, correlation_id={cid})") from exc
        if endpoint is None:
            outcome = _error_reply(bus, cid, mt)
            raise KeyError(f"no handler for msg_type={mt} ({outcome}, correlation_id={cid})")

    def serve_forever(self, bus: _CoreRpcBus, spin_threshold: int = 10000) -> None:
        """Serve until the caller closes (returns), or until Ctrl-C, a dead
        peer or a broken ring (raised). Requests with no handler or a
        failing handler are answered with an error reply and skipped."""
        from ._core import PeerClosedError
        while True:
            try:
                self.serve_once(bus, spin_threshold=spin_threshold)
            except (KeyError, RuntimeError):
                continue
            except PeerClosedError:
                return
