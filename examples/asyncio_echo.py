"""asyncio at both ends: a client awaits replies from a worker process that
doubles numbers, over two buses (one per direction).

    python3 examples/asyncio_echo.py

recv_async and send_async never block the event loop, so other tasks run
while a message is awaited; `async for` ends when the peer closes.
Cancelling a recv_async loses nothing: the message stays for the next one.
"""
import asyncio
import struct
import sys

import tachyon
from _launch import two_processes


async def worker(requests_path, replies_path):
    requests = tachyon.Bus.connect(requests_path, timeout=10)
    replies = tachyon.Bus.connect(replies_path, timeout=10)
    async for msg in requests:  # until the client closes its end
        (n,) = struct.unpack("<q", msg.data)
        await replies.send_async(struct.pack("<q", 2 * n))
    replies.close()
    requests.close()


async def client(requests, replies):
    for n in (1, 21, 1000):
        await requests.send_async(struct.pack("<q", n))
        reply = await replies.recv_async(timeout=10)
        print(f"{n} -> {struct.unpack('<q', reply.data)[0]}")
    # a cancelled receive takes nothing: the next one still gets the reply
    await requests.send_async(struct.pack("<q", 7))
    waiting = asyncio.ensure_future(replies.recv_async())
    await asyncio.sleep(0)
    waiting.cancel()
    try:
        reply = await waiting  # it may have got the reply before the cancel came
    except asyncio.CancelledError:
        reply = await replies.recv_async(timeout=10)  # then the reply is still there
    print(f"7 -> {struct.unpack('<q', reply.data)[0]} (around a cancelled receive)")


def serve(requests_path, replies_path):
    asyncio.run(worker(requests_path, replies_path))


def ask(requests_path, replies_path):
    # the worker connects to requests first, then to replies: listen in that order
    with tachyon.Bus.listen(requests_path, 1 << 16) as requests, \
            tachyon.Bus.listen(replies_path, 1 << 16) as replies:
        asyncio.run(client(requests, replies))


if __name__ == "__main__":
    sys.exit(two_processes(__file__, serve, ask, buses=2))
