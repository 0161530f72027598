"""python -m tachyon bridge: forward one bus into another, so that a program
written for a local bus reaches another host unchanged.

    python -m tachyon bridge (--from-listen A | --from-connect A)
                             (--to-listen B | --to-connect B)
                             [--capacity BYTES] [--stats [SECONDS]] [tcp options]

A and B are each a local socket path or a tcp://HOST:PORT address. The bridge
is the consumer of A and the producer of B: every message taken from A is
sent to B with its type_id, in order. A local program keeps its socket path;
the bridge on its host carries the stream over tcp:// to the bridge (or the
tcp:// program) on the other.

The connecting ends are opened first, then the listening ends, the source
before the destination. Back-pressure passes through: while B has no room,
the bridge takes nothing more from A, so A's producer sees its ring fill as
if B's consumer were local.

Copies: a payload from a local ring to tcp:// is copied once, into the frame
the tcp end keeps until the consumer acknowledges it (so that it can send it
again after a cut); pinning the slot instead would hold the local ring until
that acknowledgement, which comes only with a quarter of the tcp capacity.
From tcp:// to a local ring the payload is copied once, into the slot.

Ends: exit 0 when A's peer closed in order and everything it sent was
forwarded (B is closed in order too, so B's consumer sees PeerClosedError
after the last message); exit 0 on SIGINT or SIGTERM once the message in hand
is forwarded and B is flushed; exit 1, with the reason on stderr, when a peer
is lost (PeerDeadError, or B's consumer closing while A still sends) or an
end cannot be opened; exit 2 on bad arguments.
"""
import argparse
import signal
import sys
import time
from typing import Any, Dict, List, Literal, Optional, Tuple

import tachyon

SLICE = 0.2          # the longest a call waits before the bridge looks at signals
FLUSH_LIMIT = 5.0    # after a stop signal, how long the message in hand may wait for room


class _Stopped(Exception):
    """A stop signal while an end was still being opened."""


class _State:
    def __init__(self) -> None:
        self.stop: Optional[int] = None   # the signal that asked for a stop
        self.forwarding = False           # from here on a signal only sets stop
        self.messages = 0
        self.bytes = 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tachyon bridge",
        description="Forward the messages of one bus (a local socket path or tcp://HOST:PORT) "
                    "into another, in order, with their type_ids.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-listen", metavar="A", help="listen at A; the bridge consumes from it")
    src.add_argument("--from-connect", metavar="A", help="connect to A; the bridge consumes from it")
    dst = p.add_mutually_exclusive_group(required=True)
    dst.add_argument("--to-listen", metavar="B", help="listen at B; the bridge produces to it")
    dst.add_argument("--to-connect", metavar="B", help="connect to B; the bridge produces to it")
    p.add_argument("--capacity", type=int, default=1 << 20, metavar="BYTES",
                   help="capacity of a bus the bridge listens on (default 1 MiB)")
    p.add_argument("--stats", nargs="?", type=float, const=5.0, default=None, metavar="SECONDS",
                   help="print a status line every SECONDS (default 5)")
    p.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="how long a connecting end waits for its listener (default 10)")
    net = p.add_argument_group("tcp:// ends")
    net.add_argument("--liveness", type=float, default=None, metavar="SECONDS",
                     help="liveness of a tcp:// end (default 5)")
    net.add_argument("--insecure", action="store_true",
                     help="allow a tcp:// listener beyond loopback without CURVE")
    net.add_argument("--curve-secret-file", metavar="FILE",
                     help="CURVE: the file holding a tcp:// listener's secret key")
    net.add_argument("--allow-client", action="append", metavar="KEY",
                     help="CURVE: a client public key a tcp:// listener admits (repeatable; write "
                          "--allow-client=KEY, since a Z85 key may start with '-'), "
                          "or 'any'")
    net.add_argument("--curve-server-key", metavar="KEY",
                     help="CURVE: the public key of the listener a tcp:// connector reaches (write "
                          "--curve-server-key=KEY, since a Z85 key may start with '-')")
    net.add_argument("--curve-keypair-file", metavar="FILE",
                     help="CURVE: the file holding a tcp:// connector's public and secret keys, "
                          "one a line")
    return p


def _read_keys(path: str, count: int) -> List[str]:
    with open(path) as f:
        keys = f.read().split()
    if len(keys) != count:
        raise ValueError(f"{path}: expected {count} key(s), one a line, found {len(keys)}")
    return keys


def _tcp_options(args: argparse.Namespace, listening: bool) -> Dict[str, Any]:
    """The keywords for a tcp:// end: listening or connecting."""
    kw: Dict[str, Any] = {}
    if args.liveness is not None:
        kw["liveness"] = args.liveness
    if listening:
        if args.insecure:
            kw["insecure"] = True
        if args.curve_secret_file:
            kw["curve_secret"] = _read_keys(args.curve_secret_file, 1)[0]
        if args.allow_client:
            kw["allowed_clients"] = "any" if args.allow_client == ["any"] else args.allow_client
    else:
        if args.curve_server_key:
            kw["curve_server_key"] = args.curve_server_key
        if args.curve_keypair_file:
            kw["curve_keypair"] = tuple(_read_keys(args.curve_keypair_file, 2))
    return kw


def _open(args: argparse.Namespace, address: str, listening: bool,
          role: 'Literal["producer", "consumer"]') -> Any:
    kw = _tcp_options(args, listening) if address.startswith("tcp://") else {}
    if listening:
        return tachyon.Bus.listen(address, args.capacity, role=role, **kw)
    return tachyon.Bus.connect(address, timeout=args.connect_timeout, role=role, **kw)


def _status(state: _State, began: float, what: str) -> str:
    took = max(time.monotonic() - began, 1e-9)
    return (f"bridge: {what}{state.messages} messages, {state.bytes} bytes forwarded "
            f"({state.messages / took:.0f} msg/s, {state.bytes / took / 1e6:.1f} MB/s)")


class _Ticker:
    """The status line every interval seconds (never without --stats)."""

    def __init__(self, state: _State, interval: Optional[float]) -> None:
        self.state, self.interval = state, interval
        self.began = self.last = time.monotonic()

    def tick(self) -> None:
        if self.interval is not None and time.monotonic() - self.last >= self.interval:
            self.last = time.monotonic()
            print(_status(self.state, self.began, ""), flush=True)


def _put(dst: Any, view: Any, state: _State, ticker: _Ticker) -> None:
    """Send one received view to dst, waiting for room in slices; after a
    stop signal for at most FLUSH_LIMIT seconds."""
    give_up: Optional[float] = None
    while True:
        try:
            dst.send(view, view.type_id, timeout=SLICE)
            return
        except tachyon.BusFullError:
            pass
        ticker.tick()
        if state.stop is not None:
            if give_up is None:
                give_up = time.monotonic() + FLUSH_LIMIT
            elif time.monotonic() > give_up:
                raise tachyon.BusFullError(
                    f"the destination took no message for {FLUSH_LIMIT:g} s after the stop "
                    "signal; one message in hand is not forwarded")


def _forward(src: Any, dst: Any, state: _State, ticker: _Ticker) -> str:
    """Move messages until the source closes ("closed") or a signal asks to
    stop ("signal"); a lost peer raises."""
    while state.stop is None:
        try:
            view = src.recv_zero_copy(timeout=SLICE)
        except tachyon.TachyonTimeoutError:
            ticker.tick()
            continue
        except tachyon.PeerClosedError:
            return "closed"
        with view:
            size = view.actual_size
            _put(dst, view, state, ticker)
        state.messages += 1
        state.bytes += size
        if not state.messages & 255:
            ticker.tick()
    return "signal"


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.stats is not None and not args.stats > 0:
        print("bridge: --stats takes a positive number of seconds", file=sys.stderr)
        return 2
    state = _State()

    def on_signal(signum: int, frame: Any) -> None:
        state.stop = signum
        if not state.forwarding:
            raise _Stopped()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    ends: Dict[str, Any] = {}
    src_addr, src_listen = ((args.from_listen, True) if args.from_listen is not None
                            else (args.from_connect, False))
    dst_addr, dst_listen = ((args.to_listen, True) if args.to_listen is not None
                            else (args.to_connect, False))
    try:
        try:
            # connecting ends first: they fail fast; then the listening ones
            ends_in_order: List[Tuple[str, str, bool, Literal["producer", "consumer"]]] = [
                ("source", src_addr, src_listen, "consumer"),
                ("destination", dst_addr, dst_listen, "producer")]
            for name, address, listening, role in sorted(ends_in_order, key=lambda end: end[2]):
                try:
                    ends[name] = _open(args, address, listening, role)
                except (tachyon.TachyonError, OSError, ValueError) as e:
                    print(f"bridge: cannot open the {name} {address}: {e}", file=sys.stderr)
                    return 1
            ticker = _Ticker(state, args.stats)
            state.forwarding = True
            if state.stop is not None:
                how = "signal"
            else:
                how = _forward(ends["source"], ends["destination"], state, ticker)
            ends["destination"].flush()
        except _Stopped:
            print("bridge: stopped before both ends were open", file=sys.stderr)
            return 0
        except (tachyon.PeerDeadError, tachyon.PeerClosedError, tachyon.BusFullError,
                tachyon.BusClosedError, tachyon.RoleError) as e:
            print(f"bridge: {type(e).__name__}: {e} ({state.messages} messages forwarded)",
                  file=sys.stderr)
            return 1
        # An orderly close of the destination: its consumer gets everything,
        # then PeerClosedError (a tcp:// end waits for its acknowledgement).
        ends.pop("destination").close()
        if args.stats is not None:
            what = "the source closed; " if how == "closed" else "stopped by a signal; "
            print(_status(state, ticker.began, what), flush=True)
        return 0
    finally:
        state.forwarding = True  # a late signal only sets the flag now
        for bus in ends.values():
            bus.close()
        for s, h in old.items():
            signal.signal(s, h)
