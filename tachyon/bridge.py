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

Copies: from a local ring to tcp://, when the ring is at least four times
the tcp capacity (IN_PLACE_RING_MIN; size it with --capacity when the
bridge listens on the ring), a payload of PIN_MIN (256 KiB) or more goes to
libzmq from its slot without a copy, and the slot stays held until the
consumer acknowledged the message and libzmq let go of it (a resend after a
cut is sent from the same slot). Held slots keep what is unacknowledged, up
to the tcp capacity, and what was sent while their release lagged behind
the acknowledgement; in half of such a ring all of them fit. In half of a
smaller ring they do not: many would be copied out again after all, which
costs more than copying once, so with a smaller ring every payload is
copied, as below 256 KiB. A copied payload is copied once, into the frame
the tcp end keeps until acknowledged: below 256 KiB that copy costs less
than keeping the slot (docs/ACROSS_HOSTS.md). Held slots are still kept
within half the ring, and copied out and released when the source has had
nothing for a while (_Pins), so that the source's producer never waits for
an acknowledgement, which comes only every quarter of the tcp capacity.
From tcp:// to a local ring the payload is copied once, into the slot.

Ends: exit 0 when A's peer closed in order and everything it sent was
forwarded (B is closed in order too, so B's consumer sees PeerClosedError
after the last message); exit 0 on SIGINT or SIGTERM once the message in hand
is forwarded and B is flushed; exit 1, with the reason on stderr, when a peer
is lost (PeerDeadError, or B's consumer closing while A still sends) or an
end cannot be opened; exit 2 on bad arguments.
"""
import argparse
import collections
import signal
import sys
import time
from typing import Any, Callable, Deque, Dict, List, Literal, Optional, Tuple

import tachyon

SLICE = 0.2          # the longest a call waits before the bridge looks at signals
FLUSH_LIMIT = 5.0    # after a stop signal, how long the message in hand may wait for room
# From a local ring to tcp://, a payload of at least PIN_MIN bytes is sent from
# its slot in place (see "Copies" above). Measured as the CPU time per message
# of the bridge (local ring four times the tcp capacity, so that all went in
# place; two runs each against the copying bridge): 20% more at 64 KiB (a
# tracked zmq.Frame and pyzmq's release thread, woken per message, outweigh a
# 64 KiB copy), -6% to +8% at 128 KiB, 8-14% less at 256 KiB, 8-23% less at
# 512 KiB, 21% less at 1 MiB (one run).
PIN_MIN = 1 << 18
# In place only when the local ring is at least this many times the tcp
# capacity. With equal capacities (the rule of docs/ACROSS_HOSTS.md sizes
# both alike) unacknowledged payloads take up to all of the ring, so most
# held slots had to be copied out again after all: slower than the copying
# bridge at 1 MiB (1180 against 1349 msg/s, medians of four runs). At twice
# the tcp capacity 52 to 57% of 1 MiB payloads still went in place (2 runs),
# at four times 99.6 to 100% (3 runs): the slots' release lags behind the
# acknowledgement (pyzmq's helper thread reports libzmq's release).
IN_PLACE_RING_MIN = 4
# With slots held, how long the source may have nothing before they are
# copied out and released (its producer may be waiting for their room).
PIN_PATIENCE = 0.05
# With slots held, how often they are looked at while the source has nothing.
PIN_POLL = 0.001


class _Stopped(Exception):
    """A stop signal while an end was still being opened."""


class _State:
    def __init__(self) -> None:
        self.stop: Optional[int] = None   # the signal that asked for a stop
        self.forwarding = False           # from here on a signal only sets stop
        self.messages = 0
        self.bytes = 0
        self.in_place = 0                 # sent from the source's ring without a copy


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
                   help="capacity of a bus the bridge listens on (default 1 MiB); a local "
                        "ring that feeds tcp:// sends payloads of 256 KiB and more in place, "
                        "without a copy, when it is at least four times the tcp capacity")
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
    in_place = f", {state.in_place} sent from the ring in place" if state.in_place else ""
    return (f"bridge: {what}{state.messages} messages, {state.bytes} bytes forwarded "
            f"({state.messages / took:.0f} msg/s, {state.bytes / took / 1e6:.1f} MB/s{in_place})")


class _Ticker:
    """The status line every interval seconds (never without --stats)."""

    def __init__(self, state: _State, interval: Optional[float]) -> None:
        self.state, self.interval = state, interval
        self.began = self.last = time.monotonic()

    def tick(self) -> None:
        if self.interval is not None and time.monotonic() - self.last >= self.interval:
            self.last = time.monotonic()
            print(_status(self.state, self.began, ""), flush=True)


def _ring_bytes(size: int) -> int:
    """What a message of size bytes holds of a local ring: its header and its
    payload, in 64-byte units."""
    return 64 + ((size + 63) & ~63)


class _Pins:
    """The slots of a local source whose payloads went to a tcp:// destination
    in place (NetBus._send_pinned), each held until its tracker says that the
    tcp end and libzmq are done with it, and released oldest first, as the
    ring gives its room back.

    A held slot stops the ring's tail, so the room held is everything taken
    since the oldest one, copied messages included. That span stays within
    half the ring: a payload that would take it further is copied, and
    after each message the oldest held payloads are copied out and released
    until the span fits (trim), so the producer always has half the ring.
    The consumer acknowledges only every quarter of its capacity, and ring
    room alone cannot promise room for the producer's next message (a slot
    does not wrap); so when the source has had nothing for PIN_PATIENCE,
    every held payload is copied out and released (let_go): the source
    never waits for an acknowledgement, whoever the consumer is. With the
    ring at least IN_PLACE_RING_MIN times the tcp capacity, what is
    unacknowledged (up to the tcp capacity) and what was sent while a
    release lagged stay within half the ring: trim seldom has work then,
    and is kept so that the promise holds whatever the sizing (tests lift
    the rule to exercise it).
    """

    def __init__(self, src: Any, dst: Any) -> None:
        self.dst = dst
        self.budget = src.capacity // 2
        # (guard, seq at the destination, tracker, ring bytes taken before it)
        self.held: Deque[Tuple[Any, int, Any, int]] = collections.deque()
        self.taken = 0          # ring bytes taken from the source so far
        self.copied_upto = 0    # the destination copied the held payloads up to this seq

    def fits(self, size: int) -> bool:
        """Whether a payload of size bytes, next from the source, goes in place."""
        if size < PIN_MIN:
            return False
        oldest = self.held[0][3] if self.held else self.taken
        return self.taken + _ring_bytes(size) - oldest <= self.budget

    def hold(self, guard: Any, sent: Tuple[int, Any], size: int) -> None:
        self.held.append((guard, sent[0], sent[1], self.taken))
        self.taken += _ring_bytes(size)

    def release_done(self) -> None:
        held = self.held
        while held and held[0][2].done:
            held.popleft()[0].__exit__(None, None, None)

    def trim(self) -> None:
        """After a message: release what is done, then have the destination
        copy out the oldest held payloads beyond the budget; their slots are
        released once libzmq let go, at a later look."""
        self.release_done()
        held = self.held
        k = 0
        while k < len(held) and self.taken - held[k][3] > self.budget:
            k += 1
        if k and held[k - 1][1] > self.copied_upto:
            self.copied_upto = held[k - 1][1]
            self.dst._unpin(self.copied_upto)

    def let_go(self) -> None:
        """The source had nothing for PIN_PATIENCE: copy every held payload out."""
        if self.held:
            from zmq import NotDone  # (pins exist only with a tcp:// destination)

            self.copied_upto = self.held[-1][1]
            self.dst._unpin()
            try:
                # within one SLICE while connected; a cut holds it until it
                # is over, and the next look retries
                self.held[-1][2].wait(SLICE)
            except NotDone:
                pass
            self.release_done()

    def release_all(self) -> None:
        """The destination is closed (libzmq holds nothing more): release every slot."""
        while self.held:
            self.held.popleft()[0].__exit__(None, None, None)


def _put(send: Callable[..., Any], view: Any, state: _State, ticker: _Ticker) -> Any:
    """Send one received view with send (the destination's send or
    _send_pinned), waiting for room in slices; after a stop signal for at
    most FLUSH_LIMIT seconds. send's result."""
    give_up: Optional[float] = None
    while True:
        try:
            return send(view, view.type_id, timeout=SLICE)
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


def _forward(src: Any, dst: Any, state: _State, ticker: _Ticker,
             pins: Optional[_Pins]) -> str:
    """Move messages until the source closes ("closed") or a signal asks to
    stop ("signal"); a lost peer raises. pins: from a local ring to tcp://."""
    dry_since: Optional[float] = None  # since when the source had nothing, slots held
    while state.stop is None:
        holding = False
        if pins is not None and pins.held:
            pins.release_done()
            holding = True
        try:
            view = src.recv_zero_copy(timeout=PIN_POLL if holding else SLICE)
        except tachyon.TachyonTimeoutError:
            if pins is not None and pins.held:
                now = time.monotonic()
                if dry_since is None:
                    dry_since = now
                elif now - dry_since >= PIN_PATIENCE:
                    pins.let_go()
                    dry_since = None
            ticker.tick()
            continue
        except tachyon.PeerClosedError:
            return "closed"
        dry_since = None
        size = view.actual_size
        if pins is not None and pins.fits(size):
            pins.hold(view, _put(dst._send_pinned, view, state, ticker), size)
            state.in_place += 1
        else:
            with view:
                _put(dst.send, view, state, ticker)
            if pins is not None:
                pins.taken += _ring_bytes(size)
        if pins is not None and pins.held:
            pins.trim()
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
    pins: Optional[_Pins] = None
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
            if (dst_addr.startswith("tcp://") and not src_addr.startswith("tcp://")
                    and ends["source"].capacity
                    >= IN_PLACE_RING_MIN * ends["destination"].capacity):
                pins = _Pins(ends["source"], ends["destination"])
            state.forwarding = True
            if state.stop is not None:
                how = "signal"
            else:
                how = _forward(ends["source"], ends["destination"], state, ticker, pins)
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
        if pins is not None:
            pins.release_all()
        if args.stats is not None:
            what = "the source closed; " if how == "closed" else "stopped by a signal; "
            print(_status(state, ticker.began, what), flush=True)
        return 0
    finally:
        state.forwarding = True  # a late signal only sets the flag now
        # the destination first: once it is closed, libzmq holds none of the
        # slots that pins keep
        if "destination" in ends:
            ends.pop("destination").close()
        if pins is not None:
            pins.release_all()
        for bus in ends.values():
            bus.close()
        for s, h in old.items():
            signal.signal(s, h)
