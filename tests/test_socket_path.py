"""The socket path cannot be hijacked or left broken (R7). Live or stale is
decided without connecting to the path: a probe connection would be taken as
a live listener's one peer."""
import os
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

import tachyon
from conftest import isolated_env, run_isolated


def wait_for(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def listening_on(path):
    """Is a socket listening at path, per the kernel's table (as the bus decides)?"""
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[-1] == path and int(parts[3], 16) & 0x10000:
                return True
    return False


class Listener(threading.Thread):
    """Bus.listen in a thread; .bus or .exc afterwards."""

    def __init__(self, path, **kw):
        super().__init__()
        self.path, self.kw, self.bus, self.exc = path, kw, None, None
        self.start()
        wait_for(lambda: listening_on(path) or self.exc is not None, what="the listener")

    def run(self):
        try:
            self.bus = tachyon.Bus.listen(self.path, 4096, timeout=10, **self.kw)
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            self.exc = exc


def test_second_listener_on_our_live_path(sock_path):
    first = Listener(sock_path)
    st = os.lstat(sock_path)
    with pytest.raises(tachyon.HandshakeError) as ei:
        tachyon.Bus.listen(sock_path, 4096, timeout=0)
    print(f"second listener: {ei.value}")
    assert sock_path in str(ei.value) and "live listener" in str(ei.value)
    now = os.lstat(sock_path)
    assert (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev), "the live listener's file was replaced"
    assert first.is_alive(), "the refused listener disturbed the first one"
    with tachyon.Bus.connect(sock_path, timeout=5) as prod:  # the first listener still works
        first.join()
        assert first.exc is None, first.exc
        with first.bus as cons:
            prod.send(b"still works")
            assert cons.recv(timeout=5).data == b"still works"


@pytest.mark.parametrize("listening", [True, False], ids=["listening", "bound-only"])
def test_second_listener_on_foreign_live_path(sock_path, listening):
    """A 0.5.1-style listener (a plain Python AF_UNIX socket), or one between
    its bind and its listen: refused without touching it or connecting to it."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(sock_path)
        if listening:
            s.listen(1)
        with pytest.raises(tachyon.HandshakeError) as ei:
            tachyon.Bus.listen(sock_path, 4096, timeout=0)
        assert sock_path in str(ei.value)
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
        if listening:
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.accept()  # nobody probed it: its backlog is empty
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(sock_path)  # and it still serves a client
            conn, _ = s.accept()
            conn.close()
            c.close()
    finally:
        s.close()


@pytest.mark.parametrize("kind", ["ours", "plain"])
def test_stale_socket_of_killed_listener_is_replaced(sock_path, kind):
    code = {
        "ours": "import sys, tachyon; tachyon.Bus.listen(sys.argv[1], 4096, timeout=30)",
        "plain": "import socket, sys, time; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); "
                 "s.listen(1); time.sleep(30)",
    }[kind]
    env = isolated_env()
    proc = subprocess.Popen([sys.executable, "-c", code, sock_path], env=env)
    try:
        wait_for(lambda: listening_on(sock_path), what="the doomed listener")
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wait_for(lambda: not listening_on(sock_path), what="the kernel to drop the socket")
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode), "the killed listener's file should be left behind"
    old = os.lstat(sock_path)
    time.sleep(0.01)  # ext4 hands the freed inode number to the new file: tell them apart by ctime
    listener = Listener(sock_path)
    assert listener.exc is None, listener.exc
    new = os.lstat(sock_path)
    assert (new.st_ino, new.st_ctime_ns) != (old.st_ino, old.st_ctime_ns), "the stale file was not replaced"
    with tachyon.Bus.connect(sock_path, timeout=5) as prod:
        listener.join()
        with listener.bus as cons:
            prod.send(b"new listener")
            assert cons.recv(timeout=5).data == b"new listener"


def make_thing(kind, path, tmp_path):
    target = tmp_path / "target"
    if kind == "regular-file":
        with open(path, "w") as f:
            f.write("keep me")
    elif kind == "directory":
        os.mkdir(path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink-dangling":
        os.symlink(str(target), path)
    elif kind == "symlink-to-file":
        target.write_text("keep me")
        os.symlink(str(target), path)
    elif kind == "symlink-to-stale-socket":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(target))
        s.close()  # a stale socket file: it would be replaced if the link were followed
        os.symlink(str(target), path)


def describe(path):
    st = os.lstat(path)
    return (stat.S_IFMT(st.st_mode), st.st_ino, os.readlink(path) if os.path.islink(path) else None)


@pytest.mark.parametrize("kind", ["regular-file", "directory", "fifo", "symlink-dangling", "symlink-to-file",
                                  "symlink-to-stale-socket"])
def test_non_socket_at_path_is_refused_and_left(sock_path, tmp_path, kind):
    make_thing(kind, sock_path, tmp_path)
    before = describe(sock_path)
    target_before = sorted(os.listdir(tmp_path))
    try:
        with pytest.raises(tachyon.HandshakeError) as ei:
            tachyon.Bus.listen(sock_path, 4096, timeout=0)
        print(f"{kind}: {ei.value}")
        assert sock_path in str(ei.value)
        assert describe(sock_path) == before, "the thing at the path was changed"
        assert sorted(os.listdir(tmp_path)) == target_before, "the link's target was changed"
    finally:
        if os.path.isdir(sock_path) and not os.path.islink(sock_path):
            os.rmdir(sock_path)


def test_socket_file_is_0600_whatever_the_umask(sock_path):
    """With umask 0 the file would be 0777 if the mode came from the umask;
    polled from its first appearance."""
    modes = []
    deadline = time.monotonic() + 10

    def watch():  # the file stays until a peer connects: this sees it
        while time.monotonic() < deadline:
            try:
                modes.append(stat.S_IMODE(os.lstat(sock_path).st_mode))
                return
            except FileNotFoundError:
                pass

    old = os.umask(0)
    try:
        w = threading.Thread(target=watch)
        w.start()
        listener = Listener(sock_path)
    finally:
        os.umask(old)
    w.join(10)
    assert listener.exc is None, listener.exc
    mode = stat.S_IMODE(os.lstat(sock_path).st_mode)
    print(f"socket file mode at first sight {[oct(m) for m in modes]}, while listening {oct(mode)}")
    assert modes == [0o600] and mode == 0o600
    with tachyon.Bus.connect(sock_path, timeout=5) as prod:
        listener.join()
        listener.bus.close()
    assert not os.path.exists(sock_path), "the listener unlinks its path after the handshake"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing to another uid needs root (CI runs as root)")
def test_peer_uid_check():
    proc = run_isolated("uid_check.py", timeout=60)
    print(proc.stdout)
    assert proc.stdout.strip().endswith("uid ok")
