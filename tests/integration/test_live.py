#!/usr/bin/python3
# timeout: 300
"""The live page (issue #13, spec §8): GET / and the feed /live.
TEST_ONLY=g runs the browser case alone.

- GET / is 200 text/html: the page, self-contained (no URL to fetch
  anything from), with the streams rendered as a table for a browser
  without script; server.dashboard = false: GET / and /live are 404.
- /live: one JSON text message a second (3 or 4 in 3.5 s), with
  status -j's fields and the streams of streams -a; a producer's bytes
  grow between messages; eight viewers on two workers see the same few
  snapshots (built once a second, not once per viewer).
- A reload that turns server.dashboard off closes the viewers (1001).
- server.origins: another Origin gets 403 on / and /live.
- Read-only: a data frame on /live is answered with close 1008 and
  changes nothing (no stream, no count); a ping gets its pong.
- A TLS listener (wsflowd's own framing) serves both.
- framing = "lws": GET / serves the page, /live its snapshots, a data
  frame there gets 1008 too.
- In headless Chromium (skipped without /usr/bin/chromium): two
  producers (one healthy, one against a server that corrupts digest 0)
  appear, their figures move between snapshots, the mismatch is flagged
  (tr.mismatch), a stopped producer moves to the ended list; screenshot
  to $BUILD/live.png (and docs/live.png with WSFLOW_UPDATE_SCREENSHOT=1);
  the page fits a phone's width.
- Memory: 60 s of a /live viewer and 20 page loads grow the daemon's
  VmRSS by less than 1 MiB.
"""
import base64
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

from wsflowtest import (BUILD, SANITIZE, SLOW, SRCDIR, CheckFailed, Closed, Daemon, WSClient,
                        Skip, case, check, diag, run_cases, start_peer,
                        wait_for)

WSFLOWCTL = os.environ.get('WSFLOWCTL') or os.path.join(SRCDIR, BUILD, 'wsflowctl')
CHROMIUM = '/usr/bin/chromium'
GOOD_ORIGIN = 'http://good.example'


def daemon(origins=None, **server):
    d = Daemon(**server)
    text = open(d.conf).read()
    if origins is not None:
        text = text.replace('server: {', 'server: {\n  origins = ( %s );'
                            % ', '.join('"%s"' % o for o in origins), 1)
    with open(d.conf, 'w') as f:
        f.write(text)
    return d.start()


def producer(name, url, rate=2000000):
    return '{ name = "%s"; url = "%s"; rate = %d; }' % (name, url, rate)


def ctl(d, *args):
    return subprocess.run([WSFLOWCTL, '-s', d.ctl_sock] + list(args), capture_output=True,
                          text=True, timeout=30 * SLOW, stdin=subprocess.DEVNULL)


def http(port, path='/', method='GET', headers=()):
    """One request: (status, headers dict, body bytes); the daemon closes."""
    s = socket.create_connection(('127.0.0.1', port), 10 * SLOW)
    req = '%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n' % (method, path, port)
    req += ''.join('%s: %s\r\n' % h for h in headers) + '\r\n'
    s.sendall(req.encode())
    data = b''
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    hdrs = dict((k.strip().lower(), v.strip()) for k, _, v in
                (l.partition(':') for l in lines[1:]))
    return int(lines[0].split()[1]), hdrs, body


def upgrade(port, path, origin=None):
    """A raw upgrade request: the status line's code."""
    key = base64.b64encode(os.urandom(16)).decode()
    h = [('Upgrade', 'websocket'), ('Connection', 'Upgrade'), ('Sec-WebSocket-Key', key),
         ('Sec-WebSocket-Version', '13')]
    if origin:
        h.append(('Origin', origin))
    s = socket.create_connection(('127.0.0.1', port), 10 * SLOW)
    s.sendall(('GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n' % (path, port) +
               ''.join('%s: %s\r\n' % x for x in h) + '\r\n').encode())
    data = b''
    while b'\r\n' not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return int(data.split(b' ')[1]) if data else None


def snapshots(c, seconds):
    """The /live messages that arrive within seconds: [(t, dict)]."""
    out, t0 = [], time.monotonic()
    c.sock.settimeout(0.2)
    while time.monotonic() - t0 < seconds:
        try:
            op, payload = c.recv_message()
        except socket.timeout:
            continue
        check(op == 1, '/live sent opcode %d, not text' % op)
        out.append((time.monotonic() - t0, json.loads(payload)))
    c.sock.settimeout(c.timeout)
    return out


STREAM_FIELDS = ('id', 'name', 'role', 'peer', 'mode', 'state', 'bytes', 'digests',
                 'digests_verified', 'digest_mismatches', 'bytes_per_sec',
                 'backpressure_pauses', 'backpressure_usec', 'end_reason', 'ended',
                 'digest_latency_us')


@case('a) GET / is 200 text/html: the page, self-contained, with a script-free table '
      'naming the producer; HEAD / has no body; server.dashboard = false: / and /live 404')
def _():
    d = Daemon()
    with open(d.conf, 'a') as f:
        f.write('producers = ( %s );\n' % producer('tablerow', d.url('/')))
    d.start()
    check(wait_for(lambda: b'tablerow' in http(d.port)[2], 10), 'no row for the producer')
    status, hdrs, body = http(d.port)
    check(status == 200, 'GET / %d' % status)
    check(hdrs.get('content-type', '').startswith('text/html'), 'type %r' % hdrs)
    check(hdrs.get('connection') == 'close', 'no Connection: close')
    page = body.decode()
    check('<canvas' in page and 'new WebSocket' in page and '/live' in page,
          'not the live page: %r' % page[:200])
    check('<table id="static">' in page and '<td>tablerow</td>' in page,
          'no script-free table with the producer')
    for ref in ('src=', 'href=', 'http://', 'https://', '@import', 'url('):
        check(ref not in page, 'the page refers to something outside: %r' % ref)
    status, hdrs, body = http(d.port, method='HEAD')
    # The page carries the streams' table as of the request: its length
    # moves with the figures (a producer is sending), so near, not equal.
    check(status == 200 and body == b'' and
          abs(int(hdrs['content-length']) - len(page.encode())) < 256,
          'HEAD / %d %r, Content-Length %s for a page of %d' % (
              status, body[:40], hdrs.get('content-length'), len(page.encode())))
    check(http(d.port, '/?x=1')[0] == 200, 'GET /?x=1 is not the page')
    d.check_clean_stop()
    d = daemon(dashboard=False)
    check(http(d.port)[0] == 404, 'dashboard off: GET / %d' % http(d.port)[0])
    check(upgrade(d.port, '/live') == 404, 'dashboard off: /live upgrade not 404')
    check(upgrade(d.port, '/') == 101, 'dashboard off: a stream at / refused')
    d.check_clean_stop()


@case('b) /live: one JSON message a second (3 or 4 in 3.5 s), status and streams fields, '
      'a producer\'s bytes grow; not a stream itself; 8 viewers share the snapshots')
def _():
    d = Daemon(workers=2)
    with open(d.conf, 'a') as f:
        f.write('producers = ( %s );\n' % producer('feed', d.url('/')))
    d.start()
    c = WSClient(d.port, '/live')
    got = snapshots(c, 3.5)
    diag('%d messages at %s' % (len(got), [round(t, 2) for t, _ in got]))
    check(len(got) in (3, 4), '%d messages in 3.5 s' % len(got))
    snap = got[-1][1]
    st = snap['status']
    for k in ('version', 'pid', 'uptime_sec'):
        check(k in st, 'status has no %s' % k)
    for k in ('connections', 'connections_total', 'bytes_received', 'digests_sent'):
        check(k in st['server'], 'status.server has no %s' % k)
    for k in ('running', 'bytes_sent', 'digests_received', 'digests_verified',
              'digest_mismatches'):
        check(k in st['producers'], 'status.producers has no %s' % k)
    check(st['pid'] == d.pid, 'pid %r' % st['pid'])
    roles = sorted(s['role'] for s in snap['streams'])
    check(roles == ['producer', 'server'], 'streams %r (the viewer is no stream)' % roles)
    for s in snap['streams']:
        for k in STREAM_FIELDS:
            check(k in s, 'stream has no %s: %r' % (k, s))
    def prod_bytes(sn):
        return [s['bytes'] for s in sn['streams'] if s['name'] == 'feed'][0]
    check(prod_bytes(got[-1][1]) > prod_bytes(got[0][1]), 'producer bytes do not grow')
    check(st['server']['connections'] == 1, 'the viewer counted as a connection')
    # The same figures wsflowctl shows.
    cs = json.loads(ctl(d, '-j', 'status').stdout)
    check(cs['server']['connections_total'] == st['server']['connections_total'],
          'status differs from wsflowctl: %r %r' % (cs['server'], st['server']))
    c.close()
    # Built once a second for every viewer, on whatever worker: eight
    # viewers (two workers) get the same snapshots, not eight builds.
    vs = [WSClient(d.port, '/live') for _ in range(8)]
    for v in vs:
        v.start_reader()
    time.sleep(3.3)
    times = [json.loads(m)['time'] for v in vs for m in list(v.messages)]
    diag('%d messages, %d distinct snapshots' % (len(times), len(set(times))))
    check(len(times) >= 24 and len(set(times)) <= 6,
          '%d messages but %d distinct snapshots' % (len(times), len(set(times))))
    for v in vs:
        v.close()
    d.check_clean_stop()


@case('c) read-only: a ping on /live gets its pong, a data frame close 1008 and changes '
      'nothing; a stopped daemon closes the viewer 1001')
def _():
    d = daemon()
    c = WSClient(d.port, '/live')
    c.recv_message()
    c.send_frame(b'hello?', opcode=9)
    deadline = time.monotonic() + 5 * SLOW
    while True:
        fin, op, payload = c.recv_frame()
        if op == 10:
            check(payload == b'hello?', 'pong %r' % payload)
            break
        check(time.monotonic() < deadline, 'no pong in 5 s')
    before = json.loads(ctl(d, '-j', 'status').stdout)
    c.send_frame(b'{"stop": "all"}', opcode=1)
    try:
        while True:
            c.recv_message()
    except Closed as e:
        check(e.code == 1008, 'closed %r, want 1008' % e.code)
    after = json.loads(ctl(d, '-j', 'status').stdout)
    check(before['server'] == after['server'] and before['producers'] == after['producers'],
          'a frame on /live changed the totals: %r %r' % (before, after))
    c2 = WSClient(d.port, '/live')
    c2.recv_message()
    d.stop()
    try:
        while True:
            c2.recv_message()
    except Closed as e:
        check(e.code in (1001, None), 'stop: closed %r, want 1001' % e.code)
    check(d.returncode == 0, 'exit %r' % d.returncode)


@case('c2) a reload that sets server.dashboard = false closes the viewers (1001) and '
      'GET / is 404')
def _():
    d = daemon()
    c = WSClient(d.port, '/live')
    c.recv_message()
    text = open(d.conf).read().replace('server: {', 'server: {\n  dashboard = false;', 1)
    with open(d.conf, 'w') as f:
        f.write(text)
    r = ctl(d, 'reload')
    check(r.returncode == 0, 'reload: %s %s' % (r.stdout, r.stderr))
    c.sock.settimeout(5 * SLOW)
    try:
        while True:
            c.recv_message()
    except Closed as e:
        check(e.code == 1001, 'closed %r, want 1001' % e.code)
    except socket.timeout:
        check(False, 'the viewer is still open 5 s after the reload')
    check(http(d.port)[0] == 404, 'GET / after the reload: %d' % http(d.port)[0])
    d.check_clean_stop()


@case('d) server.origins: another Origin gets 403 on GET / and /live, the allowed one is served')
def _():
    d = daemon(origins=[GOOD_ORIGIN])
    check(http(d.port, headers=[('Origin', 'http://evil.example')])[0] == 403, 'GET / evil')
    check(upgrade(d.port, '/live', 'http://evil.example') == 403, '/live evil')
    check(http(d.port, headers=[('Origin', GOOD_ORIGIN)])[0] == 200, 'GET / good')
    check(upgrade(d.port, '/live', GOOD_ORIGIN) == 101, '/live good')
    check(http(d.port)[0] == 200, 'GET / without Origin (a navigation)')
    d.check_clean_stop()


@case('e) framing = "lws": GET / serves the page (under server.origins); /live sends a '
      'snapshot a second there too, a data frame gets close 1008, another Origin 403')
def _():
    d = daemon(framing='lws', origins=[GOOD_ORIGIN])
    status, hdrs, body = http(d.port)
    check(status == 200 and b'<canvas' in body, 'GET / %d' % status)
    status = http(d.port, headers=[('Origin', 'http://evil.example')])[0]
    check(status == 403, 'lws framing: GET / from another Origin %d' % status)
    check(upgrade(d.port, '/live', origin='http://evil.example') == 403,
          'lws framing: /live from another Origin not 403')
    c = WSClient(d.port, '/live')
    got = snapshots(c, 2.5)
    check(len(got) in (2, 3) and 'streams' in got[-1][1] and 'status' in got[-1][1],
          'lws framing: %d snapshots in 2.5 s' % len(got))
    c.send_frame(b'x', opcode=1)
    try:
        while True:
            c.recv_message()
    except Closed as e:
        check(e.code == 1008, 'lws framing: a data frame on /live closed %r, want 1008' % e.code)
    d.check_clean_stop()


@case('f) a TLS listener: GET / over TLS is the page, /live over TLS sends snapshots')
def _():
    import ssl
    d = Daemon(tls=True).start()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with ctx.wrap_socket(socket.create_connection(('127.0.0.1', d.tls_port), 10 * SLOW),
                         server_hostname='localhost') as s:
        s.sendall(b'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
        data = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    check(data.startswith(b'HTTP/1.1 200') and b'<canvas' in data, 'GET / over TLS: %r'
          % data[:100])
    c = WSClient(d.tls_port, '/live', tls=True)
    got = snapshots(c, 2.5)
    check(len(got) in (2, 3) and 'streams' in got[-1][1], '%d snapshots over TLS' % len(got))
    c.close()
    d.check_clean_stop()


# ---------------------------------------------------------------- the browser


class CDP:
    """Chrome DevTools protocol over the harness's raw WebSocket client."""

    def __init__(self, port, path):
        self.ws = WSClient(port, path, timeout=30)
        self.n = 0

    def call(self, method, **params):
        self.n += 1
        self.ws.send_frame(json.dumps({'id': self.n, 'method': method,
                                       'params': params}).encode(), opcode=1)
        while True:
            op, payload = self.ws.recv_message()
            m = json.loads(payload)
            if m.get('id') == self.n:
                if 'error' in m:
                    raise CheckFailed('%s: %s' % (method, m['error']))
                return m['result']

    def eval(self, expr):
        r = self.call('Runtime.evaluate', expression=expr, returnByValue=True)
        if 'exceptionDetails' in r:
            raise CheckFailed('%s: %s' % (expr, r['exceptionDetails']))
        return r['result'].get('value')


def chromium():
    """(process, profile dir, CDP of its page)."""
    prof = tempfile.mkdtemp(prefix='wsflow-chromium-')
    args = [CHROMIUM, '--headless=new', '--remote-debugging-port=0', '--user-data-dir=' + prof,
            '--no-first-run', '--no-default-browser-check', '--disable-gpu',
            '--window-size=1280,800', 'about:blank']
    if os.geteuid() == 0:
        args.append('--no-sandbox')
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        f = os.path.join(prof, 'DevToolsActivePort')
        check(wait_for(lambda: os.path.exists(f) and open(f).read().count('\n') >= 1, 30),
              'chromium wrote no DevToolsActivePort')
        port = int(open(f).read().split()[0])
        targets = []
        def page_target():
            targets[:] = json.load(urllib.request.urlopen(
                'http://127.0.0.1:%d/json' % port, timeout=5))
            return any(t['type'] == 'page' for t in targets)
        check(wait_for(page_target, 15, 0.2), 'no page target')
        t = [t for t in targets if t['type'] == 'page'][0]
        path = t['webSocketDebuggerUrl'].split(':%d' % port, 1)[1]
        return p, prof, CDP(port, path)
    except BaseException:
        stop_chromium(p, prof)
        raise


def stop_chromium(p, prof):
    if p.poll() is None:
        p.terminate()           # by its pid, ours
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
    shutil.rmtree(prof, ignore_errors=True)


def peer_server(name, *args):
    p = start_peer(name, '--port', 0, '--seconds', 240, *args)
    ready, _, _ = select.select([p.stdout], [], [], 15 * SLOW)
    check(ready, '%s printed nothing in 15 s' % name)
    return p, json.loads(p.stdout.readline())['listening']


@case('g) Chromium: both producers shown, figures move between snapshots, the mismatch '
      'flagged, a stopped producer moves to the ended list; screenshot; phone width')
def _():
    if not os.access(CHROMIUM, os.X_OK):
        raise Skip('chromium not installed')
    bad, bad_port = peer_server('server_streaming.py', '--corrupt-digest', 0)
    d = Daemon()
    with open(d.conf, 'a') as f:
        f.write('producers = ( %s, %s,\n  { name = "short"; url = "%s"; bytes = 4194304; } );\n'
                % (producer('healthy', d.url('/'), 3000000),
                   producer('corrupt', 'ws://127.0.0.1:%d/' % bad_port, 1500000),
                   d.url('/')))
    d.start()
    p, prof, cdp = chromium()
    try:
        cdp.call('Page.enable')
        cdp.call('Page.navigate', url='http://127.0.0.1:%d/' % d.port)
        def rows(sel):
            return cdp.eval('[...document.querySelectorAll(%s)].map(r => r.textContent)'
                            % json.dumps(sel)) or []
        check(wait_for(lambda: any('healthy' in r for r in rows('#live-body tr[data-id]'))
                       and any('corrupt' in r for r in rows('tbody tr[data-id]')), 15, 0.2),
              'both producers not shown: %r' % rows('tbody tr'))
        check(cdp.eval('document.getElementById("static-view").hidden') is True,
              'the script-free table is still shown')
        bytes_of = ('(() => { const r = [...document.querySelectorAll("#live-body tr")]'
                    '.find(r => r.textContent.includes("healthy")); '
                    'return r ? Number(r.dataset.bytes) : -1; })()')
        b0 = cdp.eval(bytes_of)
        agg0 = cdp.eval('document.getElementById("agg-rate").textContent')
        time.sleep(2.2)
        b1 = cdp.eval(bytes_of)
        agg1 = cdp.eval('document.getElementById("agg-rate").textContent')
        diag('healthy bytes %s -> %s, aggregate %s -> %s' % (b0, b1, agg0, agg1))
        check(b1 > b0 > 0, 'the page did not update: %s -> %s' % (b0, b1))
        check(agg1 not in ('–', '0 B/s'), 'no aggregate rate: %r' % agg1)
        check(wait_for(lambda: any('corrupt' in r for r in rows('tr.mismatch')), 15, 0.2),
              'no row flagged tr.mismatch for the corrupt producer: %r' % rows('tbody tr'))
        time.sleep(6)           # a few points on the plots
        shot = base64.b64decode(cdp.call('Page.captureScreenshot', format='png')['data'])
        # The source tree is left alone unless asked: the README's copy is
        # refreshed with WSFLOW_UPDATE_SCREENSHOT=1.
        paths = [os.path.join(SRCDIR, BUILD, 'live.png')]
        if os.environ.get('WSFLOW_UPDATE_SCREENSHOT') == '1':
            paths.append(os.path.join(SRCDIR, 'docs', 'live.png'))
        for path in paths:
            with open(path, 'wb') as f:
                f.write(shot)
        diag('screenshot %d octets' % len(shot))
        r = ctl(d, 'stop', 'healthy')
        check(r.returncode == 0, 'stop healthy: %s' % r.stderr)
        check(wait_for(lambda: any('healthy' in r for r in rows('#ended-body tr[data-id]'))
                       and not any('healthy' in r for r in rows('#live-body tr[data-id]')),
                       10, 0.2),
              'healthy not moved to ended: live %r ended %r'
              % (rows('#live-body tr'), rows('#ended-body tr')))
        cdp.call('Emulation.setDeviceMetricsOverride', width=390, height=800,
                 deviceScaleFactor=2, mobile=True)
        time.sleep(1.5)
        sw = cdp.eval('document.documentElement.scrollWidth')
        check(sw <= 400, 'the page is %s px wide at phone width' % sw)
        shot = base64.b64decode(cdp.call('Page.captureScreenshot', format='png')['data'])
        with open(os.path.join(SRCDIR, BUILD, 'live-phone.png'), 'wb') as f:
            f.write(shot)
    finally:
        stop_chromium(p, prof)
        bad.send_signal(signal.SIGTERM)
        bad.wait(10)
    d.check_clean_stop()


@case('h) memory: 60 s of a /live viewer and 20 page loads grow VmRSS by < 1 MiB')
def _():
    if SANITIZE:    # ASan's quarantine keeps what is freed: RSS tells nothing
        raise Skip('an RSS bound is not measurable under ASan')
    d = Daemon()
    with open(d.conf, 'a') as f:
        f.write('producers = ( %s );\n' % producer('mem', d.url('/'), 1000000))
    d.start()
    c = WSClient(d.port, '/live')
    c.start_reader()
    http(d.port)
    time.sleep(3)
    before = d.rss_kib()
    t0 = time.monotonic()
    for i in range(20):
        status, _, body = http(d.port)
        check(status == 200 and b'<table' in body, 'page load %d: %d' % (i, status))
        time.sleep(max(0, t0 + 3 * (i + 1) - time.monotonic()))
    time.sleep(max(0, t0 + 60 - time.monotonic()))
    after = d.rss_kib()
    n = len(c.messages)
    diag('VmRSS %d -> %d KiB over 60 s, %d snapshots' % (before, after, n))
    check(55 <= n <= 66, '%d snapshots in about 63 s' % n)
    check(after - before < 1024, 'VmRSS grew %d KiB' % (after - before))
    c.close()
    d.check_clean_stop()


run_cases()
