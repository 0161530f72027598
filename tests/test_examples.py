"""The programs in examples/ run as a user runs them (a fresh interpreter,
the working directory elsewhere, two real processes) and print what their
docstrings promise, several times over."""
import subprocess
import sys

import pytest

from conftest import REPO, isolated_env

EXAMPLES = REPO / "examples"
RUNS = 5

EXPECTED = {
    "across_hosts.py": (
        "type_id=1 data=b'hello from the other host'\n"
        "type_id=2 readings=1000 mean=499.5\n"
        "grid: shape=(2, 3) dtype=float32 sum=15.0\n"
        "type_id=3 data=b'bye'\n"
        "the sender closed; everything arrived\n"
    ),
    "bridge.py": (
        "type_id=1 data=b'frame 1'\n"
        "type_id=2 data=b'frame 2'\n"
        "type_id=3 data=b'last frame'\n"
        "the local program closed; the bridge forwarded everything\n"
    ),
    "send_receive.py": (
        "type_id=1 data=b'hello'\n"
        "type_id=2 data=b'from'\n"
        "type_id=3 data=b'the other process'\n"
    ),
    "zero_copy.py": "type_id=42 size=35 starts=b'written'\nintact=True\n",
    "torch_dlpack.py": "tensor([1., 2., 3., 4.]) sum=10.0\n",
    "request_reply.py": (
        "double(1) = 2\ndouble(21) = 42\ndouble(-4) = -8\nreply 4: 200\nreply 5: 400\n"
        "error reply: no handler for msg_type 2\n"
    ),
    "rpc_arrays.py": (
        "gram: shape=(3, 3) dtype=float64 trace=55.0\n"
        "column sums: [4, 4, 4, 4, 4] dtype=int64\n"
    ),
    "wait_many.py": "commands: stop\nlogs: started\nsensors: 21.5 C\nsensors: 21.7 C\n",
    "asyncio_echo.py": "1 -> 2\n21 -> 42\n1000 -> 2000\n7 -> 14 (around a cancelled receive)\n",
    "observe.py": (
        "found the bus: sent 1000 messages (32000 bytes), received 1000\n"
        "listener: consumer, ours, alive\nconnector: producer, ours, alive\n"
    ),
    "worker_threads.py": "5000 arrays summed by 2 worker threads: total=12497500\n",
    "arrays.py": (
        "frame: type_id=1 shape=(1080, 1920, 3) dtype=uint8 mean=85.0\n"
        "matrix: shape=(4, 4) dtype=float32 trace=10.0\n"
    ),
}


def test_every_example_is_checked():
    on_disk = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
    assert on_disk == sorted(EXPECTED), "an example without a test, or a test without its example"


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.torch) if "torch" in n else n for n in sorted(EXPECTED)]
)
def test_example(name, tmp_path):
    if "torch" in name:
        pytest.importorskip("torch", reason="torch is not installed for this Python (the 3.10 job has no torch)")
    for run in range(RUNS):
        proc = subprocess.run(
            [sys.executable, str(EXAMPLES / name)],
            cwd=tmp_path,
            env=isolated_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, f"run {run}: exit {proc.returncode}\n{proc.stderr}"
        assert proc.stdout == EXPECTED[name], f"run {run}: printed {proc.stdout!r}"
        assert proc.stderr == "", f"run {run}: stderr {proc.stderr!r}"
    print(f"{name}: {RUNS} runs")
