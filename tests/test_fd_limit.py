"""A process out of file descriptors (a low `ulimit -n`) gets one answer.

Wherever the limit bites, creating the listening socket, the memfd, or
accepting the peer (Linux refuses the accept at once, before anyone
connects), the listener raises HandshakeError at once, with errno EMFILE and a sentence
naming the limit. A connector out of descriptors, before connecting or when
the ring's memfd arrives, says the same about itself instead of blaming the
listener. Each case runs in a subprocess that lowers RLIMIT_NOFILE."""
import errno
import subprocess
import sys
import threading

import pytest

import tachyon
from conftest import ISOLATED, isolated_env


def run(role, path, k):
    proc = subprocess.run([sys.executable, str(ISOLATED / "fd_limit.py"), role, path, str(k)],
                          capture_output=True, text=True, timeout=60, env=isolated_env())
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split("\t")


def check_refusal(out, role):
    print(f"{role}: {out}")
    name, err, seconds, message = out
    assert name == "HandshakeError"
    assert int(err) == errno.EMFILE
    assert "ulimit -n" in message and "no file descriptor left" in message
    assert float(seconds) < 1.0  # at once, not at the end of the 5 s timeout


# 0: the socket, 1: the memfd, 2: the accepted peer's descriptor
@pytest.mark.parametrize("k", [0, 1, 2])
def test_listener_out_of_descriptors(sock_path, k):
    check_refusal(run("listen", sock_path, k), "listener")


def test_listener_with_enough_descriptors(sock_path):
    box = {}

    def connect():
        try:
            box["bus"] = tachyon.Bus.connect(sock_path, timeout=10)
        except tachyon.TachyonError as exc:
            box["exc"] = exc

    t = threading.Thread(target=connect)
    t.start()
    out = run("listen", sock_path, 3)
    t.join()
    if "bus" in box:
        box["bus"].close()
    assert out == ["ok"], out
    assert "exc" not in box


# 0: the socket; 1 and 2: the ring's memfd (after the listener's pidfd)
@pytest.mark.parametrize("k", [0, 1, 2])
def test_connector_out_of_descriptors(sock_path, k):
    box = {}

    def listen():
        try:
            box["bus"] = tachyon.Bus.listen(sock_path, 4096, timeout=3)
        except tachyon.TachyonError as exc:
            box["exc"] = exc

    t = threading.Thread(target=listen)
    t.start()
    try:
        check_refusal(run("connect", sock_path, k), "connector")
    finally:
        t.join()
        if "bus" in box:
            box["bus"].close()
