"""The two-process frame the examples share: a script runs its receiving
half in a child process (the same script, started again with --receive)
and its sending half in this one, over a fresh socket path."""
import os
import subprocess
import sys
import tempfile


def two_processes(script, receive, send):
    """Run receive(path) in a child and send(path) here; the child's exit code."""
    if len(sys.argv) == 3 and sys.argv[1] == "--receive":
        receive(sys.argv[2])
        return 0
    path = os.path.join(tempfile.gettempdir(), f"tachyon-example-{os.getpid()}.sock")
    receiver = subprocess.Popen([sys.executable, script, "--receive", path])
    try:
        send(path)
    finally:
        code = receiver.wait(timeout=30)
    return code
