"""Producer side of the lost-wake stress (R6): bursts separated by idle gaps.

usage: bursty_producer.py PATH BURSTS SEED
Gaps are mostly around the consumer's spin-to-sleep transition (0 to 0.5 ms:
our publication races its announcement of the sleep), some longer than the
watchdog (its futex wait times out with nothing new: not a lost wake).
Before each burst it samples the consumer's wait word (stats.consumer_state)
to count the bursts that found the consumer asleep. Prints
"sent N bursts B asleep K", then closes.
"""
import random
import sys
import time

import tachyon

path, bursts, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
asleep = 0
seq = 0
with tachyon.Bus.connect(path, timeout=20, role="producer") as bus:
    for b in range(bursts):
        r = rng.random()
        if r < 0.002:
            time.sleep(0.25)  # longer than the watchdog period
        elif r < 0.15:
            time.sleep(rng.uniform(0.0005, 0.02))
        elif r < 0.7:
            time.sleep(rng.uniform(0, 0.0005))
        # else back to back: the consumer is still spinning
        if bus.stats.consumer_state == 1:
            asleep += 1
        for _ in range(rng.choice((1, 1, 1, 2, 5, 40))):
            bus.send(seq.to_bytes(8, "little"), type_id=seq & 0xFFFFFFFF, timeout=None)
            seq += 1
    print("sent", seq, "bursts", bursts, "asleep", asleep, flush=True)
