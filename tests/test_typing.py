"""mypy checks an example program against the stub, and rejects misuse."""
import importlib.metadata
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


# Every supported Python: NumPy's stub, for one, declares the buffer protocol
# of its arrays only for 3.12 and newer.
@pytest.mark.parametrize("version", ["3.10", "3.11", "3.12"])
def test_example_type_checks(tmp_path_factory, version):
    cache = tmp_path_factory.getbasetemp() / f"mypy-cache-{version}"
    proc = mypy("--python-version", version, os.path.join(HERE, "typing_example.py"), cache=cache)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_installed_package_is_found_without_help(tmp_path):
    """mypy finds the installed tachyon by itself, as it does for a user's
    program: no MYPYPATH, no PYTHONPATH, a directory outside the checkout.
    The README installs the package in editable mode, whose default import
    hook mypy cannot follow; pyproject.toml selects the path-based form."""
    try:
        dist = importlib.metadata.distribution("tachyon-ipc")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("tachyon-ipc is not installed for this Python (the tests import it from the tree)")
    (tmp_path / "user.py").write_text(
        "import numpy as np\n"
        "import tachyon\n"
        "def main(bus: tachyon.Bus) -> int:\n"
        "    bus.send(np.zeros(4))\n"
        "    return bus.recv().size\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"),
         "user.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, f"installed {dist.version}: " + proc.stdout + proc.stderr


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
        "tachyon.Bus.listen('tcp://h:1', 64, curve_secret='k', allowed_clients='all')\n"  # "any" only
    )
    proc = mypy(str(bad), cache=cache)
    assert proc.returncode == 1
    for line in (3, 4, 5, 6, 7):
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
