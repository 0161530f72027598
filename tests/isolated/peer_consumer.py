"""A consumer peer: listen on PATH (capacity CAP), fix the consumer role, then
THEN: close (close, stay alive 5 s), hang (print "ready" and wait to be killed)."""
import sys
import time

import tachyon

path, cap, then = sys.argv[1], int(sys.argv[2]), sys.argv[3]
bus = tachyon.Bus.listen(path, cap, timeout=20, role="consumer")
if then == "close":
    bus.close()
    print("closed", flush=True)
    time.sleep(5)
else:
    print("ready", flush=True)
    while True:
        time.sleep(10)
