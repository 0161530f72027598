"""A bus pair inside one process for the isolated scripts: the consumer end
listens, a thread connects the producer end."""
import os
import threading

import tachyon


def in_process_pair(tag, capacity=1 << 12):
    """Return (consumer end, producer end) over /tmp/tachyon-<tag>-<pid>.sock."""
    path = f"/tmp/tachyon-{tag}-{os.getpid()}.sock"
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("prod", tachyon.Bus.connect(path, timeout=10)))
    t.start()
    cons = tachyon.Bus.listen(path, capacity, timeout=10)
    t.join()
    return cons, box["prod"]
