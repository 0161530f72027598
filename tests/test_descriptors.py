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


def test_cross_process_descriptors_are_cloexec(sock_path):
    """With a peer in another process each end also holds a pidfd; on the
    connector side the memfd arrived over the socket (MSG_CMSG_CLOEXEC).
    Every one of them is close-on-exec, and an exec'd child sees none."""
    import fcntl

    import tachyon
    from conftest import popen_isolated

    for side in ("listener", "connector"):
        path = f"{sock_path}.{side}"
        if side == "listener":
            proc = popen_isolated("peer_producer.py", path, 1, "hang")
        else:
            proc = popen_isolated("peer_consumer.py", path, 4096, "hang")
        try:
            before = set(our_fds())
            if side == "listener":
                bus = tachyon.Bus.listen(path, 4096, timeout=20)
                assert proc.stdout.readline().split()[0] == "sent"
            else:
                bus = tachyon.Bus.connect(path, timeout=20)
                assert proc.stdout.readline().strip() == "ready"
            with bus:
                mine = {fd: t for fd, t in our_fds().items() if fd not in before}
                kinds = sorted({"memfd" if "memfd:" in t else "socket" if t.startswith("socket:") else "pidfd"
                                for t in mine.values()})
                print(f"{side}: {mine}")
                assert kinds == ["memfd", "pidfd", "socket"], mine
                for fd in mine:
                    assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC, f"fd {fd} ({mine[fd]}) is inheritable"
                child = subprocess.run(
                    [sys.executable, "-c", "import os; print(' '.join(os.listdir('/proc/self/fd')))"],
                    close_fds=False, capture_output=True, text=True, check=True)
                inherited = {int(x) for x in child.stdout.split()}
                assert not inherited & set(mine), f"crossed exec: {inherited & set(mine)}"
        finally:
            proc.kill()
            proc.communicate()
