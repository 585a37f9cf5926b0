#!/usr/bin/python3
# timeout: 300
"""Regression tests for security findings against wsflowd.

Finding 1: one HTTP request never pins a worker.  Five requests (bodies
  promised and never sent, GETs with a body, a POST pipelined after a
  GET) are sent on each listener kind (plain with wsflow framing, plain
  with framing "lws", TLS, TLS with framing "lws"; workers = 1), the
  connection kept open: the daemon uses < 0.5 CPU-s in 3 s, answers
  (exactly on the plain wsflow-framed listener: status, Connection:
  close, EOF; elsewhere a 4xx or a close), then serves a fresh stream and
  /healthz on the same listener.  One case per request, covering the four
  kinds, each kind with a daemon of its own.
Finding 2: a client that never reads its digests does not hold a slot
  forever: four such clients at max_connections 4 are dropped by
  idle_timeout, or by `wsflowctl stop all` with idle_timeout 0, and a
  fifth client is served.
Finding 5: the descriptor clamp (max_connections 1024 in 256 descriptors)
  survives SIGHUP: 400 connections later the daemon still answers its
  control socket and /healthz, hardly logs EMFILE, and serves a stream.
Finding 6: HTTP on the listeners: HEAD without a body, other methods 405
  with Allow, chunked bodies refused once, h2c never upgraded, 404, 426;
  every answer on the plain listener with Connection: close and EOF.
Finding 9: batch_size 1 costs < 1 MiB per paused connection, and its
  digests are still the running digest of every octet.
"""
import contextlib
import hashlib
import json
import os
import resource
import signal
import socket
import ssl
import struct
import subprocess
import time

from wsflowtest import (BUILD, SANITIZE, SLOW, SRCDIR, CheckFailed, Closed, Daemon,
                        WSClient, batch_digests, case, check, diag, hexdigest,
                        run_cases, wait_for)

WSFLOWCTL = os.environ.get('WSFLOWCTL') or os.path.join(SRCDIR, BUILD, 'wsflowctl')
BATCH = 4096
KiB = 1024
TICK = os.sysconf('SC_CLK_TCK')

# ================================================================ helpers


@contextlib.contextmanager
def daemon(nofile=None, **server):
    """A daemon for one case (RLIMIT_NOFILE soft = hard = nofile if
    given): stopped cleanly (exit 0, no sanitizer report) when the case
    ends, or just stopped when it fails."""
    d = Daemon(**server)
    with nofile_limit(nofile) if nofile else contextlib.nullcontext():
        d.start()
    try:
        yield d
    except BaseException:
        d.stop(timeout=2)       # failed already: no need to wait long
        raise
    d.check_clean_stop()


@contextlib.contextmanager
def nofile_limit(n):
    """Processes started inside get RLIMIT_NOFILE soft = hard = n."""
    real = subprocess.Popen

    def popen(*args, **kw):
        kw['preexec_fn'] = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        return real(*args, **kw)
    subprocess.Popen = popen
    try:
        yield
    finally:
        subprocess.Popen = real


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def ctl(d, *args, timeout=10):
    try:
        return subprocess.run([WSFLOWCTL, '-s', d.ctl_sock] + list(args), capture_output=True,
                              text=True, timeout=timeout * SLOW, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise CheckFailed('wsflowctl %s: no answer in %gs' % (' '.join(args), timeout * SLOW))


def server_streams(d):
    r = ctl(d, '-j', 'streams')
    check(r.returncode == 0, 'wsflowctl streams exited %d: %s' % (r.returncode, r.stderr))
    return [s for s in json.loads(r.stdout).get('streams', []) if s.get('role') == 'server']


def connect(port, tls=False, timeout=3):
    s = socket.create_connection(('127.0.0.1', port), timeout * SLOW)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname='localhost')
    return s


class Reply:
    """One HTTP response: status (None for a truncated or unparsable one),
    headers with lower-case names, body."""

    def __init__(self, status, headers, body, head=''):
        self.status, self.headers, self.body, self.head = status, headers, body, head

    def __repr__(self):
        return repr(self.head[:200] + ('\r\n\r\n%r' % self.body[:60] if self.body else ''))


def parse(data, head_only=False):
    """Split what a server sent into Replies; bodies by Content-Length
    (none if head_only).  Anything left over is one Reply with status None."""
    out = []
    while data:
        end = data.find(b'\r\n\r\n')
        head = data[:end].decode('latin-1') if end >= 0 else ''
        lines = head.split('\r\n')
        try:
            proto, status = lines[0].split(' ', 2)[:2]
            status = int(status) if proto.startswith('HTTP/1.') else None
        except ValueError:
            status = None
        if end < 0 or status is None:
            out.append(Reply(None, {}, data, data[:200].decode('latin-1')))
            break
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(':')
            hdrs[k.strip().lower()] = v.strip()
        n = 0 if head_only else int(hdrs.get('content-length', '0') or 0)
        body, data = data[end + 4:end + 4 + n], data[end + 4 + n:]
        out.append(Reply(status if len(body) == n else None, hdrs, body, head))
    return out


def read_until_eof(s, timeout=3, enough=None):
    """(what the server sent, True if it closed) within timeout; stops
    early once enough(data) holds."""
    deadline = time.monotonic() + timeout * SLOW
    data = b''
    while not (enough and enough(data)):
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return data, False
        except OSError:             # reset, or TLS ended without close_notify
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def ask(port, raw, tls=False, head_only=False, timeout=3):
    """Send raw on a new connection: (Replies, whether the server closed
    within timeout)."""
    with contextlib.closing(connect(port, tls)) as s:
        s.sendall(raw)
        data, eof = read_until_eof(s, timeout)
    return parse(data, head_only), eof


def one_reply(replies, eof, status, **headers):
    """Exactly one response, with status and the headers given (names
    with _ for -), Connection: close, and the server closed after it."""
    check(len(replies) == 1, '%d responses, want exactly one: %r' % (len(replies), replies))
    r = replies[0]
    check(r.status == status, 'answered %s, want %d: %r' % (r.status, status, r))
    check(r.headers.get('connection', '').lower() == 'close', 'no Connection: close: %r' % r)
    for k, v in headers.items():
        got = r.headers.get(k.replace('_', '-'))
        check(got is not None and got.lower() == v.lower(),
              '%s is %r, want %r: %r' % (k.replace('_', '-'), got, v, r))
    check(eof, 'connection still open %gs after the answer' % (3 * SLOW))
    return r


def request(method, path, *headers, body=b''):
    lines = ['%s %s HTTP/1.1' % (method, path), 'Host: x'] + list(headers)
    return ('\r\n'.join(lines) + '\r\n\r\n').encode() + body


def healthz_ok(port, tls=False):
    with contextlib.closing(connect(port, tls)) as s:
        s.sendall(request('GET', '/healthz', 'Connection: close'))
        data, _ = read_until_eof(s, 3, lambda b: any(r.status for r in parse(b)))
    replies = parse(data)
    check(replies and replies[0].status == 200, '/healthz answered %r' % replies[:1])


def serves_stream(port, tls=False):
    """A fresh client at /stream gets the running sha256 of 2 batches."""
    c = WSClient(port, '/stream', tls=tls, timeout=3)
    data = os.urandom(2 * BATCH)
    c.send_frame(data)
    got = c.recv_digests(2)
    check(got == batch_digests(data, BATCH), 'wrong digests on a fresh stream: %s' % got)
    c.close()


def serves_frame(port):
    """A fresh client at /frame gets 101 and the sha256 of its frame."""
    c = WSClient(port, '/frame', timeout=3)
    data = os.urandom(1000)
    c.send_frame(data)
    got = c.recv_digests(1)
    check(got == [hexdigest(data)], 'wrong digest at /frame: %s' % got)
    c.close()


def every(checks):
    """Run every (what, fn), then fail with all the failures, not just the
    first (each line of one prefixed by its what)."""
    bad = []
    for what, fn in checks:
        try:
            fn()
        except CheckFailed as e:
            bad += ['%s: %s' % (what, line) for line in str(e).splitlines()]
        except Exception as e:
            bad.append('%s: %r' % (what, e))
    check(not bad, '\n'.join(bad))

# ================================================================ finding 1: no pinned worker


POST_NO_BODY = request('POST', '/healthz', 'Content-Length: 1')
VARIANTS = [    # letter, what, request, exact check on the plain wsflow listener
    ('a', 'POST /healthz, its 1-octet body never sent', POST_NO_BODY,
     lambda r, eof: one_reply(r, eof, 405, allow='GET, HEAD')),
    ('b', 'GET /healthz with a 5-octet body',
     request('GET', '/healthz', 'Content-Length: 5', body=b'hello'),
     lambda r, eof: one_reply(r, eof, 400)),
    ('c', 'GET /nope with a 5-octet body',
     request('GET', '/nope', 'Content-Length: 5', body=b'hello'),
     lambda r, eof: one_reply(r, eof, 400)),
    ('d', 'GET /healthz, its 100-octet body never sent',
     request('GET', '/healthz', 'Content-Length: 100'),
     lambda r, eof: one_reply(r, eof, 400)),
    ('e', 'GET /healthz pipelined with a POST and its body',
     request('GET', '/healthz') + POST_NO_BODY + b'x',
     lambda r, eof: one_reply(r, eof, 200)),
]
KINDS = [       # name, framing "lws", tls
    ('plain', False, False), ('plain lws-framed', True, False),
    ('TLS', False, True), ('TLS lws-framed', True, True)]


def no_pinned_worker(raw, exact, lws, tls):
    """Send raw on one listener, keep the connection open; the daemon
    stays idle, answers, and serves a fresh stream and /healthz there."""
    with daemon(tls=tls, workers=1, batch_size=BATCH, **({'framing': 'lws'} if lws else {})) as d:
        port = d.tls_port if tls else d.port
        with contextlib.closing(connect(port, tls)) as s:
            t0, cpu0 = time.monotonic(), cpu_seconds(d.pid)
            s.sendall(raw)
            data, eof = read_until_eof(s, 3)
            time.sleep(max(0, t0 + 3 - time.monotonic()))
            used = cpu_seconds(d.pid) - cpu0
            took = time.monotonic() - t0
        replies = parse(data)

        def answer():
            if exact:
                exact(replies, eof)
            else:
                check(eof or any(r.status and 400 <= r.status < 500 for r in replies),
                      'neither a 4xx answer nor a close: %r' % replies)

        def idle():
            check(used < 0.5 * SLOW, '%.2f CPU-s in %.1f s' % (used, took))
        every([('answer', answer), ('worker pinned', idle),
               ('fresh stream', lambda: serves_stream(port, tls)),
               ('/healthz', lambda: healthz_ok(port, tls))])


def variant_case(letter, what, raw, exact):
    @case('finding 1 (%s) %s: answered, no worker pinned, fresh stream served '
          '(plain, plain lws-framed, TLS, TLS lws-framed)' % (letter, what))
    def _():
        every([(kind, lambda lws=lws, tls=tls, kind=kind:
                no_pinned_worker(raw, None if lws or tls else exact, lws, tls))
               for kind, lws, tls in KINDS])


for v in VARIANTS:
    variant_case(*v)

# ================================================================ finding 2: never reading

EMPTY_FRAME = b'\x82\x80\0\0\0\0'      # FIN binary, masked, length 0, zero key


def never_reading_clients(d, n=4, seconds=2):
    """n clients at /frame send empty frames for seconds, as much as the
    kernel takes, and never read their digests."""
    clients = [WSClient(d.port, '/frame') for _ in range(n)]
    burst = memoryview(EMPTY_FRAME * 10000)
    sent = [0] * n
    for c in clients:
        c.sock.setblocking(False)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        moved = False
        for i, c in enumerate(clients):
            try:        # resume mid-frame where the last send stopped
                sent[i] += c.sock.send(burst[sent[i] % len(EMPTY_FRAME):])
                moved = True
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                pass    # the server gave up on it already
        if not moved:
            time.sleep(0.02)
    diag('never-reading clients sent %s empty frames' % [x // 6 for x in sent])
    return clients


def no_server_streams(d, timeout, why):
    last = []

    def gone():
        last[:] = server_streams(d)
        return not last
    check(wait_for(gone, timeout, 0.2), 'after %s, %d server streams still there after %gs: %s'
          % (why, len(last), timeout * SLOW, [(s['id'], s['state']) for s in last]))


@case('finding 2: 4 clients never reading at max_connections 4 are dropped by '
      'idle_timeout 3, then a 5th client is served')
def _():
    with daemon(max_connections=4, idle_timeout=3, handshake_timeout=2, workers=1) as d:
        clients = never_reading_clients(d)
        try:
            no_server_streams(d, 15, 'idle_timeout 3')
            serves_frame(d.port)
        finally:
            for c in clients:
                c.sock.close()


@case('finding 2: 4 clients never reading at max_connections 4, idle_timeout 0: '
      '"wsflowctl stop all" drops them, then a 5th client is served')
def _():
    with daemon(max_connections=4, idle_timeout=0, handshake_timeout=2, workers=1) as d:
        clients = never_reading_clients(d)
        try:
            n = len(server_streams(d))
            check(n == 4, '%d server streams before the stop, want 4' % n)
            r = ctl(d, 'stop', 'all')
            check(r.returncode == 0, 'wsflowctl stop all exited %d: %s'
                  % (r.returncode, r.stdout + r.stderr))
            no_server_streams(d, 10, 'wsflowctl stop all')
            serves_frame(d.port)
        finally:
            for c in clients:
                c.sock.close()

# ================================================================ finding 5: fd clamp and reload


def log_lines(d, *words):
    """Lines of d's log holding every word."""
    return [l for l in d.log_text().splitlines() if all(w in l for w in words)]


@case('finding 5: max_connections 1024 clamped to RLIMIT_NOFILE 256 stays clamped '
      'after SIGHUP: 400 connections, control and /healthz still answer')
def _():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1024 and hard > soft:     # room for our own 400 sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    with daemon(nofile=256, max_connections=1024, handshake_timeout=60, batch_size=BATCH) as d:
        check(log_lines(d, 'max_connections 1024', 'does not fit'),
              'no "max_connections 1024 does not fit" at start:\n%s' % d.log_tail(10))
        d.proc.send_signal(signal.SIGHUP)
        check(wait_for(lambda: log_lines(d, 'configuration reloaded'), 10),
              'no "configuration reloaded" after SIGHUP')
        conns = []
        try:
            for _ in range(400):
                s = socket.create_connection(('127.0.0.1', d.port), 3 * SLOW)
                s.sendall(b'GET /stream HTTP/1.1\r\nHost: x\r\n')      # never finished
                conns.append(s)

            def status():
                r = ctl(d, 'status', timeout=5)
                check(r.returncode == 0, 'exited %d: %s' % (r.returncode, r.stderr.strip()))

            def healthz():
                replies, _ = ask(d.port, request('GET', '/healthz'))
                check(replies and replies[0].status, 'no HTTP answer: %r' % replies)
                diag('/healthz with 400 connections open: %d' % replies[0].status)

            def emfile():
                n = len(log_lines(d, 'Too many open files'))
                check(n <= 5, '%d log lines with "Too many open files"' % n)
            every([('wsflowctl status with 400 connections open', status),
                   ('/healthz with 400 connections open', healthz),
                   ('log', emfile)])
        finally:
            for s in conns:
                s.close()

        def served():
            try:
                serves_stream(d.port)
                return True
            except (CheckFailed, Closed, OSError):
                return False
        check(wait_for(served, 10, 0.2), 'no stream served after the 400 connections closed')


# ================================================================ finding 6: HTTP


@case('finding 6: HEAD /metrics and HEAD /healthz: 200, Content-Length, no body, then EOF')
def _():
    with daemon() as d:
        def head(path, want_length):
            r = one_reply(*ask(d.port, request('HEAD', path), head_only=True), 200)
            n = int(r.headers.get('content-length', '0') or 0)
            check(n > 0 or not want_length, 'Content-Length %r' % r.headers.get('content-length'))
        every([('HEAD /metrics', lambda: head('/metrics', True)),
               ('HEAD /healthz', lambda: head('/healthz', False))])


METHODS = ['PUT', 'DELETE', 'OPTIONS', 'PATCH', 'get']


@case('finding 6: PUT, DELETE, OPTIONS, PATCH and "get" /healthz: 405 Allow: GET, HEAD, then EOF')
def _():
    with daemon() as d:
        every([(m, lambda m=m: one_reply(*ask(d.port, request(m, '/healthz')), 405,
                                         allow='GET, HEAD'))
               for m in METHODS])


@case('finding 6: GET /healthz with a chunked body: exactly one answer, 400, then EOF')
def _():
    with daemon() as d:
        one_reply(*ask(d.port, request('GET', '/healthz', 'Transfer-Encoding: chunked',
                                       body=b'5\r\nhello\r\n0\r\n\r\n')), 400)


@case('finding 6: GET /healthz asking to upgrade to h2c: 200, never 101')
def _():
    with daemon() as d:
        one_reply(*ask(d.port, request('GET', '/healthz', 'Connection: Upgrade, HTTP2-Settings',
                                       'Upgrade: h2c',
                                       'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA')), 200)


@case('finding 6: GET /nope 404, GET /stream without Upgrade 426 Upgrade: websocket, '
      'each with Connection: close and EOF')
def _():
    with daemon() as d:
        every([('GET /nope', lambda: one_reply(*ask(d.port, request('GET', '/nope')), 404)),
               ('GET /stream', lambda: one_reply(*ask(d.port, request('GET', '/stream')), 426,
                                                 upgrade='websocket'))])


@case('finding 6: TLS listener: PUT, DELETE, OPTIONS, PATCH, "get" /healthz 405; '
      'HEAD /healthz 200 without a body')
def _():
    with daemon(tls=True) as d:
        def status(m, want):
            replies, _ = ask(d.tls_port, request(m, '/healthz'), tls=True,
                             head_only=m == 'HEAD')
            check(len(replies) == 1 and replies[0].status == want,
                  'want one %d answer, got %r' % (want, replies))
        every([(m, lambda m=m: status(m, 405)) for m in METHODS] +
              [('HEAD', lambda: status('HEAD', 200))])

# ================================================================ finding 9: batch_size 1


class FrameReader:
    """Server frames off a socket, fast (an offset, not a copy per frame)."""

    def __init__(self, sock, buf=b''):
        self.sock, self.buf, self.pos = sock, bytearray(buf), 0

    def _need(self, n, deadline):
        while len(self.buf) - self.pos < n:
            left = deadline - time.monotonic()
            check(left > 0, 'timed out reading frames')
            self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError
            if self.pos > (1 << 20):
                del self.buf[:self.pos]
                self.pos = 0
            self.buf += chunk

    def frame(self, deadline):
        """(opcode, payload) of the next frame (unmasked, from a server)."""
        self._need(2, deadline)
        op, n = self.buf[self.pos] & 15, self.buf[self.pos + 1] & 127
        hdr = 2 + (2 if n == 126 else 8 if n == 127 else 0)
        self._need(hdr, deadline)
        if n >= 126:
            n = int.from_bytes(self.buf[self.pos + 2:self.pos + hdr], 'big')
        self._need(hdr + n, deadline)
        payload = bytes(self.buf[self.pos + hdr:self.pos + hdr + n])
        self.pos += hdr + n
        return op, payload


@case('finding 9: batch_size 1: 20 paused connections with 256 KiB each grow RSS '
      '< 20 MiB; digests are the running sha512 of every octet; closing works')
def _():
    with daemon(batch_size=1, digest='sha512', workers=1) as d:
        rss0 = d.rss_kib()
        clients, data = [], []
        try:
            for _ in range(20):
                c = WSClient(d.port, '/stream')
                data.append(os.urandom(256 * KiB))
                c.send_frame(data[-1])
                clients.append(c)
            time.sleep(2)           # the 2 s they read nothing
            grown = (d.rss_kib() - rss0) / 1024         # MiB
            diag('RSS grew %.1f MiB for 20 connections' % grown)
            if not SANITIZE:
                check(grown < 20, 'RSS grew %.1f MiB for 20 connections (%.2f MiB each)'
                      % (grown, grown / 20))
            c, h = clients[0], hashlib.sha512()
            frames = FrameReader(c.sock, c.buf)
            deadline = time.monotonic() + 10 * SLOW
            for i in range(1000):
                op, got = frames.frame(deadline)
                h.update(data[0][i:i + 1])
                check(op == 1 and got.decode('ascii', 'replace') == h.hexdigest(),
                      'digest %d: opcode %d %r, want the sha512 of the first %d octets'
                      % (i + 1, op, got[:130], i + 1))
            c.send_frame(struct.pack('!H', 1000), opcode=8)
            deadline = time.monotonic() + 30 * SLOW
            n = 1000
            try:
                while True:         # the digests still owed, then the close
                    op, got = frames.frame(deadline)
                    if op == 8:
                        break
                    n += 1
            except EOFError:
                raise CheckFailed('EOF instead of a close frame, after %d digests' % n)
            code = struct.unpack('!H', got[:2])[0] if len(got) >= 2 else None
            check(code == 1000, 'closed with %s after %d digests' % (code, n))
            diag('closed with 1000 after %d digests' % n)
        finally:
            for c in clients:
                c.abort()


if __name__ == '__main__':
    run_cases()
