"""R7, the credential check, in a fresh process (it forks, and changes uids
in the children only).

The listener's socket file is made 0666 right after listen starts (from
another thread), so a child of another uid can connect: its refusal then
provably comes from the SO_PEERCRED check, not from the file mode. Steps:
  1. without the chmod, a uid-65534 child cannot even connect (0600 works);
  2. after the chmod, a uid-65534 child connects and is refused
     (HandshakeError); the listener is not used up: a same-uid peer that
     connects next gets the bus;
  3. with allow_uids=[65534] a uid-65534 child is accepted and its message
     arrives.
Prints one line per step and "uid ok"; the descriptor count is unchanged.
"""
import os
import stat
import sys
import threading
import time

import tachyon

OTHER = 65534
path = f"/tmp/tachyon-uid-{os.getpid()}.sock"


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def wait_for_socket():
    deadline = time.monotonic() + 10
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "the listener never created its socket file"
        time.sleep(0.001)


def child_connect(send):
    """Fork a child that becomes uid OTHER and connects; returns (exit code, its report)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            os.setgid(OTHER)
            os.setuid(OTHER)
            assert os.getuid() == OTHER and os.geteuid() == OTHER
            try:
                bus = tachyon.Bus.connect(path, timeout=2)
            except tachyon.TachyonError as exc:
                report, code = f"{type(exc).__name__}: {exc}", 10
            else:
                with bus:
                    if send:
                        bus.send(b"from uid %d" % os.getuid())
                report = "connected"
            os.write(w, report.encode())
        except BaseException as exc:  # noqa: BLE001
            os.write(w, repr(exc).encode())
            code = 20
        os._exit(code)
    os.close(w)
    report = b""
    while chunk := os.read(r, 4096):
        report += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status), report.decode()


def listen_in_thread(**kw):
    box = {}

    def run():
        try:
            box["bus"] = tachyon.Bus.listen(path, 4096, timeout=10, **kw)
        except BaseException as exc:  # noqa: BLE001
            box["exc"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, box


fds = fd_count()

# 1. the file mode alone keeps the other uid out
t, box = listen_in_thread()
wait_for_socket()
mode = stat.S_IMODE(os.lstat(path).st_mode)
assert mode == 0o600, oct(mode)
code, report = child_connect(send=False)
assert code == 10 and "Permission denied" in report, (code, report)
print(f"1. socket file {oct(mode)}: uid {OTHER} cannot connect ({report})", flush=True)
peer = tachyon.Bus.connect(path, timeout=5)
t.join()
assert "exc" not in box, box
box["bus"].close()
peer.close()
del peer, box

# 2. after chmod 0666 it connects, and is refused by the credential check
t, box = listen_in_thread()
wait_for_socket()
os.chmod(path, 0o666)
code, report = child_connect(send=False)
assert code == 10 and report.startswith("HandshakeError") and "without sending the handshake" in report, (code,
                                                                                                       report)
assert t.is_alive() and os.path.exists(path), "the refused peer used up the listener"
print(f"2. socket file 0o666: uid {OTHER} connects and is refused ({report})", flush=True)
peer = tachyon.Bus.connect(path, timeout=5)  # our own uid: accepted by the same listener
t.join()
assert "exc" not in box, box
peer.send(b"same uid")
assert box["bus"].recv(timeout=5).data == b"same uid"
print("   the listener then accepted a peer of our own uid", flush=True)
box["bus"].close()
peer.close()
del peer, box

# 3. allowed explicitly
t, box = listen_in_thread(allow_uids=[OTHER])
wait_for_socket()
os.chmod(path, 0o666)
code, report = child_connect(send=True)
t.join()
assert code == 0 and report == "connected", (code, report)
assert "exc" not in box, box
with box["bus"] as bus:
    msg = bus.recv(timeout=5)
    assert msg.data == b"from uid %d" % OTHER, msg
    assert bus.peer_pid is not None
print(f"3. allow_uids=[{OTHER}]: accepted, message {msg.data!r}", flush=True)
del bus, box

import gc  # noqa: E402

gc.collect()
assert fd_count() == fds, (fds, fd_count())
assert not os.path.exists(path)
print("uid ok", flush=True)
sys.exit(0)
