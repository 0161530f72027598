"""Watch live buses from outside: find them through /proc, read them, never write.

Every ring is a memfd. Each process holding one shows it as /proc/PID/fd/N ->
"/memfd:<socket path> (deleted)". A ring is recognised by its header (magic,
wire version 4, alignment 64, a file of exactly 768 + capacity bytes), not by
its name, so rings created by tachyon-ipc 0.5.1 are found too. The file is
opened read-only through that link and its first page mapped PROT_READ: an
observer only ever loads from the shared lines (ABI.md, "Traffic counters
and observing a bus").

    from tachyon import observe
    snap = observe.scan()
    for ring in snap.rings:
        print(ring.path, ring.ends, ring.sample().fill)

Processes of other users cannot be looked into without their uid or
CAP_SYS_PTRACE; scan() lists them in `unreadable` instead of failing.
"""
import mmap
import os
import time
from typing import Any, Dict, List, Optional, Tuple

HEADER_SIZE = 768
MAGIC = 0x54414348
WIRE_VERSION = 4
ALIGNMENT = 64
PEER_MARKER = 0x4E4F5954

STATE_NAMES = {0: "uninitialised", 1: "initialising", 2: "ready", 3: "closed", 4: "fatal"}
WAIT_NAMES = {0: "awake", 1: "sleeping", 2: "pure-spin"}
SIDES = {1: "listener", 2: "connector"}

# Offsets of the region header (ABI.md, "The shared region"), in units of the
# word size they are read with: an aligned native load each, never torn.
_U32 = {"magic": 0, "version": 1, "capacity": 2, "alignment": 3, "state": 4,
        "listener_marker": 5, "connector_marker": 6, "producer_owner": 7, "consumer_owner": 8,
        "listener_pid": 9, "connector_pid": 10, "consumer_wait": 96, "producer_wait": 112}
_U64 = {"head": 16, "tail": 32, "sent_messages": 72, "sent_bytes": 73,
        "received_messages": 88, "received_bytes": 89, "consumer_read": 90}


class Sample:
    """One reading of a ring's header at one moment (monotonic seconds)."""

    __slots__ = ("t", "state", "consumer_wait", "head", "tail", "capacity", "sent_messages",
                 "sent_bytes", "received_messages", "received_bytes", "consumer_read")

    def __init__(self, t: float, words: Dict[str, int], capacity: int) -> None:
        self.t = t
        self.capacity = capacity
        self.state = words["state"]
        self.consumer_wait = words["consumer_wait"]
        self.head = words["head"]
        self.tail = words["tail"]
        self.sent_messages = words["sent_messages"]
        self.sent_bytes = words["sent_bytes"]
        self.received_messages = words["received_messages"]
        self.received_bytes = words["received_bytes"]
        self.consumer_read = words["consumer_read"]

    @property
    def used(self) -> int:
        """head - tail, clamped to the ring: the words are read one after another.

        tail ahead of head is nothing in use: between two of our ends the
        consumer may release slots it took by their position stamps before
        the producer publishes head (ABI.md, "Position stamps"), and a tail
        read after head may have moved past it."""
        d = (self.head - self.tail) % (1 << 64)
        if d >= 1 << 63:
            return 0
        return min(d, self.capacity)

    @property
    def fill(self) -> float:
        return self.used / self.capacity

    @property
    def pinned(self) -> int:
        """Bytes our consumer has read and not released (its read cursor - tail).

        Meaningful only when the consumer is ours (a 0.5.1 consumer leaves the
        cursor 0). Both words move together when the consumer publishes; read
        one after the other they can disagree for an instant, so the result
        is clamped to the ring."""
        d = self.consumer_read - self.tail
        return d if 0 <= d <= self.capacity else 0


class Ring:
    """One ring found in /proc: where it is, who holds it, and a read-only view."""

    def __init__(self, key: Tuple[int, int], link: str, name: str) -> None:
        self.key = key                  # (st_dev, st_ino) of the memfd
        self.link = link                # /proc/PID/fd/N it was opened through
        self.path = name                # the memfd's name: the socket path
        self.holders: List[int] = []    # pids with the memfd open
        self.capacity = 0
        self.readable = False
        self.error: Optional[str] = None
        self._map: Optional[mmap.mmap] = None
        self._u32: Optional[memoryview] = None
        self._u64: Optional[memoryview] = None
        self.static: Dict[str, int] = {}

    # -- opening -----------------------------------------------------------
    def open(self) -> bool:
        """Open and check the memfd; map its header read-only. False if it is no ring of ours."""
        try:
            fd = os.open(self.link, os.O_RDONLY | os.O_CLOEXEC)
        except PermissionError as e:
            self.error = f"not readable: {e.strerror}"
            return True  # a ring we may not read is still worth listing
        except OSError:
            return False  # gone meanwhile
        try:
            size = os.fstat(fd).st_size
            if size < HEADER_SIZE + 64:
                return False
            head = os.pread(fd, 16, 0)
            if len(head) < 16:
                return False
            magic, version, cap, align = (int.from_bytes(head[i:i + 4], "little") for i in (0, 4, 8, 12))
            if (magic != MAGIC or version != WIRE_VERSION or align != ALIGNMENT or cap < 64
                    or cap & (cap - 1) or size != HEADER_SIZE + cap):
                return False
            # One page covers the header; PROT_READ: this process can never store to it.
            self._map = mmap.mmap(fd, HEADER_SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
        finally:
            os.close(fd)
        mv = memoryview(self._map)
        self._u32 = mv.cast("I")
        self._u64 = mv.cast("Q")
        mv.release()
        self.capacity = cap
        self.readable = True
        self.static = {k: self._u32[i] for k, i in _U32.items()
                       if k in ("listener_marker", "connector_marker", "producer_owner",
                                "consumer_owner", "listener_pid", "connector_pid")}
        return True

    def close(self) -> None:
        for v in (self._u32, self._u64):
            if v is not None:
                v.release()
        self._u32 = self._u64 = None
        if self._map is not None:
            self._map.close()
            self._map = None

    # -- reading -----------------------------------------------------------
    def words(self) -> Dict[str, int]:
        """Every header word, each one aligned load from the mapping."""
        assert self._u32 is not None and self._u64 is not None
        out = {k: self._u32[i] for k, i in _U32.items()}
        out.update({k: self._u64[i] for k, i in _U64.items()})
        return out

    def sample(self) -> Sample:
        return Sample(time.monotonic(), self.words(), self.capacity)

    # -- who is who --------------------------------------------------------
    def ends(self) -> List[Dict[str, Any]]:
        """The listener and the connector: pid, implementation, role, liveness."""
        w = self.words() if self.readable else {}
        out = []
        for side, code, marker_key, pid_key in (("listener", 1, "listener_marker", "listener_pid"),
                                                ("connector", 2, "connector_marker", "connector_pid")):
            ours = w.get(marker_key) == PEER_MARKER
            pid = w.get(pid_key) or None
            role = ("producer" if w.get("producer_owner") == code
                    else "consumer" if w.get("consumer_owner") == code else None)
            out.append({"side": side, "pid": pid, "impl": "ours" if ours else None,
                        "role": role, "alive": None})
        # A 0.5.1 end writes no pid: a holder no end claims is that end.
        # Only when that is unambiguous: one end without a pid, one holder
        # nobody claims (an end of ours always wrote its pid, so with both
        # pids missing the holder could be either end).
        claimed = {e["pid"] for e in out if e["pid"]}
        others = [p for p in self.holders if p not in claimed]
        missing = [e for e in out if e["pid"] is None]
        if len(missing) == 1 and len(others) == 1 and missing[0]["impl"] is None:
            missing[0]["pid"] = others[0]
        if self.readable:
            for e in out:
                if e["impl"] is None and e["pid"] is not None:
                    e["impl"] = "0.5.1"
        # The role a 0.5.1 end never claims is the one the other end left.
        roles = {e["role"] for e in out}
        for e in out:
            if e["role"] is None and e["impl"] == "0.5.1" and len(roles - {None}) == 1:
                e["role"] = "consumer" if "producer" in roles else "producer"
        for e in out:
            e["alive"] = liveness(e["pid"], self.holders) if e["pid"] else None
        return out

    def describe(self, sample: Optional[Sample] = None) -> Dict[str, Any]:
        """A JSON-ready record of the ring."""
        d: Dict[str, Any] = {"path": self.path, "inode": self.key[1], "holders": sorted(self.holders),
                             "readable": self.readable}
        if not self.readable:
            d["error"] = self.error
            return d
        s = sample or self.sample()
        ends = self.ends()
        consumer_ours = any(e["role"] == "consumer" and e["impl"] == "ours" for e in ends)
        d.update({
            "capacity": self.capacity, "used": s.used, "fill": round(s.fill, 4),
            "state": STATE_NAMES.get(s.state, str(s.state)),
            "consumer_wait": WAIT_NAMES.get(s.consumer_wait, str(s.consumer_wait)),
            "head": s.head, "tail": s.tail,
            "sent_messages": s.sent_messages, "sent_bytes": s.sent_bytes,
            "received_messages": s.received_messages, "received_bytes": s.received_bytes,
            # unknown (None) for a 0.5.1 consumer, which publishes no read cursor
            "pinned_bytes": s.pinned if consumer_ours else None,
            "ends": ends,
        })
        return d


def liveness(pid: int, holders: List[int]) -> str:
    """alive (holds the ring), dead (no such process, or a zombie), or gone (lives, holds it no more)."""
    if pid in holders:
        return "alive"
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return "dead"
    # the state letter follows the command name's closing parenthesis
    state = stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3]
    return "dead" if state in (b"Z", b"X") else "gone"


class Snapshot:
    """What one pass over /proc found."""

    def __init__(self) -> None:
        self.rings: List[Ring] = []
        self.unreadable: List[Dict[str, Any]] = []   # processes whose fds we may not list

    def close(self) -> None:
        for r in self.rings:
            r.close()

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def to_json(self) -> Dict[str, Any]:
        return {"time": time.time(), "buses": [r.describe() for r in self.rings],
                "unreadable": self.unreadable}


def _proc_owner(pid: str) -> Dict[str, Any]:
    info: Dict[str, Any] = {"pid": int(pid), "uid": None, "comm": None}
    try:
        info["uid"] = os.stat(f"/proc/{pid}").st_uid
        with open(f"/proc/{pid}/comm") as f:
            info["comm"] = f.read().strip()
    except OSError:
        pass
    return info


def scan(proc: str = "/proc") -> Snapshot:
    """Find every ring held by a process we can look into; list the processes we cannot."""
    snap = Snapshot()
    found: Dict[Tuple[int, int], Ring] = {}
    rejected = set()
    me = os.getpid()
    for pid in os.listdir(proc):
        if not pid.isdigit() or int(pid) == me:
            continue
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            snap.unreadable.append(_proc_owner(pid))
            continue
        except OSError:
            continue  # exited meanwhile
        for fd in fds:
            link = f"{fd_dir}/{fd}"
            try:
                target = os.readlink(link)
                if not target.startswith("/memfd:"):
                    continue
                st = os.stat(link)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in rejected:
                continue
            ring = found.get(key)
            if ring is None:
                name = target[len("/memfd:"):]
                if name.endswith(" (deleted)"):
                    name = name[:-len(" (deleted)")]
                ring = Ring(key, link, name)
                if not ring.open():
                    rejected.add(key)
                    continue
                found[key] = ring
            if int(pid) not in ring.holders:
                ring.holders.append(int(pid))
    snap.rings = sorted(found.values(), key=lambda r: (r.path, r.key))
    return snap


def rates(a: Sample, b: Sample, producer_ours: bool, consumer_ours: bool) -> Dict[str, float]:
    """Messages and bytes per second between two samples of one ring.

    Payload counters where the side is ours; otherwise head (or tail) deltas,
    which count ring bytes (headers and padding included) and no messages.
    """
    dt = max(b.t - a.t, 1e-9)
    out: Dict[str, float] = {}
    if producer_ours:
        out["msg_per_s"] = (b.sent_messages - a.sent_messages) / dt
        out["bytes_per_s"] = (b.sent_bytes - a.sent_bytes) / dt
    elif consumer_ours:
        out["msg_per_s"] = (b.received_messages - a.received_messages) / dt
        out["bytes_per_s"] = (b.received_bytes - a.received_bytes) / dt
    else:
        out["msg_per_s"] = float("nan")
        out["bytes_per_s"] = ((b.head - a.head) % (1 << 64)) / dt
    return out
