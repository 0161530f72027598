"""The other process of the request/reply tests (tests/test_rpc.py).

    rpc_peer.py callee PATH          serve until the caller closes: each reply is
                                     the request reversed, with msg_type + 1
    rpc_peer.py caller PATH N SEED CAP_S
                                     N checked calls of random sizes (or until
                                     CAP_S seconds passed); prints "calls <count>"
    rpc_peer.py hang PATH            serve one request, print "served", never reply
    rpc_peer.py dispatch PATH        an RpcDispatcher with one handler (msg_type 1,
                                     doubling the payload) until the caller closes
"""
import random
import sys
import time

import tachyon

CAP = 1 << 16


def reply_for(payload, msg_type):
    return bytes(payload)[::-1], (msg_type + 1) & 0xFFFF


def callee(path):
    with tachyon.RpcBus.rpc_listen(path, CAP, CAP, timeout=10) as bus:
        print("listening", flush=True)
        while True:
            try:
                with bus.serve(timeout=30) as rx:
                    cid = rx.correlation_id
                    data, mt = reply_for(memoryview(rx), rx.type_id)
            except tachyon.PeerClosedError:
                return
            bus.reply(cid, data, mt, timeout=10)


def caller(path, n, seed, cap_s):
    rng = random.Random(seed)
    count = 0
    end = time.monotonic() + cap_s
    with tachyon.RpcBus.rpc_connect(path, timeout=10) as bus:
        while count < n and time.monotonic() < end:
            size = rng.choice((0, 1, rng.randrange(2, 64), rng.randrange(64, 4096)))
            payload = rng.randbytes(size)
            mt = rng.randrange(0, 0xFFFF)
            cid = bus.call(payload, mt, timeout=10)
            with bus.wait(cid, timeout=10) as rx:
                want, want_mt = reply_for(payload, mt)
                if rx.correlation_id != cid or rx.type_id != want_mt or bytes(rx) != want:
                    print(f"mismatch at call {count}", flush=True)
                    sys.exit(1)
            count += 1
    print(f"calls {count}", flush=True)


def hang(path):
    with tachyon.RpcBus.rpc_listen(path, CAP, CAP, timeout=10) as bus:
        with bus.serve(timeout=10):
            print("served", flush=True)
            time.sleep(60)


def dispatch(path):
    d = tachyon.RpcDispatcher()

    @d.handler(1)
    def double(view):
        return bytes(view) * 2

    with tachyon.RpcBus.rpc_listen(path, CAP, CAP, timeout=10) as bus:
        print("listening", flush=True)
        d.serve_forever(bus)
    print("done", flush=True)


if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "callee":
        callee(path)
    elif mode == "caller":
        caller(path, int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    elif mode == "hang":
        hang(path)
    elif mode == "dispatch":
        dispatch(path)
    else:
        sys.exit(f"unknown mode {mode}")
