#!/usr/bin/python3
# timeout: 400
"""Interoperability: wsflowd with other WebSocket implementations and proxies.

1. headless Chromium's WebSocket (tests/interop/chromium.html, interop.js)
   against wsflowd: /stream, /frame, /message, a text message, wss:// and a
   requested subprotocol.  The page sends octets it fetched from this
   program's HTTP server and posts back the digests it got per message.
2. nginx as a reverse proxy (ws, and wss terminated at nginx) in front of
   wsflowd: the Autobahn tutorial clients and a wsflowd producer through it.
3. HAProxy likewise.
4. Backpressure through nginx: a wsflowd producer to a slow reader; bytes
   sent follow the reader's rate and nothing buffers without bound.
5. python3-websockets as a client of wsflowd (fragmented messages, pings
   between fragments) and, as a streaming tutorial server
   (tests/interop/ws_hash_server.py), the receiver of wsflowd producers.

Every digest is checked against hashlib (here, in a tutorial peer or in the
Python server), never wsflowd against itself.  Debian packages: chromium,
nginx, haproxy, python3-websockets.  A missing one fails its case; with
WSFLOW_INTEROP_OPTIONAL=1 the case is skipped instead.  Every process
started here (proxies, browser, servers) is stopped by its PID.
"""
import asyncio
import atexit
import base64
import hashlib
import http.server
import importlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import wsflowtest
from wsflowtest import (BUILD, PYTHON, SANITIZE, SLOW, SRCDIR, CheckFailed,
                        Daemon, Skip, batch_digests, check, check_peer,
                        diag, free_port, hexdigest, lc_value, make_cert, mask,
                        run_cases, start_peer, terminate, tmpdir, tmpfile, wait_for,
                        wait_peer, wait_value)

WSFLOWCTL = os.environ.get('WSFLOWCTL') or os.path.join(SRCDIR, BUILD, 'wsflowctl')
INTEROP = os.path.join(SRCDIR, 'tests', 'interop')
OPTIONAL = os.environ.get('WSFLOW_INTEROP_OPTIONAL') == '1'
MiB = 1 << 20


def case(desc):
    """wsflowtest.case, and the time the case took as a diagnostic."""
    def register(fn):
        def timed():
            t0 = time.monotonic()
            try:
                fn()
            finally:
                diag('%.1f s' % (time.monotonic() - t0))
        return wsflowtest.case(desc)(timed)
    return register

# ------------------------------------------------------------ packages


def need(package, found, what=None):
    """found, or fail the case (skip it with WSFLOW_INTEROP_OPTIONAL=1)."""
    if found:
        return found
    why = '%s not installed (Debian package %s; make deps)' % (what or package, package)
    if OPTIONAL:
        raise Skip(why)
    raise CheckFailed(why + '; WSFLOW_INTEROP_OPTIONAL=1 skips this case')


def need_program(name, package):
    return need(package, shutil.which(name) or
                (os.access('/usr/sbin/' + name, os.X_OK) and '/usr/sbin/' + name),
                name)


def need_module(name, package):
    try:
        return importlib.import_module(name)
    except ImportError:
        return need(package, None, 'Python module %s' % name)

# ------------------------------------------------------------ processes

_procs = []


def spawn(name, cmd):
    """cmd in its own session, output to NAME.log in the temp dir."""
    log = tmpfile(name + '.log')
    with open(log, 'ab') as f:
        p = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL,
                             stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    p.name, p.logfile, p.stopped = name, log, False
    _procs.append(p)
    return p


def stop(p, timeout=10):
    """SIGTERM by PID, bounded wait, then SIGKILL to it and to whatever it
    started (its own process group, e.g. Chromium's helpers).  Once only:
    later the ids may belong to others."""
    if p.stopped:
        return p.returncode
    terminate(p, timeout)
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    p.stopped = True
    return p.returncode


atexit.register(lambda: [stop(p, 5) for p in _procs])


def read(path):
    with open(path, errors='replace') as f:
        return f.read()


def log_of(p, n=20):
    return '\n'.join(read(p.logfile).splitlines()[-n:])


def wait_port(p, port, timeout=20):
    def up():
        check(p.poll() is None, '%s exited %s at start:\n%s' % (p.name, p.returncode, log_of(p)))
        try:
            socket.create_connection(('127.0.0.1', port), 0.5).close()
            return True
        except OSError:
            return False
    check(wait_for(up, timeout, 0.05), '%s not accepting on %d after %gs:\n%s'
          % (p.name, port, timeout * SLOW, log_of(p)))


def rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        return int(re.search(r'VmRSS:\s+(\d+)', f.read()).group(1))

# ------------------------------------------------------------ wsflowd producers


def ctl(d, *args):
    r = subprocess.run([WSFLOWCTL, '-j', '-s', d.ctl_sock] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=10 * SLOW,
                       stdin=subprocess.DEVNULL)
    try:
        return r.returncode, json.loads(r.stdout)
    except ValueError:
        return r.returncode, None


def show(d, name):
    """`wsflowctl -j show NAME`, None once the producer is gone."""
    rc, out = ctl(d, 'show', name)
    if rc == 1:
        return None
    check(rc == 0 and out and 'stream' in out, 'wsflowctl show %s: exit %s, %r' % (name, rc, out))
    return out['stream']


def producer_daemon(producers, **server):
    """A started wsflowd hosting producers [(name, url, {key: value})]."""
    d = Daemon(**server)
    with open(d.conf, 'a') as f:
        f.write('producers = (\n  %s\n);\n' % ',\n  '.join(
            '{ %s }' % ' '.join('%s = %s;' % (k, lc_value(v)) for k, v in
                                dict(name=n, url=u, **keys).items())
            for n, u, keys in producers))
    return d.start()


FINISHED = (r'\[producer \d+ %s\] (.*): (\d+) bytes sent, (\d+) digests, (\d+) verified, '
            r'(\d+) mismatched')


def finished(d, name):
    """The producer's `finished: N bytes sent, ...` log line as a dict."""
    m = re.findall(FINISHED % re.escape(name), d.log_text())
    if not m:
        return None
    return dict(zip(('why', 'bytes', 'digests', 'verified', 'mismatched'),
                    [m[-1][0]] + [int(x) for x in m[-1][1:]]))


def producers_verified(d, names, nbytes, batch=MiB):
    """While each runs, `wsflowctl show` has digests verified and none
    mismatched; its last log line: finished, nbytes sent, each batch's
    digest verified, 0 mismatched."""
    for n in names:
        s = wait_value(d, lambda: show(d, n), lambda s: s['digests_verified'] > 0, 20,
                       'a verified digest in wsflowctl show', n)
        check(s['digest_mismatches'] == 0, '%s: %r' % (n, s))
    for n in names:
        f = wait_value(d, lambda: finished(d, n), lambda f: True, 60, 'its finished line', n)
        diag('%s: %r' % (n, f))
        want = dict(why='finished', bytes=nbytes, digests=nbytes // batch,
                    verified=nbytes // batch, mismatched=0)
        check(f == want, '%s ended with %r, want %r' % (n, f, want))

# ------------------------------------------------------------ 1. Chromium


class PageServer:
    """The test page, its plan and its data over HTTP on 127.0.0.1 (a thread);
    the page's POST /result lands in .result."""

    def __init__(self, plan, data):
        self.result = None
        files = {'/': ('chromium.html', 'text/html'),
                 '/interop.js': ('interop.js', 'text/javascript')}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code, body=b'', ctype='text/plain'):
                self.send_response(code)
                self.send_header('Content-Type', ctype)
                self.send_header('Content-Length', str(len(body)))
                self.send_header('Cache-Control', 'no-store')
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = self.path.split('?')[0]
                if path in files:
                    with open(os.path.join(INTEROP, files[path][0]), 'rb') as f:
                        self.reply(200, f.read(), files[path][1])
                elif path == '/plan':
                    self.reply(200, json.dumps(plan).encode(), 'application/json')
                elif path.startswith('/data/') and path[6:].isdigit() and int(path[6:]) < len(data):
                    self.reply(200, data[int(path[6:])], 'application/octet-stream')
                else:
                    self.reply(404)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
                outer.result = json.loads(body)
                self.reply(204)

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d/' % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def prefix_lengths(data, digests):
    """For each digest, the length of the prefix of data it is the SHA-256
    of (None if none is)."""
    h, at = hashlib.sha256(), {hashlib.sha256().hexdigest(): 0}
    for i in range(len(data)):
        h.update(data[i:i + 1])
        at[h.hexdigest()] = i + 1
    return [at.get(x) for x in digests]


def check_digests(mode, data, got, batch, what):
    """The digests one message got, per wsflowd's wire protocol."""
    if mode == 'stream':
        want = batch_digests(data, batch)
        check(got == want, '%s: got %d digests %r, want %d %r'
              % (what, len(got), got[:3], len(want), want[:3]))
    elif mode == 'message':
        check(got == [hexdigest(data)], '%s: got %r, want [%s]' % (what, got, hexdigest(data)))
    else:       # frame: the sender chose the frames; each is a prefix digest
        at = prefix_lengths(data, got)
        check(got and None not in at and at == sorted(at) and at[-1] == len(data),
              '%s: digests are not of growing prefixes ending with the whole '
              'message: prefix lengths %r' % (what, at))


def handshake_reply(port, tls, header):
    """The head of wsflowd's answer to a handshake to /message with one
    more header line, as one line."""
    s = socket.create_connection(('127.0.0.1', port), 5 * SLOW)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    with s:
        s.sendall(('GET /message HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n'
                   'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
                   'Sec-WebSocket-Version: 13\r\n%s\r\n\r\n' % (port, header)).encode())
        buf = b''
        try:
            while b'\r\n\r\n' not in buf:
                more = s.recv(4096)
                if not more:
                    break
                buf += more
        except (OSError, ssl.SSLError) as e:
            buf += (' [%r]' % e).encode()
    head = buf.split(b'\r\n\r\n')[0].decode('latin-1').replace('\r\n', ' | ')
    return head or '(connection closed, no HTTP response)'


class BrowserPlan:
    """Scenarios for the page: each a WebSocket (url, protocols, mode) and
    its messages, an int (that many random octets, binary) or bytes (a text
    message of that UTF-8)."""

    def __init__(self, batch):
        self.batch, self.data, self.scenarios = batch, [], []

    def add(self, name, url, mode, messages, protocols=None):
        msgs = []
        for m in messages:
            is_text = isinstance(m, bytes)
            raw = m if is_text else os.urandom(m)
            self.data.append(raw)
            spec = dict(id=len(self.data) - 1, text=is_text)
            if mode == 'frame':
                spec['until'] = hexdigest(raw)
            else:
                spec['count'] = len(batch_digests(raw, self.batch)) if mode == 'stream' else 1
            msgs.append(spec)
        self.scenarios.append(dict(name=name, url=url, mode=mode, protocols=protocols,
                                   messages=msgs))

    def run(self):
        """Headless Chromium runs the page; its results by scenario name."""
        chromium = need_program('chromium', 'chromium')
        page = PageServer(dict(scenarios=self.scenarios, timeout_ms=30000 * SLOW,
                               quiet_ms=300), self.data)
        browser = spawn('chromium', [
            chromium, '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
            '--user-data-dir=' + tempfile.mkdtemp(prefix='chromium-', dir=tmpdir()),
            '--no-first-run', '--no-default-browser-check', '--disable-background-networking',
            '--disable-component-update', '--disable-sync', '--disable-extensions',
            '--disable-default-apps', '--no-proxy-server', '--ignore-certificate-errors',
            # no name resolves; the rule would map the literal 127.0.0.1 too
            '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
            page.url])
        try:
            wait_for(lambda: page.result is not None or browser.poll() is not None, 60)
            check(page.result is not None, 'no result from the page after %gs (chromium %s):\n%s'
                  % (60 * SLOW, 'exited %s' % browser.returncode if browser.poll() is not None
                     else 'running', log_of(browser)))
        finally:
            stop(browser)
            page.close()
        check('error' not in page.result, 'the page failed: %r' % page.result)
        diag(page.result['user_agent'])
        return {r['name']: r for r in page.result['results']}

    def verify(self, results, why=None):
        """Each scenario opened, got every digest it was owed (checked by
        hashlib) and nothing more, and closed 1000; every failing scenario
        is reported."""
        bad = []
        for sc in self.scenarios:
            try:
                self.verify_one(sc, results[sc['name']])
            except CheckFailed as e:
                bad.append(str(e))
        check(not bad, '\n'.join(bad + ([why] if why else [])))

    def verify_one(self, sc, r):
        what = '%s (%s%s)' % (sc['name'], sc['url'], ', protocols %r' % sc['protocols']
                              if sc['protocols'] else '')
        check(r.get('opened') and not r.get('error'), '%s: %r' % (what, r))
        check(r['protocol'] in [''] + (sc['protocols'] or []),
              '%s: protocol %r' % (what, r['protocol']))
        check(len(r['digests']) == len(sc['messages']), '%s: %r' % (what, r))
        for m, got in zip(sc['messages'], r['digests']):
            raw = self.data[m['id']]
            check_digests(sc['mode'], raw, got, self.batch, '%s message %d (%d octets%s)'
                          % (what, m['id'], len(raw), ', text' if m['text'] else ''))
        check(r['extra'] == [], '%s: digests nobody owed: %r' % (what, r['extra']))
        check(r['close'] == dict(code=1000, clean=True, reason='done'),
              '%s: closed %r, want 1000 clean' % (what, r['close']))
        if sc['mode'] == 'frame':
            diag('%s: Chromium\'s frames per message: %s' % (what, [len(g) for g in r['digests']]))
        if sc['protocols']:
            diag('%s: opened, protocol %r' % (what, r['protocol']))


# 1..4-octet UTF-8 characters, about 38 KB
TEXT = ('wsflow \u00e4\u00df\u20ac\u4e2d\U0001f600 ' * 2000).encode()
B = 4096        # batch_size of the daemons the clients talk to directly


@case('headless Chromium -> wsflowd (batch_size %d): binary and text messages to /, '
      '/stream, /frame, /message and over wss:// (throw-away cert), every digest verified, '
      'nothing more, clean closes' % B)
def _():
    need_program('chromium', 'chromium')
    d = Daemon(tls=True, batch_size=B).start()
    wss = 'wss://127.0.0.1:%d' % d.tls_port
    plan = BrowserPlan(B)
    plan.add('stream', d.url('/stream'), 'stream', [3 * B + 100, 256 * 1024 + 1, 100, B, TEXT])
    plan.add('root', d.url('/'), 'stream', [4 * B, 0])
    plan.add('frame', d.url('/frame'), 'frame', [1000, 0, 70000, TEXT])
    plan.add('message', d.url('/message'), 'message', [1 << 20, 0, 10, TEXT])
    plan.add('wss-stream', wss + '/stream', 'stream', [3 * B + 7, 2 * B, TEXT])
    plan.add('wss-frame', wss + '/frame', 'frame', [5000, TEXT])
    plan.add('wss-message', wss + '/message', 'message', [100000, TEXT])
    plan.verify(plan.run())
    d.check_clean_stop()


@case('a browser offering subprotocols: with server.subprotocols unset wsflowd answers 101 '
      'without Sec-WebSocket-Protocol (interface spec §1: none selected) on ws:// and wss://; '
      'with subprotocols = ( "foo" ) the 101 selects foo of "bar, foo" and headless Chromium '
      'opens new WebSocket(url, [\'foo\']) on ws:// and wss://, protocol "foo", every digest '
      'verified')
def _():
    need_program('chromium', 'chromium')
    d = Daemon(tls=True, batch_size=B).start()
    for port, tls in ((d.port, False), (d.tls_port, True)):
        head = handshake_reply(port, tls, 'Sec-WebSocket-Protocol: foo')
        check(head.startswith('HTTP/1.1 101') and 'sec-websocket-protocol' not in head.lower(),
              'unset, %s: %r' % ('wss' if tls else 'ws', head))
    d.check_clean_stop()
    # The WebSocket standard (WHATWG) makes a browser fail an open whose
    # offered subprotocols the server did not select: list them.
    d = Daemon(tls=True, batch_size=B, subprotocols=['chat', 'foo']).start()
    for port, tls in ((d.port, False), (d.tls_port, True)):
        head = handshake_reply(port, tls, 'Sec-WebSocket-Protocol: bar, foo')
        check(head.startswith('HTTP/1.1 101') and
              '| Sec-WebSocket-Protocol: foo |' in head + ' |',
              'subprotocols ( "chat", "foo" ), %s: %r' % ('wss' if tls else 'ws', head))
        head = handshake_reply(port, tls, 'Sec-WebSocket-Protocol: bar')
        check(head.startswith('HTTP/1.1 101') and 'sec-websocket-protocol' not in head.lower(),
              'offered none of the list, %s: %r' % ('wss' if tls else 'ws', head))
    plan = BrowserPlan(B)
    plan.add('ws-foo', d.url('/message'), 'message', [5000, TEXT], protocols=['foo'])
    plan.add('wss-foo', 'wss://127.0.0.1:%d/stream' % d.tls_port, 'stream', [3 * B + 1, TEXT],
             protocols=['foo'])
    results = plan.run()
    plan.verify(results)
    for name in ('ws-foo', 'wss-foo'):
        check(results[name]['protocol'] == 'foo', '%s: protocol %r, want "foo"'
              % (name, results[name]['protocol']))
    d.check_clean_stop()


# ------------------------------------------------------------ 2, 3. nginx, HAProxy


class Proxy:
    """nginx or HAProxy in the foreground in front of 127.0.0.1:upstream,
    with a ws:// port and a wss:// port (TLS terminated by the proxy, a
    throw-away certificate for 127.0.0.1), from tests/interop/*.in."""

    _n = 0

    def __init__(self, kind, upstream):
        Proxy._n += 1
        self.kind, self.name = kind, '%s%d' % (kind, Proxy._n)
        self.ws_port, self.wss_port = free_port(), free_port()
        self.cert, key = make_cert(self.name)
        pem = tmpfile(self.name + '.pem', read(self.cert) + read(key))  # HAProxy's crt
        fields = dict(TMP=tmpdir(), NAME=self.name, WS_PORT=self.ws_port,
                      WSS_PORT=self.wss_port, UPSTREAM=upstream, CERT=self.cert, KEY=key,
                      PEM=pem)
        template = 'nginx.conf.in' if kind == 'nginx' else 'haproxy.cfg.in'
        text = read(os.path.join(INTEROP, template))
        for k, v in fields.items():
            text = text.replace('@%s@' % k, str(v))
        self.conf = tmpfile(self.name + '.conf', text)
        exe = need_program(kind, kind)
        if kind == 'nginx':
            self.errlog = tmpfile(self.name + '-error.log')
            cmd = [exe, '-p', tmpdir(), '-c', self.conf, '-e', self.errlog]
        else:
            cmd = [exe, '-db', '-f', self.conf]
        self.proc = spawn(self.name, cmd)
        wait_port(self.proc, self.ws_port)
        wait_port(self.proc, self.wss_port)

    def url(self, path, tls=False):
        return '%s://127.0.0.1:%d%s' % ('wss' if tls else 'ws',
                                        self.wss_port if tls else self.ws_port, path)

    def log(self):
        if self.kind == 'nginx':
            return '\n'.join(read(self.errlog).splitlines()[-20:])
        return log_of(self.proc)

    def stop(self):
        check(self.proc.poll() is None, '%s died:\n%s' % (self.kind, self.log()))
        stop(self.proc)


# (script, path, args, digests verified): the Autobahn tutorial clients
TUTORIAL_CLIENTS = [
    ('client_producer.py', '/', ['--batch-size', MiB, '--bytes', 16 * MiB], 16),
    ('client_streaming.py', '/stream', ['--batch-size', MiB, '--batches', 8], 8),
    ('client_frame.py', '/frame', ['--frames', 4, '--frame-size', 256 * 1024,
                                   '--messages', 2], 10),
    ('client_message.py', '/message', ['--messages', 4, '--message-size', 256 * 1024], 4),
    ('client_message.py', '/message', ['--text', '--messages', 2,
                                       '--message-size', 100000], 2),
]
PRODUCER_BYTES = 64 * MiB
PRODUCER_RATE = 32000000        # ~2 s each: wsflowctl sees them running


def proxy_case(kind, title):
    @case('%s: the 5 Autobahn tutorial clients through ws:// and through wss:// '
          '(TLS terminated at %s) to wsflowd, every digest verified; wsflowd producers '
          '(ws and wss, %d MiB each) through it: verified, 0 mismatched'
          % (title, kind, PRODUCER_BYTES // MiB))
    def _():
        need_program(kind, kind)
        backend = Daemon().start()
        proxy = Proxy(kind, backend.port)
        runs = []
        for tls in (False, True):
            for script, path, args, verified in TUTORIAL_CLIENTS:
                url = proxy.url(path, tls)
                extra = ['--cafile', proxy.cert] if tls else []
                runs.append(('%s %s' % (script, url), verified,
                             start_peer(script, url, '--seconds', 60 * SLOW, *(args + extra))))
        for what, verified, p in runs:
            rc, r = wait_peer(p, 90)
            check_peer(rc, r, what, verified=verified, mismatched=0)
        diag('%d tutorial clients verified %d digests through %s'
             % (len(runs), sum(v for _, v, _ in runs), kind))
        keys = dict(mode='producer', bytes=PRODUCER_BYTES, rate=PRODUCER_RATE)
        pd = producer_daemon([('ws', proxy.url('/'), keys),
                              ('wss', proxy.url('/', tls=True), dict(keys, tls={'ca': proxy.cert}))])
        producers_verified(pd, ['ws', 'wss'], PRODUCER_BYTES)
        pd.check_clean_stop()
        proxy.stop()
        backend.check_clean_stop()
    return _


proxy_case('nginx', 'nginx (proxy_http_version 1.1, Upgrade/Connection headers)')
proxy_case('haproxy', 'HAProxy (mode http)')

# ------------------------------------------------------------ 4. backpressure


class SlowReader:
    """Streaming-mode hashing server (stdlib, a thread) that reads at most
    `rate` octets/s: recv() of CHUNK octets, then sleeps.  It answers every
    digest of batch octets; set .rate = 0 to let it drain at full speed."""
    CHUNK = 16384

    def __init__(self, rate, batch):
        self.rate, self.batch = rate, batch
        self.received = 0       # octets read off the socket
        self.error = None
        self.lsock = socket.socket()
        self.lsock.bind(('127.0.0.1', 0))
        self.lsock.listen(4)
        self.lsock.settimeout(60 * SLOW)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        try:
            conn, _ = self.lsock.accept()
            with conn:
                conn.settimeout(120 * SLOW)
                self.stream(conn)
        except Exception as e:
            self.error = repr(e)

    def stream(self, conn):
        buf = b''
        while b'\r\n\r\n' not in buf:
            more = conn.recv(4096)
            if not more:
                return
            buf += more
        head, buf = buf.split(b'\r\n\r\n', 1)
        key = re.search(rb'(?i)sec-websocket-key:\s*(\S+)', head).group(1)
        accept = hashlib.sha1(key + b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest()
        conn.sendall(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'
                     b'Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n'
                     % base64.b64encode(accept))
        h, in_batch, t0, taken = hashlib.sha256(), 0, time.monotonic(), 0
        while True:
            if self.rate:
                time.sleep(max(0.0, t0 + taken / self.rate - time.monotonic()))
            data = conn.recv(self.CHUNK)
            if not data:
                return
            self.received += len(data)
            taken += len(data)
            buf += data
            while len(buf) >= 2:        # whole frames (wsflowd's are 64 KiB)
                n, off = buf[1] & 0x7f, 2
                if n >= 126:
                    off = 4 if n == 126 else 10
                    if len(buf) < off:
                        break
                    n = int.from_bytes(buf[2:off], 'big')
                if len(buf) < off + 4 + n:
                    break
                op, payload = buf[0] & 0x0f, mask(buf[off + 4:off + 4 + n], buf[off:off + 4])
                buf = buf[off + 4 + n:]
                if op == 8:             # close: answer it, done
                    conn.sendall(b'\x88' + bytes([len(payload)]) + payload)
                    return
                if op in (0, 1, 2):
                    if op:
                        h, in_batch = hashlib.sha256(), 0
                    while payload:
                        take = min(len(payload), self.batch - in_batch)
                        h.update(payload[:take])
                        payload, in_batch = payload[take:], in_batch + take
                        if in_batch == self.batch:
                            conn.sendall(b'\x81\x40' + h.hexdigest().encode())
                            in_batch = 0
                elif op == 9:
                    conn.sendall(b'\x8a' + bytes([len(payload)]) + payload)


BP_RATE = 2000000


@case('backpressure through nginx: a wsflowd producer (no limit) to a reader taking '
      '%g MB/s: over 10 s bytes sent grow at the reader\'s rate (within 2x), the producer\'s '
      'and nginx\'s RSS grow < 8 MiB, digests verified' % (BP_RATE / 1e6))
def _():
    need_program('nginx', 'nginx')
    reader = SlowReader(BP_RATE, MiB)
    proxy = Proxy('nginx', reader.port)
    pd = producer_daemon([('slow', proxy.url('/'), dict(mode='producer'))])
    wait_value(pd, lambda: show(pd, 'slow'), lambda s: s['state'] == 'sending', 10,
               'sending', 'slow')
    time.sleep(3)           # the socket buffers on the way fill first
    samples = []            # (time, producer bytes, reader bytes, producer RSS, nginx RSS)

    def sample():
        s = show(pd, 'slow')
        check(s is not None and reader.error is None and proxy.proc.poll() is None,
              'producer %r, reader error %r, nginx %r' % (s, reader.error, proxy.proc.poll()))
        samples.append((time.monotonic(), s['bytes'], reader.received,
                        rss_kib(pd.pid), rss_kib(proxy.proc.pid), s))
    sample()
    while samples[-1][0] - samples[0][0] < 10:
        time.sleep(1)
        sample()
    (t1, p1, r1, rss1, n1, s1), (t2, p2, r2, _, _, s2) = samples[0], samples[-1]
    sent, read = (p2 - p1) / (t2 - t1), (r2 - r1) / (t2 - t1)
    growth = max(x[3] for x in samples) - rss1
    ngrowth = max(x[4] for x in samples) - n1
    diag('%.1f s: producer sent %.2f MB/s, reader took %.2f MB/s; in flight at the end %.1f MiB; '
         'producer RSS %d KiB +%d KiB, nginx RSS %d KiB +%d KiB; %d verified, %d pauses'
         % (t2 - t1, sent / 1e6, read / 1e6, (p2 - r2) / MiB, rss1, growth, n1, ngrowth,
            s2['digests_verified'], s2.get('backpressure_pauses', -1)))
    check(0.5 * BP_RATE <= read <= 1.2 * BP_RATE, 'the reader took %.2f MB/s' % (read / 1e6))
    check(read / 2 <= sent <= read * 2, 'the producer sent %.2f MB/s while the reader took '
          '%.2f MB/s' % (sent / 1e6, read / 1e6))
    check(s2['digests_verified'] > s1['digests_verified'] and s2['digest_mismatches'] == 0,
          'verified %d -> %d, %d mismatched' % (s1['digests_verified'], s2['digests_verified'],
                                                s2['digest_mismatches']))
    if not SANITIZE:
        check(growth < 8192, 'producer RSS grew by %d KiB' % growth)
        check(ngrowth < 8192, 'nginx RSS grew by %d KiB' % ngrowth)
    reader.rate = 0         # drain, so that the producer's close goes through
    pd.check_clean_stop()
    f = finished(pd, 'slow')
    check(f and f['mismatched'] == 0 and f['verified'] > 0, 'after SIGTERM: %r' % f)
    check(wait_for(lambda: reader.received >= f['bytes'], 10), 'the reader got %d of %d octets'
          % (reader.received, f['bytes']))
    proxy.stop()

# ------------------------------------------------------------ 5. python3-websockets


async def recv_digests(ws, n):
    out = []
    for _ in range(n):
        m = await asyncio.wait_for(ws.recv(), 10 * SLOW)
        check(isinstance(m, str), 'a digest came as %r' % type(m))
        out.append(m)
    return out


async def quiet(ws):
    """No more digests come (nothing is owed)."""
    try:
        m = await asyncio.wait_for(ws.recv(), 0.3 * SLOW)
        raise CheckFailed('a digest nobody owed: %r' % m)
    except asyncio.TimeoutError:
        pass


async def websockets_client(websockets, d, batch):
    chunks = [os.urandom(n) for n in (1000, 5000, 3000, 10000, 1, 8192)]
    whole = b''.join(chunks)
    prefixes = [hexdigest(whole[:n]) for n in
                [sum(map(len, chunks[:i + 1])) for i in range(len(chunks))]]
    connect = lambda url, **kw: websockets.connect(url, max_size=None, ping_interval=None,
                                                   open_timeout=10 * SLOW, **kw)
    pongs = []

    async def fragments():          # on the open ws: a ping and its pong between fragments
        for c in chunks:
            yield c
            pongs.append(await asyncio.wait_for(await ws.ping(), 10 * SLOW))

    async with connect(d.url('/frame')) as ws:
        await ws.send(chunks)       # a list: one frame each, then an empty final one
        got = await recv_digests(ws, len(chunks) + 1)
        check(got == prefixes + [hexdigest(whole)], '/frame, list of fragments: %r' % got)
        await ws.send(fragments())
        got = await recv_digests(ws, len(chunks) + 1)
        check(got == prefixes + [hexdigest(whole)],
              '/frame, async iterator with pings between fragments: %r' % got)
        await quiet(ws)
    check(ws.close_code == 1000, '/frame: close %r' % ws.close_code)
    async with connect(d.url('/stream')) as ws:
        tail = whole[:batch - 1]
        for msg, raw in ((chunks, whole), (fragments(), whole), ([tail], tail), (whole, whole)):
            await ws.send(msg)
            want = batch_digests(raw, batch)
            got = await recv_digests(ws, len(want))
            check(got == want, '/stream: %d digests %r, want %r' % (len(got), got, want))
        await quiet(ws)
        for i in range(3):
            pongs.append(await asyncio.wait_for(await ws.ping(b'p%d' % i), 10 * SLOW))
    check(ws.close_code == 1000, '/stream: close %r' % ws.close_code)
    ctx = ssl.create_default_context(cafile=d.cert)
    async with connect('wss://127.0.0.1:%d/message' % d.tls_port, ssl=ctx) as ws:
        await ws.send(chunks)
        await ws.send(whole.hex())      # text
        got = await recv_digests(ws, 2)
        check(got == [hexdigest(whole), hexdigest(whole.hex().encode())], 'wss /message: %r' % got)
        await quiet(ws)
    check(ws.close_code == 1000, 'wss /message: close %r' % ws.close_code)
    diag('%d pongs, latency %.2f ms at most' % (len(pongs), 1000 * max(pongs)))


@case('python3-websockets client -> wsflowd: fragmented messages (a list, an async iterator '
      'with a ping between fragments) to /frame and /stream, a wss:// text message to /message, '
      'pings answered, every digest verified, close 1000')
def _():
    websockets = need_module('websockets', 'python3-websockets')
    diag('websockets %s' % websockets.__version__)
    d = Daemon(tls=True, batch_size=B).start()
    asyncio.run(asyncio.wait_for(websockets_client(websockets, d, B), 60 * SLOW))
    d.check_clean_stop()


@case('python3-websockets offering subprotocols=[\'foo\'] to ws:// and wss://: opens '
      '(wsflowd selects none) and the digest of its message is verified')
def _():
    websockets = need_module('websockets', 'python3-websockets')
    d = Daemon(tls=True, batch_size=B).start()
    data = os.urandom(10000)

    async def one(url, **kw):
        async with websockets.connect(url, subprotocols=['foo'], ping_interval=None,
                                      open_timeout=10 * SLOW, **kw) as ws:
            await ws.send(data)
            got = await recv_digests(ws, 1)
            check(got == [hexdigest(data)], '%s: got %r' % (url, got))
            return 'opened, subprotocol %r' % ws.subprotocol
    ctx = ssl.create_default_context(cafile=d.cert)
    out, failed = [], False
    for port, tls in ((d.port, False), (d.tls_port, True)):
        url = '%s://127.0.0.1:%d/message' % ('wss' if tls else 'ws', port)
        kw = dict(ssl=ctx) if tls else {}
        try:
            out.append('%s: %s' % (url, asyncio.run(asyncio.wait_for(one(url, **kw), 30 * SLOW))))
        except Exception as e:
            failed = True
            out.append('%s: failed: %r; wsflowd answers a raw handshake with '
                       '"Sec-WebSocket-Protocol: foo" by %r'
                       % (url, e, handshake_reply(port, tls, 'Sec-WebSocket-Protocol: foo')))
    diag('\n'.join(out))
    check(not failed, 'a client offering a subprotocol could not connect:\n' + '\n'.join(out))
    d.check_clean_stop()


WS_BYTES = 16 * MiB


@case('wsflowd producers (mode streaming and producer, %d MiB) -> a python3-websockets '
      'streaming tutorial server (tests/interop/ws_hash_server.py): every digest verified, '
      '0 mismatched; the server got every octet and closes 1000' % (WS_BYTES // MiB))
def _():
    need_module('websockets', 'python3-websockets')
    port = free_port()
    srv = spawn('ws_hash_server', [PYTHON, os.path.join(INTEROP, 'ws_hash_server.py'),
                                   '--port', port, '--seconds', 120 * SLOW])
    wait_port(srv, port)
    url = 'ws://127.0.0.1:%d/' % port
    names = ['streaming', 'producer']
    pd = producer_daemon([(n, url, dict(mode=n, bytes=WS_BYTES, rate=8000000)) for n in names])
    producers_verified(pd, names, WS_BYTES)
    pd.check_clean_stop()
    stop(srv)
    check(srv.returncode == 0, 'ws_hash_server exited %s:\n%s' % (srv.returncode, log_of(srv)))
    totals = json.loads(read(srv.logfile).splitlines()[-1])
    diag('ws_hash_server: %r' % totals)
    check(totals['connections'] == 2 and totals['bytes'] == 2 * WS_BYTES
          and totals['digests'] == 2 * WS_BYTES // MiB and totals['closes'] == [1000, 1000],
          'ws_hash_server saw %r' % totals)


run_cases()
