"""The two-process frame the examples share: a script runs one half in a
child process (the same script, started again with --child and the socket
paths) and the other half in this one, over fresh socket paths."""
import os
import socket
import subprocess
import sys
import tempfile


def two_processes(script, child, parent, buses=1, addresses=None):
    """Run child(*paths) in a second process and parent(*paths) here, with
    one socket path per bus (or the given addresses); returns the child's
    exit code."""
    if addresses is not None:
        buses = len(addresses)
    if len(sys.argv) == 2 + buses and sys.argv[1] == "--child":
        child(*sys.argv[2:])
        return 0
    base = os.path.join(tempfile.gettempdir(), f"tachyon-example-{os.getpid()}")
    paths = addresses or [f"{base}-{i}.sock" for i in range(buses)]
    proc = subprocess.Popen([sys.executable, script, "--child", *paths])
    try:
        parent(*paths)
    finally:
        code = proc.wait(timeout=30)
    return code


def loopback_tcp_address():
    """tcp://127.0.0.1:PORT with a port free right now (the examples' stand-in
    for another host)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"
