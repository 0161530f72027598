"""One end of a bus between two implementations of the 0.5.1 API: run by
this project's Python or by an interpreter whose ``tachyon`` is tachyon-ipc
0.5.1 itself (tests/test_interop_051.py). Only names both share are used.

    interop_051.py rpc (listen|connect) PATH COUNT SEED
    interop_051.py plain (listen|connect) (producer|consumer) PATH COUNT SEED

On the request/reply bus the listener is the callee and doubles nothing:
it answers each request with its CRC-32 and the reversed payload (at most
1000 bytes), under the request's msg_type, and an unknown msg_type with the
error reply. The caller checks every answer and the error reply. On the
plain bus the producer sends COUNT messages of pseudo-random sizes, type_id
= index, then an end marker (type_id 0xFFFFFFFF); the consumer checks every
one. Prints one line of what it did.
"""
import random
import sys
import time
import zlib

import tachyon

END = 0xFFFFFFFF
REQUEST_TYPE = 7
UNKNOWN_TYPE = 9
IMPL = "ours" if hasattr(tachyon, "wait") else "0.5.1"


def payload(rng, limit):
    # 0.5.1 refuses empty calls: every payload has at least one byte
    return rng.randbytes(1 + int(rng.expovariate(1 / 2000)) % limit)


def answer(req):
    return zlib.crc32(req).to_bytes(4, "little") + req[::-1][:1000]


def connect(open_end, path):
    """0.5.1's connect has no timeout: retry while the listener starts."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return open_end(path)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def rpc(how, path, count, rng):
    if how == "listen":
        bus = tachyon.RpcBus.rpc_listen(path, 1 << 20, 1 << 20)
    else:
        bus = connect(tachyon.RpcBus.rpc_connect, path)
    with bus:
        if how == "listen":
            dispatcher = tachyon.RpcDispatcher()
            dispatcher.handler(REQUEST_TYPE)(lambda view: answer(view.tobytes()))
            unknown = 0
            for _ in range(count + 1):
                try:
                    dispatcher.serve_once(bus)
                except KeyError:
                    unknown += 1
            print(f"{IMPL} callee served {count + 1} requests, {unknown} of an unknown type", flush=True)
            time.sleep(0.5)  # the caller takes its last reply before we go
            return
        for i in range(count):
            req = payload(rng, 60000)
            cid = bus.call(req, REQUEST_TYPE)
            with bus.wait(cid) as rx:
                assert rx.type_id == REQUEST_TYPE, (i, rx.type_id)
                assert bytes(memoryview(rx)) == answer(req), i
        cid = bus.call(b"?", UNKNOWN_TYPE)
        with bus.wait(cid) as rx:
            assert rx.type_id == tachyon.MSG_TYPE_ERROR, rx.type_id
            assert bytes(memoryview(rx)) == UNKNOWN_TYPE.to_bytes(2, "big")
        print(f"{IMPL} caller checked {count} calls and the error reply", flush=True)


def plain(how, role, path, count, rng):
    bus = tachyon.Bus.listen(path, 1 << 20) if how == "listen" else connect(tachyon.Bus.connect, path)
    with bus:
        if role == "producer":
            # ours raises at once on a full ring unless given a timeout
            wait = {"timeout": 30} if IMPL == "ours" else {}
            for i in range(count):
                bus.send(payload(rng, 60000), i, **wait)
            bus.send(b"end", END, **wait)
            print(f"{IMPL} producer sent {count} messages", flush=True)
            time.sleep(0.5)  # 0.5.1's consumer may not see a close: let it read first
            return
        n = 0
        for msg in bus:
            if msg.type_id == END:
                break
            assert msg.type_id == n, (n, msg.type_id)
            assert bytes(msg.data) == payload(rng, 60000), n
            n += 1
        assert n == count, n
        print(f"{IMPL} consumer checked {count} messages", flush=True)


def main():
    kind = sys.argv[1]
    if kind == "rpc":
        how, path, count, seed = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        rpc(how, path, count, random.Random(seed))
    else:
        how, role, path, count, seed = sys.argv[2:4] + [sys.argv[4], int(sys.argv[5]), int(sys.argv[6])]
        plain(how, role, path, count, random.Random(seed))


if __name__ == "__main__":
    main()
