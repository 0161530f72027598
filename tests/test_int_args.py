"""Every integer argument takes any object with __index__ (docs/PYTHON_API.md,
"Timeouts"): numpy integer scalars and user classes alike, in type_id,
size, max_msgs, spin_threshold, capacity, make_type_id's parts, Message,
actual_size, and as a timeout in whole seconds. bool stays refused
(TypeError) wherever a size, count, timeout or type_id is taken, and so is
numpy's bool (it has no __index__); floats stay refused where the value is a
count."""
import asyncio
import threading

import numpy as np
import pytest

import tachyon

class Index:
    """An integer only through __index__."""

    def __init__(self, v):
        self.v = v

    def __index__(self):
        return self.v


KINDS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, Index]


def as_kind(kind, v):
    return kind(v)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_integer_arguments_take_index_objects(pair, kind):
    prod, cons = pair
    one, two, three, five, nine = (as_kind(kind, v) for v in (1, 2, 3, 5, 9))
    prod.send(b"a", type_id=five, timeout=one)
    prod.send(b"b", nine)
    prod.send_many([b"c"], three, timeout=one)
    assert cons.recv(timeout=one).type_id == 5
    assert cons.recv(one).type_id == 9
    with cons.recv_zero_copy(timeout=one) as rx:
        assert rx.type_id == 3
    with prod.send_zero_copy(size=nine, type_id=two, timeout=one) as tx:
        tx.actual_size = five
    with cons.drain_batch(max_msgs=two, spin_threshold=nine, timeout=one) as batch:
        assert (len(batch), batch[0].type_id, batch[0].actual_size) == (1, 2, 5)
    with prod.acquire_tx(three, type_id=one) as tx:
        pass
    with cons.acquire_rx(nine, timeout=one) as rx:
        assert rx.actual_size == 3
    assert tachyon.make_type_id(one, two) == (1 << 16) | 2
    small = kind in (np.int8, np.int16, np.uint8, np.uint16)  # 65538 does not fit them
    whole = as_kind(np.int64 if small else kind, 65538)
    assert tachyon.route_id(whole) == 1 and tachyon.msg_type(whole) == 2
    assert tachyon.Message(five, b"x").type_id == 5
    assert tachyon.wait([cons], timeout=as_kind(kind, 0)) == []
    with pytest.raises(tachyon.TachyonTimeoutError):
        cons.recv(timeout=as_kind(kind, 0))


@pytest.mark.parametrize("kind", [np.int64, np.uint32, Index], ids=lambda k: k.__name__)
def test_capacity_and_open_timeouts_take_index_objects(sock_path, kind):
    box = {}

    def listen():
        box["bus"] = tachyon.Bus.listen(sock_path, as_kind(kind, 4096), timeout=as_kind(kind, 10))

    t = threading.Thread(target=listen)
    t.start()
    prod = tachyon.Bus.connect(sock_path, timeout=as_kind(kind, 10))
    t.join()
    try:
        assert box["bus"].capacity == 4096
    finally:
        prod.close()
        box["bus"].close()


@pytest.mark.parametrize("kind", [np.int64, Index], ids=lambda k: k.__name__)
def test_python_level_calls_take_index_objects(pair, kind):
    prod, cons = pair
    asyncio.run(prod.send_async(b"x", as_kind(kind, 4), timeout=as_kind(kind, 1)))
    assert asyncio.run(cons.recv_async(timeout=as_kind(kind, 1))).type_id == 4
    with prod.send_array_zero_copy(as_kind(kind, 3), "i2", type_id=as_kind(kind, 7)) as arr:
        arr[:] = 5
    assert cons.recv_array(timeout=as_kind(kind, 1)).tolist() == [5, 5, 5]


@pytest.mark.parametrize("bad", [True, np.True_, 1.5, np.float32(1)], ids=repr)
def test_bool_and_floats_stay_refused_for_counts(pair, bad):
    prod, cons = pair
    for call in (lambda: prod.send(b"x", type_id=bad), lambda: prod.send_zero_copy(bad),
                 lambda: cons.drain_batch(max_msgs=bad, timeout=0), lambda: tachyon.make_type_id(bad, 1),
                 lambda: tachyon.Message(bad, b"")):
        with pytest.raises(TypeError, match="must be an int"):
            call()


@pytest.mark.parametrize("bad", [True, np.True_], ids=repr)
def test_bool_stays_refused_for_timeouts(pair, bad):
    prod, cons = pair
    for call in (lambda: cons.recv(timeout=bad), lambda: prod.send(b"x", timeout=bad),
                 lambda: asyncio.run(cons.recv_async(timeout=bad))):
        with pytest.raises(TypeError, match="timeout must be a number of seconds or None"):
            call()


@pytest.mark.parametrize("kind", [np.int64, np.uint16, Index], ids=lambda k: k.__name__)
def test_request_reply_arguments_take_index_objects(sock_path, kind):
    box = {}

    def listen():
        box["bus"] = tachyon.RpcBus.rpc_listen(sock_path, as_kind(kind, 4096), as_kind(kind, 4096),
                                               timeout=as_kind(kind, 10))

    t = threading.Thread(target=listen)
    t.start()
    caller = tachyon.RpcBus.rpc_connect(sock_path, timeout=as_kind(kind, 10))
    t.join()
    callee = box["bus"]
    try:
        cid = caller.call(b"q", as_kind(kind, 3), spin_threshold=as_kind(kind, 9), timeout=as_kind(kind, 1))
        with callee.serve(timeout=as_kind(kind, 1)) as req:
            assert (bytes(req), req.type_id) == (b"q", 3)
        callee.reply(as_kind(kind, cid), b"r", as_kind(kind, 4), timeout=as_kind(kind, 1))
        with caller.wait(as_kind(kind, cid), timeout=as_kind(kind, 1)) as rep:
            assert (bytes(rep), rep.type_id, rep.correlation_id) == (b"r", 4, cid)
        for bad in (True, np.True_, 1.5):
            with pytest.raises(TypeError, match="msg_type must be an int"):
                caller.call(b"x", bad)
    finally:
        caller.close()
        callee.close()


def test_tcp_bus_follows_the_same_integer_rule():
    pytest.importorskip("zmq")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("bus", tachyon.Bus.listen(
        url, np.int64(1 << 16), timeout=np.int8(10), liveness=1.0)))
    t.start()
    prod = tachyon.Bus.connect(url, timeout=Index(10), liveness=1.0)
    t.join()
    cons = box["bus"]
    try:
        prod.send(b"x", type_id=np.uint32(7), timeout=np.int64(1))
        with prod.send_zero_copy(Index(4), type_id=np.uint16(8), timeout=1) as tx:
            tx[:4] = b"abcd"
        assert cons.recv(timeout=np.int8(2)).type_id == 7
        with cons.drain_batch(max_msgs=np.int32(4), timeout=Index(2)) as batch:
            assert bytes(batch[0]) == b"abcd" and batch[0].type_id == 8
        for bad in (True, np.True_, 1.5):
            with pytest.raises(TypeError, match="must be an int"):
                prod.send(b"x", type_id=bad)
        with pytest.raises(TypeError, match="timeout must be a number of seconds or None"):
            cons.recv(timeout=True)
    finally:
        prod.close()
        cons.close()
