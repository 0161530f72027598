"""fork() after connect: close() and a with block's exit in the child work
without touching the parent's ring (docs/RELIABILITY.md R9), in a fresh
process."""
from conftest import run_isolated


def test_fork_child_close_is_quiet_and_parent_unaffected():
    proc = run_isolated("fork_close.py", timeout=60)
    print(proc.stdout)
    assert proc.stdout.strip().startswith("fork close ok"), proc.stdout
