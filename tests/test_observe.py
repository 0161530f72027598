"""Watching a bus from outside: BusStats' counters and state enums, and the
observer commands (python -m tachyon list / top / metrics) against real
two-process buses. ABI.md, "Traffic counters and observing a bus"."""
import enum
import hashlib
import json
import mmap
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

import tachyon
from conftest import ISOLATED, isolated_env

END = str(ISOLATED / "observed_end.py")


def make_pair(path, capacity=1 << 16):
    got = []
    t = threading.Thread(target=lambda: got.append(tachyon.Bus.listen(path, capacity, timeout=10)))
    t.start()
    prod = tachyon.Bus.connect(path, timeout=10)
    t.join()
    return prod, got[0]


def test_stats_counters_and_state_enums(sock_path):
    prod, cons = make_pair(sock_path)
    with prod, cons:
        for i in range(40):
            prod.send(b"x" * (i + 1), type_id=i)
        for i in range(40):
            assert cons.recv(timeout=5).data == b"x" * (i + 1)
        assert cons.try_recv() is None  # an empty look publishes tail and the counters
        total = sum(range(1, 41))
        for end in (prod, cons):
            s = end.stats
            print(s)
            assert (s.sent_messages, s.sent_bytes) == (40, total)
            assert (s.received_messages, s.received_bytes) == (40, total)
            assert len(s) == 7  # the counters stay outside the tuple
            ring_capacity, _, consumer_state, state, *_ = s
            assert ring_capacity == 1 << 16
            assert state is tachyon.BusState.READY and state == 2
            assert isinstance(consumer_state, tachyon.ConsumerState)
            assert issubclass(tachyon.BusState, enum.IntEnum)
            assert "sent_messages=40" in repr(s)
        with pytest.raises(AttributeError):
            s.sent_messages = 0


class Proc:
    """A bus end in its own interpreter (tests/isolated/observed_end.py)."""

    def __init__(self, *args, uid=None):
        env = isolated_env()
        if uid is not None:
            env["TACHYON_TEST_UID"] = str(uid)
        self.p = subprocess.Popen([sys.executable, END, *args], stdout=subprocess.PIPE, text=True, env=env)
        self.pid = self.p.pid

    def expect(self, word, timeout=30):
        box = []
        t = threading.Thread(target=lambda: box.append(self.p.stdout.readline().strip()), daemon=True)
        t.start()
        t.join(timeout)
        assert box and box[0] == word, f"expected {word!r} from {self.pid}, got {box}"

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(10)
        self.p.stdout.close()


@pytest.fixture
def procs():
    started = []
    yield lambda *a, **k: started.append(Proc(*a, **k)) or started[-1]
    for p in started:
        p.kill()


# The observer as another uid: it becomes that uid once its modules are loaded
# (the interpreter's own files may not be readable by that uid).
AS_UID = ("import os, sys, json, argparse, gettext, locale, re, shutil, textwrap; "
          "import tachyon.__main__ as m, tachyon.monitor; "
          "os.setgid({0}); os.setuid({0}); sys.exit(m.main(sys.argv[1:]))")


def observe(*args, timeout=60, uid=None):
    head = ["-m", "tachyon"] if uid is None else ["-c", AS_UID.format(uid)]
    proc = subprocess.run([sys.executable, *head, *args], capture_output=True, text=True,
                          timeout=timeout, env=isolated_env())
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def buses_at(doc, path):
    return [b for b in doc["buses"] if b["path"] == path]


def pair(procs, path, lis_args, con_args, uid=None):
    """Start the listener, then the connector; both are up on return."""
    lis = procs(*lis_args, uid=uid)
    con = procs(*con_args, uid=uid)  # connect retries until the socket exists
    lis.expect("ready")
    con.expect("ready")
    return lis, con


def stream(procs, path, uid=None):
    return pair(procs, path, ("listen-consumer", path), ("connect-producer", path), uid=uid)


def test_list_finds_a_streaming_bus(procs, sock_path):
    lis, con = stream(procs, sock_path)
    time.sleep(0.3)
    first = json.loads(observe("list", "--json"))
    time.sleep(0.5)
    second = json.loads(observe("list", "--json"))
    (a,), (b,) = buses_at(first, sock_path), buses_at(second, sock_path)
    print(f"sent_messages {a['sent_messages']} -> {b['sent_messages']} in 0.5 s; ends {b['ends']}")
    assert sorted(b["holders"]) == sorted([lis.pid, con.pid])
    ends = {e["side"]: e for e in b["ends"]}
    assert (ends["listener"]["pid"], ends["listener"]["role"], ends["listener"]["impl"]) == (lis.pid, "consumer", "ours")
    assert (ends["connector"]["pid"], ends["connector"]["role"], ends["connector"]["impl"]) == (con.pid, "producer", "ours")
    assert ends["listener"]["alive"] == ends["connector"]["alive"] == "alive"
    assert b["state"] == "ready" and b["capacity"] == 1 << 16
    assert 0 < a["sent_messages"] < b["sent_messages"]
    assert b["sent_bytes"] == 100 * b["sent_messages"]
    text = observe("list")
    line = [ln for ln in text.splitlines() if ln.startswith(sock_path + " ")]
    assert len(line) == 1 and f"listener {lis.pid} (ours, consumer, alive)" in line[0], text


def test_pinned_bytes_seen_from_outside(procs, sock_path):
    # 7 messages of 32 payload bytes take 128 ring bytes each (64-byte header, one
    # payload line). The consumer reads all 7 and keeps the second as a live view:
    # the first goes back, the second and the five after it are held back.
    lis, con = pair(procs, sock_path, ("listen-pin", sock_path, "7"), ("connect-idle", sock_path, "7"))
    con.expect("idle")
    lis.expect("pinned")
    (b,) = buses_at(json.loads(observe("list", "--json")), sock_path)
    print(f"holding one view: pinned {b['pinned_bytes']}, used {b['used']}")
    assert b["pinned_bytes"] == b["used"] == 6 * 128
    text = observe("list")
    assert "pinned 768 B" in [ln for ln in text.splitlines() if ln.startswith(sock_path + " ")][0], text
    os.kill(lis.pid, signal.SIGUSR1)
    lis.expect("released")
    (b,) = buses_at(json.loads(observe("list", "--json")), sock_path)
    print(f"after the drop: pinned {b['pinned_bytes']}, used {b['used']}")
    assert b["pinned_bytes"] == 0 and b["used"] == 0


def test_dead_peer_shows_as_dead(procs, sock_path):
    lis, con = stream(procs, sock_path)
    con.kill()
    lis.expect("dead")  # the consumer noticed, and keeps holding the ring
    (b,) = buses_at(json.loads(observe("list", "--json")), sock_path)
    ends = {e["side"]: e for e in b["ends"]}
    print(ends)
    assert ends["connector"]["pid"] == con.pid and ends["connector"]["alive"] == "dead"
    assert ends["listener"]["alive"] == "alive"
    assert b["holders"] == [lis.pid]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the bus and the observer as two other uids")
def test_bus_of_another_uid_is_listed_as_not_readable(procs, sock_path):
    # The ends run as one uid, the observer as another: it may not list their fds.
    lis, con = stream(procs, sock_path, uid=65534)
    doc = json.loads(observe("list", "--json", uid=65533))
    unreadable = {u["pid"]: u for u in doc["unreadable"]}
    print(f"{len(unreadable)} processes not readable; ours: {unreadable.get(lis.pid)}, {unreadable.get(con.pid)}")
    assert lis.pid in unreadable and con.pid in unreadable
    assert unreadable[lis.pid]["uid"] == 65534
    assert not buses_at(doc, sock_path)
    text = observe("list", uid=65533)
    assert "not readable" in text
    # root sees the same bus whole
    (b,) = buses_at(json.loads(observe("list", "--json")), sock_path)
    assert b["readable"] and sorted(b["holders"]) == sorted([lis.pid, con.pid])


def test_metrics_endpoint_over_loopback(procs, sock_path):
    lis, con = stream(procs, sock_path)
    srv = subprocess.Popen([sys.executable, "-m", "tachyon", "metrics", "--port", "0"],
                           stdout=subprocess.PIPE, text=True, env=isolated_env())
    try:
        line = srv.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)/metrics", line).group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            ctype = r.headers["Content-Type"]
            body = r.read().decode()
        assert ctype.startswith("text/plain; version=0.0.4")
        m = re.search(r'^tachyon_bus_sent_messages_total\{path="%s",inode="\d+"\} (\d+)$' % re.escape(sock_path),
                      body, re.M)
        assert m and int(m.group(1)) > 0, body
        print(m.group(0))
        assert re.search(r'^tachyon_bus_end_alive\{path="%s".*side="connector",pid="%d".*\} 1$'
                         % (re.escape(sock_path), con.pid), body, re.M)
        assert "# TYPE tachyon_bus_sent_messages_total counter" in body
    finally:
        srv.send_signal(signal.SIGINT)
        srv.wait(10)
        srv.stdout.close()


def _region_digest(pid):
    """Hash the whole region through a read-only mapping of the end's memfd."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        link = f"/proc/{pid}/fd/{fd}"
        try:
            if not os.readlink(link).startswith("/memfd:"):
                continue
        except OSError:
            continue
        f = os.open(link, os.O_RDONLY)
        try:
            size = os.fstat(f).st_size
            with mmap.mmap(f, size, mmap.MAP_SHARED, mmap.PROT_READ) as m:
                return hashlib.sha256(m).hexdigest(), size
        finally:
            os.close(f)
    raise AssertionError(f"pid {pid} holds no memfd")


def test_observing_writes_nothing(procs, sock_path):
    lis, con = pair(procs, sock_path, ("listen-idle", sock_path, "100"), ("connect-idle", sock_path, "100"))
    con.expect("idle")
    lis.expect("idle")
    time.sleep(0.2)
    before, size = _region_digest(lis.pid)
    (b,) = buses_at(json.loads(observe("list", "--json")), sock_path)
    assert b["sent_messages"] == b["received_messages"] == 100 and b["consumer_wait"] == "awake"
    observe("list")
    observe("top", "--json", "--count", "3", "--interval", "0.1")
    after, _ = _region_digest(lis.pid)
    print(f"region of {size} bytes: sha256 {before[:16]}... before and after three observer runs")
    assert after == before


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")
def test_top_in_a_terminal(procs, sock_path, tmp_path):
    lis, con = stream(procs, sock_path)
    session = f"tachyon-top-{os.getpid()}"
    status = tmp_path / "status"
    env = isolated_env()
    cmd = (f"PYTHONPATH={env['PYTHONPATH']} {sys.executable} -m tachyon top --interval 0.5; "
           f"echo $? > {status}")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "30", cmd], check=True)
    try:
        screen = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.5)
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                    text=True).stdout
            row = [ln for ln in screen.splitlines() if ln.startswith(sock_path[:30])]
            if row and re.search(r"\s[1-9][\d,]*\s", row[0].split(str(con.pid), 1)[-1]):
                break
        print(screen)
        assert "MSG/S" in screen and "tachyon top" in screen
        row = [ln for ln in screen.splitlines() if ln.startswith(sock_path[:30])]
        assert row, "the bus is not on the screen"
        assert str(lis.pid) in row[0] and str(con.pid) in row[0]
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not status.exists():
            time.sleep(0.1)
        assert status.exists(), "top did not quit on q"
        assert status.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_help_lists_every_command():
    out = observe("--help")
    for cmd in ("list", "top", "metrics", "bench"):
        assert re.search(rf"^\s+{cmd}\s", out, re.M), out
        sub = observe(cmd, "--help")
        assert f"python -m tachyon {cmd}" in sub


def test_a_tail_ahead_of_head_is_nothing_in_use():
    """Between two of our ends the consumer may release slots taken by their
    position stamps before head is published (ABI.md): the observer reads
    that moment as an empty ring, not a full one."""
    from tachyon.observe import Sample

    words = {"state": 2, "consumer_wait": 0, "sent_messages": 0, "sent_bytes": 0,
             "received_messages": 0, "received_bytes": 0}
    ahead = Sample(0.0, dict(words, head=4096, tail=4096 + 128, consumer_read=4096 + 128), 1 << 16)
    assert ahead.used == 0 and ahead.fill == 0.0
    behind = Sample(0.0, dict(words, head=4096 + 640, tail=4096, consumer_read=4096), 1 << 16)
    assert behind.used == 640
