"""The user's three examples (shared/spec/quickstarts, beside the checkout) run
verbatim in fresh interpreters, 20 times each, and print what their comments promise."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

QUICKSTARTS = REPO.parent / "shared" / "spec" / "quickstarts"
RUNS = 20

EXPECTED = {
    "standard_api.py": "received type_id=1 data=b'hello tachyon'\n",
    "zero_copy.py": "",
    "dlpack_torch.py": "tensor([1., 2., 3., 4.])\n",
}


def test_quickstarts_present():
    missing = [name for name in EXPECTED if not (QUICKSTARTS / name).is_file()]
    assert not missing, f"quickstarts missing from {QUICKSTARTS}: {missing}"


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.torch) if n == "dlpack_torch.py" else n for n in sorted(EXPECTED)]
)
def test_quickstart(name, tmp_path):
    script = QUICKSTARTS / name
    assert script.is_file(), f"{script} is missing: the quickstarts must sit in ../shared/spec/quickstarts"
    if name == "dlpack_torch.py":
        pytest.importorskip("torch", reason="torch is not installed for this Python (the 3.10 job has no torch)")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    for run in range(RUNS):
        # cwd is a scratch directory: the example must not depend on the checkout
        proc = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, f"run {run}: exit {proc.returncode}\n{proc.stderr}"
        assert proc.stdout == EXPECTED[name], f"run {run}: printed {proc.stdout!r}"
        assert proc.stderr == "", f"run {run}: stderr {proc.stderr!r}"
    print(f"{name}: {RUNS} runs, output {EXPECTED[name]!r}")
