"""One sender and one receiver per bus (ABI.md, "Roles"): every pair of calls
that claim the same role on the two ends, role= on listen and connect, and
simultaneous first sends and receives from two processes. The refused end
raises RoleError, keeps no role and works in the other role; the winner's
messages arrive intact."""
import mmap
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import tachyon
from conftest import isolated_env

CAP = 1 << 12
FIRST = b"the winner's first message"
PEER_SENDS = ("the other end already sends on this bus; a bus carries one direction: open a second bus "
              "for replies")
PEER_RECEIVES = ("the other end already receives on this bus; a bus carries one direction: open a second "
                 "bus for the other direction")


def open_pair(path, listen_role=None, connect_role=None):
    """(listener end, connector end) in this process, roles as given."""
    box = {}

    def listen():
        try:
            box["l"] = tachyon.Bus.listen(path, CAP, timeout=10, role=listen_role)
        except BaseException as exc:  # surfaced below
            box["exc"] = exc

    t = threading.Thread(target=listen)
    t.start()
    try:
        c = tachyon.Bus.connect(path, timeout=10, role=connect_role)
    finally:
        t.join()
    if "exc" in box:
        c.close()
        raise box["exc"]
    return box["l"], c


# ---------------------------------------------------------------------------
# the ways of claiming; each returns normally when the end got the role


def _zero_copy(guard):
    with guard as g:
        with memoryview(g) as mv:
            mv[:] = FIRST
        g.actual_size = len(FIRST)


SEND_WAYS = {
    "send": lambda b: b.send(FIRST, 7),
    "send_many": lambda b: b.send_many([FIRST], 7),
    "send_zero_copy": lambda b: _zero_copy(b.send_zero_copy(len(FIRST), 7)),
    "acquire_tx": lambda b: _zero_copy(b.acquire_tx(len(FIRST), 7)),
}


def _no_message(call):
    try:
        call()
    except tachyon.TachyonTimeoutError:
        pass


RECV_WAYS = {
    "recv": lambda b: _no_message(lambda: b.recv(timeout=0)),
    "try_recv": lambda b: b.try_recv(),
    "iter": lambda b: next(iter(b)),  # blocks until a message when it wins
    "recv_zero_copy": lambda b: _no_message(lambda: b.recv_zero_copy(timeout=0)),
    "drain_batch": lambda b: _no_message(lambda: b.drain_batch(timeout=0)),
    "acquire_rx": lambda b: _no_message(lambda: b.acquire_rx(timeout=0)),
}


def bounded(claim, bus, seconds=5):
    """claim(bus) in a thread: a claim that is wrongly let through may wait
    for a message that never comes (iteration has no timeout); then the bus
    is closed and the test fails instead of hanging."""
    box = {}

    def run():
        try:
            claim(bus)
        except BaseException as exc:  # re-raised in the caller's thread
            box["exc"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(seconds)
    if t.is_alive():
        bus.close()
        t.join(seconds)
        pytest.fail(f"the claim was not refused: it waited {seconds} s for a message")
    exc = box.pop("exc", None)
    if exc is not None:
        try:
            raise exc
        finally:
            exc = None


def expect_refused(bus, claim, wording):
    with pytest.raises(tachyon.RoleError) as ei:
        bounded(claim, bus)
    text, is_tachyon_error = str(ei.value), isinstance(ei.value, tachyon.TachyonError)
    del ei  # its traceback holds this frame: a cycle that would keep the bus (and its fds) alive
    assert text == wording
    assert is_tachyon_error
    assert bus.role is None


@pytest.mark.parametrize("winner_first", [True, False], ids=["listener-wins", "connector-wins"])
@pytest.mark.parametrize("loser_way", list(SEND_WAYS))
@pytest.mark.parametrize("winner_way", list(SEND_WAYS))
def test_two_senders(sock_path, winner_way, loser_way, winner_first):
    lb, cb = open_pair(sock_path)
    win, lose = (lb, cb) if winner_first else (cb, lb)
    try:
        SEND_WAYS[winner_way](win)
        assert win.role == "producer"
        expect_refused(lose, SEND_WAYS[loser_way], PEER_SENDS)
        expect_refused(lose, SEND_WAYS[loser_way], PEER_SENDS)  # nothing sticks
        msg = lose.recv(timeout=5)
        assert (msg.type_id, msg.data) == (7, FIRST)
        assert lose.role == "consumer"
        win.send(b"second", 8)
        assert lose.recv(timeout=5).data == b"second"
        assert win.stats.state == 2  # ready: the refused end did not break the ring
    finally:
        lb.close()
        cb.close()


@pytest.mark.parametrize("winner_first", [True, False], ids=["listener-wins", "connector-wins"])
@pytest.mark.parametrize("loser_way", list(RECV_WAYS))
@pytest.mark.parametrize("winner_way", list(RECV_WAYS))
def test_two_receivers(sock_path, winner_way, loser_way, winner_first):
    lb, cb = open_pair(sock_path)
    win, lose = (lb, cb) if winner_first else (cb, lb)
    box = {}
    t = None
    try:
        if winner_way == "iter":
            # Iteration waits for a message: it runs beside us, and has the
            # role once its first call is inside.
            t = threading.Thread(target=lambda: box.setdefault("msg", next(iter(win))))
            t.start()
            deadline = time.monotonic() + 5
            while win.role is None and time.monotonic() < deadline:
                time.sleep(0.001)
        else:
            RECV_WAYS[winner_way](win)
        assert win.role == "consumer"
        expect_refused(lose, RECV_WAYS[loser_way], PEER_RECEIVES)
        expect_refused(lose, RECV_WAYS[loser_way], PEER_RECEIVES)
        lose.send(b"back", 9)
        assert lose.role == "producer"
        if t is not None:
            t.join(5)
            msg = box["msg"]
        else:
            msg = win.recv(timeout=5)
        assert (msg.type_id, msg.data) == (9, b"back")
    finally:
        if t is not None and t.is_alive():
            lb.close()
            cb.close()
            t.join(5)
        lb.close()
        cb.close()


def test_own_role_wording(sock_path):
    """An end that has a role is told so, also as a RoleError."""
    lb, cb = open_pair(sock_path)
    try:
        lb.send(b"x")
        with pytest.raises(tachyon.RoleError, match="this end is the producer of its bus and cannot receive; "
                                                   "open a second bus for the other direction"):
            lb.recv(timeout=0)
        assert cb.recv(timeout=5).data == b"x"
        with pytest.raises(tachyon.RoleError, match="this end is the consumer of its bus and cannot send; "
                                                   "open a second bus for the other direction"):
            cb.send(b"y")
    finally:
        lb.close()
        cb.close()


# ---------------------------------------------------------------------------
# role= on listen and connect


@pytest.mark.parametrize("role", ["producer", "consumer"])
def test_listen_role_refuses_a_connector_claim(sock_path, role):
    """The listener claimed before the connector could see the ring: any
    claim of the same role by the connector, even its very first call, loses."""
    lb, cb = open_pair(sock_path, listen_role=role)
    try:
        assert lb.role == role
        if role == "producer":
            expect_refused(cb, SEND_WAYS["send"], PEER_SENDS)
            lb.send(b"down", 1)
            assert cb.recv(timeout=5).data == b"down"
        else:
            expect_refused(cb, RECV_WAYS["try_recv"], PEER_RECEIVES)
            cb.send(b"up", 1)
            assert lb.recv(timeout=5).data == b"up"
    finally:
        lb.close()
        cb.close()


@pytest.mark.parametrize("role", ["producer", "consumer"])
def test_connect_role_conflict(sock_path, role):
    """connect(role=) claims at once; the listener holds the role, so connect
    raises RoleError and leaves no bus behind."""
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("l", tachyon.Bus.listen(sock_path, CAP, timeout=10,
                                                                               role=role)))
    t.start()
    try:
        with pytest.raises(tachyon.RoleError) as ei:
            tachyon.Bus.connect(sock_path, timeout=10, role=role)
        text = str(ei.value)
        del ei  # see expect_refused
    finally:
        t.join()
    lb = box["l"]
    try:
        assert text == (PEER_SENDS if role == "producer" else PEER_RECEIVES)
        assert lb.role == role
        # The refused connector went away: the listener sees its peer close,
        # not a corrupt ring.
        with pytest.raises(tachyon.PeerClosedError):
            if role == "producer":
                for _ in range(3):
                    lb.send(b"anyone?")
            else:
                lb.recv(timeout=5)
    finally:
        lb.close()


def test_listen_and_connect_roles_that_fit(sock_path):
    lb, cb = open_pair(sock_path, listen_role="consumer", connect_role="producer")
    try:
        cb.send(b"fits", 3)
        assert lb.recv(timeout=5).data == b"fits"
    finally:
        lb.close()
        cb.close()


# ---------------------------------------------------------------------------
# two processes claiming at the same instant

RACE_TRIALS = 50
RACE_WALL_S = 60

# The child: one process that serves one bus per trial. Per trial it reads
# "<path> <trial>" on stdin, connects, meets the parent at a barrier in a
# shared page, makes its first call and reports "won" or "lost"; the loser
# then takes the other role and the message between them is checked.
CHILD = textwrap.dedent("""
    import ctypes, mmap, sys
    import tachyon
    mm = mmap.mmap(int(sys.argv[1]), mmap.PAGESIZE)
    words = (ctypes.c_uint32 * 2).from_buffer(mm)
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        path, trial = line.split()
        trial = int(trial)
        bus = tachyon.Bus.connect(path, timeout=10)
        words[1] = trial + 1
        while words[0] < trial + 1:
            pass
        sends = trial % 2 == 0
        try:
            if sends:
                bus.send(b"child %d" % trial, trial)
            else:
                bus.try_recv()
            print("won", flush=True)
            if not sends:
                print(bus.recv(timeout=10).data.decode(), flush=True)
        except tachyon.RoleError:
            print("lost", flush=True)
            if sends:
                print(bus.recv(timeout=10).data.decode(), flush=True)
            else:
                bus.send(b"child %d" % trial, trial)
        sys.stdin.readline()  # the parent is done with this bus
        bus.close()
    del words
    mm.close()
""")


def test_simultaneous_first_claims_across_processes(sock_path, tmp_path):
    page = tmp_path / "barrier"
    page.write_bytes(bytes(mmap.PAGESIZE))
    fd = os.open(page, os.O_RDWR)
    mm = mmap.mmap(fd, mmap.PAGESIZE)
    words = memoryview(mm).cast("I")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(fd)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=isolated_env(), pass_fds=[fd])
    wins = {"parent": 0, "child": 0}
    trials = 0
    t0 = time.monotonic()
    try:
        for trial in range(RACE_TRIALS):
            if time.monotonic() - t0 > RACE_WALL_S:
                break
            path = f"{sock_path}.{trial}"
            child.stdin.write(f"{path} {trial}\n")
            child.stdin.flush()
            bus = tachyon.Bus.listen(path, CAP, timeout=10)
            try:
                words[0] = trial + 1
                while words[1] < trial + 1:
                    pass
                sends = trial % 2 == 0
                try:
                    if sends:
                        bus.send(b"parent %d" % trial, trial)
                    else:
                        bus.try_recv()
                    mine = "won"
                except tachyon.RoleError as exc:
                    mine = "lost"
                    assert str(exc) == (PEER_SENDS if sends else PEER_RECEIVES)
                theirs = child.stdout.readline().strip()
                assert {mine, theirs} == {"won", "lost"}, f"trial {trial}: parent {mine}, child {theirs}"
                wins["parent" if mine == "won" else "child"] += 1
                if mine == "lost" and sends:  # the winner's message, intact
                    msg = bus.recv(timeout=10)
                    assert (msg.type_id, msg.data) == (trial, b"child %d" % trial)
                elif mine == "lost":
                    bus.send(b"parent %d" % trial, trial)
                    assert child.stdout.readline().strip() == f"parent {trial}"
                elif sends:
                    assert child.stdout.readline().strip() == f"parent {trial}"
                else:
                    msg = bus.recv(timeout=10)
                    assert (msg.type_id, msg.data) == (trial, b"child %d" % trial)
            finally:
                child.stdin.write("done\n")
                child.stdin.flush()
                bus.close()
            trials += 1
    finally:
        child.stdin.close()
        child.wait(30)
        child.stdout.close()
        words.release()
        mm.close()
        os.close(fd)
    print(f"{trials} trials in {time.monotonic() - t0:.1f} s, each with one winner: "
          f"the parent won {wins['parent']}, the child {wins['child']}")
    assert child.returncode == 0
    assert trials == RACE_TRIALS
