"""No lost wake-ups between our own peers (R6): the counter in stats
(BusStats.lost_wakeups) stays 0 through a stress with idle gaps, and counts
when a producer really does not wake a sleeping consumer."""
import os
import sys
import threading
import time

import tachyon
from conftest import ISOLATED, popen_isolated

sys.path.insert(0, str(ISOLATED))
import fakepeer  # noqa: E402

BURSTS = 2000


def test_no_lost_wakeups_between_our_peers(sock_path):
    proc = popen_isolated("bursty_producer.py", sock_path, BURSTS, 7)
    t0 = time.monotonic()
    try:
        with tachyon.Bus.listen(sock_path, 1 << 14, timeout=20, role="consumer") as bus:
            n = 0
            for msg in bus:  # ends when the producer closes
                assert msg.type_id == n and int.from_bytes(msg.data, "little") == n
                n += 1
            stats = bus.stats
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, err
    words = out.split()
    sent, asleep = int(words[1]), int(words[5])
    print(f"{n} messages in {BURSTS} bursts over {elapsed:.1f} s; the consumer was asleep on the futex "
          f"when {asleep} bursts began; lost_wakeups = {stats.lost_wakeups}")
    assert n == sent
    # the wake path was really exercised, not only the spin
    assert asleep > BURSTS // 10, f"the consumer slept before only {asleep} of {BURSTS} bursts"
    assert stats.lost_wakeups == 0


def test_lost_wakeup_counter_counts(sock_path):
    """The control: a producer that publishes without ever waking a sleeper
    (broken; a 0.5.1 producer wakes, without the CAS): the message still
    arrives (the futex sleep is bounded by the watchdog) and each such
    delivery counts as a lost wake."""
    box = {}

    def legacy():
        try:
            box["fd"] = fakepeer.legacy_listen(sock_path, 4096)
        except BaseException as exc:  # noqa: BLE001
            box["exc"] = exc

    t = threading.Thread(target=legacy)
    t.start()
    bus = tachyon.Bus.connect(sock_path, timeout=10, role="consumer")
    t.join()
    assert "exc" not in box, box
    prod = fakepeer.Producer(box["fd"], 4096, wake=False)
    try:
        with bus:
            latencies = []
            for i in range(3):
                timer = threading.Timer(0.05, prod.try_send, args=(bytes([i]) * 8, i))
                t0 = time.monotonic()
                timer.start()
                msg = bus.recv(timeout=5)  # asleep on the futex when the message is published
                latencies.append(time.monotonic() - t0)
                timer.join()
                assert msg.type_id == i
            lost = bus.stats.lost_wakeups
    finally:
        prod.close()
        os.close(box["fd"])
    print(f"no-wake producer: {lost} lost wakes counted for 3 messages, delivered after "
          f"{', '.join(f'{x * 1e3:.0f}' for x in latencies)} ms (the watchdog bounds the sleep)")
    slept_through = sum(1 for x in latencies if x > 0.15)  # woken by the watchdog, not the producer
    assert lost >= 1 and lost == slept_through
    assert all(x < 2.0 for x in latencies)
