"""Uses the public API the way an application would; tests/test_typing.py runs
mypy --strict over it, so the stub (tachyon/_core.pyi) stays true. Never run."""
from typing import Any, List, Optional

import numpy as np
from numpy.typing import NDArray

import tachyon
import tachyon.net


def producer(path: str) -> int:
    with tachyon.Bus.connect(path, timeout=2.5, role="producer") as bus:
        bus.send(b"hello", type_id=tachyon.make_type_id(1, 2))
        bus.send(bytearray(3), 1, timeout=None)
        # NumPy arrays are buffers on every Python version the package supports
        bus.send(np.zeros(4), type_id=7)
        bus.send_many([np.arange(3, dtype=np.int32), np.float64(1.5)])
        sent: int = bus.send_many([b"a", memoryview(b"b")], type_id=3, timeout=0.5)
        with bus.send_zero_copy(size=4, type_id=5) as tx:
            with memoryview(tx) as mv:
                mv[:] = b"abcd"
            tx.actual_size = 4
            tx.type_id = 6
        bus.flush()
        try:
            bus.send(b"x" * 10)
        except tachyon.BusFullError as exc:
            sent += exc.sent
        return sent + bus.max_payload


def consumer(path: str) -> List[bytes]:
    out: List[bytes] = []
    with tachyon.Bus.listen(path, 1 << 16, timeout=None, allow_uids=[0]) as bus:
        for msg in bus:
            out.append(msg.data)
            if tachyon.route_id(msg.type_id) == 1 and tachyon.msg_type(msg.type_id) == 2:
                break
        m: Optional[tachyon.Message] = bus.try_recv()
        if m is not None:
            out.append(m.data[: m.size])
        out.append(bus.recv(timeout=1.0).data)
        with bus.recv_zero_copy(timeout=None) as rx:
            out.append(bytes(rx))
            device = rx.__dlpack_device__()
            assert device == (1, 0)
            cap: object = rx.__dlpack__(max_version=(1, 0))
            del cap
            size: int = rx.actual_size + rx.type_id
        with bus.drain_batch(max_msgs=8, timeout=1) as batch:
            for i in range(len(batch)):
                view: tachyon.RxMsgView = batch[i]
                out.append(bytes(view))
                size += len(view)
            for each in batch:
                size += each.actual_size
        stats: tachyon.BusStats = bus.stats
        pid: Optional[int] = stats.peer_pid
        role: Optional[str] = bus.role
        print(stats.pinned_bytes, pid, role, bus.path, bus.closed, size)
        bus.set_polling_mode(0)
        bus.set_numa_node(0)
    return out


def errors() -> None:
    try:
        tachyon.Bus.connect("/tmp/none.sock", timeout=0.1)
    except tachyon.ConnectTimeoutError:
        pass
    except (tachyon.PeerClosedError, tachyon.PeerDeadError) as gone:
        left: Optional[int] = gone.unreleased_bytes
        msgs: Optional[int] = gone.unreleased_messages
        print(left, msgs)
    except (tachyon.HandshakeError, tachyon.RingCorruptError):
        pass
    except (tachyon.BusClosedError, tachyon.TachyonTimeoutError, tachyon.AbiMismatchError, tachyon.TachyonError):
        pass
    low: tachyon.TachyonBus = tachyon.TachyonBus.listen("/tmp/low.sock", 4096)
    g: tachyon.TxGuard = low.acquire_tx(8)
    r: tachyon.RxGuard = low.acquire_rx(10000, 1.0)
    del g, r
    low.destroy()
    print(tachyon.__version__)


def request_reply(path: str) -> bytes:
    dispatcher = tachyon.RpcDispatcher()

    @dispatcher.handler(1)
    def double(view: memoryview) -> bytes:
        return bytes(view) * 2

    @tachyon.tachyon_rpc(2)
    def echo(view: memoryview) -> bytes:
        return bytes(view)

    dispatcher.register(echo)
    with tachyon.RpcBus.rpc_connect(path, timeout=1.0) as caller:
        cid: int = caller.call(b"x", 1, timeout=None)
        with caller.wait(cid, timeout=2.0) as rx:
            got = bytes(rx) + bytes([rx.type_id & 0xFF, rx.correlation_id & 0xFF])
        with caller.call_zero_copy(8, 1) as tx:
            with memoryview(tx) as mv:
                mv[:1] = b"y"
            tx.actual_size = 1
        out: Optional[int] = tx.out_cid
        m: tachyon.Message = caller.request(b"z", 2, timeout=0.5)
        ready = tachyon.wait([caller], timeout=0)
        acid: int = caller.call_array(np.zeros((2, 3)), 4, timeout=None)
        with caller.wait(acid) as arx:
            got += arx.array().tobytes()
        doubled: NDArray[Any] = caller.request_array(np.arange(3), 4, timeout=0.5)
        got += doubled.tobytes()
        got += m.data + echo.call(caller, b"e") + bytes(len(ready) + (out or 0))
    with tachyon.RpcBus.rpc_listen(path, 1 << 12, 1 << 12, timeout=None) as callee:
        dispatcher.serve_once(callee, timeout=1.0)
        with callee.serve() as req:
            c = req.correlation_id
        callee.reply(c, b"r", tachyon.MSG_TYPE_ERROR)
        with callee.serve() as areq:
            ac = areq.correlation_id
            twice = areq.array() * 2
        callee.reply_array(ac, twice, 4, timeout=1.0)
    return got


async def request_reply_async(bus: tachyon.RpcBus) -> bytes:
    m: tachyon.Message = await bus.request_async(b"q", 1, timeout=0.5)
    arr: NDArray[Any] = await bus.request_array_async(np.arange(3), 4, timeout=0.5)
    return m.data + arr.tobytes()


def drain(bus: tachyon.Bus) -> int:
    return sum(msg.size for msg in bus)


def across_hosts(url: str) -> int:
    # a tcp:// address gives a bus usable wherever a Bus is (tachyon.net)
    with tachyon.Bus.listen(url, 1 << 16, timeout=10.0, liveness=2.0) as bus:
        total = drain(bus)
    with tachyon.Bus.connect("tcp://127.0.0.1:5555", timeout=5.0, role="producer", liveness=1.5) as out:
        try:
            out.send(b"n", type_id=total & 0xFFFF)
        except tachyon.PeerDeadError as dead:
            # how far the stream got before a cut longer than the liveness
            acked: Optional[int] = dead.last_acked_seq
            print(acked)
        return out.max_payload


def across_hosts_with_curve(url: str, server_public: str, client: "tuple[str, str]") -> int:
    # CURVE: the listener's secret and whom it admits; the connector's keys
    public, secret = tachyon.curve_keypair()
    with tachyon.Bus.listen(url, 1 << 16, curve_secret=secret, allowed_clients=[client[0]]) as bus:
        total = drain(bus)
    with tachyon.Bus.listen(url, 1 << 16, curve_secret=secret.encode(), allowed_clients="any") as bus:
        total += drain(bus)
    with tachyon.Bus.connect(url, curve_server_key=server_public, curve_keypair=client) as out:
        out.send(public.encode(), type_id=total & 0xFFFF)
        return out.max_payload


def across_hosts_in_place(url: str, local_path: str) -> int:
    # a tcp:// bus takes the local bus's zero-copy and array calls, and tachyon.wait
    with tachyon.Bus.connect(url, role="producer") as out:
        with out.send_array_zero_copy((2, 3), np.float32, 4, timeout=1.0) as arr:
            arr[...] = 1.5
        with out.send_zero_copy(4, 1) as tx:
            with memoryview(tx) as mv:
                mv[:] = b"abcd"
            tx.actual_size = 4
    with tachyon.Bus.listen(url, 1 << 16) as bus, tachyon.Bus.listen(local_path, 1 << 16) as near:
        ready: List[tachyon.Bus] = tachyon.wait([bus, near], timeout=0.5)
        with bus.recv_zero_copy(timeout=1.0) as rx:
            a: NDArray[Any] = rx.array()
            n = rx.type_id + rx.actual_size + len(memoryview(rx)) + a.size
        got: NDArray[Any] = bus.recv_array(timeout=1.0)
        return n + got.size + len(ready)


def net_bus_itself(bus: tachyon.net.NetBus) -> int:
    # code written against the tcp end's own class checks as well
    with bus.recv_zero_copy() as rx:
        a: NDArray[Any] = rx.array()
        n = rx.type_id + rx.actual_size + len(bytes(rx)) + int(rx.copied)
    with bus.drain_batch(max_msgs=8) as batch:
        for view in batch:
            n += view.type_id + len(view) + view.array().size
        n += batch[0].actual_size
    with bus.send_zero_copy(4, 1) as tx:
        with memoryview(tx) as mv:
            mv[:] = b"abcd"
        tx.actual_size = 4
        tx.type_id = 2
        n += tx.size
    with bus.send_array_zero_copy(3, "int8") as arr:
        arr[:] = 1
    b: NDArray[Any] = bus.recv_array(timeout=1.0)
    ready: List[tachyon.net.NetBus] = tachyon.wait([bus], timeout=0)
    return n + a.size + b.size + len(ready)
