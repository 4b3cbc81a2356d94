"""Shared-memory single-producer/single-consumer rings between worker processes.

Theory of operation
-------------------
Each account lives on one worker, so traffic between accounts that live on
different workers (stream and service imports) must cross a process boundary.
It crosses on *rings*: one per ordered pair of workers, created by the
supervisor and handed to both ends over the control channel with
``SCM_RIGHTS``. A ring is two file descriptors:

* a **memfd** holding a 4 KiB header page followed by a power-of-two data area,
  sealed against resizing (``F_SEAL_SHRINK | F_SEAL_GROW``) so that neither end
  can truncate it under the other and turn every access into ``SIGBUS``;
* an **eventfd** doorbell that the consumer registers with ``loop.add_reader``.

Header page. Every word is an 8-byte little-endian counter, aligned to 8 bytes,
and each *writer* owns whole 64-byte cache lines, so a store never shares a
line with a word the other side writes (no false sharing, and no torn reads:
prototype ``torn_test.py`` saw 0 torn reads at aligned offsets and 100k+ where a
value straddled a line)::

    line 0  (  0) identity   magic, layout version, data size, epoch   [creator]
    line 1  ( 64) head       bytes consumed, monotonic                  [consumer]
    line 2  (128) tail       bytes published, monotonic                 [producer]
    line 3  (192) producer   heartbeat, records/bytes written,
                             records/bytes dropped, batches, pid, attaches
    line 4  (256) consumer   heartbeat, records/bytes read, drains, pid, attaches
    line 5  (320) name       UTF-8, NUL padded (for humans and core dumps)
    4096          data area  ``size`` bytes, ``size`` a power of two

``head`` and ``tail`` are virtual byte positions that only grow; the physical
offset is ``pos & (size - 1)`` and the bytes in flight are ``tail - head``.
A u64 of bytes will not wrap in the lifetime of the universe at memory speed.

Records are ``u32 len | u32 kind | payload``, padded to 8 bytes so that every
header stays aligned; ``kind`` is the caller's, any u32. A record never
straddles the end of the data area: when the next record does not fit in the
bytes left before the end, the producer writes a WRAP marker there (a header
whose ``len`` is ``WRAP_LEN``, a length no record can have) and continues at
offset 0; the marker and the bytes after it up to the end are waste that the
consumer skips. Byte counters count *record bytes* (header + padded payload,
what a record occupies in the ring, waste excluded): that is free to count,
where summing payload lengths would cost a Python add per record.
Keeping records contiguous keeps the door open to in-place parsing (a C helper,
a debugger walking the ring) at no cost to the Python path.

Batching is the whole game. Prototypes (python-ceilings.md §3) measured about
0.9 µs per record *per side* when each record is published and rung on its
own, against 60-130 ns for the producer and 220-350 ns for the consumer when:

* the producer **stages** records in a private ``bytearray`` during one event
  loop iteration (:meth:`Producer.stage`, no shared-memory access at all), then
  :meth:`Producer.publish` copies the batch in one ``memmove`` (two when it
  crosses the end), stores ``tail`` once and writes the eventfd once;
* the consumer **copies the whole region out** in one ``memcpy`` into an
  immutable ``bytes``, stores ``head`` at once (the space is free again), and
  parses records from the copy, handing out ``memoryview`` slices of it.

Memory ordering, and why this is only correct on x86-64. Python has no atomics
or fences, so the protocol leans on the hardware model. x86-64 is TSO: a store
is never reordered with older stores, and a store is never reordered with
older loads. Hence:

* the producer writes the records (memmove) and *then* stores ``tail``; a
  consumer that sees the new ``tail`` sees the records before it;
* the consumer loads ``tail``, copies the records, and *then* stores ``head``;
  the producer that sees the new ``head`` cannot overwrite bytes still being
  copied;
* each counter store is one aligned 8-byte ``MOV`` (``memoryview.cast('Q')``
  item assignment compiles to a single store), so the peer reads the old or
  the new value, never half of each.

The interpreter loop between the C calls stops the *compiler* from reordering
(every call is opaque and may alias the mapping). On arm64 and other weakly
ordered machines the CPU itself may reorder these stores, and pure Python can
issue no release/acquire barrier, so there :func:`create_ring` builds a
:class:`SocketProducer`/:class:`SocketConsumer` pair instead: a Unix
``SOCK_SEQPACKET`` socketpair carrying one datagram per published batch. The
prototypes measured batched socketpairs within 15% of the ring for records of
128 bytes or less; the ring wins only at 1 KB and up.

Wake-ups. The producer always writes the eventfd after storing ``tail``; the
consumer resets the eventfd *before* loading ``tail``. Both are syscalls, which
are full barriers, so either the consumer's reset comes after the write (and
its ``tail`` load sees the batch), or it comes before (and the write leaves the
eventfd readable, so the loop calls the consumer again). No wake-up is lost.
Never add "skip the write if the consumer is awake": that needs a StoreLoad
fence, which Python cannot issue. A bounded drain (``max_bytes``) that leaves
records behind rings its own doorbell, so the loop comes back to it after
serving other work instead of waiting for the next publish.

Bounds and drops. Everything is bounded: the staging buffer by the data size,
the ring by its size in bytes and by ``max_records`` outstanding (written minus
read, both from the header), a record by ``max_payload``. The producer never
waits: whatever does not fit is **dropped and counted** (records and bytes) in
the header, where the supervisor's monitoring sees it, and ``on_drop`` is
called once per publish that dropped something, so the owner can raise the
typed "ring full" event (STYLE.md rule 9).

Restarts. ``epoch`` is chosen at creation (by default ``time.time_ns()``) and
travels in :class:`RingSpec`; an end that is given the expected epoch refuses a
ring whose header disagrees, which catches a descriptor mixed up during a
restart. Each end restores its cursor and counters from the header when it
attaches and bumps its ``attaches`` word and ``pid``, so a replacement process
continues where the dead one stopped (published records are kept; staged ones
die with the process) and the peer or the supervisor can notice the change.
The heartbeat words are advanced by :meth:`beat` for the supervisor's health
checks. At most one producer and one consumer may be attached at a time; the
supervisor guarantees it by handing a ring to a replacement only after reaping
the old process.

Ownership. An end takes ownership of both descriptors it is given: the memfd is
closed once mapped, the eventfd when the end is closed. ``create_ring`` returns
fresh descriptors that belong to the caller (the supervisor), which closes its
copies after handing them to both ends.

Usage. The supervisor, once per ordered pair of workers::

    spec, fd_a, fd_b = create_ring_spec(f"w{src}->w{dst}", 1 << 20)
    # send spec + (fd_a, fd_b) to worker src (producer) and worker dst (consumer)

The producing worker stages during an event-loop iteration and publishes once
at its end (the same "flush once per read batch" rule as client writes)::

    producer = open_producer(fd_a, fd_b, spec, on_drop=report_ring_full)
    producer.stage(KIND_MSG, frame)          # any number of times
    loop.call_soon(producer.publish)         # once per iteration, if anything staged

The consuming worker registers the doorbell and drains in the callback::

    consumer = open_consumer(fd_a, fd_b, spec)
    loop.add_reader(consumer.fileno(), lambda: handle(consumer.drain(256 * 1024)))
"""

from __future__ import annotations

import fcntl
import mmap
import os
import platform
import socket
import stat
import struct
import time
from collections.abc import Callable
from typing import Any, Self

import msgspec

MAGIC = int.from_bytes(b"NATSRING", "little")
LAYOUT_VERSION = 1
HEADER_SIZE = 4096
MIN_SIZE = 4096
MAX_SIZE = 1 << 30
DEFAULT_SIZE = 1 << 20
DEFAULT_MAX_RECORDS = 1 << 16
WRAP_LEN = 0xFFFF_FFFF  # a record length no record can have: marks the waste at the end
MAX_KIND = 0xFFFF_FFFF
NAME_BYTES = 64

# Word indexes into the header viewed as u64 (offset // 8); see the layout above.
_MAGIC, _VERSION, _SIZE, _EPOCH = 0, 1, 2, 3
_HEAD = 8
_TAIL = 16
_P_BEAT, _P_RECORDS, _P_BYTES, _P_DROP_RECORDS, _P_DROP_BYTES, _P_BATCHES, _P_PID, _P_ATTACH = range(24, 32)
_C_BEAT, _C_RECORDS, _C_BYTES, _C_DRAINS, _C_PID, _C_ATTACH = range(32, 38)
_NAME_OFFSET = 320

_HDR = struct.Struct("<II")
_pack_hdr = _HDR.pack
_unpack_hdr = _HDR.unpack_from
_WRAP_RECORD = _pack_hdr(WRAP_LEN, 0)
# _PAD[n & 7] brings a payload of length n up to a multiple of 8.
_PAD = tuple(bytes(-i & 7) for i in range(8))

# Pure-Python shared-memory ordering is sound only under x86-64 TSO (see above).
TSO = platform.machine().lower() in ("x86_64", "amd64")
_FORCED = os.environ.get("NATSD_RING_TRANSPORT", "")
DEFAULT_TRANSPORT = "socket" if _FORCED == "socket" or not TSO else "shm"

Record = tuple[int, memoryview]
DropHook = Callable[[int, int], None]


class RingError(Exception):
    """A ring descriptor is not what the caller expects (size, magic, epoch)."""


class RingCorrupt(RingError):
    """The shared cursors or a record header are impossible; stop using the ring."""


class RingSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What the supervisor tells each end about a ring it hands over."""

    name: str
    size: int
    epoch: int
    transport: str = "shm"


def _check_size(size: int) -> None:
    if size < MIN_SIZE or size > MAX_SIZE or size & (size - 1):
        raise ValueError(f"ring size must be a power of two in [{MIN_SIZE}, {MAX_SIZE}]: {size}")


def create_ring_spec(
    name: str, size: int = DEFAULT_SIZE, *, epoch: int | None = None, transport: str | None = None
) -> tuple[RingSpec, int, int]:
    """Create a ring; return its spec and two descriptors owned by the caller.

    For ``shm`` the descriptors are (memfd, eventfd) and both ends need both.
    For ``socket`` they are the two ends of a socketpair; both ends are still
    given both and each keeps its own (:class:`SocketProducer` the first), so
    the hand-over code is the same for either transport.
    """
    _check_size(size)
    epoch = time.time_ns() if epoch is None else epoch
    transport = transport or DEFAULT_TRANSPORT
    if transport == "socket":
        # SEQPACKET, not STREAM: a datagram is admitted whole or refused whole, which
        # is what lets a non-blocking producer drop whole records and never half of one.
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for s in (a, b):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        return RingSpec(name=name, size=size, epoch=epoch, transport="socket"), a.detach(), b.detach()
    if transport != "shm" or not TSO:
        raise RingError(f"transport {transport!r} is not available on {platform.machine()}")
    mem_fd = os.memfd_create(f"natsd-ring:{name}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(mem_fd, HEADER_SIZE + size)
        with mmap.mmap(mem_fd, HEADER_SIZE) as mm:
            words = memoryview(mm).cast("Q")
            words[_VERSION], words[_SIZE], words[_EPOCH] = LAYOUT_VERSION, size, epoch
            mm[_NAME_OFFSET : _NAME_OFFSET + NAME_BYTES] = name.encode()[:NAME_BYTES].ljust(NAME_BYTES, b"\0")
            words[_MAGIC] = MAGIC  # last: a header with the magic is complete
            words.release()
        # Sealed: a peer that shrank the file would make the other side's next access
        # SIGBUS, which kills a worker; F_SEAL_SEAL stops anyone from lifting that.
        fcntl.fcntl(mem_fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
        event_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    except BaseException:
        os.close(mem_fd)
        raise
    return RingSpec(name=name, size=size, epoch=epoch, transport="shm"), mem_fd, event_fd


def create_ring(name: str, size: int = DEFAULT_SIZE) -> tuple[int, int]:
    """Create a ring with the platform's transport; return (memfd, eventfd)."""
    _, a, b = create_ring_spec(name, size)
    return a, b


def describe(mem_fd: int) -> RingSpec:
    """Read the spec back from a ring's memfd (for a caller of :func:`create_ring`)."""
    with mmap.mmap(mem_fd, HEADER_SIZE, prot=mmap.PROT_READ) as mm:
        magic, version, size, epoch = struct.unpack_from("<4Q", mm, 0)
        name = mm[_NAME_OFFSET : _NAME_OFFSET + NAME_BYTES].rstrip(b"\0").decode(errors="replace")
    if magic != MAGIC or version != LAYOUT_VERSION:
        raise RingError(f"not a natsd ring (magic {magic:#x}, version {version})")
    return RingSpec(name=name, size=size, epoch=epoch, transport="shm")


def _is_socket(fd: int) -> bool:
    return stat.S_ISSOCK(os.fstat(fd).st_mode)


def _parse(chunk: bytes, base: int, mask: int, stop: int, out: list[Record]) -> tuple[int, int]:
    """Append the records of ``chunk`` to ``out``; return (bytes consumed, waste skipped).

    ``base`` is the virtual position of ``chunk[0]``; a WRAP marker skips to the
    next multiple of the data size. Parsing stops at the first incomplete
    record or once ``stop`` bytes are consumed. This is the consumer's hot loop:
    one ``unpack_from``, one slice of a view and one append per record.
    """
    view = memoryview(chunk)
    end = len(chunk)
    p = waste = 0
    append = out.append
    limit = min(stop, end - 7)  # p < limit: a whole header is in the chunk, and not past stop
    while p < limit:
        n, kind = _unpack_hdr(chunk, p)
        s = p + 8
        # One comparison covers three cases: a record the bounded copy cut short,
        # a WRAP marker (its length is impossible), and a corrupt length.
        if s + n > end:
            if n == WRAP_LEN:
                skip = mask + 1 - ((base + p) & mask)
                waste += skip
                p += skip
                continue
            break
        # A view, not a bytes slice: no copy for large payloads, and the chunk it
        # points into is immutable and private, so the view stays valid.
        append((kind, view[s : s + n]))
        p = s + ((n + 7) & -8)
    return p, waste


class _Staging:
    """The producer's private batch; shared by both transports.

    ``stage`` only appends to a bytearray: no shared memory, no syscall, two
    comparisons. The batch is bounded in bytes by the ring's size (a larger
    batch could never be published, and each record takes at least 8 bytes, so
    this bounds the count too); ``max_records`` bounds what is outstanding in
    the ring and is applied by ``publish``.
    """

    def __init__(self, name: str, size: int, max_records: int, max_payload: int | None,
                 on_drop: DropHook | None) -> None:
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        self.name = name
        self.size = size
        self.max_records = max_records
        # Past size/2 a record plus the WRAP waste before it may exceed the whole ring,
        # and it would then be dropped forever, even into an empty ring.
        self.max_payload = size // 4 if max_payload is None else min(max_payload, size // 2 - 16)
        self._stage_limit = size - 16  # header + padding of the record being staged
        self._staged = bytearray()
        self._staged_records = 0
        self._on_drop = on_drop
        self.records_written = self.bytes_written = 0
        self.records_dropped = self.bytes_dropped = 0
        self.batches = 0

    def stage(self, kind: int, payload: bytes | bytearray | memoryview) -> bool:
        """Append one record to the batch; False (and counted) if it is refused.

        ``kind`` is any u32 (``struct.error`` otherwise). This is the producer's
        hot path: keep it to a length, two comparisons and three appends.
        """
        n = len(payload)
        buf = self._staged
        if n > self.max_payload or len(buf) + n > self._stage_limit:
            return self._refuse(n)
        # Three in-place appends beat building one bytes object (a join allocates
        # and copies again); the bytearray grows geometrically, so a batch costs a
        # handful of reallocations, not one per record.
        buf += _pack_hdr(n, kind)
        buf += payload
        buf += _PAD[n & 7]
        self._staged_records += 1
        return True

    def _refuse(self, n: int) -> bool:
        rec = 8 + ((n + 7) & -8)
        self.records_dropped += 1
        self.bytes_dropped += rec
        if self._on_drop is not None:
            self._on_drop(1, rec)
        return False

    @property
    def staged(self) -> int:
        """Records staged and not yet published."""
        return self._staged_records

    def _take(self) -> tuple[bytearray, int]:
        """Detach the batch: (records, how many).

        Detached rather than cleared: ``publish`` works on the batch it took,
        and anything staged meanwhile (an ``on_drop`` hook may stage a notice)
        goes into the next batch instead of resizing one that is being copied.
        """
        taken = self._staged, self._staged_records
        self._staged = bytearray()
        self._staged_records = 0
        return taken

    def _account(self, published: int, pub_bytes: int, total: int, total_bytes: int) -> None:
        self.records_written += published
        self.bytes_written += pub_bytes
        self.batches += 1
        dropped, dropped_bytes = total - published, total_bytes - pub_bytes
        if dropped:
            self.records_dropped += dropped
            self.bytes_dropped += dropped_bytes
            if self._on_drop is not None:
                self._on_drop(dropped, dropped_bytes)


class _ShmEnd:
    """Mapping and header access shared by :class:`Producer` and :class:`Consumer`."""

    def __init__(self, mem_fd: int, event_fd: int, name: str, epoch: int | None) -> None:
        self.name = name
        self._event_fd = event_fd
        try:
            if _is_socket(mem_fd):
                raise RingError(f"ring {name}: got a socket; use open_producer/open_consumer")
            length = os.fstat(mem_fd).st_size
            if length < HEADER_SIZE + MIN_SIZE:
                raise RingError(f"ring {name}: memfd too small ({length})")
            mm = mmap.mmap(mem_fd, length)
        except BaseException:
            os.close(event_fd)
            raise
        finally:
            os.close(mem_fd)  # the mapping keeps the memory alive
        # The header is read through a 'Q' view so that every counter access is one
        # aligned 8-byte load or store (see the ordering argument above); struct
        # packing would work too but costs a call and a tuple per access.
        words = memoryview(mm)[:HEADER_SIZE].cast("Q")
        problem = None
        if words[_MAGIC] != MAGIC or words[_VERSION] != LAYOUT_VERSION or HEADER_SIZE + words[_SIZE] != length:
            problem = "bad header (magic, version or size)"
        elif epoch is not None and words[_EPOCH] != epoch:
            problem = f"epoch {words[_EPOCH]} != expected {epoch}"
        if problem is not None:
            words.release()
            mm.close()
            os.close(event_fd)
            raise RingError(f"ring {name}: {problem}")
        self._mm = mm
        self._words = words
        self.size: int = words[_SIZE]
        self.epoch: int = words[_EPOCH]
        self._mask = self.size - 1
        self._closed = False

    def fileno(self) -> int:
        """The eventfd, for ``loop.add_reader`` on the consumer side."""
        return self._event_fd

    def used(self) -> int:
        """Bytes published and not yet consumed (including WRAP waste)."""
        w = self._words
        return w[_TAIL] - w[_HEAD]

    def stats(self) -> dict[str, Any]:
        """A monitoring snapshot, read from the shared header (both sides' view)."""
        w = self._words
        return {
            "name": self.name, "transport": "shm", "size": self.size, "epoch": self.epoch,
            "used": w[_TAIL] - w[_HEAD],
            "records_in": w[_P_RECORDS], "bytes_in": w[_P_BYTES],
            "records_out": w[_C_RECORDS], "bytes_out": w[_C_BYTES],
            "records_dropped": w[_P_DROP_RECORDS], "bytes_dropped": w[_P_DROP_BYTES],
            "batches": w[_P_BATCHES], "drains": w[_C_DRAINS],
            "producer_heartbeat": w[_P_BEAT], "consumer_heartbeat": w[_C_BEAT],
            "producer_pid": w[_P_PID], "consumer_pid": w[_C_PID],
            "producer_attaches": w[_P_ATTACH], "consumer_attaches": w[_C_ATTACH],
        }

    def close(self) -> None:
        """Unmap and close the eventfd; idempotent. Outstanding payload views stay valid."""
        if self._closed:
            return
        self._closed = True
        self._words.release()
        self._mm.close()
        os.close(self._event_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Producer(_Staging, _ShmEnd):
    """The writing end of a shared-memory ring (the only writer of ``tail``).

    ``stage`` touches only private memory, so it may be called from anywhere in
    the producing worker's loop; ``publish`` is the one place that reads the
    consumer's words (``head``, records read) and writes the producer's. Both
    of those reads may be stale, and staleness is always conservative: the
    consumer only ever moves them forward, so a stale value means less room
    than there really is, never more.
    """

    def __init__(self, mem_fd: int, event_fd: int, name: str, *,
                 max_records: int = DEFAULT_MAX_RECORDS, max_payload: int | None = None,
                 epoch: int | None = None, on_drop: DropHook | None = None) -> None:
        _ShmEnd.__init__(self, mem_fd, event_fd, name, epoch)
        _Staging.__init__(self, name, self.size, max_records, max_payload, on_drop)
        w = self._words
        # Resume a ring whose previous producer died: cursor and counters live on.
        self._tail = w[_TAIL]
        self.records_written, self.bytes_written = w[_P_RECORDS], w[_P_BYTES]
        self.records_dropped, self.bytes_dropped = w[_P_DROP_RECORDS], w[_P_DROP_BYTES]
        self.batches = w[_P_BATCHES]
        w[_P_PID] = os.getpid()
        w[_P_ATTACH] += 1

    def free(self) -> int:
        """Bytes the next publish can use (a lower bound: the consumer may free more)."""
        return self.size - (self._tail - self._words[_HEAD])

    def beat(self) -> None:
        self._words[_P_BEAT] += 1

    def peer_heartbeat(self) -> int:
        return int(self._words[_C_BEAT])

    def stats(self) -> dict[str, Any]:
        """The header snapshot, with this side's counters as of now (refusals in
        ``stage`` reach the header only at the next publish)."""
        out = super().stats()
        out.update(records_dropped=self.records_dropped, bytes_dropped=self.bytes_dropped,
                   staged=self._staged_records)
        return out

    def publish(self) -> int:
        """Copy the staged batch into the ring, publish ``tail``, ring once.

        Returns the number of records published. Records that do not fit (bytes
        or ``max_records`` outstanding) are dropped and counted, in order: the
        published ones are always a prefix of the batch.
        """
        buf, total = self._take()
        if not total:
            return 0
        w = self._words
        size, tail = self.size, self._tail
        nbytes = len(buf)
        free = size - (tail - w[_HEAD])
        room = self.max_records - (self.records_written - w[_C_RECORDS])
        off = tail & self._mask
        if nbytes <= free and off + nbytes <= size and total <= room:
            # Fast path, nearly every batch: it fits before the end of the data area,
            # so one memmove places it and no record header needs to be looked at.
            self._mm[HEADER_SIZE + off : HEADER_SIZE + off + nbytes] = buf
            tail += nbytes
            published, pub_bytes = total, nbytes
        else:
            # Once per lap of the ring (or when it is full): walk the batch.
            tail, published, pub_bytes = self._publish_slow(buf, tail, free, room)
        if published:
            w[_TAIL] = tail  # one aligned 8-byte store, after the data (TSO)
            self._tail = tail
            os.eventfd_write(self._event_fd, 1)
        # Counters go to the header once per batch: monitoring may lag by a batch,
        # the hot path pays nothing per record.
        self._account(published, pub_bytes, total, nbytes)
        w[_P_RECORDS], w[_P_BYTES] = self.records_written, self.bytes_written
        w[_P_DROP_RECORDS], w[_P_DROP_BYTES] = self.records_dropped, self.bytes_dropped
        w[_P_BATCHES] = self.batches
        return published

    def _publish_slow(self, buf: bytearray, tail: int, free: int, room: int) -> tuple[int, int, int]:
        """Walk the batch: place records until one does not fit, wrapping at most once.

        Records are copied in *segments* (runs that are contiguous in the ring);
        a segment closes where the ring wraps, either behind a WRAP marker or
        exactly at the end. A batch is smaller than the ring and the free space
        is at most the ring, so a second wrap would need more room than exists:
        there are at most two segments, hence at most two memmoves. Everything
        after the first record that does not fit is dropped, keeping the
        published records a prefix of the batch (order is never broken).
        """
        size, mask, mm, base = self.size, self._mask, self._mm, HEADER_SIZE
        limit = tail + free  # first virtual position we may not write
        end = len(buf)
        pos = seg_from = published = 0
        seg_off = tail & mask
        with memoryview(buf) as view:
            while pos < end and published < room:
                n = _unpack_hdr(buf, pos)[0]
                rec = 8 + ((n + 7) & -8)
                off = tail & mask
                if off + rec > size:  # must wrap: close the segment, mark the gap
                    if tail + (size - off) + rec > limit:
                        break
                    mm[base + seg_off : base + seg_off + pos - seg_from] = view[seg_from:pos]
                    mm[base + off : base + off + 8] = _WRAP_RECORD
                    tail += size - off
                    seg_from, seg_off = pos, 0
                elif tail + rec > limit:
                    break
                elif off == 0 and pos != seg_from:  # the last record ended exactly at the end
                    mm[base + seg_off : base + size] = view[seg_from:pos]
                    seg_from, seg_off = pos, 0
                tail += rec
                pos += rec
                published += 1
            mm[base + seg_off : base + seg_off + pos - seg_from] = view[seg_from:pos]
        return tail, published, pos


class Consumer(_ShmEnd):
    """The reading end of a shared-memory ring (the only writer of ``head``).

    The consumer never parses records inside the shared mapping: it copies the
    published region out first and frees it at once. Parsing in place would
    hold the producer off for the whole Python parse loop, and the payload
    views handed to the caller would point at memory the producer reuses.
    """

    def __init__(self, mem_fd: int, event_fd: int, name: str, *, epoch: int | None = None) -> None:
        super().__init__(mem_fd, event_fd, name, epoch)
        w = self._words
        self._head = w[_HEAD]
        self.records_read, self.bytes_read, self.drains = w[_C_RECORDS], w[_C_BYTES], w[_C_DRAINS]
        w[_C_PID] = os.getpid()
        w[_C_ATTACH] += 1

    def beat(self) -> None:
        self._words[_C_BEAT] += 1

    def peer_heartbeat(self) -> int:
        return int(self._words[_P_BEAT])

    def drain(self, max_bytes: int | None = None) -> list[Record]:
        """Take every published record (or about ``max_bytes`` of them).

        Payloads are read-only views of one private copy, valid for as long as
        the caller keeps them. A bounded drain that leaves records behind rings
        the doorbell itself, so the event loop will call back.
        """
        try:
            os.eventfd_read(self._event_fd)  # reset BEFORE loading tail: no lost wake-up
        except BlockingIOError:
            pass
        w = self._words
        head = self._head
        avail = w[_TAIL] - head
        if avail == 0:
            return []
        if not 0 < avail <= self.size:
            raise RingCorrupt(f"ring {self.name}: head {head} tail {head + avail}")
        # A bounded drain copies only about max_bytes; the parse stops at the first
        # record the copy cuts, and if that is the very first one (bigger than the
        # bound) the record is taken whole anyway, so the ring always progresses.
        take = avail if max_bytes is None else min(avail, max(max_bytes, 8))
        out: list[Record] = []
        used, waste = _parse(self._copy(head, take), head, self._mask, take, out)
        if not out and take < avail:  # the first record is bigger than max_bytes
            used, waste = _parse(self._copy(head, avail), head, self._mask, 1, out)
        # A header whose length runs past tail (or a WRAP that jumps past it) can only
        # come from a broken peer or a stray write: refuse rather than hand out garbage.
        if used > avail or (not out and used == 0):
            raise RingCorrupt(f"ring {self.name}: bad record at {head}")
        self._head = head = head + used
        w[_HEAD] = head  # after the copy (TSO): the producer may now reuse it
        self.records_read += len(out)
        self.bytes_read += used - waste
        self.drains += 1
        w[_C_RECORDS], w[_C_BYTES], w[_C_DRAINS] = self.records_read, self.bytes_read, self.drains
        if used < avail:
            os.eventfd_write(self._event_fd, 1)
        return out

    def _copy(self, head: int, length: int) -> bytes:
        """Copy ``length`` bytes from virtual position ``head`` out of the ring.

        Slicing an mmap is one memcpy into a new immutable ``bytes``. Only the
        drain that crosses the end of the data area (once per lap) pays for two
        slices and a concatenation.
        """
        off = head & self._mask
        start = HEADER_SIZE + off
        first = self.size - off
        if length <= first:
            return self._mm[start : start + length]
        return self._mm[start : HEADER_SIZE + self.size] + self._mm[HEADER_SIZE : HEADER_SIZE + length - first]


# -- fallback transport -------------------------------------------------------------------
#
# Off x86-64 the same API runs over a SOCK_SEQPACKET socketpair. One published batch is one
# datagram (split at record boundaries when it exceeds what the kernel accepts in one), so
# the kernel's all-or-nothing admission of a datagram gives the same "prefix published, the
# rest dropped and counted" rule as the shared-memory ring; the bound in bytes is the
# socket's send buffer. The fallback has no shared header: each end reports only its own
# counters, "used" is unknown, and heartbeats stay local.

_NO_WRAP_MASK = (1 << 62) - 1  # a WRAP marker in a datagram jumps out of it: RingCorrupt


class _SocketEnd:
    """Descriptor handling shared by the socket producer and consumer.

    Both ends receive both descriptors so that the hand-over is the same as for
    shared memory; each keeps its own and closes the other at once, so that the
    peer's exit is seen as end-of-file (or ``EPIPE``) instead of being masked
    by a copy of the peer's end held open in this process.
    """

    def __init__(self, keep_fd: int, drop_fd: int, name: str, size: int, epoch: int | None) -> None:
        os.close(drop_fd)  # the peer's end: keeping it would hide the peer's exit from us
        self.name = name
        self.size = size
        self.epoch = 0 if epoch is None else epoch
        self._sock = socket.socket(fileno=keep_fd)
        self._sock.setblocking(False)
        self._closed = False
        self.heartbeat = 0
        self.peer_closed = False

    def fileno(self) -> int:
        return self._sock.fileno()

    def beat(self) -> None:
        self.heartbeat += 1

    def peer_heartbeat(self) -> int:
        return 0  # not shared over a socket; the supervisor uses the control channel

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SocketProducer(_Staging, _SocketEnd):
    """The writing end of a socketpair ring (keeps the first descriptor).

    Staging is shared with :class:`Producer`. ``publish`` hands the batch to the
    kernel as one datagram; a full send buffer refuses it whole (``EAGAIN``) and
    the batch is dropped and counted, so the event loop never blocks. The bound
    on what is outstanding is the kernel's send buffer, in bytes;
    ``max_records`` is accepted for the common signature but not enforced.
    """

    def __init__(self, mem_fd: int, event_fd: int, name: str, *,
                 max_records: int = DEFAULT_MAX_RECORDS, max_payload: int | None = None,
                 epoch: int | None = None, on_drop: DropHook | None = None,
                 size: int = DEFAULT_SIZE) -> None:
        _check_size(size)
        _SocketEnd.__init__(self, mem_fd, event_fd, name, size, epoch)
        # The kernel refuses a datagram longer than its send buffer less a little overhead,
        # and caps the buffer at net.core.wmem_max whatever we asked for.
        sndbuf = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        self._max_dgram = min(size, sndbuf - 64) & -8
        cap = self._max_dgram - 16
        _Staging.__init__(self, name, size, max_records,
                          cap if max_payload is None else min(max_payload, cap), on_drop)
        self.max_payload = min(self.max_payload, cap)

    def publish(self) -> int:
        """Send the staged batch as one datagram (or several at record boundaries)."""
        buf, total = self._take()
        if not total:
            return 0
        if len(buf) <= self._max_dgram:
            published, pub_bytes = (total, len(buf)) if self._send(buf) else (0, 0)
        else:
            published, pub_bytes = self._publish_split(buf)
        self._account(published, pub_bytes, total, len(buf))
        return published

    def _publish_split(self, buf: bytearray) -> tuple[int, int]:
        published = seg_from = pos = seg_records = 0
        end = len(buf)
        with memoryview(buf) as view:
            while pos < end:
                n = _unpack_hdr(buf, pos)[0]
                rec = 8 + ((n + 7) & -8)
                if pos + rec - seg_from > self._max_dgram:
                    if not self._send(view[seg_from:pos]):
                        return published, seg_from
                    published += seg_records
                    seg_from, seg_records = pos, 0
                pos += rec
                seg_records += 1
            if self._send(view[seg_from:pos]):
                return published + seg_records, pos
        return published, seg_from

    def _send(self, data: bytearray | memoryview) -> bool:
        try:
            self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            return False  # send buffer full: the caller counts the drop
        except OSError:
            self.peer_closed = True
            return False
        return True

    def free(self) -> int:
        return self._max_dgram  # unknown; the kernel admits or refuses a whole datagram

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name, "transport": "socket", "size": self.size, "epoch": self.epoch,
            "used": None, "records_in": self.records_written, "bytes_in": self.bytes_written,
            "records_dropped": self.records_dropped, "bytes_dropped": self.bytes_dropped,
            "batches": self.batches, "producer_heartbeat": self.heartbeat,
        }


class SocketConsumer(_SocketEnd):
    """The reading end of a socketpair ring (keeps the second descriptor).

    Each datagram is whole records, so it is parsed with the same loop as the
    shared-memory copy-out; a WRAP marker cannot legitimately appear in one and
    is reported as corruption. ``MSG_TRUNC`` (a datagram longer than our
    buffer) is corruption too: a silently shortened batch would lose records.
    """

    def __init__(self, mem_fd: int, event_fd: int, name: str, *,
                 epoch: int | None = None, size: int = DEFAULT_SIZE) -> None:
        _check_size(size)
        _SocketEnd.__init__(self, event_fd, mem_fd, name, size, epoch)
        self._rbuf = bytearray(size)
        self.records_read = self.bytes_read = self.drains = 0

    def drain(self, max_bytes: int | None = None) -> list[Record]:
        """Receive whole datagrams until none is left or ``max_bytes`` is reached.

        The socket stays readable while datagrams remain, so a bounded drain needs
        no self-kick here.
        """
        out: list[Record] = []
        got = 0
        rbuf = self._rbuf
        while max_bytes is None or got < max_bytes:
            try:
                n, _, flags, _ = self._sock.recvmsg_into([rbuf])
            except (BlockingIOError, InterruptedError):
                break
            if n == 0 and not flags:
                self.peer_closed = True
                break
            if flags & socket.MSG_TRUNC:
                raise RingCorrupt(f"ring {self.name}: datagram larger than {len(rbuf)}")
            chunk = bytes(rbuf[:n])
            before = len(out)
            used, waste = _parse(chunk, 0, _NO_WRAP_MASK, n, out)
            if used != n or waste:
                raise RingCorrupt(f"ring {self.name}: bad record in datagram")
            got += n
            self.records_read += len(out) - before
            self.bytes_read += n
        self.drains += 1
        return out

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name, "transport": "socket", "size": self.size, "epoch": self.epoch,
            "used": None, "records_out": self.records_read, "bytes_out": self.bytes_read,
            "drains": self.drains, "consumer_heartbeat": self.heartbeat,
        }


AnyProducer = Producer | SocketProducer
AnyConsumer = Consumer | SocketConsumer


def open_producer(fd_a: int, fd_b: int, spec: RingSpec, *, max_records: int = DEFAULT_MAX_RECORDS,
                  max_payload: int | None = None, on_drop: DropHook | None = None) -> AnyProducer:
    """Attach the producing end with whichever transport the descriptors carry."""
    if spec.transport == "socket" or _is_socket(fd_a):
        return SocketProducer(fd_a, fd_b, spec.name, max_records=max_records, max_payload=max_payload,
                              epoch=spec.epoch, on_drop=on_drop, size=spec.size)
    return Producer(fd_a, fd_b, spec.name, max_records=max_records, max_payload=max_payload,
                    epoch=spec.epoch, on_drop=on_drop)


def open_consumer(fd_a: int, fd_b: int, spec: RingSpec) -> AnyConsumer:
    """Attach the consuming end with whichever transport the descriptors carry."""
    if spec.transport == "socket" or _is_socket(fd_a):
        return SocketConsumer(fd_a, fd_b, spec.name, epoch=spec.epoch, size=spec.size)
    return Consumer(fd_a, fd_b, spec.name, epoch=spec.epoch)
