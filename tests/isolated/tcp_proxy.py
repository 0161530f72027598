"""A TCP forwarder that can stall or cut the connections through it, for
tests/test_net_resume.py: a network between two bus ends that misbehaves
on command.

    tcp_proxy.py LISTEN_PORT UPSTREAM_PORT

Accepts on 127.0.0.1:LISTEN_PORT and forwards each connection, both ways,
to 127.0.0.1:UPSTREAM_PORT. Prints "listening", then reads commands on
stdin, one a line, and answers each with "done <monotonic time>" once it
took effect:

    pause        stop forwarding (bytes wait in the kernel's buffers, and
                 new connections are accepted but carry nothing: a stall)
    resume       forward again
    cut SECONDS  reset every connection (what was in flight is lost) and
                 refuse new ones for SECONDS, then accept again
    quit
"""
import socket
import sys
import threading
import time

listen_port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
gate = threading.Event()  # set: forwarding
gate.set()
lock = threading.Lock()
conns = []  # every socket of every forwarded connection
listener = None


def reset(s):
    """Close s with a reset, discarding what it holds, as a broken link would."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    except OSError:
        pass


def pump(src, dst):
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            gate.wait()
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def accept_loop(lsock):
    while True:
        try:
            down, _ = lsock.accept()
        except OSError:
            return  # closed by a cut
        try:
            up = socket.create_connection(("127.0.0.1", upstream_port))
        except OSError:
            down.close()
            continue
        with lock:
            conns.extend((down, up))
        for a, b in ((down, up), (up, down)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()


def open_listener():
    global listener
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", listen_port))
    s.listen(16)
    listener = s
    threading.Thread(target=accept_loop, args=(s,), daemon=True).start()


def cut(seconds):
    # shutdown first: a thread blocked in accept() returns, so nothing is
    # accepted during the refusal
    try:
        listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    listener.close()
    with lock:
        doomed = conns[:]
        conns.clear()
    for s in doomed:
        reset(s)
    print("done", time.monotonic(), flush=True)
    time.sleep(seconds)
    open_listener()


open_listener()
print("listening", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if not cmd:
        continue
    if cmd[0] == "pause":
        gate.clear()
    elif cmd[0] == "resume":
        gate.set()
    elif cmd[0] == "cut":
        threading.Thread(target=cut, args=(float(cmd[1]),), daemon=True).start()
        continue  # the cut answers when it took effect
    elif cmd[0] == "quit":
        break
    print("done", time.monotonic(), flush=True)
