"""Request/reply: a worker process doubles numbers for a client.

    python3 examples/request_reply.py

One bus, two rings: the worker listens (it is the callee) and serves requests
with an RpcDispatcher; the client connects (the caller) and asks. Replies come
in request order, each carrying its request's correlation_id. A request of a
type the worker has no handler for is answered with MSG_TYPE_ERROR, so the
client is never left waiting. Wire-compatible with tachyon-ipc 0.5.1's RpcBus.
"""
import struct
import sys

import tachyon
from _launch import two_processes

DOUBLE, HALVE = 1, 2
NUMBER = struct.Struct("<q")


def worker(path):
    dispatcher = tachyon.RpcDispatcher()

    @dispatcher.handler(DOUBLE)
    def double(view):
        (n,) = NUMBER.unpack(view)
        return NUMBER.pack(2 * n)

    with tachyon.RpcBus.rpc_listen(path, 1 << 16, 1 << 16, timeout=10) as bus:
        dispatcher.serve_forever(bus)  # returns when the client closes


def client(path):
    with tachyon.RpcBus.rpc_connect(path) as bus:
        # one call at a time: request() sends and waits for the reply
        for n in (1, 21, -4):
            reply = bus.request(NUMBER.pack(n), DOUBLE, timeout=5)
            print(f"double({n}) = {NUMBER.unpack(reply.data)[0]}")
        # several in flight: call() returns the correlation_id, wait() takes the replies in order
        ids = [bus.call(NUMBER.pack(n), DOUBLE) for n in (100, 200)]
        for cid in ids:
            with bus.wait(cid, timeout=5) as rx:
                print(f"reply {rx.correlation_id}: {NUMBER.unpack(rx)[0]}")
        # nobody handles HALVE: the worker answers with an error reply
        reply = bus.request(NUMBER.pack(8), HALVE, timeout=5)
        if reply.type_id == tachyon.MSG_TYPE_ERROR:
            print(f"error reply: no handler for msg_type {tachyon.rpc.decode_error(reply.data)}")


if __name__ == "__main__":
    sys.exit(two_processes(__file__, worker, client))
