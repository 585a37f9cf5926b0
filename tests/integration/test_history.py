#!/usr/bin/python3
# timeout: 180
"""Ended streams, journal lines, a producer-only daemon (issue #10 items
7, 10, 11; interface.md §3 server.history and listen = ( ), §6 streams -a
and show of an ended stream, §7 the journal).

- Ended streams stay in `streams -a` and `show` (state finished, failed
  or stopped, end_reason, error, final figures), at most server.history
  of them; configured producers that are not running are listed as
  stopped; `show NAME` picks the live stream, else the newest ended one.
- Journal entries (read from a socket of the test's own, bound at
  /run/systemd/journal/socket in a private mount namespace) carry the
  stream in MESSAGE, progress entries WSFLOW_EVENT=progress, WSFLOW_BYTES
  and WSFLOW_RATE, a stream's end WSFLOW_EVENT=stream-end and
  WSFLOW_END_REASON.
- The progress line's MB/s is the average over its interval, not the
  last second's sample (a receiver that stops reading makes them differ).
- server.listen = ( ): a daemon with only a control socket and producers
  starts, says READY=1, runs a producer to another daemon and stops with
  a line that says what its producers did, not "0 streams served".
"""
import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time

from wsflowtest import (BUILD, SLOW, SRCDIR, WSFLOWD, CheckFailed, Daemon, Skip, WSClient,
                        case, check, diag, free_port, run_cases, tmpfile, wait_for)

WSFLOWCTL = os.environ.get('WSFLOWCTL') or os.path.join(SRCDIR, BUILD, 'wsflowctl')
MiB = 1 << 20



def started_id(r):
    """The id in `start`'s "started producer ID NAME"."""
    m = re.search(r'started producer (\d+) ', r.stdout)
    check(m is not None, 'start printed %r' % r.stdout)
    return int(m.group(1))

def ctl(d, *args, rc=0):
    cp = subprocess.run([WSFLOWCTL, '-s', d.ctl_sock] + [str(a) for a in args],
                        capture_output=True, text=True, timeout=10 * SLOW,
                        stdin=subprocess.DEVNULL)
    check(rc is None or cp.returncode == rc, 'wsflowctl %s: exit %d, want %s\n%s%s'
          % (' '.join(map(str, args)), cp.returncode, rc, cp.stdout, cp.stderr))
    return cp


def jctl(d, *args, rc=0):
    cp = ctl(d, '-j', *args, rc=rc)
    try:
        return json.loads(cp.stdout)
    except ValueError:
        raise CheckFailed('not JSON: %r %r' % (cp.stdout, cp.stderr))


def show(d, key):
    """show -j KEY's stream, or None when there is no such stream."""
    cp = ctl(d, '-j', 'show', key, rc=None)
    if cp.returncode == 1:
        return None
    check(cp.returncode == 0, 'show %s: exit %d %s' % (key, cp.returncode, cp.stderr))
    return json.loads(cp.stdout)['stream']


def all_streams(d):
    return jctl(d, 'streams', '-a')['streams']


def producer_conf(name, url, **keys):
    kv = ''.join(' %s = %s;' % (k, ('true' if v else 'false') if isinstance(v, bool)
                                else '"%s"' % v if isinstance(v, str) else v)
                 for k, v in keys.items())
    return '  { name = "%s"; url = "%s";%s }' % (name, url, kv)


def daemon(producers=(), listen=True, **server):
    """A Daemon whose file may name producers (and no listener)."""
    d = Daemon(**server)
    text = open(d.conf).read()
    if not listen:
        text = re.sub(r'listen = \(.*?\);', 'listen = ( );', text, flags=re.S)
        d.port = None
    if producers:
        text += 'producers = (\n%s\n);\n' % ',\n'.join(producers)
    with open(d.conf, 'w') as f:
        f.write(text)
    return d


def closed_port():
    """A port nobody listens on (bound, closed)."""
    return free_port()


def wait_state(d, key, state, timeout=10):
    last = [None]

    def done():
        last[0] = show(d, key)
        return last[0] is not None and last[0].get('state') == state
    if not wait_for(done, timeout, 0.1):
        raise CheckFailed('%s never %s; last show: %r\n%s' % (key, state, last[0], d.log_tail()))
    return last[0]


S = None        # the shared server daemon


def server():
    global S
    if S is None or not S.alive():
        S = daemon(history=100).start()
    return S


@case('a) a --bytes run: streams -a and show -j keep it as finished, end_reason and '
      'its final figures; its server stream as finished too; plain streams does not list them')
def _():
    d = server()
    n = 5 * MiB + 123
    sid = started_id(ctl(d, 'start', d.url(), '--bytes', n, '--name', 'fin'))
    s = wait_state(d, 'fin', 'finished')
    check(s['id'] == sid, 'show fin: id %r, want %d' % (s['id'], sid))
    check(s['bytes'] == n and s['digests_verified'] == 5 and s['digest_mismatches'] == 0,
          'figures: %r' % s)
    check(s['end_reason'] == 'bytes limit' and s['error'] == '', 'end: %r' % s)
    check(s.get('seconds', 0) > 0 and s['avg_bytes_per_sec'] > 0, 'seconds/rate: %r' % s)
    rows = [r for r in all_streams(d) if r['id'] == sid]
    check(len(rows) == 1 and rows[0]['state'] == 'finished', 'streams -a: %r' % rows)
    check(not [r for r in jctl(d, 'streams')['streams'] if r['id'] == sid],
          'plain streams lists the ended one')
    srv = [r for r in all_streams(d) if r['role'] == 'server' and r['bytes'] == n]
    check(len(srv) == 1 and srv[0]['state'] == 'finished' and srv[0]['digests'] == 5,
          'the server side of it: %r' % srv)
    text = ctl(d, 'show', 'fin').stdout
    check(re.search(r'State:\s+finished', text) and re.search(r'End reason:\s+bytes limit', text),
          'show text: %s' % text)


@case('b) a stopped producer: show -j says stopped, end_reason "stopped", its bytes')
def _():
    d = server()
    ctl(d, 'start', d.url(), '--rate', 2000000, '--name', 'stp')
    check(wait_for(lambda: (show(d, 'stp') or {}).get('bytes', 0) > 0, 10), 'stp sent nothing')
    ctl(d, 'stop', 'stp')
    s = wait_state(d, 'stp', 'stopped')
    check(s['end_reason'] == 'stopped' and s['bytes'] > 0 and s['error'] == '', '%r' % s)


@case('c) a refused connection (reconnect = false): failed, with an error that says so')
def _():
    port = closed_port()
    d = daemon([producer_conf('bad', 'ws://127.0.0.1:%d/' % port, reconnect=False)]).start()
    s = wait_state(d, 'bad', 'failed')
    check(s['end_reason'] == 'connect failed' and s['error'] != '', '%r' % s)
    diag('error: %s' % s['error'])
    d.check_clean_stop()


@case('d) history = 2: only the two newest ended producers and the two newest ended server '
      'streams are kept (a ring each: server closes do not push out producers)')
def _():
    d = daemon(history=2).start()
    ids = []
    for i in range(3):
        ids.append(started_id(ctl(d, 'start', d.url(), '--bytes', 100000, '--name', 'h%d' % i)))
        wait_state(d, 'h%d' % i, 'finished')
    # Each run also ends a server stream: let the last one be recorded.
    check(wait_for(lambda: not jctl(d, 'streams')['streams'], 5), 'streams still live')
    ended = all_streams(d)
    prods = [e['name'] for e in ended if e['role'] == 'producer']
    servers = [e for e in ended if e['role'] == 'server']
    check(prods == ['h1', 'h2'] and len(servers) == 2, 'streams -a lists %r' % ended)
    check(show(d, str(ids[0])) is None and show(d, 'h0') is None, 'the oldest is still there')
    check(show(d, 'h2') is not None, 'the newest is gone')
    d.check_clean_stop()


@case('k) a reload that lowers server.history keeps the newest ended stream of each role')
def _():
    d = daemon(history=10).start()
    ids = []
    for i in range(3):
        ids.append(started_id(ctl(d, 'start', d.url(), '--bytes', 100000, '--name', 'r%d' % i)))
        wait_state(d, 'r%d' % i, 'finished')
    check(wait_for(lambda: not jctl(d, 'streams')['streams'], 5), 'streams still live')
    check(len(all_streams(d)) == 6, 'before: %r' % all_streams(d))
    with open(d.conf) as f:
        text = f.read()
    with open(d.conf, 'w') as f:
        f.write(text.replace('history = 10;', 'history = 1;'))
    ctl(d, 'reload')
    left = all_streams(d)
    # The newest of each: r2 and its server stream.
    check(len(left) == 2 and [e['name'] for e in left if e['role'] == 'producer'] == ['r2'],
          'after: %r' % left)
    check(show(d, 'r0') is None and show(d, 'r1') is None, 'older kept past history = 1')
    d.check_clean_stop()


@case('e) configured producer with autostart = false: streams -a lists it as stopped, '
      'streams does not; show NAME works')
def _():
    d = daemon([producer_conf('lazy', 'ws://127.0.0.1:1/', autostart=False)]).start()
    rows = [r for r in all_streams(d) if r['name'] == 'lazy']
    check(len(rows) == 1 and rows[0]['state'] == 'stopped' and rows[0]['role'] == 'producer',
          'streams -a: %r' % rows)
    check(not jctl(d, 'streams')['streams'], 'plain streams lists it')
    text = ctl(d, 'streams', '-a').stdout
    check(re.search(r'^-\s+producer\s+lazy\s+producer\s+stopped', text, re.M), text)
    s = show(d, 'lazy')
    check(s is not None and s['state'] == 'stopped', 'show lazy: %r' % s)
    d.check_clean_stop()


@case('f) a reused name: show NAME is the live stream, else the newest ended one')
def _():
    d = server()
    a = started_id(ctl(d, 'start', d.url(), '--bytes', 100000, '--name', 'again'))
    wait_state(d, 'again', 'finished')
    b = started_id(ctl(d, 'start', d.url(), '--bytes', 200000, '--name', 'again'))
    check(wait_for(lambda: (show(d, 'again') or {}).get('id') == b and
                   show(d, 'again')['state'] == 'finished', 10), 'show again: %r' % show(d, 'again'))
    c = started_id(ctl(d, 'start', d.url(), '--rate', 1000000, '--name', 'again'))
    s = show(d, 'again')
    check(s['id'] == c and s['state'] not in ('finished', 'failed', 'stopped'), 'live: %r' % s)
    check(show(d, str(a))['bytes'] == 100000, 'by id, the first run')
    ctl(d, 'stop', str(c))


@case('j) server streams: a client close is finished ("client closed"), a client that '
      'drops TCP without a close frame failed ("connection lost"), stop ID stopped')
def _():
    d = server()

    def ended(port):
        rows = [r for r in all_streams(d) if r['role'] == 'server' and
                r['peer'] == '127.0.0.1:%d' % port and r['state'] in
                ('finished', 'failed', 'stopped')]
        return rows[0] if rows else None
    c = WSClient(d.port)
    port = c.sock.getsockname()[1]
    c.send_frame(b'x' * 1000)
    c.close()
    check(wait_for(lambda: ended(port), 5), 'no ended row for the closed client')
    r = show(d, str(ended(port)['id']))
    check(r['state'] == 'finished' and r['end_reason'] == 'client closed' and
          r['bytes'] == 1000, '%r' % r)
    c = WSClient(d.port)
    port = c.sock.getsockname()[1]
    c.send_frame(b'y' * 2000, fin=False)
    time.sleep(0.2)
    c.abort()
    check(wait_for(lambda: ended(port), 5), 'no ended row for the dropped client')
    r = show(d, str(ended(port)['id']))
    check(r['state'] == 'failed' and r['end_reason'] == 'connection lost' and r['error'],
          '%r' % r)
    c = WSClient(d.port)
    c.send_frame(b'z' * 10, fin=False)
    port = c.sock.getsockname()[1]
    check(wait_for(lambda: [x for x in jctl(d, 'streams')['streams']
                            if x['peer'] == '127.0.0.1:%d' % port], 5), 'not listed')
    sid = [x for x in jctl(d, 'streams')['streams'] if x['peer'] == '127.0.0.1:%d' % port][0]['id']
    ctl(d, 'stop', sid)
    r = wait_state(d, str(sid), 'stopped')
    check(r['end_reason'] == 'stopped', '%r' % r)
    c.abort()


# ---- the journal, read from our own socket

class JournalDaemon(Daemon):
    """wsflowd without -d, logging to a datagram socket of ours bound at
    /run/systemd/journal/socket in its own mount namespace."""

    def start(self, timeout=10):
        if os.geteuid() != 0 or shutil.which('unshare') is None:
            raise Skip('needs root and unshare(1) for a private /run')
        self.jpath = tmpfile(self.name + '.journal')
        self.jsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.jsock.bind(self.jpath)
        self.jsock.settimeout(0.1)
        self.entries = []
        script = ('mount -t tmpfs none /run && mkdir -p /run/systemd/journal && '
                  'ln -s "$2" /run/systemd/journal/socket && exec "$0" -f "$1"')
        with open(self.log, 'ab') as log:
            self.proc = subprocess.Popen(['unshare', '-m', '--propagation', 'private',
                                          'sh', '-c', script, WSFLOWD, self.conf, self.jpath],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        Daemon.started.append(self)
        if not wait_for(lambda: os.path.exists(self.ctl_sock) and ctl(self, 'status', rc=None)
                        .returncode == 0, timeout):
            raise CheckFailed('journal daemon did not start:\n' + self.log_tail())
        return self

    def read(self):
        while True:
            try:
                data = self.jsock.recv(1 << 16)
            except (socket.timeout, BlockingIOError):
                return self.entries
            e = {}
            for line in data.decode(errors='replace').split('\n'):
                if '=' in line:
                    k, v = line.split('=', 1)
                    e[k] = v
            self.entries.append(e)


@case('g) journal: MESSAGE names its stream ([producer N name], [stream N]); progress '
      'entries carry WSFLOW_EVENT=progress, WSFLOW_BYTES, WSFLOW_RATE; the end '
      'WSFLOW_EVENT=stream-end and WSFLOW_END_REASON')
def _():
    d = JournalDaemon()
    d.start()
    pid = started_id(ctl(d, 'start', d.url(), '--rate', 3000000, '--duration', 12,
                  '--name', 'jr'))

    def ended():
        return [e for e in d.read() if e.get('WSFLOW_EVENT') == 'stream-end' and
                e.get('WSFLOW_STREAM') == str(pid)]
    check(wait_for(ended, 25), 'no stream-end entry for %d: %r' % (pid, d.entries[-10:]))
    mine = [e for e in d.entries if e.get('WSFLOW_STREAM') == str(pid)]
    bad = [e['MESSAGE'] for e in mine if not e['MESSAGE'].startswith('[producer %d jr] ' % pid)]
    check(not bad, 'MESSAGE without its stream: %r' % bad)
    srv = [e for e in d.entries if e.get('WSFLOW_STREAM') and e.get('WSFLOW_PRODUCER') is None]
    check(srv and all(re.match(r'\[stream %s\] ' % e['WSFLOW_STREAM'], e['MESSAGE']) for e in srv),
          'server stream messages: %r' % [e['MESSAGE'] for e in srv])
    prog = [e for e in mine if e.get('WSFLOW_EVENT') == 'progress']
    check(prog, 'no progress entry in 12 s: %r' % [e['MESSAGE'] for e in mine])
    p = prog[0]
    check(p.get('WSFLOW_BYTES', '').isdigit() and p.get('WSFLOW_RATE', '').isdigit(),
          'progress fields: %r' % p)
    rate = int(p['WSFLOW_RATE'])
    check(2700000 <= rate <= 3300000, 'WSFLOW_RATE %d for rate 3000000' % rate)
    check(int(p['WSFLOW_BYTES']) > 25000000, 'WSFLOW_BYTES %s after 10 s' % p['WSFLOW_BYTES'])
    end = ended()[0]
    check(end.get('WSFLOW_END_REASON') == 'duration limit', 'end entry: %r' % end)
    d.check_clean_stop()


# ---- the interval average

def stalling_server(port, read_for):
    """A WebSocket server that reads for read_for seconds, then stops
    reading (and never answers a digest): the sender's last seconds
    send nothing, its interval still had data."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('127.0.0.1', port))
    ls.listen(1)
    ls.settimeout(30)
    stop = threading.Event()

    def run():
        try:
            c, _ = ls.accept()
        except OSError:
            return
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        req = b''
        while b'\r\n\r\n' not in req:
            req += c.recv(4096)
        k = re.search(rb'Sec-WebSocket-Key: *(\S+)', req, re.I).group(1)
        acc = base64.b64encode(hashlib.sha1(k + b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
                               .digest())
        c.sendall(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'
                  b'Connection: Upgrade\r\nSec-WebSocket-Accept: ' + acc + b'\r\n\r\n')
        t0 = time.monotonic()
        c.settimeout(0.2)
        while time.monotonic() - t0 < read_for and not stop.is_set():
            try:
                c.recv(1 << 16)
            except socket.timeout:
                pass
        stop.wait(60)
        c.close()
    threading.Thread(target=run, daemon=True).start()
    return ls, stop


@case('h) the progress line\'s MB/s is the average over its 10 s, not the last second '
      '(a receiver that stops reading after 6 s of 4 MB/s)')
def _():
    port = free_port()
    ls, stop = stalling_server(port, 6)
    d = daemon([producer_conf('avg', 'ws://127.0.0.1:%d/' % port, rate=4000000)]).start()
    try:
        pat = r'\[producer \d+ avg\] ([\d.]+) MB sent, .*?, ([\d.]+) MB/s'
        check(wait_for(lambda: re.search(pat, d.log_text()), 20),
              'no progress line:\n' + d.log_tail())
        sent, rate = map(float, re.search(pat, d.log_text()).groups())
        diag('%.1f MB sent, %.1f MB/s in the line' % (sent, rate))
        # The first interval runs from the connection to a tick 10..11 s on.
        check(sent / 11.5 <= rate <= sent / 9.5,
              'line says %.1f MB/s; %.1f MB in ~10 s is %.1f' % (rate, sent, sent / 10))
        check(sent > 15, 'only %.1f MB sent in 10 s at 4 MB/s' % sent)
    finally:
        stop.set()
        ls.close()
    d.check_clean_stop()


# ---- producer-only

@case('i) server.listen = ( ): starts with a control socket only, READY=1, runs a '
      'producer to another daemon, stops with an honest line')
def _():
    s = server()
    nsock = tmpfile('notify.sock')
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(nsock)
    ns.settimeout(0.1)
    d = daemon([producer_conf('feed', s.url(), bytes=3 * MiB)], listen=False)
    os.environ['NOTIFY_SOCKET'] = nsock
    try:
        d.start()
    finally:
        del os.environ['NOTIFY_SOCKET']
    got = b''
    deadline = time.monotonic() + 5 * SLOW
    while b'READY=1' not in got and time.monotonic() < deadline:
        try:
            got += ns.recv(4096) + b'\n'
        except socket.timeout:
            pass
    ns.close()
    check(b'READY=1' in got, 'no READY=1: %r' % got)
    st = jctl(d, 'status')
    check(st.get('listeners') == [], 'listeners: %r' % st.get('listeners'))
    f = wait_state(d, 'feed', 'finished')
    check(f['bytes'] == 3 * MiB and f['digests_verified'] == 3, '%r' % f)
    d.check_clean_stop()
    line = [l for l in d.log_text().splitlines() if 'notice: stopped' in l]
    check(line, 'no stop line:\n' + d.log_tail())
    check('0 streams served' not in line[-1] and
          re.search(r'1 producer stream, %d bytes sent, 3 digests verified' % (3 * MiB), line[-1]),
          'stop line: %s' % line[-1])


if __name__ == '__main__':
    run_cases()
