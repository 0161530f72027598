"""mypy checks an example program against the stub, and rejects misuse."""
import os
import subprocess
import sys

import pytest

from conftest import REPO

pytest.importorskip("mypy", reason="mypy is not installed for this Python")

HERE = os.path.dirname(os.path.abspath(__file__))


def mypy(*args, cache):
    env = dict(os.environ)
    env["MYPYPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(cache), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_example_type_checks(tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "mypy-cache"
    proc = mypy(os.path.join(HERE, "typing_example.py"), cache=cache)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_misuse_is_rejected(tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "mypy-cache"
    bad = tmp_path_factory.mktemp("typing") / "bad.py"
    bad.write_text(
        "import tachyon\n"
        "bus = tachyon.Bus.connect('/tmp/x.sock')\n"
        "bus.send('text')\n"  # str is not a buffer
        "bus.recv(timeout='soon')\n"
        "x: bytes = bus.try_recv()\n"  # Optional[Message]
        "bus.stats.no_such_field\n"
    )
    proc = mypy(str(bad), cache=cache)
    assert proc.returncode == 1
    for line in (3, 4, 5, 6):
        assert f"bad.py:{line}:" in proc.stdout, proc.stdout


def test_stub_matches_runtime():
    """mypy's stubtest compares tachyon/_core.pyi with the imported extension, name by name."""
    import tachyon

    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(tachyon.__file__)))
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "tachyon._core",
         "--allowlist", os.path.join(HERE, "stubtest_allowlist.txt")],
        cwd=pkg_parent,  # where the extension and its stub are found
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
