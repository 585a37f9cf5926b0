#!/usr/bin/python3
# timeout: 400
"""Soak (testing.md §6 item 10): 100 concurrent client streams of random
sizes and modes against one wsflowd for SOAK_SECONDS (default 60).

Every connection picks a mode (/stream, /frame, /message), a mask key (the
zero key, legal and free, or a real one), then sends 1-6 messages of random
sizes, binary or valid UTF-8 text, as random frames written in random
(batch-crossing, sometimes tiny) chunks; it ends with a clean close, a bare
TCP FIN, or a RST in the middle of a frame.  Every digest the daemon sends is
compared with hashlib's.  Afterwards the daemon's open fds and
`wsflowctl status` connections are back at their baseline, and VmRSS did not
drift between 10 s and the end.

Clients are asyncio on raw sockets.  Masking costs nothing: the data pools
are pre-masked once per key, and a frame cut at pool offset `off` is sent
with the key rotated by off % 4, so its masked bytes are a slice of the
pre-masked pool.

SANITIZE=1: the same scenario against the ASan build; at SIGTERM it must
exit 0 with an empty sanitizer report.  Otherwise a shorter 10-stream
variant runs under valgrind (if installed) and must show no definite leak
allocated by wsflow's code.

Env: SOAK_SECONDS (streaming time), SOAK_STREAMS (default 100), SOAK_SEED.
"""
import asyncio
import base64
import collections
import hashlib
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import time
import traceback

from wsflowtest import (BUILD, SANITIZE, SLOW, SRCDIR, WSFLOWD, CheckFailed, Daemon,
                        Skip, case, check, diag, frame_header, run_cases, tmpfile,
                        unix_accepts, wait_for)

WSFLOWCTL = os.environ.get('WSFLOWCTL') or os.path.join(SRCDIR, BUILD, 'wsflowctl')
SOAK_SECONDS = float(os.environ.get('SOAK_SECONDS', '60'))
STREAMS = int(os.environ.get('SOAK_STREAMS', '100'))
SEED = int(os.environ.get('SOAK_SEED', str(int(time.time()))))
KiB, MiB = 1 << 10, 1 << 20
BATCH = 100000              # server batch_size: never aligned with our chunks
ENDLESS = 0x7FFFFFFFFFFFFFFF
GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

# ------------------------------------------------------------ data pools


def xor_key(data, key):
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, 'little') ^ int.from_bytes(k, 'little')).to_bytes(n, 'little')


class Pools:
    """Random binary and valid UTF-8 text, plain and pre-masked with a few
    keys.  A frame of pool[off:off+n] masked with key K rotated by off % 4
    is exactly masked_pool_K[off:off+n]."""

    def __init__(self, rng):
        self.plain = {'bin': os.urandom(8 * MiB)}
        # 1- to 4-octet code points; fragments may split them (legal).
        alphabet = [chr(c) for c in range(0x20, 0x7f)] * 4 + \
            list('éßøñЖж€中文字ひら가') + ['\U0001d11e', '\U0001f600', '\U00010348']
        text = ''.join(rng.choices(alphabet, k=4 * MiB)).encode()
        cut = 4 * MiB
        while text[cut] & 0xC0 == 0x80:         # end on a whole code point
            cut -= 1
        self.plain['text'] = text[:cut]
        self.keys = []
        while len(self.keys) < 3:
            k = os.urandom(4)
            if k != b'\0\0\0\0':
                self.keys.append(k)
        self.masked = {kind: [xor_key(data, k) for k in self.keys]
                       for kind, data in self.plain.items()}

    def slice(self, rng, kind, n):
        """(off, n) of a slice of n octets (text: whole code points)."""
        data = self.plain[kind]
        n = min(n, len(data) - 8)
        off = rng.randrange(0, len(data) - n - 4 + 1)
        if kind == 'text':
            while data[off] & 0xC0 == 0x80:
                off += 1
            end = off + n
            while end < len(data) and data[end] & 0xC0 == 0x80:
                end += 1
            n = end - off
        return off, n

    def wire(self, kind, keyidx, off, n):
        """(mask key, masked payload view) for pool[off:off+n]."""
        if keyidx is None:
            return b'\0\0\0\0', memoryview(self.plain[kind])[off:off + n]
        base, r = self.keys[keyidx], off % 4
        return base[r:] + base[:r], memoryview(self.masked[kind][keyidx])[off:off + n]

# ------------------------------------------------------------ expected digests


class Expect:
    """The digests the server owes for the frames of one message."""

    def __init__(self, mode, batch):
        self.mode, self.batch = mode, batch
        self.begin()

    def begin(self):
        self.h = hashlib.sha256()
        self.fill = 0

    def frame(self, mv, final):
        out = []
        if self.mode == 'stream':
            i, n = 0, len(mv)
            while n - i >= self.batch - self.fill:
                take = self.batch - self.fill
                self.h.update(mv[i:i + take])
                i += take
                self.fill = 0
                out.append(self.h.hexdigest())
            self.h.update(mv[i:])
            self.fill += n - i
        else:
            self.h.update(mv)
            if self.mode == 'frame' or final:
                out.append(self.h.hexdigest())
        return out

# ------------------------------------------------------------ one client connection


class Stats:
    def __init__(self):
        self.checked = 0            # digests compared with hashlib's
        self.mismatches = []        # (conn, index, got, want), first few
        self.nmismatch = 0
        self.errors = []            # first few descriptions
        self.nerrors = 0
        self.connections = 0        # handshakes completed (101)
        self.ends = collections.Counter()
        self.modes = collections.Counter()
        self.messages = 0
        self.text_messages = 0
        self.frames = 0
        self.empty_frames = 0
        self.bytes = 0
        self.max_concurrent = 0
        self.live = 0

    def error(self, msg):
        self.nerrors += 1
        if len(self.errors) < 10:
            self.errors.append(msg)


class Conn:
    """One WebSocket connection of a soak client."""
    seq = 0

    def __init__(self, port, pools, stats, rng, scale, timeout):
        Conn.seq += 1
        self.id = Conn.seq
        self.port, self.pools, self.stats, self.rng = port, pools, stats, rng
        self.scale, self.timeout = scale, timeout
        self.mode = rng.choice(('stream', 'frame', 'message'))
        self.keyidx = None if rng.random() < 0.5 else rng.randrange(len(pools.keys))
        self.expected = collections.deque()
        self.drained = asyncio.Event()
        self.drained.set()
        self.close_code = None
        self.eof = False
        self.ndigests = 0

    def what(self):
        return 'conn %d %s key %s' % (self.id, self.mode,
                                      'zero' if self.keyidx is None else 'real')

    async def handshake(self):
        path = {'stream': self.rng.choice(('/', '/stream')), 'frame': '/frame',
                'message': '/message'}[self.mode]
        self.r, self.w = await asyncio.wait_for(
            asyncio.open_connection('127.0.0.1', self.port), self.timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.w.write(('GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n'
                      'Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n'
                      'Sec-WebSocket-Version: 13\r\n\r\n' % (path, self.port, key)).encode())
        head = await asyncio.wait_for(self.r.readuntil(b'\r\n\r\n'), self.timeout)
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest())
        if not head.startswith(b'HTTP/1.1 101') or accept not in head:
            raise CheckFailed('%s: handshake refused: %r' % (self.what(), head[:200]))

    async def reader(self):
        """Compare every digest with the next expected one."""
        st = self.stats
        try:
            while True:
                b0, b1 = await self.r.readexactly(2)
                n = b1 & 0x7f
                if n == 126:
                    n = struct.unpack('!H', await self.r.readexactly(2))[0]
                elif n == 127:
                    n = struct.unpack('!Q', await self.r.readexactly(8))[0]
                if b1 & 0x80:
                    st.error('%s: server sent a masked frame' % self.what())
                    return
                payload = await self.r.readexactly(n)
                op = b0 & 0x0f
                if op == 8:
                    self.close_code = struct.unpack('!H', payload[:2])[0] \
                        if n >= 2 else 1005
                    return
                if op != 1 or not b0 & 0x80:
                    st.error('%s: server sent opcode %d fin %d' % (self.what(), op, b0 >> 7))
                    return
                got = payload.decode('ascii', 'replace')
                if not self.expected:
                    st.error('%s: digest %d not owed: %s' % (self.what(), self.ndigests, got))
                    return
                want = self.expected.popleft()
                st.checked += 1
                if got != want:
                    st.nmismatch += 1
                    if len(st.mismatches) < 5:
                        st.mismatches.append((self.what(), self.ndigests, got, want))
                self.ndigests += 1
                if not self.expected:
                    self.drained.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.eof = True

    async def write(self, data):
        self.w.write(data)
        await asyncio.wait_for(self.w.drain(), self.timeout)

    def owe(self, digests):
        if digests:
            self.expected.extend(digests)
            self.drained.clear()

    async def send_frame(self, kind, off, n, opcode, fin, exp, declared=None):
        """One frame of pool[off:off+n], written in random chunks.  declared:
        a larger length for the header (the frame stays unfinished: the
        connection is then dropped)."""
        key, wire = self.pools.wire(kind, self.keyidx, off, n)
        plain = memoryview(self.pools.plain[kind])[off:off + n]
        if declared is None:
            self.owe(exp.frame(plain, fin))
        elif exp.mode == 'stream':              # batches inside the partial frame
            self.owe(exp.frame(plain, False))
        head = frame_header(n if declared is None else declared, opcode, fin, key)
        rng = self.rng
        if rng.random() < 0.05:                 # a header split in two writes
            cut = rng.randrange(1, len(head))
            await self.write(head[:cut])
            head = head[cut:]
        style = rng.random()
        pos = pieces = 0
        while pos < n:
            if style < 0.3:
                size = n - pos                  # the whole frame at once
            elif style < 0.85:                  # batch-crossing chunks
                size = rng.randint(1, 3 * BATCH)
            else:                               # a few tiny ones first
                size = rng.randint(1, 7) if pieces < 8 else rng.randint(KiB, 4 * BATCH)
            size = min(size, n - pos)
            await self.write(head + wire[pos:pos + size])
            head = b''
            pos += size
            pieces += 1
        if head:
            await self.write(head)
        self.stats.frames += 1
        self.stats.empty_frames += n == 0
        self.stats.bytes += n

    def frame_sizes(self, total, nframes, allow_empty):
        cuts = sorted(self.rng.randint(0, total) for _ in range(nframes - 1))
        sizes = [b - a for a, b in zip([0] + cuts, cuts + [total])]
        if allow_empty and self.rng.random() < 0.3:
            sizes.insert(self.rng.randrange(len(sizes) + 1), 0)
        return sizes

    def message_plan(self):
        """(kind, [frame sizes]) of the next message."""
        rng, s = self.rng, self.scale
        kind = 'text' if rng.random() < 0.2 else 'bin'
        if self.mode == 'stream':
            r = rng.random()
            if r < 0.1:
                total = rng.randint(0, BATCH - 1)           # a tail only
            elif r < 0.2:
                total = BATCH * rng.randint(1, 8)           # ends on a boundary
            else:
                total = rng.randint(0, int(4 * MiB * s))
            sizes = self.frame_sizes(total, rng.randint(1, 4), True)
        elif self.mode == 'frame':
            n = rng.randint(1, 8)
            sizes = [0 if rng.random() < 0.1 else rng.randint(1, int(256 * KiB * s))
                     for _ in range(n)]
        else:
            total = 0 if rng.random() < 0.05 else rng.randint(0, int(2 * MiB * s))
            sizes = self.frame_sizes(total, rng.randint(1, 3), True)
        return kind, sizes

    async def send_message(self, exp):
        kind, sizes = self.message_plan()
        exp.begin()
        off, total = self.pools.slice(self.rng, kind, sum(sizes))
        while sum(sizes) > total:               # cut to the pool's size
            sizes[-1] = max(0, sizes[-1] - (sum(sizes) - total))
            if sizes[-1] == 0 and len(sizes) > 1 and sum(sizes) > total:
                sizes.pop()
        sizes[-1] += total - sum(sizes)          # text: rounded to a code point
        opcode = 1 if kind == 'text' else 2
        for i, n in enumerate(sizes):
            await self.send_frame(kind, off, n, opcode if i == 0 else 0,
                                  i == len(sizes) - 1, exp)
            off += n
        self.stats.messages += 1
        self.stats.text_messages += kind == 'text'

    async def wait_drained(self, what):
        try:
            await asyncio.wait_for(self.drained.wait(), self.timeout)
        except asyncio.TimeoutError:
            raise CheckFailed('%s: %d digests still owed %gs %s (%d received)'
                              % (self.what(), len(self.expected), self.timeout, what,
                                 self.ndigests))

    async def run(self, deadline):
        st = self.stats
        await self.handshake()
        st.connections += 1
        st.modes[self.mode] += 1
        st.live += 1
        st.max_concurrent = max(st.max_concurrent, st.live)
        rtask = asyncio.ensure_future(self.reader())
        exp = Expect(self.mode, BATCH)
        rng = self.rng
        try:
            for _ in range(rng.randint(1, 6)):
                if time.monotonic() >= deadline:
                    break
                await self.send_message(exp)
                if rtask.done():
                    raise CheckFailed('%s: reading ended early (eof %s, close %s)'
                                      % (self.what(), self.eof, self.close_code))
            end = rng.random()
            if end < 0.7:
                await self.wait_drained('before the close')
                await self.write(frame_header(2, 8, True, b'\0\0\0\0') + struct.pack('!H', 1000))
                await asyncio.wait_for(rtask, self.timeout)
                if self.close_code != 1000:
                    raise CheckFailed('%s: close answered with %s (eof %s)'
                                      % (self.what(), self.close_code, self.eof))
                st.ends['close'] += 1
            elif end < 0.85:
                await self.wait_drained('before the FIN')
                st.ends['fin'] += 1
            else:
                # the tutorial producer: drop TCP inside a frame, an
                # endless one (length 2^63-1) or one just longer than sent
                exp.begin()
                off, part = self.pools.slice(rng, 'bin', rng.randint(0, 3 * BATCH))
                declared = rng.choice((ENDLESS, part + rng.randint(1, 4 * BATCH)))
                await self.send_frame('bin', off, part, 2, rng.random() < 0.5, exp,
                                      declared=declared)
                await self.wait_drained('before the RST')
                self.w.transport.get_extra_info('socket').setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
                st.ends['rst'] += 1
        finally:
            st.live -= 1
            self.w.close()
            rtask.cancel()
            try:
                await rtask
            except (asyncio.CancelledError, Exception):
                pass


async def client_slot(slot, port, pools, stats, seed, deadline, scale, timeout):
    """Connections one after another until the deadline."""
    rng = random.Random(seed * 1000 + slot)
    await asyncio.sleep(rng.random() * 0.5)     # spread the handshakes
    n = 0
    while time.monotonic() < deadline and n < 100000:
        n += 1
        c = Conn(port, pools, stats, rng, scale, timeout)
        try:
            await c.run(deadline)
        except CheckFailed as e:
            stats.error(str(e))
        except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError) as e:
            stats.error('%s: %r' % (c.what(), e))
        except Exception:
            stats.error('%s: %s' % (c.what(), traceback.format_exc()))
        finally:
            w = getattr(c, 'w', None)   # a failed handshake leaves it open
            if w is not None and not w.is_closing():
                w.close()


async def soak(d, pools, streams, seconds, scale, samples):
    """streams clients for seconds; samples: {name: when} -> filled with
    (RSS KiB) at those times from the start."""
    stats = Stats()
    t0 = time.monotonic()
    deadline = t0 + seconds
    timeout = 30 * SLOW * (4 if scale < 1 else 1)

    async def sampler():
        for name, at in sorted(samples.items(), key=lambda x: x[1]):
            await asyncio.sleep(max(0, t0 + at - time.monotonic()))
            samples[name] = d.rss_kib() if d.alive() else None
    stask = asyncio.ensure_future(sampler())
    tasks = [asyncio.ensure_future(client_slot(i, d.port, pools, stats, SEED, deadline,
                                               scale, timeout))
             for i in range(streams)]
    # every slot finishes its message and closes; bounded in time
    done, pending = await asyncio.wait(tasks, timeout=seconds + 3 * timeout)
    for t in pending:
        t.cancel()
        stats.error('a client slot still running %gs after the deadline' % (3 * timeout))
    stats.elapsed = time.monotonic() - t0
    await asyncio.gather(*pending, return_exceptions=True)
    stask.cancel()
    await asyncio.gather(stask, return_exceptions=True)
    return stats

# ------------------------------------------------------------ daemon side


def ctl_status(d):
    r = subprocess.run([WSFLOWCTL, '-j', '-s', d.conf[:-len('.conf')] + '.sock', 'status'],
                       capture_output=True, text=True, timeout=10 * SLOW,
                       stdin=subprocess.DEVNULL)
    check(r.returncode == 0, 'wsflowctl -j status: exit %d %s' % (r.returncode, r.stderr))
    return json.loads(r.stdout)


def nfds(d):
    return len(os.listdir('/proc/%d/fd' % d.pid))


def state(d):
    """(fds, server.connections); the fds are read first so that
    wsflowctl's own control connection is not counted."""
    fds = nfds(d)
    return fds, ctl_status(d)['server']['connections']


def back_to(d, base, timeout=5):
    """Poll until (fds, connections) == base, at most timeout s."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        now = state(d)
        if now == base or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def report(stats, what):
    diag('%s: %.1f s, %d connections (max %d at once; %s; ends %s), %d messages '
         '(%d text), %d frames (%d empty), %.1f MB sent (%.1f MB/s), '
         '%d digests checked, %d mismatched, %d errors'
         % (what, stats.elapsed, stats.connections, stats.max_concurrent,
            dict(stats.modes), dict(stats.ends), stats.messages, stats.text_messages,
            stats.frames, stats.empty_frames, stats.bytes / 1e6,
            stats.bytes / 1e6 / stats.elapsed, stats.checked, stats.nmismatch,
            stats.nerrors))


def check_stats(stats, min_checked):
    check(stats.nmismatch == 0, '%d digests differ from hashlib, first: %s'
          % (stats.nmismatch, stats.mismatches))
    check(stats.nerrors == 0, '%d client errors, first: %s'
          % (stats.nerrors, '\n'.join(stats.errors)))
    check(stats.checked > min_checked, 'only %d digests checked (want > %d)'
          % (stats.checked, min_checked))


_pools = []


def pools():
    if not _pools:
        t = time.monotonic()
        _pools.append(Pools(random.Random(SEED)))
        diag('data pools ready in %.1f s (seed %d)' % (time.monotonic() - t, SEED))
    return _pools[0]


def run_soak(d, streams, seconds, scale, samples):
    return asyncio.run(soak(d, pools(), streams, seconds, scale, samples))

# ------------------------------------------------------------ cases


_soak = {}      # the soak's daemon and measurements, checked case by case


@case('soak: %d concurrent client streams (/stream, /frame, /message; binary and UTF-8 '
      'text; zero and real mask keys) for %g s: every digest equals hashlib.sha256, '
      '> 1000 checked, 0 client errors' % (STREAMS, SOAK_SECONDS))
def _():
    d = Daemon(batch_size=BATCH, idle_timeout=60).start()
    _soak['d'] = d
    pools()
    # the port accepts first, the control socket comes a moment later
    check(wait_for(lambda: unix_accepts(d.conf[:-len('.conf')] + '.sock'), 10),
          'the control socket does not accept')
    time.sleep(0.3)                             # settled after the start
    base = state(d)
    diag('baseline: %d fds, %d connections, VmRSS %d KiB' % (base[0], base[1], d.rss_kib()))
    total0 = ctl_status(d)['server']
    t10 = min(10.0, SOAK_SECONDS / 3)
    samples = {'rss_10s': t10, 'rss_end': max(t10, SOAK_SECONDS - 0.5)}
    for t in range(20, int(SOAK_SECONDS), 10):  # the curve, for the report
        samples['rss_%ds' % t] = t
    stats = run_soak(d, STREAMS, SOAK_SECONDS, 1.0, samples)
    report(stats, 'soak')
    r10, rend = samples['rss_10s'], samples['rss_end']
    diag('VmRSS every 10 s (KiB): %s; at the end %s' % (' '.join(
        str(samples['rss_%ds' % t]) for t in range(10, int(SOAK_SECONDS) + 1, 10)
        if 'rss_%ds' % t in samples), rend))
    _soak.update(r10=r10, rend=rend, t10=t10, stats=stats)
    check(d.alive(), 'wsflowd died (exit %s):\n%s' % (d.proc.poll(), d.log_tail()))
    after = back_to(d, base)
    rss_after = d.rss_kib()
    total1 = ctl_status(d)['server']
    _soak.update(base=base, after=after)
    diag('FIGURES: %d digests checked; fds %d -> %d, connections %d -> %d; VmRSS at %g s '
         '%d KiB, at the end %d KiB (drift %+d KiB = %+.2f %%), after the clients left '
         '%d KiB; connections_total +%d, bytes_received +%d, digests_sent +%d'
         % (stats.checked, base[0], after[0], base[1], after[1], t10, r10, rend,
            rend - r10, 100.0 * (rend - r10) / r10, rss_after,
            total1['connections_total'] - total0['connections_total'],
            total1['bytes_received'] - total0['bytes_received'],
            total1['digests_sent'] - total0['digests_sent']))
    check_stats(stats, 1000)
    check(stats.max_concurrent >= min(STREAMS, 100) * 0.9,
          'only %d streams were ever open at once' % stats.max_concurrent)
    check(total1['connections_total'] - total0['connections_total'] == stats.connections,
          'connections_total grew by %d, the clients completed %d handshakes'
          % (total1['connections_total'] - total0['connections_total'], stats.connections))
    check(total1['digests_sent'] - total0['digests_sent'] >= stats.checked,
          'digests_sent grew by %d < %d checked'
          % (total1['digests_sent'] - total0['digests_sent'], stats.checked))


@case('soak: after every client closed, the daemon\'s open fds and `wsflowctl status` '
      'server.connections are back at their baseline within 5 s')
def _():
    check('after' in _soak, 'no measurements: the soak failed')
    check(_soak['after'] == _soak['base'], 'after the clients left: (fds, connections) %r, '
          'baseline %r' % (_soak['after'], _soak['base']))


@case('soak: VmRSS drift from 10 s to the end < 5 % + 1 MiB')
def _():
    if SANITIZE:
        raise Skip('ASan build (quarantine and shadow memory grow by design)')
    check('rend' in _soak, 'no measurements: the soak failed')
    r10, rend = _soak['r10'], _soak['rend']
    check(rend - r10 < 0.05 * r10 + 1024, 'VmRSS drifted %+d KiB (%d -> %d), limit 5 %% + 1 MiB'
          % (rend - r10, r10, rend))


@case('soak: SIGTERM afterwards: exit 0, no sanitizer report%s'
      % (' (ASan+UBSan build, LSan on)' if SANITIZE else ''))
def _():
    d = _soak.get('d')
    check(d is not None and d.proc is not None, 'no soak daemon')
    check(d.alive(), 'wsflowd died (exit %s)' % d.proc.poll())
    d.check_clean_stop()
    bad = [l for l in d.log_text().splitlines()
           if re.search(r'ERROR: LeakSanitizer|AddressSanitizer|runtime error', l)]
    check(not bad, 'sanitizer output: %s' % bad[:5])
    diag('daemon stopped: exit %s' % d.returncode)


class ValgrindDaemon(Daemon):
    """wsflowd under valgrind memcheck (same PID: valgrind runs it in place)."""

    def start(self, timeout=60):
        self.vglog = tmpfile(self.name + '.valgrind')
        cmd = ['valgrind', '--leak-check=full', '--show-leak-kinds=definite',
               '--errors-for-leak-kinds=definite', '--error-exitcode=33',
               '--num-callers=40', '--fullpath-after=', '--log-file=' + self.vglog,
               WSFLOWD, '-d', '-f', self.conf]
        with open(self.log, 'ab') as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log)
        Daemon.started.append(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise CheckFailed('valgrind wsflowd exited %d at start:\n%s'
                                  % (self.proc.returncode, self.log_tail()))
            try:
                socket.create_connection(('127.0.0.1', self.port), 0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise CheckFailed('valgrind wsflowd not accepting after %gs' % timeout)
                time.sleep(0.1)


def leak_records(text):
    """Valgrind's 'definitely lost' records: [(header, [stack frames])]."""
    out, cur = [], None
    for line in text.splitlines():
        line = re.sub(r'^==\d+==\s?', '', line).strip()
        if 'definitely lost in loss record' in line:
            cur = (line, [])
            out.append(cur)
        elif cur is not None and re.match(r'(at|by) 0x', line):
            cur[1].append(line)
        else:
            cur = None
    return out


# allocators and the thin wrappers of lws and OpenSSL: the caller owns it
ALLOC = re.compile(r': (malloc|calloc|realloc|strdup|strndup|memalign|posix_memalign|'
                   r'aligned_alloc|operator new|lws_[mz]?alloc|lws_realloc|_realloc|'
                   r'CRYPTO_[mz]alloc|CRYPTO_realloc|CRYPTO_strn?dup) ')


def wsflow_owned(frames):
    """The first frame past the allocator is in wsflow's own code."""
    for f in frames:
        if 'vg_replace_malloc' in f or ALLOC.search(f):
            continue
        return bool(re.search(r'\((?:\S*/)?(daemon|ctl)/[\w.]+\.c:\d+\)', f)
                    or '(in %s)' % WSFLOWD in f)
    return False


@case('valgrind memcheck: a 10-stream, ~15 s variant of the soak: digests correct, '
      'no definite leak allocated by wsflow\'s code at SIGTERM')
def _():
    if SANITIZE:
        raise Skip('the daemon is an ASan build (valgrind and ASan do not mix)')
    if not shutil.which('valgrind'):
        raise Skip('valgrind not installed')
    d = ValgrindDaemon(batch_size=BATCH, idle_timeout=60).start()
    t0 = time.monotonic()
    stats = run_soak(d, 10, 15, 1 / 16, {})
    report(stats, 'valgrind soak')
    check(d.alive(), 'wsflowd under valgrind died (exit %s):\n%s'
          % (d.proc.poll(), d.log_tail()))
    rc = d.stop(timeout=60)
    with open(d.vglog, errors='replace') as f:
        vg = f.read()
    summary = [l for l in vg.splitlines() if re.search(r'(definitely|indirectly) lost:|'
                                                         r'ERROR SUMMARY', l)]
    diag('valgrind: exit %s after %.0f s; %s' % (rc, time.monotonic() - t0,
                                                '; '.join(re.sub(r'^==\d+== ', '', l)
                                                          for l in summary)))
    leaks = leak_records(vg)
    ours = [r for r in leaks if wsflow_owned(r[1])]
    for head, frames in leaks:
        diag('%s%s\n  %s' % ('WSFLOW ' if (head, frames) in ours else '', head,
                             '\n  '.join(frames[:12])))
    errs = re.findall(r'^==\d+== (Invalid (?:read|write)|Conditional jump|Use of uninit'
                      r'|Syscall param|Mismatched free|Invalid free).*$', vg, re.M)
    check(rc in (0, 33), 'valgrind wsflowd exited %s on SIGTERM\n%s' % (rc, d.log_tail()))
    check(not ours, '%d definite leak(s) allocated by wsflow:\n%s'
          % (len(ours), '\n'.join(h + '\n  ' + '\n  '.join(f[:8]) for h, f in ours)))
    check(not errs, 'memcheck errors: %s' % errs[:5])
    check(rc == 0 or leaks, 'valgrind exit 33 without a definite leak: memcheck errors?')
    check_stats(stats, 50)


run_cases()
