"""fork() after connect (R9): the child reads an inherited numpy view, gets a
clear error from every bus method and exits; the parent's stream continues."""
import os
import threading

import numpy as np

import tachyon

path = f"/tmp/tachyon-fork-{os.getpid()}.sock"
box = {}
t = threading.Thread(target=lambda: box.setdefault("prod", tachyon.Bus.connect(path, timeout=10)))
t.start()
cons = tachyon.Bus.listen(path, 1 << 12, timeout=10)
t.join()
prod = box["prod"]

prod.send(b"inherited" * 4, type_id=1)
rx = cons.recv_zero_copy(timeout=5)
arr = np.from_dlpack(rx)
mv = memoryview(rx)

pid = os.fork()
if pid == 0:
    code = 0
    try:
        if bytes(arr) != b"inherited" * 4 or mv != b"inherited" * 4:
            code = 10
        for call in (lambda: cons.recv(timeout=0), lambda: prod.send(b"x"), lambda: cons.close(),
                     lambda: cons.stats, lambda: rx.__dlpack__()):
            try:
                call()
                code = 11
            except tachyon.TachyonError as e:
                if "fork" not in str(e):
                    code = 12
        # dealloc and releases in the child only unmap: nothing shared is written
        del arr, mv, rx
        del prod, cons
        import gc
        gc.collect()
    except BaseException:
        code = 13
    os._exit(code)

_, status = os.waitpid(pid, 0)
assert os.WEXITSTATUS(status) == 0, f"child exit status {os.WEXITSTATUS(status)}"
assert bytes(arr) == b"inherited" * 4
del arr, mv
rx.__exit__(None, None, None)
got = []
for i in range(100):
    prod.send(i.to_bytes(2, "little"), type_id=i)
    got.append(cons.recv(timeout=5))
assert [m.type_id for m in got] == list(range(100))
assert cons.stats.state == 2, "the child's exit must not close the parent's ring"
assert cons.stats.pinned_bytes == 0
prod.close()
cons.close()
print("fork ok", flush=True)
