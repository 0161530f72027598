"""Ctrl-C storm (R12): SIGINTs at random moments while the main thread
iterates over a bus that a producer thread feeds with pauses. Each
KeyboardInterrupt is caught and the same iterator resumed; at the end every
message must have arrived once, in order.

Iteration is used because it is the one form where Python itself cannot drop
a message: FOR_ITER stores the message without checking for signals in
between (a `msg = bus.recv()` can lose its result to a KeyboardInterrupt
raised right after the call returns, through no fault of the bus).

usage: sigint_storm.py MESSAGES SIGNALS SEED
Prints "storm ok <messages> <signals sent> <KeyboardInterrupts caught>".
"""
import os
import random
import signal
import sys
import threading
import time

from pairlib import in_process_pair

count, signals, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cons, prod = in_process_pair("sigstorm")
done = threading.Event()


def producer():
    rng = random.Random(seed)
    for i in range(count):
        prod.send(i.to_bytes(4, "little"), type_id=i, timeout=None)
        if rng.random() < 0.05:
            time.sleep(rng.uniform(0, 0.004))  # the consumer falls asleep on the futex
    prod.close()


def signaller():
    rng = random.Random(seed + 1)
    me = os.getpid()
    for _ in range(signals):
        if done.wait(rng.uniform(0.0005, 0.01)):
            return
        os.kill(me, signal.SIGINT)


pt = threading.Thread(target=producer)
st = threading.Thread(target=signaller)
pt.start()
st.start()
got = []
caught = 0
it = iter(cons)
while True:
    try:
        for msg in it:
            got.append(msg.type_id)
        break  # StopIteration: the producer closed and everything was delivered
    except KeyboardInterrupt:
        caught += 1
done.set()
st.join()
pt.join()
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a signal still pending must not break the checks
assert got == list(range(count)), f"{len(got)} messages; first wrong at {next(i for i, (a, b) in enumerate(zip(got, range(count))) if a != b) if got[:count] != list(range(len(got))) else len(got)}"
assert caught > 0, "no KeyboardInterrupt reached the consumer"
cons.close()
print("storm ok", len(got), signals, caught, flush=True)
