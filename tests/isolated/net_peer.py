"""One end of a tcp:// bus for tests/test_net.py, in its own process.

    net_peer.py produce URL N SEED MAX_BYTES   connect, send N checked messages of
                                               log-uniform sizes (at most MAX_BYTES
                                               in all), close; prints "sent N BYTES"
    net_peer.py stall URL CAP LIVENESS         listen as the consumer, never read
    net_peer.py hang URL CAP LIVENESS ROLE     listen (CAP > 0) or connect (CAP 0)
                                               with ROLE, print "ready", sleep
    net_peer.py refill URL CAP N               listen as the consumer and take N
                                               messages, in rounds: let the window
                                               fill, then take all that came; prints
                                               "faults F pages P", the minor page faults
                                               of this process and the pages received
                                               after the first round
"""
import resource
import sys
import time

import tachyon
from streamcheck import payload_of, sizes, type_id_of

mode, url = sys.argv[1], sys.argv[2]
if mode == "produce":
    n, seed, max_bytes = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    with tachyon.Bus.connect(url, timeout=20) as bus:
        total = sent = 0
        for seq, size in enumerate(sizes(seed, bus.max_payload, n)):
            if total + size > max_bytes:
                break
            bus.send(payload_of(seq, size), type_id_of(seq), timeout=30)
            total += size
            sent += 1
    print("sent", sent, total, flush=True)
elif mode == "stall":
    cap, live = int(sys.argv[3]), float(sys.argv[4])
    bus = tachyon.Bus.listen(url, cap, timeout=20, role="consumer", liveness=live)
    print("ready", flush=True)
    time.sleep(60)
elif mode == "refill":
    cap, n = int(sys.argv[3]), int(sys.argv[4])
    with tachyon.Bus.listen(url, cap, timeout=20, role="consumer") as bus:
        got = pages = 0
        faults_before = None
        while got < n:
            time.sleep(0.05)  # the producer fills the window meanwhile
            round_bytes = 0
            while got < n:
                try:
                    with bus.recv_zero_copy(timeout=0) as rx:
                        round_bytes += len(rx)
                except tachyon.TachyonTimeoutError:
                    break
                got += 1
            if faults_before is None:
                if round_bytes:
                    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            else:
                pages += round_bytes // 4096
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
    print("faults", faults, "pages", pages, flush=True)
elif mode == "hang":
    cap, live, role = int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    if cap:
        bus = tachyon.Bus.listen(url, cap, timeout=20, role=role, liveness=live)
    else:
        bus = tachyon.Bus.connect(url, timeout=20, role=role, liveness=live)
    print("ready", flush=True)
    time.sleep(60)
