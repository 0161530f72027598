"""fork() after connect (R9), in a fresh process."""
from conftest import run_isolated


def test_fork_child_gets_clear_errors_parent_unaffected():
    proc = run_isolated("fork_child.py")
    print(proc.stdout)
    assert proc.stdout.strip().startswith("fork ok"), proc.stdout
