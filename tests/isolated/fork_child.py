"""fork() after connect (R9): the child reads an inherited numpy view, gets a
clear error from every bus method but close (which test_fork_close.py covers)
and exits; the parent's stream continues
intact, and nothing the child did reached the shared ring (its peer sees no
close, no release, no wake)."""
import os

import numpy as np

import tachyon
from pairlib import in_process_pair

cons, prod = in_process_pair("fork")

prod.send(b"inherited" * 4, type_id=1)
for i in range(5):  # queued, unread: the child must not take them
    prod.send(b"queued %d" % i, type_id=100 + i)
rx = cons.recv_zero_copy(timeout=5)
arr = np.from_dlpack(rx)
mv = memoryview(rx)
before = (cons.stats, prod.stats)

pid = os.fork()
if pid == 0:
    code = 0
    try:
        if bytes(arr) != b"inherited" * 4 or mv != b"inherited" * 4 or arr.sum() != sum(b"inherited" * 4):
            code = 10
        calls = {
            "recv": lambda: cons.recv(timeout=0),
            "try_recv": cons.try_recv,
            "drain_batch": lambda: cons.drain_batch(timeout=0),
            "recv_zero_copy": lambda: cons.recv_zero_copy(timeout=0),
            "iteration": lambda: next(iter(cons)),
            "send": lambda: prod.send(b"x"),
            "send_many": lambda: prod.send_many([b"x"]),
            "send_zero_copy": lambda: prod.send_zero_copy(size=1),
            "flush": prod.flush,
            "set_polling_mode": lambda: cons.set_polling_mode(0),
            "with": lambda: cons.__enter__(),
            "stats": lambda: cons.stats,
            "__dlpack__": lambda: rx.__dlpack__(),
        }
        for name, call in calls.items():
            try:
                call()
                print(f"child: {name} did not raise", flush=True)
                code = 11
            except tachyon.TachyonError as e:
                # a clear TachyonError, not a subclass that means something else
                if type(e) is not tachyon.TachyonError or "fork" not in str(e):
                    print(f"child: {name}: {type(e).__name__}: {e}", flush=True)
                    code = 12
        # dealloc and releases in the child only unmap: nothing shared is written
        del arr, mv, rx
        del prod, cons, calls
        import gc

        gc.collect()
    except BaseException as exc:  # noqa: BLE001
        print(f"child: {exc!r}", flush=True)
        code = 13
    os._exit(code)

_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child exit status {status:#x}"
after = (cons.stats, prod.stats)
# the child's close, releases and deallocs changed nothing shared: same tail
# (occupancy), same state, the slot still pinned, nobody woken into a new state
assert after == before, f"the child's exit touched the ring:\n{before}\n{after}"
assert bytes(arr) == b"inherited" * 4
del arr, mv
rx.__exit__(None, None, None)
got = [cons.recv(timeout=5) for _ in range(5)]
assert [(m.type_id, m.data) for m in got] == [(100 + i, b"queued %d" % i) for i in range(5)]
for i in range(100):
    prod.send(i.to_bytes(2, "little"), type_id=i)
    got.append(cons.recv(timeout=5))
assert [m.type_id for m in got[5:]] == list(range(100))
assert cons.stats.state == 2 and prod.stats.state == 2, "the child's exit must not close the parent's ring"
assert cons.stats.pinned_bytes == 0
prod.close()
cons.close()
print(f"fork ok: the child got a clear TachyonError from {14} calls; the parent then received {len(got)} "
      f"messages", flush=True)
