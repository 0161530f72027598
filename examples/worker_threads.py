"""Receive here, process there: one thread receives zero-copy arrays and
hands them to worker threads, which let go of them when done.

    python3 examples/worker_threads.py

Each array is a view of its slot in the ring, so the slot goes back to the
sender only when the worker drops the array. That happens at once, while
the receiving thread is already waiting for the next message: the sender,
which waits for room with timeout=None on a ring that holds a few dozen
messages, never stalls for longer than it takes the workers to finish.
"""
import queue
import sys
import threading

import numpy as np

import tachyon
from _launch import two_processes

COUNT = 5000
WORKERS = 2


def receive(path):
    work = queue.SimpleQueue()
    totals = [0] * WORKERS

    def worker(i):
        while (arr := work.get()) is not None:
            totals[i] += int(arr.sum())
            del arr  # the slot goes back to the sender here, in this thread

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    with tachyon.Bus.listen(path, 4096) as bus:
        for _ in range(COUNT):
            with bus.recv_zero_copy() as rx:
                work.put(np.from_dlpack(rx).view(np.int64))  # a view, not a copy
    for _ in threads:
        work.put(None)
    for t in threads:
        t.join()
    print(f"{COUNT} arrays summed by {WORKERS} worker threads: total={sum(totals)}")


def send(path):
    with tachyon.Bus.connect(path) as bus:
        for i in range(COUNT):
            bus.send(np.array([i], dtype=np.int64), timeout=None)  # waits for room


if __name__ == "__main__":
    sys.exit(two_processes(__file__, receive, send))
