"""CURVE on the tcp:// bus (tachyon/_netsec.py): the listener admits only the
client keys it was given, a refused or mistaken connector is told why, and
what crosses the wire is encrypted."""
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

import tachyon
from conftest import isolated_env

zmq = pytest.importorskip("zmq", reason="pyzmq is not installed (pip install 'tachyon-ipc[net]')")

SERVER = tachyon.curve_keypair()
CLIENT = tachyon.curve_keypair()
OTHER = tachyon.curve_keypair()


def free_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class Listener(threading.Thread):
    """Bus.listen in a thread; .bus or .error once joined."""

    def __init__(self, url, timeout=10, **kw):
        super().__init__()
        self.args, self.bus, self.error = (url, 1 << 16), None, None
        self.kw = dict(timeout=timeout, liveness=1.0, **kw)
        self.start()
        time.sleep(0.1)

    def run(self):
        try:
            self.bus = tachyon.Bus.listen(*self.args, **self.kw)
        except Exception as e:  # looked at by the test
            self.error = e


def curve_listener(url, allowed, **kw):
    return Listener(url, curve_secret=SERVER[1], allowed_clients=allowed, **kw)


def test_keypair_is_z85_and_matches():
    public, secret = tachyon.curve_keypair()
    assert isinstance(public, str) and len(public) == 40 and len(secret) == 40
    assert zmq.curve_public(secret.encode()) == public.encode()
    assert tachyon.curve_keypair() != (public, secret)


def test_allowed_client_streams_across_processes():
    """A connector in another process with an allowed key sends a checked
    stream; the listener binds beyond loopback without insecure=True,
    since CURVE is on."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
    code = (
        "import sys, tachyon\n"
        "pub, sec, srv = sys.argv[1:4]\n"
        f"with tachyon.Bus.connect('tcp://127.0.0.1:{port}', timeout=20,"
        " curve_server_key=srv, curve_keypair=(pub, sec)) as bus:\n"
        "    for i in range(200):\n"
        "        bus.send(bytes([i % 251]) * (i * 97), type_id=i, timeout=20)\n"
    )
    peer = subprocess.Popen([sys.executable, "-c", code, CLIENT[0], CLIENT[1], SERVER[0]],
                            env=isolated_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        with tachyon.Bus.listen(f"tcp://0.0.0.0:{port}", 1 << 16, timeout=20,
                                curve_secret=SERVER[1], allowed_clients=[OTHER[0], CLIENT[0]]) as bus:
            got = 0
            for msg in bus:
                assert (msg.type_id, msg.data) == (got, bytes([got % 251]) * (got * 97))
                got += 1
        _, err = peer.communicate(timeout=30)
    finally:
        peer.kill()
        peer.communicate()
    assert got == 200 and peer.returncode == 0, err


def test_client_not_allowed_is_refused_and_the_listener_keeps_serving():
    url = free_url()
    lis = curve_listener(url, [CLIENT[0]])
    t0 = time.monotonic()
    with pytest.raises(tachyon.HandshakeError, match="not among the listener's allowed_clients"):
        tachyon.Bus.connect(url, timeout=5, curve_server_key=SERVER[0], curve_keypair=OTHER)
    took = time.monotonic() - t0
    # a fresh keypair (no curve_keypair) is a stranger too
    with pytest.raises(tachyon.HandshakeError, match="allowed_clients"):
        tachyon.Bus.connect(url, timeout=5, curve_server_key=SERVER[0])
    print(f"refused in {took:.3f} s")
    assert took < 2.5  # a refusal is final: no waiting out the 5 s timeout
    with tachyon.Bus.connect(url, timeout=5, curve_server_key=SERVER[0], curve_keypair=CLIENT,
                              liveness=1.0) as con:
        lis.join()
        with lis.bus as bus:
            con.send(b"after two strangers", timeout=5)
            assert bus.recv(timeout=5).data == b"after two strangers"


def test_wrong_server_key_times_out_with_a_hint():
    url = free_url()
    lis = curve_listener(url, [CLIENT[0]], timeout=3)
    with pytest.raises(tachyon.ConnectTimeoutError, match="not the listener's public key"):
        tachyon.Bus.connect(url, timeout=1, curve_server_key=OTHER[0], curve_keypair=CLIENT)
    lis.join()
    assert isinstance(lis.error, tachyon.ConnectTimeoutError)


def test_plain_connector_to_curve_listener_and_back():
    """CURVE at one end only: HandshakeError when libzmq reports the
    mismatch, else (the listener hung up before its greeting was out,
    common under load) ConnectTimeoutError; either way the message says
    what is wrong."""
    for listen_curve in (True, False):
        url = free_url()
        lis = (curve_listener(url, "any", timeout=1.5) if listen_curve
               else Listener(url, timeout=1.5))
        keys = {} if listen_curve else dict(curve_server_key=SERVER[0], curve_keypair=CLIENT)
        with pytest.raises((tachyon.HandshakeError, tachyon.ConnectTimeoutError),
                           match="one end uses CURVE and the other does not"):
            tachyon.Bus.connect(url, timeout=2, **keys)
        lis.join()


def test_any_client_with_the_server_key():
    url = free_url()
    lis = curve_listener(url, "any")
    with tachyon.Bus.connect(url, timeout=5, curve_server_key=SERVER[0], liveness=1.0) as con:
        lis.join()
        with lis.bus as bus:
            con.send(b"anyone", timeout=5)
            assert bus.recv(timeout=5).data == b"anyone"


def relay(src, dst, keep=None):
    """Copy src to dst until either side ends (keep sees every chunk), then
    shut both down."""
    try:
        while data := src.recv(65536):
            if keep is not None:
                keep(data)
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Tap(threading.Thread):
    """A TCP relay between a connector and a listener that keeps a copy of
    every byte it carries."""

    def __init__(self, upstream_port):
        super().__init__(daemon=True)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        self.upstream = upstream_port
        self.seen = bytearray()
        self.lock = threading.Lock()
        self.start()

    def keep(self, data):
        with self.lock:
            self.seen += data

    def run(self):
        self.down, _ = self.server.accept()
        self.up = socket.create_connection(("127.0.0.1", self.upstream))
        self.pumps = [threading.Thread(target=relay, args=(*p, self.keep))
                      for p in ((self.down, self.up), (self.up, self.down))]
        for t in self.pumps:
            t.start()

    def close(self):
        for t in getattr(self, "pumps", []):
            t.join(5)
        for s in (self.server, getattr(self, "down", None), getattr(self, "up", None)):
            if s is not None:
                s.close()


class HangUpFirst(threading.Thread):
    """A TCP relay that resets its first `cuts` connections as soon as the
    connector's greeting arrives, then relays every later one."""

    def __init__(self, upstream_port, cuts):
        super().__init__(daemon=True)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        self.upstream, self.cuts = upstream_port, cuts
        self.socks = []
        self.start()

    def run(self):
        accepted = 0
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed
            accepted += 1
            if accepted <= self.cuts:
                conn.recv(64)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()  # a reset, mid-handshake
                continue
            up = socket.create_connection(("127.0.0.1", self.upstream))
            self.socks += [conn, up]
            for pair in ((conn, up), (up, conn)):
                threading.Thread(target=relay, args=pair, daemon=True).start()

    def close(self):
        for s in [self.server] + self.socks:
            s.close()


def test_handshakes_broken_off_are_retried():
    """A connection reset mid-handshake (here a relay that resets its first
    five connections, as a proxy does while its listener is not up) is
    retried, and the bus then works: a break-off is never taken as final,
    nor as the loss of a session that has not begun."""
    url = free_url()
    lis = curve_listener(url, [CLIENT[0]], timeout=10)
    resets = HangUpFirst(int(url.rsplit(":", 1)[1]), 5)
    try:
        with tachyon.Bus.connect(resets.url, timeout=10, curve_server_key=SERVER[0],
                                 curve_keypair=CLIENT, liveness=1.0) as con:
            lis.join()
            with lis.bus as bus:
                time.sleep(1.5)  # longer than the liveness: nothing counts as lost
                con.send(b"after five resets", timeout=5)
                assert bus.recv(timeout=5).data == b"after five resets"
    finally:
        resets.close()


@pytest.mark.parametrize("curve", [True, False])
def test_payloads_cross_the_wire_encrypted(curve):
    """Through a relay that keeps every byte: with CURVE the payload never
    appears in the clear; without it, it does (so the check can fail)."""
    url = free_url()
    secret = b"a payload nobody on the wire may read " * 4
    keys = dict(curve_secret=SERVER[1], allowed_clients=[CLIENT[0]]) if curve else {}
    lis = Listener(url, **keys)
    tap = Tap(int(url.rsplit(":", 1)[1]))
    try:
        ckeys = dict(curve_server_key=SERVER[0], curve_keypair=CLIENT) if curve else {}
        with tachyon.Bus.connect(tap.url, timeout=5, liveness=1.0, **ckeys) as con:
            lis.join()
            with lis.bus as bus:
                con.send(secret, timeout=5)
                assert bus.recv(timeout=5).data == secret
    finally:
        tap.close()
    with tap.lock:
        seen = bytes(tap.seen)
    print(f"the relay carried {len(seen)} bytes")
    assert (secret[:40] in seen) is not curve


def test_argument_errors():
    url = free_url()
    with pytest.raises(ValueError, match="needs allowed_clients"):
        tachyon.Bus.listen(url, 1 << 16, curve_secret=SERVER[1])
    with pytest.raises(ValueError, match="needs curve_secret"):
        tachyon.Bus.listen(url, 1 << 16, allowed_clients="any")
    with pytest.raises(ValueError, match="or \"any\""):
        tachyon.Bus.listen(url, 1 << 16, curve_secret=SERVER[1], allowed_clients="all")
    with pytest.raises(ValueError, match="empty"):
        tachyon.Bus.listen(url, 1 << 16, curve_secret=SERVER[1], allowed_clients=[])
    with pytest.raises(ValueError, match="40-character Z85"):
        tachyon.Bus.listen(url, 1 << 16, curve_secret="short", allowed_clients="any")
    with pytest.raises(ValueError, match="not Z85"):
        tachyon.Bus.listen(url, 1 << 16, curve_secret="~" * 40, allowed_clients="any")
    with pytest.raises(ValueError, match="not the secret key's"):
        tachyon.Bus.connect(url, curve_server_key=SERVER[0], curve_keypair=(CLIENT[0], OTHER[1]))
    with pytest.raises(ValueError, match="needs curve_server_key"):
        tachyon.Bus.connect(url, curve_keypair=CLIENT)
    with pytest.raises(ValueError, match="insecure=True"):
        tachyon.Bus.listen("tcp://0.0.0.0:1", 1 << 16)
    with pytest.raises(TypeError, match="tcp:// addresses only"):
        tachyon.Bus.listen("/tmp/not-tcp.sock", 1 << 16, curve_secret=SERVER[1], allowed_clients="any")
    with pytest.raises(TypeError, match="tcp:// addresses only"):
        tachyon.Bus.connect("/tmp/not-tcp.sock", curve_server_key=SERVER[0])
