"""The checked stream both ends of tests/test_net.py agree on: message seq has a
log-uniform size (0..max_payload), a type_id and bytes that are functions of seq."""
import math
import random


def sizes(seed, max_payload, n):
    rng = random.Random(seed)
    top = math.log(max_payload + 1)
    for _ in range(n):
        yield min(max_payload, int(math.exp(rng.uniform(0, top))) - 1)


def type_id_of(seq):
    return (seq * 2654435761) & 0xFFFFFFFF


def group_type_id(seq):
    """The type_id of message seq when sent by send_many eight at a time
    (one type_id per call, the first message's)."""
    return type_id_of(seq - seq % 8)


def payload_of(seq, size):
    stamp = seq.to_bytes(8, "little")
    return (stamp * (size // 8 + 1))[:size]
