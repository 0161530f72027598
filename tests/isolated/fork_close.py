"""fork() after connect: generic cleanup in the child works. close(), a with
block's exit and `closed` only mark the child's handle closed: nothing shared
is written (no close, no release, no wake), every other call still raises
the fork error, and the parent's stream goes on intact with its peer seeing
no close."""
import gc
import os

import tachyon
from pairlib import in_process_pair

cons, prod = in_process_pair("forkclose")

for i in range(3):
    prod.send(b"before %d" % i, type_id=i)
first = cons.recv(timeout=5)  # one taken, two queued: the child must not take them
rx = cons.recv_zero_copy(timeout=5)  # one pinned across the fork
before = (cons.stats, prod.stats)


def child():
    """Returns the exit code: 0 when everything held."""
    code = 0
    if cons.closed or prod.closed:
        print("child: closed before close()", flush=True)
        code = 10
    # close() on an inherited bus: quiet and idempotent
    cons.close()
    cons.close()
    cons.destroy()
    if not cons.closed:
        print("child: closed is False after close()", flush=True)
        code = 11
    # every other call still raises the fork error, closed or not
    calls = {
        "recv": lambda: cons.recv(timeout=0),
        "try_recv": cons.try_recv,
        "send": lambda: prod.send(b"x"),
        "stats": lambda: cons.stats,
        "enter": lambda: cons.__enter__(),
    }
    for name, call in calls.items():
        try:
            call()
            print(f"child: {name} did not raise", flush=True)
            code = 12
        except tachyon.TachyonError as e:
            if type(e) is not tachyon.TachyonError or "fork" not in str(e):
                print(f"child: {name}: {type(e).__name__}: {e}", flush=True)
                code = 13
    if cons.__exit__(None, None, None) is not False:
        print("child: __exit__ did not return False", flush=True)
        code = 14
    return code


with prod:  # opened before the fork: the child leaves this block too
    pid = os.fork()
    if pid == 0:
        try:
            code = child()
        except BaseException as exc:  # noqa: BLE001
            print(f"child: {exc!r}", flush=True)
            code = 15
    else:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child exit status {status:#x}"
        after = (cons.stats, prod.stats)
        # nothing shared changed: same head and tail, same state, the same
        # slot pinned, no wait word touched
        assert after == before, f"the child's cleanup touched the ring:\n{before}\n{after}"
        assert not cons.closed and not prod.closed
        assert bytes(rx) == b"before 1"
        rx.__exit__(None, None, None)
        got = [cons.recv(timeout=5)]
        assert (got[0].type_id, got[0].data) == (2, b"before 2")
        for i in range(100):
            prod.send(i.to_bytes(2, "little"), type_id=i)
            got.append(cons.recv(timeout=5))
        assert [m.type_id for m in got[1:]] == list(range(100))
        assert [int.from_bytes(m.data, "little") for m in got[1:]] == list(range(100))
        # the peer saw no close: both ends still in state 2 (ready)
        assert cons.stats.state == 2 and prod.stats.state == 2
        assert cons.try_recv() is None

if pid == 0:
    try:
        # leaving `with prod:` above ran prod.__exit__ here: no exception,
        # and the child's handle is now closed
        if not prod.closed:
            print("child: the with block's exit did not mark the bus closed", flush=True)
            code = code or 16
        del rx, prod, cons
        gc.collect()  # deallocation in the child only unmaps
    except BaseException as exc:  # noqa: BLE001
        print(f"child: {exc!r}", flush=True)
        code = code or 17
    os._exit(code)

assert prod.closed  # the parent's own with block closed its end
cons.close()
print(f"fork close ok: the child closed its inherited handles quietly; the parent then received "
      f"{len(got)} messages intact", flush=True)
