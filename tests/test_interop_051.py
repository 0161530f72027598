"""Both ends against tachyon-ipc 0.5.1 itself: the plain bus in all four
pairings (who listens x who produces) and request/reply with either end as
the callee (the listener is always the callee), each a checked stream of
pseudo-random sizes (tests/isolated/interop_051.py).

Opt-in: set TACHYON_051_PYTHON to an interpreter whose ``import tachyon``
is tachyon-ipc 0.5.1 (its sdist compiles a C++23 extension and asks for GCC
14+ or Clang 17+). Without it these tests skip and say so. The scripts and
this project's side use only names the two APIs share."""
import os
import subprocess
import sys

import pytest

from conftest import ISOLATED, finish, isolated_env

PEER = os.environ.get("TACHYON_051_PYTHON")
pytestmark = pytest.mark.skipif(
    not PEER, reason="TACHYON_051_PYTHON is not set: no tachyon-ipc 0.5.1 interpreter to talk to")

COUNT = 3000


def start(impl, cwd, *args):
    """interop_051.py under this project's Python, or under 0.5.1's with a
    clean environment (no PYTHONPATH that could find this tachyon)."""
    if impl == "ours":
        cmd, env = [sys.executable], isolated_env()
    else:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        cmd = [PEER]
    return subprocess.Popen(cmd + [str(ISOLATED / "interop_051.py"), *map(str, args)], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def check(procs, wants):
    results = finish(*procs, timeout=120)
    for (rc, out, err), want in zip(results, wants):
        print(out.strip())
        assert rc == 0, err
        assert want in out


def other(impl):
    return "0.5.1" if impl == "ours" else "ours"


@pytest.mark.parametrize("listener", ["ours", "0.5.1"])
@pytest.mark.parametrize("listener_role", ["producer", "consumer"])
def test_plain_bus(tmp_path, listener, listener_role):
    path = tmp_path / "b.sock"
    connector_role = "consumer" if listener_role == "producer" else "producer"
    lp = start(listener, tmp_path, "plain", "listen", listener_role, path, COUNT, 11)
    cp = start(other(listener), tmp_path, "plain", "connect", connector_role, path, COUNT, 11)
    done = {"producer": f"sent {COUNT} messages", "consumer": f"checked {COUNT} messages"}
    check([lp, cp], [done[listener_role], done[connector_role]])


@pytest.mark.parametrize("callee", ["ours", "0.5.1"])
def test_request_reply(tmp_path, callee):
    path = tmp_path / "r.sock"
    lp = start(callee, tmp_path, "rpc", "listen", path, COUNT, 12)
    cp = start(other(callee), tmp_path, "rpc", "connect", path, COUNT, 12)
    check([lp, cp], [f"served {COUNT + 1} requests, 1 of an unknown type",
                     f"checked {COUNT} calls and the error reply"])
