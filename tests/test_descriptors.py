"""R8: every descriptor of the bus is close-on-exec; none leaks into a child."""
import os
import subprocess
import sys


def our_fds():
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if "memfd:" in target or target.startswith("socket:") or "pidfd" in target:
            fds[int(name)] = target
    return fds


def test_exec_child_inherits_none_of_ours(pair):
    prod, cons = pair
    prod.send(b"x")
    mine = {fd: t for fd, t in our_fds().items() if "memfd:" in t}
    assert mine, "the bus maps a memfd: expected to see it in /proc/self/fd"
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(' '.join(os.listdir('/proc/self/fd')))"],
        close_fds=False,  # even so: close-on-exec keeps them out
        capture_output=True,
        text=True,
        check=True,
    )
    inherited = {int(x) for x in child.stdout.split()}
    leaked = {fd: t for fd, t in our_fds().items() if fd in inherited and fd > 2}
    print(f"ours: {our_fds()}; child has {sorted(inherited)}")
    assert not leaked, f"descriptors that crossed exec: {leaked}"
    assert cons.recv(timeout=1).data == b"x"
