"""Shared fixtures: a unique socket path, an in-process bus pair, and a check
that no test leaks file descriptors (docs/RELIABILITY.md R8)."""
import gc
import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import tachyon

# Imported once here so that their own descriptors are not counted as leaks.
import numpy  # noqa: F401

try:
    import torch  # noqa: F401
except ImportError:  # Python 3.10 job: the torch tests say why they skip
    # CI's main job sets TACHYON_REQUIRE_TORCH=1: there a missing torch (or
    # mypy) is a failure, never a quiet skip.
    if os.environ.get("TACHYON_REQUIRE_TORCH") == "1":
        raise
    torch = None
if os.environ.get("TACHYON_REQUIRE_TORCH") == "1":
    import mypy  # noqa: F401
# Likewise pyzmq in both CI legs: without it the tcp:// tests would skip.
if os.environ.get("TACHYON_REQUIRE_NET") == "1":
    import zmq  # noqa: F401
try:
    import zmq
    from zmq.utils.garbage import gc as _zmq_gc
except ImportError:
    pass
else:
    # pyzmq hands a large bytes payload to libzmq without a copy and tracks
    # it with a process-wide helper thread and context, started at the first
    # such send (in whichever test file sends one first); started here, its
    # descriptors are not counted as a test's leak.
    _zmq_gc.start()
    zmq.Frame(bytes(1 << 17), copy=False)  # and its first use opens one more
    # Likewise the ZeroMQ context the process's tcp buses share (tachyon.net):
    # made at the first tcp bus, kept for the process's life; its threads and
    # their descriptors start with its first socket.
    import tachyon.net

    tachyon.net._context(own=False).socket(zmq.DEALER).close(0)

REPO = Path(__file__).resolve().parent.parent
# The directory the tachyon under test was imported from: the checkout (an
# in-place build on PYTHONPATH) or site-packages (an installed sdist or
# wheel). Scripts run in fresh interpreters get the same one on PYTHONPATH,
# never a source tree that has no built extension in it.
IMPORT_ROOT = Path(tachyon.__file__).resolve().parent.parent
ISOLATED = Path(__file__).resolve().parent / "isolated"
_counter = itertools.count()


def _fd_count():
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def fd_unchanged(request):
    """Every test leaves the process's descriptor count as it found it.

    Set up first, torn down last: the other fixtures have closed their buses
    by then; the fixture values pytest still holds are dropped so that the
    buses are freed before counting. A full collection costs ~0.1 s with
    torch imported, so it runs only when the count differs: a descriptor
    held by garbage (a cycle) then has its chance to go, and the previous
    test's teardown left none behind for this baseline."""
    before = _fd_count()
    yield
    request.node.funcargs.clear()
    deadline = time.monotonic() + 2.0
    after = _fd_count()
    while after != before and time.monotonic() < deadline:
        gc.collect()
        after = _fd_count()
        if after != before:
            time.sleep(0.01)
    assert after == before, f"descriptor leak: {before} fds before the test, {after} after"


@pytest.fixture
def sock_path():
    path = f"/tmp/tachyon-test-{os.getpid()}-{next(_counter)}.sock"
    yield path
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def make_pair(path, capacity=1 << 16):
    """(producer, consumer): the consumer listens in a thread, the producer connects."""
    box = {}

    def listen():
        try:
            box["bus"] = tachyon.Bus.listen(path, capacity, timeout=10, role="consumer")
        except BaseException as exc:  # surfaced below
            box["exc"] = exc

    t = threading.Thread(target=listen)
    t.start()
    prod = tachyon.Bus.connect(path, timeout=10, role="producer")
    t.join()
    if "exc" in box:
        prod.close()
        raise box["exc"]
    return prod, box["bus"]


@pytest.fixture
def pair(sock_path):
    prod, cons = make_pair(sock_path, 1 << 12)
    yield prod, cons
    prod.close()
    cons.close()


def isolated_env():
    """The environment of a fresh interpreter that imports the tachyon under
    test (IMPORT_ROOT), whatever its working directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(IMPORT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_isolated(script, *args, timeout=60, check=True):
    """Run tests/isolated/<script> in a fresh interpreter; returns CompletedProcess."""
    proc = subprocess.run(
        [sys.executable, str(ISOLATED / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=isolated_env(),
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{script} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def popen_isolated(script, *args, **kw):
    return subprocess.Popen(
        [sys.executable, str(ISOLATED / script), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=isolated_env(),
        **kw,
    )


def _rest(proc, timeout):
    """The rest of proc's stdout and stderr, and its exit. Like communicate(),
    but read through proc.stdout and proc.stderr themselves: communicate()
    reads the raw pipes, so lines that an earlier readline() pulled into the
    file's buffer along with the line it returned would be lost."""
    got = {}

    def drain(name):
        f = getattr(proc, name)
        if f is not None:
            with f:  # closed after, as communicate() closes them
                got[name] = f.read()

    readers = [threading.Thread(target=drain, args=(n,), daemon=True) for n in ("stdout", "stderr")]
    for t in readers:
        t.start()
    proc.wait(timeout=timeout)
    for t in readers:
        t.join(timeout=10)
    return got.get("stdout"), got.get("stderr")


def finish(*procs, timeout=60):
    """Wait for every process; returns [(returncode, stdout, stderr)], killing
    what is still running when the time is up. Safe after readline() on a
    process's stdout (see _rest)."""
    out = []
    try:
        for p in procs:
            o, e = _rest(p, timeout)
            out.append((p.returncode, o, e))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.communicate()
                except ValueError:  # _rest's readers have its pipes
                    p.wait()
    return out
