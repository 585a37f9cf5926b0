#!/usr/bin/python3
# timeout: 300
"""Raw-socket RFC 6455 protocol abuse against wsflowd (testing.md §3.4, §6
items 8, 9, 12).

Autobahn|Testsuite cannot run here (testing.md §3.1), so its categories are
rewritten on a stdlib raw client that controls every byte: the handshake
header by header, frames with any FIN/RSV/opcode/mask/length encoding
(non-minimal lengths, declared length != payload), and a reader that
returns (opcode, payload), or 'drop' on EOF/RST.  wsflowd answers digests,
not echoes: where Autobahn expects an echo we expect hashlib's sha256.

One wsflowd serves every case (batch_size 1024, max_connections 64,
handshake_timeout 2, idle_timeout 5).  Every case is bounded (its expected
close code or TCP drop within 2 s, unless it is about a timeout) and is
followed by a health check: a fresh client sends a 4 KiB binary message at
/stream and must get the 4 running sha256 digests (every 1024 octets),
then a clean close.  A case that kills the daemon fails, and the daemon is
restarted for the next one (the last case then fails too: PID changed).

How the case prefixes map to Autobahn categories (case/__init__.py):

  hs    RFC 6455 §4 handshake (Autobahn has no handshake cases): missing
        Upgrade / Connection / Sec-WebSocket-Key / Host, bad key, version 8,
        POST, HTTP/1.0, 64 KiB header, unknown path, unknown subprotocol
  12.x  permessage-deflate offered: declined (no extension in the 101),
        then an RSV1 frame fails (with cat. 3)
  mask  §5.1/§5.3 masking (not tested by Autobahn): unmasked frame, zero key
  1.x   framing: payload lengths 0/125/126/127/65535/65536/65537 binary and
        text, 1-byte chops (1.2.8-like), non-minimal length encodings,
        64-bit length with the MSB set, declared 2^63-1 then TCP close,
        declared length shorter than the payload
  2.x   ping/pong: 0, 125, 126 octets, binary payload, octet-wise chops,
        unsolicited pong, 10 pings
  3.x   RSV1..RSV3 (values 1..7) on text, binary, ping, close
  4.x   reserved opcodes 3-7 (4.1.x) and 11-15 (4.2.x)
  5.x   fragmentation: fragmented ping/pong, ping between fragments,
        continuation without a start (FIN 0/1), a new data frame inside a
        fragmented message, 10 000 one-octet fragments at /frame, a
        message never finished then idle_timeout (1001)
  6.x   UTF-8: valid multi-byte, noncharacters, U+10FFFF, invalid byte,
        overlong, surrogate, > U+10FFFF, 5-byte form, split valid code
        point, split invalid sequence, fail-fast in the first fragment,
        truncated sequence at the end
  7.x   close: 1000 echoed, empty, length 1, 125, 126, every 7.7 valid code,
        every 7.9 invalid code, 7.13 informational codes, invalid UTF-8
        reason, data after close, second close, close mid-message, TCP
        ended by the server after the close handshake
  9.x   bigger messages at /message: 1 MiB binary and text, 16 MiB binary,
        4 MiB in 64 KiB fragments
  res   §10.4 resource abuse: slowloris handshake, silent TCP (both closed
        within handshake_timeout + 1 s), 80 connections against
        max_connections 64 (excess 503 while a stream keeps its digests),
        200 connects of churn
  log   §6 item 12: 500 bad connections grow the log by <= 100 lines

lws 4.1.6 behaviours wsflowd cannot change are expected results, each with
a "lws 4.1.6:" comment at the case; everything else that departs from
RFC 6455 fails.
"""
import base64
import hashlib
import os
import socket
import ssl
import struct
import sys
import threading
import time

from wsflowtest import (CheckFailed, Daemon, case, check, diag, run_cases, wait_for,
                        SANITIZE, SLOW)

try:
    sys.stdout.reconfigure(encoding='utf-8')    # the arrows in case names
except (AttributeError, ValueError):
    pass

GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
BATCH = 1024
HANDSHAKE_TIMEOUT = 2
IDLE_TIMEOUT = 5
MAX_CONNECTIONS = 64
KiB, MiB = 1024, 1 << 20
ENDLESS = (1 << 63) - 1

# ================================================================ raw client


def xor_mask(data, key):
    if not data or key == b'\0\0\0\0':
        return bytes(data)
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, 'little') ^ int.from_bytes(k, 'little')).to_bytes(n, 'little')


def frame(payload=b'', opcode=2, fin=True, rsv=0, masked=True, key=None,
          length=None, form=None):
    """One frame, any encoding.  rsv: the 3 bits as a number (4 = RSV1,
    2 = RSV2, 1 = RSV3, as Autobahn counts); length: the declared payload
    length (default len(payload)); form: 7, 16 or 64 forces that length
    encoding (non-minimal allowed); masked=False sends no mask key."""
    n = len(payload) if length is None else length
    if form is None:
        form = 7 if n < 126 else 16 if n < 65536 else 64
    b0 = (0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 15)
    m = 0x80 if masked else 0
    if form == 7:
        h = struct.pack('!BB', b0, m | n)
    elif form == 16:
        h = struct.pack('!BBH', b0, m | 126, n)
    else:
        h = struct.pack('!BBQ', b0, m | 127, n)
    if not masked:
        return h + payload
    key = os.urandom(4) if key is None else key
    return h + key + xor_mask(payload, key)


def close_payload(code=None, reason=b''):
    return b'' if code is None else struct.pack('!H', code) + reason


DROP = 'drop'
TIMEOUT = 'timeout'


# WSFLOW_ABUSE_TLS=1 (test_abuse_tls.py): every case against the daemon's
# TLS listener, with the same expected answers: one data path serves both.
TLS = os.environ.get('WSFLOW_ABUSE_TLS') == '1'
if TLS:
    TLS_CTX = ssl.create_default_context()      # once: it reads the CA store
    TLS_CTX.check_hostname = False
    TLS_CTX.verify_mode = ssl.CERT_NONE


def ws_port(d):
    return d.tls_port if TLS else d.port


class Raw:
    """A TCP (or TLS) connection to the daemon with exact control over every
    byte."""
    opened = []                 # closed by the case wrapper

    def __init__(self, port, timeout=2.0):
        self.timeout = timeout * SLOW
        self.sock = socket.create_connection(('127.0.0.1', port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.eof = False
        if TLS:
            try:
                self.sock = TLS_CTX.wrap_socket(self.sock, server_hostname='localhost')
            except OSError:         # closed before TLS: a drop
                self.eof = True
        self.buf = bytearray()
        self.pos = 0
        self.key = None
        self.seen = []
        Raw.opened.append(self)

    # ---- bytes
    def send(self, data):
        """sendall; False if the server has gone (reset / broken pipe)."""
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _fill(self, deadline):
        """More bytes; EOFError at EOF/RST, socket.timeout at deadline."""
        if self.eof:
            raise EOFError
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(262144)
        except socket.timeout:
            raise
        except OSError:
            self.eof = True
            raise EOFError
        if not data:
            self.eof = True
            raise EOFError
        if self.pos > 65536 and self.pos * 2 > len(self.buf):
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += data

    def _take(self, n, deadline):
        while len(self.buf) - self.pos < n:
            self._fill(deadline)
        data = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return data

    # ---- HTTP
    def request(self, path='/stream', headers=(), request_line=None, key=None):
        """An upgrade request: the five RFC headers, each replaced by a
        (name, value) of headers with the same name, or left out if that
        value is None; other headers appended."""
        self.key = base64.b64encode(os.urandom(16)).decode() if key is None else key
        base = [('Host', '127.0.0.1'), ('Upgrade', 'websocket'),
                ('Connection', 'Upgrade'), ('Sec-WebSocket-Key', self.key),
                ('Sec-WebSocket-Version', '13')]
        over = dict((k.lower(), v) for k, v in headers)
        lines = [request_line or 'GET %s HTTP/1.1' % path]
        for k, v in base:
            v = over.get(k.lower(), v)
            if v is not None:
                lines.append('%s: %s' % (k, v))
        names = set(k.lower() for k, _ in base)
        lines += ['%s: %s' % (k, v) for k, v in headers if k.lower() not in names]
        return ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')

    def handshake(self, path='/stream', headers=(), request_line=None, key=None,
                  raw=None, timeout=2.0):
        """Send a request, read the response head: (status, headers with
        lower-case names, head text); status is DROP or TIMEOUT if no head."""
        if raw is None:
            raw = self.request(path, headers, request_line, key)
        if not self.send(raw):
            return DROP, {}, ''
        return self.read_head(timeout)

    def ends(self, timeout=3.0):
        """The server ends the connection (the rest of an HTTP answer is
        read and dropped) within timeout."""
        deadline = time.monotonic() + timeout * SLOW
        try:
            while True:
                self._fill(deadline)
        except EOFError:
            return True
        except socket.timeout:
            return False

    def read_head(self, timeout=2.0):
        deadline = time.monotonic() + timeout * SLOW
        try:
            while self.buf.find(b'\r\n\r\n', self.pos) < 0:
                self._fill(deadline)
        except EOFError:
            head = bytes(self.buf[self.pos:]).decode('latin-1')
            return (self._status(head) if head else DROP), {}, head
        except socket.timeout:
            return TIMEOUT, {}, bytes(self.buf[self.pos:]).decode('latin-1')
        end = self.buf.find(b'\r\n\r\n', self.pos)
        head = bytes(self.buf[self.pos:end]).decode('latin-1')
        self.pos = end + 4
        hdrs = {}
        for line in head.split('\r\n')[1:]:
            if ':' in line:
                k, v = line.split(':', 1)
                hdrs[k.strip().lower()] = v.strip()
        return self._status(head), hdrs, head

    @staticmethod
    def _status(head):
        try:
            return int(head.split(' ', 2)[1])
        except (IndexError, ValueError):
            return head[:40]

    def accept_value(self):
        return base64.b64encode(hashlib.sha1((self.key + GUID).encode()).digest()).decode()

    def upgrade(self, path='/stream', headers=()):
        status, hdrs, head = self.handshake(path, headers)
        check(status == 101 and hdrs.get('sec-websocket-accept') == self.accept_value(),
              'handshake to %s failed: %r' % (path, head[:300]))
        return hdrs

    # ---- frames
    def read_frame(self, timeout=2.0):
        """(fin, rsv, opcode, payload), or DROP (EOF/RST) or TIMEOUT."""
        deadline = time.monotonic() + timeout * SLOW
        try:
            b0, b1 = self._take(2, deadline)
            n = b1 & 0x7f
            if n == 126:
                n = struct.unpack('!H', self._take(2, deadline))[0]
            elif n == 127:
                n = struct.unpack('!Q', self._take(8, deadline))[0]
            key = self._take(4, deadline) if b1 & 0x80 else b'\0\0\0\0'
            payload = xor_mask(self._take(n, deadline), key)
        except EOFError:
            return DROP
        except socket.timeout:
            return TIMEOUT
        return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 15, payload

    def read(self, timeout=2.0):
        """The next server message as (opcode, payload): a control frame,
        or a (joined) data message; or DROP / TIMEOUT."""
        parts, first = [], None
        deadline = time.monotonic() + timeout * SLOW
        while True:
            f = self.read_frame(max(deadline - time.monotonic(), 0.001) / SLOW)
            if f in (DROP, TIMEOUT):
                return f
            fin, rsv, op, payload = f
            if op >= 8:
                return op, payload
            first = op if first is None else first
            parts.append(payload)
            if fin:
                return first, b''.join(parts)

    def outcome(self, timeout=2.0):
        """Read until the server ends: ('close', code or None, reason),
        ('drop',) or ('timeout',); what came before is kept in .seen."""
        self.seen = []
        deadline = time.monotonic() + timeout * SLOW
        while True:
            r = self.read(max(deadline - time.monotonic(), 0.001) / SLOW)
            if r == DROP:
                return ('drop',)
            if r == TIMEOUT:
                return ('timeout',)
            op, payload = r
            if op == 8:
                code = struct.unpack('!H', payload[:2])[0] if len(payload) >= 2 else None
                return ('close', code, payload[2:])
            self.seen.append(r)

    def digests(self, n, timeout=2.0, pongs=None):
        """n text messages (digests) as str; pongs on the way are appended
        to the list pongs if given, else fail; anything else fails."""
        out = []
        deadline = time.monotonic() + timeout * SLOW
        while len(out) < n:
            r = self.read(max(deadline - time.monotonic(), 0.001) / SLOW)
            check(r not in (DROP, TIMEOUT), 'digest %d of %d: %s' % (len(out) + 1, n, r))
            op, payload = r
            if op == 10 and pongs is not None:
                pongs.append(payload)
                continue
            check(op == 1, 'digest %d of %d: got opcode %d %r'
                  % (len(out) + 1, n, op, payload[:80]))
            out.append(payload.decode('ascii', 'replace'))
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """RST instead of FIN."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        except OSError:
            pass
        self.close()


def running(data, batch=BATCH):
    """The digests /stream owes for one message of data."""
    h, out = hashlib.sha256(), []
    for off in range(0, len(data) - batch + 1, batch):
        h.update(data[off:off + batch])
        out.append(h.hexdigest())
    return out


def sha(data):
    return hashlib.sha256(data).hexdigest()


def mismatch(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return 'digest %d: got %s, want %s' % (i, g, w)
    return 'got %d digests, want %d' % (len(got), len(want))


def check_digests(got, want, what):
    check(got == want, '%s: %s' % (what, mismatch(got, want)))


def show(o):
    if o[0] == 'close':
        return 'close %s %r' % ('(no code)' if o[1] is None else o[1], o[2][:40])
    return o[0]


def http_get(port, path):
    """(status, body) of a plain GET, Connection: close."""
    r = Raw(port)
    status, hdrs, head = r.handshake(raw=('GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                                          'Connection: close\r\n\r\n' % path).encode())
    n = int(hdrs.get('content-length', '0'))
    deadline = time.monotonic() + 2 * SLOW
    try:
        body = r._take(n, deadline)
    except (EOFError, socket.timeout):
        body = bytes(r.buf[r.pos:])
    r.close()
    return status, body.decode('latin-1')


def metric(port, name):
    status, body = http_get(port, '/metrics')
    check(status == 200, '/metrics answered %s' % status)
    for line in body.splitlines():
        if line.startswith(name + ' '):
            return int(float(line.split()[1]))
    raise CheckFailed('no %s in /metrics' % name)

# ================================================================ the daemon and the cases


_daemons = []
_first_pid = []
_counts = {}


def daemon():
    """The shared daemon; restarted if an earlier case killed it."""
    if _daemons and not _daemons[-1].alive():
        dead = _daemons[-1]
        diag('wsflowd pid %d died (exit %s): restarting it for the next case'
             % (dead.pid, dead.proc.returncode))
        _daemons.pop()
    if not _daemons:
        d = Daemon(tls=TLS, batch_size=BATCH, max_connections=MAX_CONNECTIONS,
                   handshake_timeout=HANDSHAKE_TIMEOUT, idle_timeout=IDLE_TIMEOUT)
        _daemons.append(d.start())
        if not _first_pid:
            _first_pid.append(d.pid)
    return _daemons[-1]


def ws(d, path='/stream', headers=()):
    r = Raw(ws_port(d))
    r.upgrade(path, headers)
    return r


def healthy(d):
    """A fresh client: 4 KiB binary at /stream -> 4 running digests, clean
    close.  A 503 is retried for up to 2 s (the daemon may not have seen
    the previous case's sockets close yet)."""
    deadline = time.monotonic() + 2 * SLOW
    while True:
        r = Raw(ws_port(d))
        status, hdrs, head = r.handshake('/stream')
        if status == 503 and time.monotonic() < deadline:
            r.close()
            time.sleep(0.05)
            continue
        check(status == 101 and hdrs.get('sec-websocket-accept') == r.accept_value(),
              'health check: handshake answered %r' % head[:200])
        break
    data = os.urandom(4 * KiB)
    r.send(frame(data))
    check_digests(r.digests(4), running(data), 'health check')
    r.send(frame(close_payload(1000), opcode=8))
    o = r.outcome()
    check(o[:2] == ('close', 1000), 'health check: clean close answered %s' % show(o))
    r.close()


def abuse(cat, what, health=True):
    """Register a case 'CAT WHAT' run against the shared daemon, followed
    by the health check."""
    def register(fn):
        @case('%s%s %s' % (cat, ' [tls]' if TLS else '', what))
        def run():
            d = daemon()
            _counts[cat.split('.')[0]] = _counts.get(cat.split('.')[0], 0) + 1
            first = len(Raw.opened)
            try:
                fn(d)
            finally:
                for r in Raw.opened[first:]:
                    r.close()
                del Raw.opened[first:]
            check(d.alive(), 'wsflowd died in this case (exit %s)' % d.proc.returncode)
            if health:
                healthy(d)
                check(d.alive(), 'wsflowd died after this case')
        return fn
    return register


def expect_end(r, want, what, timeout=2.0):
    """The server ends within timeout: want is a collection of close codes,
    None (a close frame without code) and/or 'drop'.  Returns the outcome."""
    t0 = time.monotonic()
    o = r.outcome(timeout)
    got = DROP if o[0] == 'drop' else o[1] if o[0] == 'close' else TIMEOUT
    check(got in want, '%s: server answered %s after %.2fs, want %s'
          % (what, show(o), time.monotonic() - t0,
             ' or '.join('close %s' % w if w != DROP else w for w in want)))
    return o


def no_data(r, what):
    data = [m for m in r.seen if m[0] in (1, 2)]
    check(not data, '%s: %d data message(s) before the end, first %r'
          % (what, len(data), data[0][1][:80] if data else b''))

# ---------------------------------------------------------------- hs: RFC 6455 §4


def refused(status):
    """Not upgraded: an HTTP error status or the connection dropped."""
    return status == DROP or isinstance(status, int) and 400 <= status < 600


def hs_refused(name, want, headers=(), path='/stream', request_line=None, key=None,
               raw=None, header=None):
    """An upgrade refused with exactly the status of docs/wire.md §2, an
    HTTP answer with Connection: close, never a bare drop."""
    @abuse('hs', '%s → %d' % (name, want))
    def _(d):
        r = Raw(ws_port(d))
        status, hdrs, head = r.handshake(path, headers, request_line, key, raw)
        check(status == want, '%s: answered %r, want %d' % (name, head[:300] or status,
                                                           want))
        check(hdrs.get('connection', '').lower() == 'close',
              '%s: no Connection: close in %r' % (name, head[:300]))
        if header is not None:
            check(hdrs.get(header[0], '') == header[1],
                  '%s: no %s: %s in %r' % (name, header[0], header[1], head[:300]))
        check(r.ends(), '%s: the connection stays open after the answer' % name)


hs_refused('missing Upgrade header (a plain GET of a WebSocket path)', 426,
           [('Upgrade', None)], header=('upgrade', 'websocket'))
hs_refused('missing Connection header', 400, [('Connection', None)])
hs_refused('missing Sec-WebSocket-Key', 400, [('Sec-WebSocket-Key', None)])
hs_refused('missing Host header', 400, [('Host', None)])
hs_refused('Upgrade: h2c instead of websocket', 426, [('Upgrade', 'h2c')])
hs_refused('POST with upgrade headers', 405, request_line='POST /stream HTTP/1.1',
           header=('allow', 'GET, HEAD'))
hs_refused('unknown path /nope', 404, path='/nope')
# RFC 6455 §4.2.1 item 5: the key must decode to 16 octets, else 400.
hs_refused('Sec-WebSocket-Key of 8 octets (base64)', 400,
           key=base64.b64encode(b'12345678').decode())
hs_refused('Sec-WebSocket-Key that is not base64', 400, key='not base64 at all!!!!!!')
# RFC 6455 §4.2.2/§4.4: 426 naming the version spoken.
hs_refused('Sec-WebSocket-Version: 8', 426, [('Sec-WebSocket-Version', '8')],
           header=('sec-websocket-version', '13'))
# RFC 6455 §4.1: the handshake is HTTP/1.1 or later.
hs_refused('HTTP/1.0 upgrade request', 400, request_line='GET /stream HTTP/1.0')


@abuse('hs', '64 KiB request header → 431 within 2 s')
def _(d):
    r = Raw(ws_port(d))
    req = r.request('/stream', [('X-Padding', 'a' * (64 * KiB))])
    t0 = time.monotonic()
    status, hdrs, head = r.handshake(raw=req)
    check(status == 431, '64 KiB header: answered %r' % (head[:200] or status))
    check(time.monotonic() - t0 < 2 * SLOW, '64 KiB header: took %.2fs' % (time.monotonic() - t0))


@abuse('hs', 'unknown subprotocol offered → 101 without Sec-WebSocket-Protocol, '
       'digests flow')
def _(d):
    # RFC 6455 §4.2.2 lets a server select none of the offered
    # subprotocols: browsers then open the socket (docs/wire.md §2).
    r = Raw(ws_port(d))
    status, hdrs, head = r.handshake('/stream', [('Sec-WebSocket-Protocol', 'chat.nope')])
    check(status == 101 and hdrs.get('sec-websocket-accept') == r.accept_value(),
          'answered %r' % head[:300])
    check('sec-websocket-protocol' not in hdrs,
          'accepted a protocol nobody offered: %r' % head[:300])
    data = os.urandom(2 * KiB)
    r.send(frame(data))
    check_digests(r.digests(2), running(data), 'subprotocol stream')


@abuse('hs', 'case-insensitive Upgrade: WebSocket and Connection: keep-alive, Upgrade → 101')
def _(d):
    r = ws(d, '/stream', [('Upgrade', 'WebSocket'), ('Connection', 'keep-alive, Upgrade')])
    data = os.urandom(KiB)
    r.send(frame(data))
    check_digests(r.digests(1), running(data), 'stream')


@abuse('12.x', 'permessage-deflate offered → 101 without Sec-WebSocket-Extensions '
       '(declined), then an RSV1 frame → 1002')
def _(d):
    r = Raw(ws_port(d))
    status, hdrs, head = r.handshake('/stream', [
        ('Sec-WebSocket-Extensions', 'permessage-deflate; client_max_window_bits')])
    check(status == 101 and hdrs.get('sec-websocket-accept') == r.accept_value(),
          'handshake: %r' % head[:300])
    check('sec-websocket-extensions' not in hdrs, 'extension negotiated: %r' % head[:300])
    r.send(frame(b'\xf2\x48\xcd\xc9\xc9\x07\x00', rsv=4))     # "Hello", deflated
    expect_end(r, (1002,), 'RSV1 frame after a declined deflate')
    no_data(r, 'RSV1 frame')

# ---------------------------------------------------------------- masking §5.1, §5.3


@abuse('mask', 'unmasked client frame → close 1002 (RFC 6455 §5.1 "MUST close"), '
       'no digest')
def _(d):
    # wsflowd parses frames itself on plain listeners (daemon/ws.c).
    # lws 4.1.6, which frames TLS listeners, accepts them (testing.md §3.3).
    r = ws(d)
    data = os.urandom(2 * KiB)
    r.send(frame(data, masked=False))
    expect_end(r, (1002,), 'unmasked frame')
    no_data(r, 'unmasked frame')


@abuse('mask', 'all-zero mask key → valid, digests correct')
def _(d):
    r = ws(d)
    data = os.urandom(2 * KiB)
    r.send(frame(data, key=b'\0\0\0\0'))
    check_digests(r.digests(2), running(data), 'zero key')

# ---------------------------------------------------------------- 1.x framing


def length_case(cat, n, opcode):
    kind = 'text' if opcode == 1 else 'binary'

    @abuse(cat, '%s message of %d octets at /message → its sha256' % (kind, n))
    def _(d):
        r = ws(d, '/message')
        data = (b'wsflow*' * (n // 7 + 1))[:n] if opcode == 1 else os.urandom(n)
        r.send(frame(data, opcode=opcode))
        check_digests(r.digests(1), [sha(data)], '%d octets' % n)


for _cat, _n in (('1.2.1', 0), ('1.2.2', 125), ('1.2.3', 126), ('1.2.4', 127),
                 ('1.2.6', 65535), ('1.2.7', 65536), ('1.2.x', 65537)):
    length_case(_cat, _n, 2)
for _cat, _n in (('1.1.1', 0), ('1.1.3', 126), ('1.1.7', 65536)):
    length_case(_cat, _n, 1)


@abuse('1.2.8', '64 KiB binary at /stream sent in 997-byte chops → 64 running digests')
def _(d):
    r = ws(d)
    data = os.urandom(64 * KiB)
    wire = frame(data)
    for i in range(0, len(wire), 997):
        r.send(wire[i:i + 997])
    check_digests(r.digests(64), running(data), '997-byte chops')


@abuse('1.x', '4 KiB binary at /stream sent one octet per write (header too) '
       '→ 4 running digests')
def _(d):
    r = ws(d)
    data = os.urandom(4 * KiB)
    wire = frame(data)
    for i in range(len(wire)):
        r.send(wire[i:i + 1])
        if i < 14 or i % 256 == 0:
            time.sleep(0.002)       # make the header really arrive in pieces
    check_digests(r.digests(4), running(data), '1-byte chops')


@abuse('1.x', 'non-minimal length: 5 octets in the 16-bit form → accepted, sha256 '
       '(lws 4.1.6; RFC 6455 §5.2 "minimal" binds the sender)')
def _(d):
    # lws 4.1.6 does not reject non-minimal length encodings; RFC 6455 §5.2
    # says the minimal encoding MUST be used but names no receiver action.
    r = ws(d, '/message')
    data = os.urandom(5)
    r.send(frame(data, form=16))
    check_digests(r.digests(1), [sha(data)], 'non-minimal 16-bit')


@abuse('1.x', 'non-minimal length: 200 octets in the 64-bit form → accepted, sha256 (lws 4.1.6)')
def _(d):
    r = ws(d, '/message')
    data = os.urandom(200)
    r.send(frame(data, form=64))
    check_digests(r.digests(1), [sha(data)], 'non-minimal 64-bit')


@abuse('1.x', '64-bit length with the most significant bit set → 1002')
def _(d):
    # RFC 6455 §5.2: the MSB MUST be 0.
    r = ws(d)
    r.send(frame(b'', length=1 << 63) + b'\0' * 64)
    expect_end(r, (1002,), 'MSB-set length')
    no_data(r, 'MSB-set length')


@abuse('1.x', 'declared 2^63-1 octets, 4 KiB sent, then TCP close → 4 digests, '
       'a normal end; connections gauge back to 0')
def _(d):
    r = ws(d)
    data = os.urandom(4 * KiB)
    r.send(frame(length=ENDLESS, fin=False, key=b'\0\0\0\0') + data)
    check_digests(r.digests(4), running(data), 'endless frame')
    r.close()
    check(wait_for(lambda: metric(ws_port(d), 'wsflow_server_connections') == 0, 2),
          'server connections did not return to 0 after the TCP close')


@abuse('1.x', 'declared length shorter than the payload: the surplus octet 0xFF '
       'parsed as a frame header (RSV set) → 1002')
def _(d):
    r = ws(d, '/message')
    data = os.urandom(100)
    wire = frame(data, key=b'\0\0\0\0')
    r.send(wire[:1] + bytes([wire[1] - 10]) + wire[2:6] + data[:90] + b'\xff\x80' + b'\0' * 8)
    expect_end(r, (1002,), 'surplus octets')
    check([m for m in r.seen if m[0] == 1] in ([], [(1, sha(data[:90]).encode())]),
          'unexpected messages: %r' % r.seen)

# ---------------------------------------------------------------- 2.x ping / pong


def ping_case(cat, name, payload, chop=False):
    @abuse(cat, 'ping with %s → pong with the same payload' % name)
    def _(d):
        r = ws(d)
        wire = frame(payload, opcode=9)
        if chop:
            for i in range(len(wire)):
                r.send(wire[i:i + 1])
                time.sleep(0.001)
        else:
            r.send(wire)
        got = r.read()
        check(got == (10, payload), 'ping: got %r' % (got if not isinstance(got, tuple)
                                                      else (got[0], got[1][:40]),))


ping_case('2.1', 'an empty payload', b'')
ping_case('2.2', 'a 12-octet text payload', b'Hello, world')
ping_case('2.3', '8 binary octets', b'\x00\xff\xfe\xfd\xfc\xfb\x00\xff')
ping_case('2.4', 'a 125-octet payload', os.urandom(125))
ping_case('2.6', 'a 125-octet payload sent one octet per write', os.urandom(125), chop=True)


@abuse('2.5', 'ping with a 126-octet payload → 1002')
def _(d):
    # RFC 6455 §5.5: control payloads are at most 125 octets (Autobahn 2.5
    # would accept a drop; wsflowd says why).
    r = ws(d)
    r.send(frame(b'p' * 126, opcode=9))
    expect_end(r, (1002,), 'ping 126')
    check(not [m for m in r.seen if m[0] == 10], 'answered the 126-octet ping with a pong')


@abuse('2.7', 'unsolicited pong → ignored, the stream goes on (digests correct)')
def _(d):
    r = ws(d)
    data = os.urandom(2 * KiB)
    r.send(frame(b'', opcode=10) + frame(data[:KiB], fin=False) +
           frame(b'unsolicited', opcode=10) + frame(data[KiB:], opcode=0))
    check_digests(r.digests(2), running(data), 'after unsolicited pongs')


@abuse('2.10', '10 pings back-to-back → at least one pong, each echoing one of the '
       'payloads; then the stream goes on')
def _(d):
    # lws 4.1.6 answers fewer pongs than pings (only the latest pending
    # ping is answered): RFC 6455 §5.5.3 allows it.
    r = ws(d)
    payloads = [b'ping %d' % i for i in range(10)]
    r.send(b''.join(frame(p, opcode=9) for p in payloads))
    first = r.read()
    check(isinstance(first, tuple) and first[0] == 10 and first[1] in payloads,
          '10 pings: first answer %r' % (first,))
    pongs = [first[1]]
    data = os.urandom(2 * KiB)
    r.send(frame(data))
    check_digests(r.digests(2, pongs=pongs), running(data), 'after 10 pings')
    check(all(p in payloads for p in pongs), 'pong payloads %r' % pongs)
    diag('10 pings: %d pong(s)' % len(pongs))

# ---------------------------------------------------------------- 3.x reserved bits


def before_bad(r, valid_first):
    """Send a valid 1 KiB message first: 'sync' waits for its digest,
    'together' sends it in the same write as the bad frame (then the digest
    may be lost: lws 4.1.6 fails the connection while parsing that read,
    before wsflowd's WRITEABLE; Autobahn grades this NON-STRICT).  Returns
    (bytes to prepend to the bad frame, digests owed)."""
    data = os.urandom(KiB)
    if valid_first == 'sync':
        r.send(frame(data))
        check_digests(r.digests(1), running(data), 'valid message before')
        return b'', []
    if valid_first == 'together':
        return frame(data), running(data)
    return b'', []


def check_before(r, owed, valid_first):
    got = [m[1].decode() for m in r.seen if m[0] == 1]
    if valid_first == 'together':
        check(got == owed[:len(got)], 'digests before: %r' % got)
    else:
        check(not got, 'digests before: %r' % got)


FIRST = {None: '', 'sync': ' after a valid message', 'together':
         ' right behind a valid message (its digest may be lost)'}


def rsv_case(cat, rsv, kind, valid_first=None):
    @abuse(cat, 'RSV=%d on a %s frame%s → 1002' % (rsv, kind, FIRST[valid_first]))
    def _(d):
        r = ws(d)
        wire, owed = before_bad(r, valid_first)
        if kind == 'close':
            wire += frame(close_payload(1000), opcode=8, rsv=rsv)
        else:
            wire += frame(b'Hello', opcode={'text': 1, 'binary': 2, 'ping': 9}[kind], rsv=rsv)
        r.send(wire + frame(b'after', opcode=9))
        expect_end(r, (1002,), 'RSV=%d %s' % (rsv, kind))
        check_before(r, owed, valid_first)
        check(not [m for m in r.seen if m[0] == 10], 'ping after the bad frame answered')


rsv_case('3.1', 1, 'text')
rsv_case('3.2', 2, 'text', valid_first='together')
rsv_case('3.3', 3, 'text', valid_first='sync')
rsv_case('3.4', 4, 'text')
rsv_case('3.5', 5, 'binary')
rsv_case('3.6', 6, 'ping')
rsv_case('3.7', 7, 'close')
rsv_case('3.x', 4, 'binary', valid_first='sync')

# ---------------------------------------------------------------- 4.x reserved opcodes


def opcode_case(cat, op, payload, valid_first):
    @abuse(cat, 'reserved opcode %d%s%s → 1002' % (
        op, ' with payload' if payload else '', FIRST[valid_first]))
    def _(d):
        r = ws(d)
        wire, owed = before_bad(r, valid_first)
        r.send(wire + frame(payload, opcode=op) + frame(b'after', opcode=9))
        expect_end(r, (1002,), 'opcode %d' % op)
        check_before(r, owed, valid_first)
        check(not [m for m in r.seen if m[0] == 10], 'ping after the bad frame answered')


# as Autobahn 4.1.1-4.1.5 / 4.2.1-4.2.5: plain, with payload, after a
# message (4.x.3 together, 4.x.4/4.x.5 in sync)
for _i, _op in enumerate((3, 4, 5, 6, 7)):
    opcode_case('4.1.%d' % (_i + 1), _op, b'reserved' if _i % 2 else b'',
                (None, None, 'together', 'sync', 'sync')[_i])
for _i, _op in enumerate((11, 12, 13, 14, 15)):
    opcode_case('4.2.%d' % (_i + 1), _op, b'reserved' if _i % 2 else b'',
                (None, None, 'together', 'sync', 'sync')[_i])

# ---------------------------------------------------------------- 5.x fragmentation


@abuse('5.1', 'ping in 2 fragments → 1002')
def _(d):
    r = ws(d)
    r.send(frame(b'frag', opcode=9, fin=False) + frame(b'ment', opcode=0))
    expect_end(r, (1002,), 'fragmented ping')
    check(not [m for m in r.seen if m[0] == 10], 'fragmented ping answered')


@abuse('5.2', 'pong in 2 fragments → 1002')
def _(d):
    r = ws(d)
    r.send(frame(b'frag', opcode=10, fin=False) + frame(b'ment', opcode=0))
    expect_end(r, (1002,), 'fragmented pong')


@abuse('5.3', 'text message in 2 fragments at /message → one sha256 of the whole')
def _(d):
    r = ws(d, '/message')
    r.send(frame(b'fragment1', opcode=1, fin=False) + frame(b'fragment2', opcode=0))
    check_digests(r.digests(1), [sha(b'fragment1fragment2')], '2 fragments')


@abuse('5.6', 'ping between the fragments of a message at /stream → pong, and the '
       'message\'s 4 digests still right')
def _(d):
    r = ws(d)
    data = os.urandom(4 * KiB)
    r.send(frame(data[:1500], fin=False) + frame(b'in between', opcode=9) +
           frame(data[1500:], opcode=0))
    pongs = []
    check_digests(r.digests(4, pongs=pongs), running(data), 'around the ping')
    if not pongs:
        got = r.read()
        check(got == (10, b'in between'), 'no pong: %r' % (got,))
    else:
        check(pongs == [b'in between'], 'pongs %r' % pongs)


@abuse('5.9', 'continuation without a start (FIN=1) → 1002')
def _(d):
    r = ws(d)
    r.send(frame(b'non-continuation payload', opcode=0))
    expect_end(r, (1002,), 'stray continuation')
    no_data(r, 'stray continuation')


@abuse('5.10', 'continuation without a start (FIN=0) → 1002')
def _(d):
    r = ws(d)
    r.send(frame(b'non-continuation payload', opcode=0, fin=False))
    expect_end(r, (1002,), 'stray continuation')
    no_data(r, 'stray continuation')


@abuse('5.18', 'a new text frame inside a fragmented text message → 1002')
def _(d):
    r = ws(d, '/message')
    r.send(frame(b'fragment1', opcode=1, fin=False) + frame(b'fragment2', opcode=1))
    expect_end(r, (1002,), 'new data frame mid-message')
    no_data(r, 'new data frame mid-message')


@abuse('5.x', 'a new binary frame inside a fragmented binary message at /stream → 1002')
def _(d):
    r = ws(d)
    data = os.urandom(KiB)
    r.send(frame(data, fin=False))
    check_digests(r.digests(1), running(data), 'first fragment')
    r.send(frame(b'second start', opcode=2, fin=False))
    expect_end(r, (1002,), 'new data frame mid-message')
    no_data(r, 'new data frame mid-message')


def rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


@abuse('5.x', '10 000 one-octet fragments of one message at /frame → 10 000 running '
       'digests within 5 s, RSS growth < 8 MiB')
def _(d):
    n = 10000
    data = os.urandom(n)
    r = ws(d, '/frame')
    wire = b''.join(frame(data[i:i + 1], opcode=2 if i == 0 else 0, fin=i == n - 1)
                    for i in range(n))
    rss0 = rss_kib(d.pid)
    t0 = time.monotonic()
    err = []

    def send():
        if not r.send(wire):
            err.append('send failed')
    # An SSL socket is no place for two threads: over TLS the 60 KB go
    # first (the kernel's buffers hold them), then the digests are read.
    t = threading.Thread(target=send, daemon=True)
    if TLS:
        send()
    else:
        t.start()
    got = r.digests(n, timeout=5)
    took = time.monotonic() - t0
    if not TLS:
        t.join(2)
    h, want = hashlib.sha256(), []
    for i in range(n):
        h.update(data[i:i + 1])
        want.append(h.hexdigest())
    check_digests(got, want, '10 000 fragments')
    check(not err, err and err[0])
    grow = rss_kib(d.pid) - rss0
    diag('10 000 fragments: %.2fs, RSS %+d KiB' % (took, grow))
    if not SANITIZE:
        check(grow < 8 * 1024, 'RSS grew by %d KiB' % grow)


@abuse('5.x', 'a message never finished, then silence → close 1001 by idle_timeout '
       '(5 s) within 4.5–7 s')
def _(d):
    r = ws(d)
    data = os.urandom(3 * KiB)
    r.send(frame(data, fin=False))
    check_digests(r.digests(3), running(data), 'before the silence')
    t0 = time.monotonic()
    expect_end(r, (1001,), 'unfinished message', timeout=(8 if SANITIZE else 7.5) / SLOW)
    took = time.monotonic() - t0
    diag('idle close after %.2fs' % took)
    check(IDLE_TIMEOUT - 0.5 <= took <= IDLE_TIMEOUT + (3 if SANITIZE else 2),
          'idle close after %.2fs, want %d-%ds' % (took, IDLE_TIMEOUT, IDLE_TIMEOUT + 2))

# ---------------------------------------------------------------- 6.x UTF-8


def utf8_ok(cat, name, text, fragments=None, path='/message'):
    @abuse(cat, 'text %s → accepted, sha256 of the octets' % name)
    def _(d):
        r = ws(d, path)
        parts = fragments or [text]
        r.send(b''.join(frame(p, opcode=1 if i == 0 else 0, fin=i == len(parts) - 1)
                        for i, p in enumerate(parts)))
        check_digests(r.digests(1), [sha(b''.join(parts))], name)


def utf8_bad(cat, name, text, fragments=None):
    @abuse(cat, 'text %s → 1007' % name)
    def _(d):
        r = ws(d, '/message')
        parts = fragments or [text]
        r.send(b''.join(frame(p, opcode=1 if i == 0 else 0, fin=i == len(parts) - 1)
                        for i, p in enumerate(parts)))
        expect_end(r, (1007,), name)
        no_data(r, name)


HELLO = 'Hello-µ@ßöäüàá-UTF-8!!'.encode()
KOSME = 'κόσμε'.encode()
utf8_ok('6.2.1', 'with 2-, 3- and 4-octet code points (κόσμε €𝄞)', 'κόσμε €𝄞'.encode())
utf8_ok('6.2.2', '"Hello-µ@ßöäüàá-UTF-8!!" split on code point boundaries', HELLO,
        [HELLO[:7], HELLO[7:9], HELLO[9:]])
utf8_ok('6.2.3', 'valid, one octet per fragment (inside code points)', HELLO,
        [HELLO[i:i + 1] for i in range(len(HELLO))])
utf8_ok('6.5.x', '€ split inside the code point across two fragments', '€'.encode(),
        ['€'.encode()[:1], '€'.encode()[1:]])
utf8_ok('6.11.x', 'noncharacters U+FFFE U+FFFF and max U+10FFFF (valid UTF-8)',
        b'\xef\xbf\xbe\xef\xbf\xbf\xf4\x8f\xbf\xbf')
utf8_ok('6.2.x', 'valid multi-byte text at /stream (hashed like binary)',
        ('€' * 400).encode()[:1023] + b'!', path='/stream')
utf8_bad('6.3.1', 'with an invalid octet 0xFF', b'abc\xffdef')
utf8_bad('6.3.2', 'κόσμε then a lone surrogate U+D800 (ED A0 80)',
         KOSME + b'\xed\xa0\x80' + b'edited')
utf8_bad('6.8.x', 'overlong 2-octet "/" (C0 AF)', b'\xc0\xaf')
utf8_bad('6.9.x', 'overlong 3-octet NUL (E0 80 80)', b'\xe0\x80\x80')
utf8_bad('6.18.x', 'surrogate U+D800 alone (ED A0 80)', b'\xed\xa0\x80')
utf8_bad('6.21.x', 'surrogate pair U+D800 U+DC00 (CESU-8)', b'\xed\xa0\x80\xed\xb0\x80')
utf8_bad('6.6.x', 'code point above U+10FFFF (F4 90 80 80)', b'\xf4\x90\x80\x80')
utf8_bad('6.7.x', '5-octet form (F8 88 80 80 80)', b'\xf8\x88\x80\x80\x80')
utf8_bad('6.4.x', 'truncated sequence at the end of the message (E2 82)', b'price: \xe2\x82')
utf8_bad('6.3.x', 'invalid sequence split across fragments (CE BA E1 | BD FF)', None,
         [b'\xce\xba\xe1', b'\xbd\xff'])


@abuse('6.4.1', 'fail fast: invalid UTF-8 in the first fragment of an unfinished '
       'message → 1007 before the message ends')
def _(d):
    r = ws(d, '/message')
    r.send(frame(KOSME + b'\xf4\x90\x80\x80', opcode=1, fin=False))
    expect_end(r, (1007,), 'fail fast')
    no_data(r, 'fail fast')

# ---------------------------------------------------------------- 7.x close


@abuse('7.1.1', 'close 1000 → close 1000 echoed, then the server ends TCP')
def _(d):
    r = ws(d)
    r.send(frame(close_payload(1000), opcode=8))
    expect_end(r, (1000,), 'close 1000')
    check(r.read_frame() == DROP, 'TCP still open 2 s after the close handshake')


@abuse('7.1.3', 'data after close → ignored (no digest), TCP ended')
def _(d):
    r = ws(d, '/message')
    r.send(frame(close_payload(1000), opcode=8) + frame(os.urandom(100)) +
           frame(b'text', opcode=1))
    expect_end(r, (1000,), 'close then data')
    no_data(r, 'close then data')
    check(r.read() == DROP, 'something after the close: TCP not ended')


@abuse('7.1.2', 'second close → ignored, one close answered, TCP ended')
def _(d):
    r = ws(d)
    r.send(frame(close_payload(1000), opcode=8) + frame(close_payload(1001), opcode=8))
    expect_end(r, (1000,), 'two closes')
    check(r.read() == DROP, 'more than one close answered / TCP not ended')


@abuse('7.1.5', 'close in the middle of a fragmented message → close 1000 echoed')
def _(d):
    r = ws(d)
    data = os.urandom(KiB)
    r.send(frame(data, fin=False))
    check_digests(r.digests(1), running(data), 'first fragment')
    r.send(frame(close_payload(1000), opcode=8))
    expect_end(r, (1000,), 'close mid-message')
    no_data(r, 'close mid-message')


@abuse('7.1.6', 'a message and a close in one write at /message → the message\'s '
       'digest, then close 1000 (interface.md §1 owes the digest)')
def _(d):
    # Autobahn 7.1.6 grades the back-to-back case informational, but the
    # RFC lets the server send what it owes before its close (§5.5.1 "MAY
    # delay sending a Close frame until its current message is sent") and
    # wsflowd owes a digest for every message that ended.  lws 4.1.6 tells
    # wsflowd of the close (LWS_CALLBACK_WS_PEER_INITIATED_CLOSE) before it
    # queues the close echo: digests still queued can be written there.
    r = ws(d, '/message')
    data = os.urandom(4 * KiB)
    r.send(frame(data) + frame(close_payload(1000), opcode=8))
    expect_end(r, (1000,), 'message then close')
    got = [m[1].decode() for m in r.seen if m[0] == 1]
    check(got == [sha(data)], 'digest owed for the message before the close: got %r' % got)


@abuse('7.3.1', 'empty close → close (no code, or 1000)')
def _(d):
    r = ws(d)
    r.send(frame(b'', opcode=8))
    expect_end(r, (None, 1000), 'empty close')


@abuse('7.3.2', 'close with a 1-octet payload → 1002 (RFC 6455 §5.5.1, Autobahn)')
def _(d):
    r = ws(d)
    r.send(frame(b'\x03', opcode=8))
    o = expect_end(r, (1002,), 'close of length 1')
    diag('close length 1: %s' % show(o))


@abuse('7.3.5', 'close with 1000 and a 123-octet reason (payload 125) → echoed')
def _(d):
    r = ws(d)
    r.send(frame(close_payload(1000, b'*' * 123), opcode=8))
    expect_end(r, (1000,), 'close of length 125')


@abuse('7.3.6', 'close with a 126-octet payload → 1002')
def _(d):
    # A control frame over 125 octets (RFC 6455 §5.5).
    r = ws(d)
    r.send(frame(close_payload(1000, b'*' * 124), opcode=8))
    expect_end(r, (1002,), 'close of length 126')


@abuse('7.5.1', 'close reason with invalid UTF-8 → 1007')
def _(d):
    # RFC 6455 §7.4.1: 1007 for data inconsistent with its type (Autobahn
    # 7.5.1 would accept a drop).
    r = ws(d)
    r.send(frame(close_payload(1000, KOSME + b'\xed\xa0\x80edited'), opcode=8))
    o = expect_end(r, (1007,), 'invalid UTF-8 reason')
    diag('invalid UTF-8 reason: %s' % show(o))


def close_code_case(cat, code, want):
    @abuse(cat, 'close code %d → %s' % (code, 'echoed' if want == 'echo' else 'close %d' % want))
    def _(d):
        r = ws(d)
        r.send(frame(close_payload(code, b'bye'), opcode=8))
        expect_end(r, (code,) if want == 'echo' else (want,), 'close %d' % code)
        check(r.read() == DROP, 'TCP not ended after the close')


for _i, _c in enumerate((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                         3000, 3999, 4000, 4999)):
    close_code_case('7.7.%d' % (_i + 1), _c, 'echo')
for _i, _c in enumerate((0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999)):
    close_code_case('7.9.%d' % (_i + 1), _c, 1002)


@abuse('7.x', 'IANA-registered close codes 1012, 1013, 1014 → echoed')
def _(d):
    # wsflowd takes the IANA registry's 1012-1014 (docs/wire.md §3);
    # Autobahn lists them as neither valid (7.7) nor invalid (7.9).
    for code in (1012, 1013, 1014):
        r = ws(d)
        r.send(frame(close_payload(code), opcode=8))
        o = expect_end(r, (code,), 'close %d' % code)
        diag('close %d: %s' % (code, show(o)))


@abuse('7.13.x', 'close codes 5000 and 65535 (no range of RFC 6455 §7.4.2) → 1002')
def _(d):
    # Autobahn 7.13 is informational; RFC 6455 defines nothing past 4999.
    for code in (5000, 65535):
        r = ws(d)
        r.send(frame(close_payload(code), opcode=8))
        o = expect_end(r, (1002,), 'close %d' % code)
        diag('close %d: %s' % (code, show(o)))

# ---------------------------------------------------------------- 9.x bigger messages


def big_case(cat, name, data, fragment=None, opcode=2):
    @abuse(cat, name)
    def _(d):
        r = ws(d, '/message')
        payload = data()
        size = fragment or len(payload)
        t0 = time.monotonic()
        for i in range(0, len(payload), size):
            r.send(frame(payload[i:i + size], opcode=opcode if i == 0 else 0,
                         fin=i + size >= len(payload)))
        check_digests(r.digests(1, timeout=10), [sha(payload)], name)
        diag('%s: %.2fs' % (name, time.monotonic() - t0))


big_case('9.2.4', '1 MiB binary message at /message → its sha256', lambda: os.urandom(MiB))
big_case('9.1.4', '1 MiB text message (multi-byte UTF-8) at /message → its sha256',
         lambda: ('wsflow € κόσμε 𝄞 ' * 50000).encode()[:MiB - 3] + b'end', opcode=1)
big_case('9.2.6', '16 MiB binary message at /message → its sha256',
         lambda: os.urandom(16 * MiB))
big_case('9.4.5', '4 MiB binary message in 64 KiB fragments at /message → its sha256',
         lambda: os.urandom(4 * MiB), fragment=64 * KiB)

# ---------------------------------------------------------------- res: §10.4 resources


@abuse('res', 'slowloris handshake (1 octet / 0.5 s) → closed within '
       'handshake_timeout + 1 s (3 s)')
def _(d):
    r = Raw(ws_port(d))
    req = r.request('/stream', [('X-Slow', 'x' * 64)])
    bound = HANDSHAKE_TIMEOUT + (1.5 if SANITIZE else 1)
    t0 = time.monotonic()
    closed = None
    r.sock.setblocking(False)
    for i in range(len(req)):
        try:
            r.sock.send(req[i:i + 1])
        except BlockingIOError:
            pass
        except OSError:
            closed = time.monotonic() - t0
            break
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            try:
                if r.sock.recv(4096) == b'':
                    closed = time.monotonic() - t0
            except BlockingIOError:
                pass
            except OSError:
                closed = time.monotonic() - t0
            if closed is not None:
                break
            time.sleep(0.02)
        if closed is not None or time.monotonic() - t0 > bound + 0.5:
            break
    check(closed is not None, 'slowloris still open after %.1fs (%d octets sent); '
          'handshake_timeout is %ds' % (time.monotonic() - t0, i + 1, HANDSHAKE_TIMEOUT))
    diag('slowloris closed after %.2fs' % closed)
    check(closed <= bound, 'slowloris closed after %.2fs, want <= %gs' % (closed, bound))


@abuse('res', 'silent TCP connection → closed within handshake_timeout + 1 s (3 s)')
def _(d):
    r = Raw(ws_port(d))
    bound = HANDSHAKE_TIMEOUT + (1.5 if SANITIZE else 1)
    t0 = time.monotonic()
    got = r.read_frame((bound + 0.5) / SLOW)
    took = time.monotonic() - t0
    check(got == DROP, 'silent connection still open after %.1fs; handshake_timeout is %ds'
          % (took, HANDSHAKE_TIMEOUT))
    diag('silent TCP closed after %.2fs' % took)
    check(took <= bound, 'silent TCP closed after %.2fs, want <= %gs' % (took, bound))


@abuse('res', '80 connections at once with max_connections 64: the excess gets HTTP 503 '
       '(over TLS: closed before the TLS handshake) while an existing stream keeps its '
       'digests')
def _(d):
    s = ws(d)
    data = os.urandom(4 * KiB)
    s.send(frame(data[:KiB], fin=False))
    got = s.digests(1)
    others, statuses = [], {}
    for i in range(79):
        r = Raw(ws_port(d))
        status, hdrs, head = r.handshake('/stream')
        statuses[status] = statuses.get(status, 0) + 1
        others.append((r, status))
        if i == 40:
            s.send(frame(data[KiB:2 * KiB], opcode=0, fin=False))
            got += s.digests(1)
    s.send(frame(data[2 * KiB:], opcode=0))
    got += s.digests(2)
    check_digests(got, running(data), 'existing stream')
    diag('79 more connections: %s' % statuses)
    # Over TLS the excess is closed before a TLS handshake: a 503 would
    # need one, on the thread that accepts (docs/wire.md §2).
    bad = {k: v for k, v in statuses.items() if k not in ((101, DROP) if TLS else (101, 503))}
    check(not bad, 'unexpected answers: %s' % bad)
    n101, nref = statuses.get(101, 0), statuses.get(DROP if TLS else 503, 0)
    check(n101 <= MAX_CONNECTIONS - 1, '%d upgrades beside the stream: over max_connections'
          % n101)
    check(nref >= 79 - (MAX_CONNECTIONS - 1) and n101 >= MAX_CONNECTIONS - 8,
          '%d upgraded, %d refused' % (n101, nref))
    # the upgraded ones work
    for r, status in others:
        if status == 101:
            r.send(frame(data[:KiB]))
    for r, status in others:
        if status == 101:
            check_digests(r.digests(1), running(data[:KiB]), 'connection within the limit')
    for r, _ in others:
        r.close()


@abuse('res', 'connection churn: 200 connects (bare TCP, handshake+FIN, handshake+RST, '
       'mid-frame RST) → connections gauge back to 0, still serving')
def _(d):
    t0 = time.monotonic()
    for i in range(200):
        r = Raw(ws_port(d))
        kind = i % 4
        if kind == 0:
            r.close()
            continue
        r.upgrade('/stream')
        if kind == 1:
            r.close()
        elif kind == 2:
            r.abort()
        else:
            r.send(frame(length=10 * KiB, key=b'\0\0\0\0') + os.urandom(KiB))
            r.abort()
        Raw.opened.remove(r)
    diag('churn: %.2fs' % (time.monotonic() - t0))
    check(wait_for(lambda: metric(ws_port(d), 'wsflow_server_connections') == 0, 2),
          'connections gauge is %d, not 0, 2 s after the churn'
          % metric(ws_port(d), 'wsflow_server_connections'))

# ---------------------------------------------------------------- log: §6 item 12


@abuse('log', '500 bad connections (RSV1 frames → 1002) grow the daemon log by '
       '<= 100 lines')
def _(d):
    def lines():
        return len(d.log_text().splitlines())
    # let the daemon's limiter refill (bursts of 20 at 5 lines/s, log.c),
    # so that the burst below meets a full bucket
    time.sleep(4.5)
    before = lines()
    t0 = time.monotonic()
    for i in range(500):
        r = ws(d)
        r.send(frame(b'Hello', rsv=4))
        o = r.outcome()
        check(o[:2] == ('close', 1002), 'bad connection %d: %s' % (i, show(o)))
        r.close()
        Raw.opened.remove(r)
    took = time.monotonic() - t0
    time.sleep(0.3)
    grew = lines() - before
    diag('500 bad connections in %.2fs: log grew by %d lines' % (took, grew))
    check(grew <= 100, 'log grew by %d lines:\n%s' % (grew, d.log_tail(10)))

# ---------------------------------------------------------------- the end


@case('end: the daemon that served every case is alive with the same PID, '
      'exits 0 on SIGTERM, no sanitizer report')
def _():
    check(_daemons and _first_pid, 'no daemon was started')
    d = _daemons[-1]
    check(d.alive() and d.pid == _first_pid[0],
          'daemon pid %s (first %s) alive=%s: it died during the run'
          % (d.pid, _first_pid[0], d.alive()))
    diag('cases per category: %s' % ', '.join('%s=%d' % kv for kv in sorted(_counts.items())))
    rc = d.stop()
    check(rc == 0, 'wsflowd exited %s on SIGTERM' % rc)
    errs = d.sanitizer_errors()
    check(not errs, 'sanitizer report: %s' % errs[:3])


if __name__ == '__main__':
    run_cases()
