"""`python -m tachyon bench` runs end to end (numbers are printed, never judged here)."""
import re
import subprocess
import sys

from conftest import IMPORT_ROOT, isolated_env


def test_bench_runs_and_reports():
    proc = subprocess.run(
        [sys.executable, "-m", "tachyon", "bench", "--count", "3000", "--warmup", "100", "--size", "100"],
        capture_output=True, text=True, timeout=120, env=isolated_env(),
    )
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    assert re.search(r"round trip \(us\): min [\d.]+  p50 [\d.]+  p90 [\d.]+  p99 [\d.]+  p99\.9 [\d.]+  max [\d.]+", proc.stdout)
    assert re.search(r"throughput: [\d,]+ round trips/s", proc.stdout)


def test_bench_rejects_bad_arguments():
    proc = subprocess.run(
        [sys.executable, "-m", "tachyon", "bench", "--capacity", "64", "--size", "1000"],
        capture_output=True, text=True, timeout=60, cwd=IMPORT_ROOT,
    )
    assert proc.returncode == 2 and ">=" in proc.stderr
