"""Bad input: each a clear exception that says what to do; the bus stays usable where sensible."""
import os
import pickle
import socket
import threading

import pytest

import tachyon


@pytest.mark.parametrize("cap", [0, 63, 100, 3000, 2**32, 2**31 * 2, -64])
def test_bad_capacity(sock_path, cap):
    with pytest.raises(ValueError, match="power of two between 64 and 2\\*\\*31"):
        tachyon.Bus.listen(sock_path, cap, timeout=0)
    assert not os.path.exists(sock_path)


def test_capacity_type(sock_path):
    with pytest.raises(TypeError, match="capacity must be an int"):
        tachyon.Bus.listen(sock_path, 4096.0)


def test_path_too_long():
    path = "/tmp/" + "x" * 103  # 108 bytes
    with pytest.raises(ValueError, match="107 bytes"):
        tachyon.Bus.listen(path, 4096, timeout=0)
    assert not os.path.exists(path)
    with pytest.raises(ValueError, match="107 bytes"):
        tachyon.Bus.connect(path, timeout=0)


def test_listen_on_regular_file(tmp_path):
    f = tmp_path / "plain"
    f.write_text("keep me")
    with pytest.raises(tachyon.HandshakeError, match=str(f)):
        tachyon.Bus.listen(str(f), 4096, timeout=0)
    assert f.read_text() == "keep me"


def test_listen_on_live_path(sock_path):
    # a live listener (a plain socket here) holds the path
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(sock_path)
    s.listen(1)
    try:
        with pytest.raises(tachyon.HandshakeError, match="live listener") as ei:
            tachyon.Bus.listen(sock_path, 4096, timeout=0)
        assert sock_path in str(ei.value)
        assert isinstance(ei.value, ConnectionError)
    finally:
        s.close()


def test_connect_timeout(sock_path):
    with pytest.raises(tachyon.ConnectTimeoutError, match="no listener") as ei:
        tachyon.Bus.connect(sock_path, timeout=0.05)
    assert isinstance(ei.value, TimeoutError) and isinstance(ei.value, ConnectionError)


def test_listen_timeout(sock_path):
    with pytest.raises(tachyon.TachyonTimeoutError):
        tachyon.Bus.listen(sock_path, 4096, timeout=0.05)
    assert not os.path.exists(sock_path)


def test_bad_role_name(sock_path):
    with pytest.raises(ValueError, match="role must be"):
        tachyon.Bus.listen(sock_path, 4096, role="both")


def test_never_fits(pair):
    prod, cons = pair
    with pytest.raises(ValueError, match="capacity >= 16384"):
        prod.send(b"x" * 5000)
    with pytest.raises(ValueError, match="never fit"):
        prod.send_zero_copy(size=5000)
    with pytest.raises(ValueError, match="never fit"):
        prod.send_many([b"ok", b"x" * 5000])
    prod.send(b"still usable")
    assert cons.recv(timeout=1).data == b"ok"  # send_many sent the items before the bad one
    assert cons.recv(timeout=1).data == b"still usable"


def test_full_ring_send_many(pair):
    prod, cons = pair
    with pytest.raises(tachyon.BusFullError) as ei:
        prod.send_many([b"x" * 1000] * 10)
    k = ei.value.sent
    assert 0 < k < 10
    for _ in range(k):
        assert cons.recv(timeout=1).data == b"x" * 1000
    assert cons.try_recv() is None


def test_actual_size_too_large(pair):
    prod, cons = pair
    with prod.send_zero_copy(size=8) as tx:
        with pytest.raises(ValueError, match="0..8"):
            tx.actual_size = 9
        with pytest.raises(ValueError):
            tx.actual_size = -1
        tx.actual_size = 3
        with memoryview(tx) as mv:
            assert len(mv) == 8 and not mv.readonly
            mv[:3] = b"abc"
    assert cons.recv(timeout=1).data == b"abc"


def test_no_buffer_protocol(pair):
    prod, cons = pair
    with pytest.raises(TypeError, match="bytes-like object"):
        prod.send("text")
    with pytest.raises(TypeError, match="bytes-like"):
        prod.send(12345)
    with pytest.raises(TypeError, match="C-contiguous"):
        prod.send(memoryview(b"abcdef")[::2])
    with pytest.raises(TypeError):
        prod.send_many([b"a", object()])
    prod.send(b"fine")
    assert cons.recv(timeout=1).data == b"a"
    assert cons.recv(timeout=1).data == b"fine"


def test_bad_type_id_and_timeout(pair):
    prod, cons = pair
    for bad in (-1, 2**32):
        with pytest.raises(ValueError, match="type_id"):
            prod.send(b"x", bad)
    with pytest.raises(TypeError, match="type_id"):
        prod.send(b"x", "1")
    with pytest.raises(ValueError, match="timeout"):
        cons.recv(timeout=-1)
    with pytest.raises(TypeError, match="timeout"):
        cons.recv(timeout="1")
    prod.send(b"x", 2**32 - 1)
    assert cons.recv(timeout=1).type_id == 2**32 - 1


def test_wrong_role(pair):
    prod, cons = pair
    with pytest.raises(tachyon.TachyonError, match="producer of its bus.*second bus"):
        prod.recv(timeout=0)
    with pytest.raises(tachyon.TachyonError, match="consumer of its bus.*second bus"):
        cons.send(b"x")
    with pytest.raises(tachyon.TachyonError, match="second bus"):
        cons.send_zero_copy(size=1)
    with pytest.raises(tachyon.TachyonError, match="second bus"):
        next(iter(prod))
    prod.send(b"ok")
    assert cons.recv(timeout=1).data == b"ok"


def test_role_fixed_by_first_call(sock_path):
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("b", tachyon.Bus.listen(sock_path, 4096, timeout=5)))
    t.start()
    a = tachyon.Bus.connect(sock_path)
    t.join()
    b = box["b"]
    try:
        assert a.role is None and b.role is None
        a.send(b"first")
        assert a.role == "producer"
        assert b.recv(timeout=1).data == b"first"
        assert b.role == "consumer"
    finally:
        a.close()
        b.close()


def test_use_after_close(pair):
    prod, cons = pair
    prod.close()
    prod.close()  # idempotent
    assert prod.closed
    with pytest.raises(tachyon.BusClosedError, match="closed"):
        prod.send(b"x")
    with pytest.raises(tachyon.BusClosedError):
        prod.send_zero_copy(size=1)
    cons.close()
    with pytest.raises(tachyon.BusClosedError):
        cons.recv(timeout=0)
    with pytest.raises(tachyon.BusClosedError):
        cons.try_recv()


def test_pickling(pair):
    prod, cons = pair
    with pytest.raises(TypeError, match="open a new bus in the other process"):
        pickle.dumps(prod)
    prod.send(b"x")
    with cons.recv_zero_copy(timeout=1) as rx:
        with pytest.raises(TypeError, match="cannot pickle"):
            pickle.dumps(rx)


def test_direct_construction():
    with pytest.raises(TypeError, match="listen"):
        tachyon.Bus()
    with pytest.raises(TypeError):
        tachyon.RxGuard()
