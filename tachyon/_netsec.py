"""CURVE for the tcp:// bus: keys, the listener's check of who connects, and
the connector's keys.

ZeroMQ's CURVE (ZMTP's CurveZMQ) encrypts and authenticates every frame with
Curve25519 keys. The listener proves itself with its secret key (the
connector must know the matching public key in advance); the connector
proves itself with its own keypair, and libzmq asks a ZAP handler whether
that public key may connect. The handler here is pyzmq's thread
authenticator: it answers from its own thread, so a reconnect is checked
even while the program makes no call on the bus. Keys are Z85 text, 40
characters (str or ASCII bytes), as zmq.curve_keypair makes them.
"""
from typing import Any, FrozenSet, Iterable, Optional, Tuple, Union

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

_Key = Union[str, bytes]
# The listener's terms: its secret key, and the client keys allowed (None: any).
Terms = Tuple[bytes, Optional[FrozenSet[bytes]]]

# What a connector's monitor reports when the security handshake fails: the
# listener refused our key (libzmq then stops reconnecting), the two ends
# disagree on the mechanism (CURVE at one end only), or the connection was
# broken off mid-handshake (what a wrong server key, and often a mechanism
# mismatch, look like from here, but also what a transient reset or a
# proxy without its listener looks like, so only a hint: failure() below).
FAILURES = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def curve_keypair() -> Tuple[str, str]:
    """A new CURVE keypair (public, secret) as Z85 text, 40 characters each."""
    public, secret = zmq.curve_keypair()
    return public.decode("ascii"), secret.decode("ascii")


def _key(value: Any, what: str) -> bytes:
    """A Z85 key as the 40 ASCII bytes libzmq takes; ValueError naming what otherwise."""
    raw = value.encode("ascii", "replace") if isinstance(value, str) else value
    if not isinstance(raw, bytes) or len(raw) != 40:
        raise ValueError(f"{what} must be a 40-character Z85 key (str or bytes, as "
                         f"tachyon.curve_keypair() makes), got {value!r:.60}")
    try:
        z85.decode(raw)
    except (ValueError, KeyError, IndexError):
        raise ValueError(f"{what} is not Z85 text: {value!r}") from None
    return raw


def listen_terms(curve_secret: Optional[_Key],
                 allowed_clients: "Optional[Union[str, Iterable[_Key]]]") -> Optional[Terms]:
    """Check the listener's CURVE arguments; None when it listens without CURVE."""
    if curve_secret is None:
        if allowed_clients is not None:
            raise ValueError("allowed_clients needs curve_secret: without CURVE a tcp:// "
                             "listener cannot tell clients apart")
        return None
    secret = _key(curve_secret, "curve_secret")
    if allowed_clients is None:
        # An authenticated server that lets anyone in is a choice to make
        # explicitly, not a default to fall into.
        raise ValueError("curve_secret needs allowed_clients: a list of the client public keys "
                         "that may connect, or \"any\" for every client that knows this "
                         "listener's public key")
    if isinstance(allowed_clients, str):
        if allowed_clients != "any":
            raise ValueError("allowed_clients must be a list of client public keys or \"any\", "
                             f"got the string {allowed_clients!r}")
        return secret, None
    allowed = frozenset(_key(k, "each of allowed_clients") for k in allowed_clients)
    if not allowed:
        raise ValueError("allowed_clients is empty: no client could connect")
    return secret, allowed


class _Allowed:
    """The thread authenticator's question: may this client public key connect?"""

    def __init__(self, keys: FrozenSet[bytes]) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


def serve(ctx: "zmq.Context[Any]", sock: "zmq.Socket[Any]",
          terms: Optional[Terms]) -> Optional[ThreadAuthenticator]:
    """Make sock a CURVE server (before it binds) and, when only some clients
    may connect, start the authenticator that checks them; the caller stops
    it before the context ends."""
    if terms is None:
        return None
    secret, allowed = terms
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    if allowed is None:
        # no ZAP handler: libzmq admits every client that completes CURVE
        return None
    auth = ThreadAuthenticator(ctx)
    auth.start()  # before the bind: no client may slip in unchecked
    auth.configure_curve_callback("*", credentials_provider=_Allowed(allowed))
    return auth


def dial(sock: "zmq.Socket[Any]", curve_server_key: Optional[_Key],
         curve_keypair: Optional[Tuple[_Key, _Key]]) -> bool:
    """Make sock a CURVE client (before it connects) when a server key is
    given; True when it is one. Without curve_keypair a fresh keypair is
    used, which a listener admits only with allowed_clients="any"."""
    if curve_server_key is None:
        if curve_keypair is not None:
            raise ValueError("curve_keypair needs curve_server_key, the listener's public key")
        return False
    server = _key(curve_server_key, "curve_server_key")
    if curve_keypair is None:
        public, secret = zmq.curve_keypair()
    else:
        try:
            pub_in, sec_in = curve_keypair
        except (TypeError, ValueError):
            raise ValueError("curve_keypair must be a (public, secret) pair") from None
        public, secret = _key(pub_in, "curve_keypair's public key"), \
            _key(sec_in, "curve_keypair's secret key")
        if zmq.curve_public(secret) != public:
            raise ValueError("curve_keypair: the public key is not the secret key's")
    sock.setsockopt(zmq.CURVE_SERVERKEY, server)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    return True


def failure(event: int, value: int, curve: bool) -> Optional[Tuple[bool, str]]:
    """(final, why) for a monitor event that says the security handshake
    failed: final when waiting longer cannot help; None for other events.
    curve says whether this end uses CURVE."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return True, (f"the listener refused this end's CURVE public key (ZAP status {value}): "
                      "it is not among the listener's allowed_clients")
    mismatch = ("one end uses CURVE and the other does not (a CURVE listener needs "
                "curve_server_key at the connector)")
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return True, f"the security handshake failed: {mismatch}"
    if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        # A listener that finds the other mechanism in our greeting often
        # hangs up before its own greeting is out (we then see EPIPE, not
        # the mismatch), and one that cannot decrypt our CURVE HELLO (a
        # wrong server key) hangs up too. But so does a proxy or port
        # forwarder in front of a listener that is not up yet, which a
        # retry gets through: never final, a hint for the timeout's message.
        why = (f"a curve_server_key that is not the listener's public key, or {mismatch}"
               if curve else mismatch)
        return False, ("the listener broke the connection off during the security handshake, "
                       f"which is what {why} looks like from here")
    return None
