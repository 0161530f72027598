"""The module table of docs/PYTHON_API.md: names, exception tree, signatures, helpers."""
import inspect
import pickle

import pytest

import tachyon


def test_module_table():
    for name in [
        "Bus", "Message", "make_type_id", "route_id", "msg_type", "TachyonBus", "TxGuard", "RxGuard",
        "RxBatchGuard", "RxMsgView", "BusStats", "__version__",
        "TachyonError", "HandshakeError", "AbiMismatchError", "TachyonTimeoutError", "BusFullError",
        "ConnectTimeoutError", "BusClosedError", "PeerClosedError", "PeerDeadError", "RingCorruptError",
        "RoleError",
    ]:
        assert hasattr(tachyon, name), name
    assert isinstance(tachyon.__version__, str)  # its value: test_version.py
    assert issubclass(tachyon.Bus, tachyon.TachyonBus)
    for low in ["listen", "connect", "destroy", "flush", "acquire_tx", "acquire_rx", "drain_batch",
                "set_numa_node", "set_polling_mode"]:
        assert callable(getattr(tachyon.TachyonBus, low)), low
    # per-message methods stay C methods on the subclass
    assert type(tachyon.Bus.send).__name__ == "method_descriptor"
    assert type(tachyon.Bus.recv).__name__ == "method_descriptor"


def test_exception_tree():
    t = tachyon
    expected = {
        t.HandshakeError: (t.TachyonError, ConnectionError),
        t.AbiMismatchError: (t.HandshakeError,),
        t.TachyonTimeoutError: (t.TachyonError, TimeoutError),
        t.BusFullError: (t.TachyonTimeoutError,),
        t.ConnectTimeoutError: (t.TachyonTimeoutError, ConnectionError),
        t.BusClosedError: (t.TachyonError,),
        t.PeerClosedError: (t.TachyonError, EOFError),
        t.PeerDeadError: (t.TachyonError,),
        t.RingCorruptError: (t.PeerDeadError,),
        t.RoleError: (t.TachyonError,),
    }
    assert t.TachyonError.__bases__ == (Exception,)
    for cls, bases in expected.items():
        assert cls.__bases__ == bases, cls
        assert cls.__module__ == "tachyon"
    e = t.BusFullError("x")
    assert e.sent == 0 and str(e) == "x"
    assert isinstance(t.ConnectTimeoutError("y"), ConnectionError)


def test_bus_stats_fields():
    assert tachyon.BusStats._fields == (
        "ring_capacity", "ring_occupancy", "consumer_state", "state", "pinned_bytes", "lost_wakeups", "peer_pid",
    )


def test_type_id_helpers():
    assert tachyon.make_type_id(1, 2) == (1 << 16) | 2
    assert tachyon.make_type_id(route=65535, msg_type=65535) == 0xFFFFFFFF
    assert tachyon.route_id(0x00030004) == 3
    assert tachyon.msg_type(0x00030004) == 4
    for bad in [(-1, 0), (0, 65536), (70000, 1)]:
        with pytest.raises(ValueError, match="0..65535"):
            tachyon.make_type_id(*bad)
    with pytest.raises(ValueError):
        tachyon.route_id(2**32)
    with pytest.raises(ValueError):
        tachyon.msg_type(-1)


def test_signatures():
    B = tachyon.Bus
    assert str(inspect.signature(B.send)) == "(self, /, data, type_id=0, *, timeout=0)"
    assert str(inspect.signature(B.send_zero_copy)) == "(self, /, size, type_id=0, *, timeout=0)"
    assert str(inspect.signature(B.send_many)) == "(self, /, buffers, type_id=0, *, timeout=0)"
    assert str(inspect.signature(B.recv)) == "(self, /, timeout=None)"
    assert str(inspect.signature(B.drain_batch)) == "(self, /, max_msgs=1024, spin_threshold=10000, timeout=None)"
    # liveness: tcp:// addresses only (tachyon.net)
    assert str(inspect.signature(B.listen)) == (
        "(socket_path, capacity, *, timeout=None, role=None, allow_uids=None, liveness=None, "
        "insecure=False, curve_secret=None, allowed_clients=None)"
    )
    assert str(inspect.signature(B.connect)) == (
        "(socket_path, *, timeout=5.0, role=None, liveness=None, curve_server_key=None, "
        "curve_keypair=None)"
    )
    assert str(inspect.signature(tachyon.RxMsgView.__dlpack__)) == (
        "(self, /, stream=None, *, max_version=None, dl_device=None, copy=None)"
    )


def test_message():
    m = tachyon.Message(5, b"abc")
    assert (m.type_id, m.size, m.data) == (5, 3, b"abc")
    assert m == tachyon.Message(5, bytearray(b"abc")) and m != tachyon.Message(6, b"abc")
    assert pickle.loads(pickle.dumps(m)) == m
    assert "type_id=5" in repr(m)
    with pytest.raises(TypeError):
        tachyon.Message(1, 12)


def test_stats_and_properties(pair):
    prod, cons = pair
    assert prod.role == "producer" and cons.role == "consumer"
    assert prod.max_payload == 4096 // 2 - 64
    assert prod.path == cons.path
    s = cons.stats
    assert isinstance(s, tachyon.BusStats)
    assert s.ring_capacity == 4096 and s.state == 2 and s.pinned_bytes == 0 and s.lost_wakeups == 0
    import os
    assert s.peer_pid == os.getpid() and prod.peer_pid == os.getpid()
    # consumer_state is the shared wait word: 2 in pure spin, 0 when awake.
    assert s.consumer_state == 0
    cons.set_polling_mode(1)
    assert cons.stats.consumer_state == 2 and prod.stats.consumer_state == 2
    # Sticky while this end is the consumer: receiving does not reset it.
    assert cons.try_recv() is None
    prod.send(b"x")
    assert cons.recv(timeout=5).data == b"x"
    assert cons.stats.consumer_state == 2
    cons.set_polling_mode(0)
    assert cons.stats.consumer_state == 0 and prod.stats.consumer_state == 0
    # Either end may set it.
    prod.set_polling_mode(1)
    assert cons.stats.consumer_state == 2
    prod.set_polling_mode(0)
    assert cons.stats.consumer_state == 0
    cons.set_numa_node(0)
    with pytest.raises(ValueError, match="NUMA node"):
        cons.set_numa_node(4000)
