"""The frames two tcp:// bus ends exchange over a ZeroMQ connection.

Every ZeroMQ message between the ends is one header part, optionally
followed by one body part (a DATA payload, a HELLO's terms, a REFUSE's
reason). On the listener's ROUTER socket a routing-id part comes first.

Header, little-endian, 36 bytes:

    magic     4s  b"TCYN"
    version   B   PROTOCOL_VERSION; the first five bytes never change, so any
                  version can read another's magic and version and refuse it
    kind      B   one of the K_* below
    flags     H   a role for CLAIM/VERDICT, a reason for REFUSE, F_INLINE for
                  a DATA whose payload follows the header in the same part,
                  F_RESUME for a HELLO or WELCOME over a new connection
    type_id   I   DATA only
    session   Q   the sender's session id, random per end per bus; a frame
                  from another session is dropped, so a restarted peer cannot
                  splice into an old stream
    seq       Q   DATA: 1, 2, 3... per sender; CLOSE: the last DATA sent;
                  CREDIT, and a resuming HELLO or WELCOME: the last DATA this
                  end received in order (an acknowledgement)
    value     Q   CREDIT, and a resuming HELLO or WELCOME: payload cost the
                  consumer granted in total (a running total, so a repeated or
                  lost grant cannot inflate the credit)

Session ids and sequence numbers on every frame are what a resumed
connection needs to tell a repeat or a gap from the next message. After
ZeroMQ reconnects, the connector sends a HELLO with F_RESUME and its own
session; the listener answers a WELCOME with F_RESUME. Each carries what
its sender received, and each producer then sends again, in order, what
the other did not acknowledge (a receiver takes only the next number and
drops anything else, so repeats and the frames behind a gap never reach
the program).

A BATCH carries several DATA messages in one part (``send_many`` of small
payloads): the header's seq is the first message's number, its type_id
field the message count, and after the header come, per message, an ITEM
(type_id, size) and size bytes of payload. The messages keep their own
numbers (seq, seq + 1, ...), type_ids and credit costs; a batch is taken
or dropped whole, and sent again whole after a cut. An end sends batches
only to a peer whose HELLO or WELCOME carried F_BATCH, so a peer of this
protocol version that predates them is never sent one.
"""
import struct
from typing import Optional, Tuple

MAGIC = b"TCYN"
PROTOCOL_VERSION = 1

HEADER = struct.Struct("<4sBBHIQQQ")
# Per message in a BATCH, before its payload: type_id, size.
ITEM = struct.Struct("<II")
# HELLO and WELCOME body: capacity, max_payload, liveness in ms, role.
TERMS = struct.Struct("<QQIB")

K_HELLO = 1      # connector -> listener: our terms
K_WELCOME = 2    # listener -> connector: the bus's terms
K_REFUSE = 3     # either way: flags = reason, body = a sentence
K_DATA = 4       # producer -> consumer: body = payload
K_CREDIT = 5     # consumer -> producer: seq = last taken, value = cost taken in total
K_CLAIM = 6      # a role claim (flags = role); the listener arbitrates
K_VERDICT = 7    # listener -> connector: flags = the role granted, 0 refused
K_CLOSE = 8      # orderly close; seq = last DATA sent
K_CLOSE_ACK = 9  # the CLOSE and everything before it arrived
K_BATCH = 10     # producer -> consumer: type_id = count, seq = the first's; ITEMs inline

F_INLINE = 1     # DATA: the payload follows the header in the same part
F_RESUME = 2     # HELLO/WELCOME: the same session, over a new connection
F_BATCH = 4      # HELLO/WELCOME: this end takes BATCH frames

R_PROTOCOL = 1   # not our protocol, or a frame out of turn
R_VERSION = 2    # another protocol version
R_BUSY = 3       # the bus already has its connector
R_CLOSED = 4     # the bus was closed
R_ROLE = 5       # the listener holds the role the connector asked for
R_RESTARTED = 6  # a new session while the bus's session had lost its connection:
                 # that session is declared dead; the connector tries again
R_SESSION = 7    # a resume of a session this listener does not hold (it restarted)
R_DEAD = 8       # this end declared the session dead

ROLE_NONE, ROLE_PRODUCER, ROLE_CONSUMER = 0, 1, 2
ROLE_NAMES = {ROLE_NONE: None, ROLE_PRODUCER: "producer", ROLE_CONSUMER: "consumer"}
ROLE_CODES = {None: ROLE_NONE, "producer": ROLE_PRODUCER, "consumer": ROLE_CONSUMER}

# What one message costs of the credit: its payload and a header's worth,
# as a slot costs in a local ring, so max_payload = capacity // 2 - 64 fits.
MSG_OVERHEAD = 64


def header(kind: int, session: int, *, flags: int = 0, type_id: int = 0, seq: int = 0,
           value: int = 0) -> bytes:
    return HEADER.pack(MAGIC, PROTOCOL_VERSION, kind, flags, type_id, session, seq, value)


def version_of(buf: bytes) -> Optional[int]:
    """The protocol version of a header part that carries our magic, else None."""
    if len(buf) >= 5 and buf[:4] == MAGIC:
        return buf[4]
    return None


def parse(buf: "bytes | memoryview") -> Optional[Tuple[int, int, int, int, int, int, int]]:
    """(version, kind, flags, type_id, session, seq, value) of a header part,
    or None when it is not one (short, or another magic). An inline DATA
    carries its payload after the header's 36 bytes."""
    if len(buf) < HEADER.size:
        return None
    magic, version, kind, flags, type_id, session, seq, value = HEADER.unpack_from(buf)
    if len(buf) != HEADER.size and not (kind == K_DATA and flags & F_INLINE) \
            and kind != K_BATCH:
        return None
    if magic != MAGIC:
        return None
    return version, kind, flags, type_id, session, seq, value


def cost(size: int) -> int:
    return size + MSG_OVERHEAD
