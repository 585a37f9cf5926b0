#!/usr/bin/python3
# timeout: 300
"""wsflowd's producers (interface.md §3 `producers`, §4 wsflowctl) against
the AutobahnPython tutorial servers (tests/peers) and against wsflowd's own
hashing server: every digest the server returns is checked by the producer;
we read its counters with `wsflowctl -j` and its lines in the daemon log.
Producer and server share daemon/batch.c, so where a wsflowd producer
streams to a wsflowd server a WSTap (wsflowtest) sits between them and
checks every digest against hashlib, and the octets against the counters."""
import os
import re
import signal
import socket
import subprocess
import json
import time
import urllib.request

from wsflowtest import (SANITIZE, SLOW, BUILD, SRCDIR, CheckFailed, Daemon,
                        WSTap, case, check, diag, run_cases, start_peer, tmpdir,
                        wait_for, wait_peer, wait_value, free_port, lc_value,
                        run_wsflowd, tmpfile)

WSFLOWCTL = os.environ.get('WSFLOWCTL') or os.path.join(SRCDIR, BUILD, 'wsflowctl')
MiB = 1 << 20
CLK_TCK = os.sysconf('SC_CLK_TCK')

# ------------------------------------------------------------ reporting


class Described(str):
    """A case description that takes the figures measured while the case
    runs: run_cases() prints 'ok - ' + desc after it, and that + ends here."""

    def __new__(cls, text):
        self = str.__new__(cls, text)
        self.figures = ''
        return self

    def __radd__(self, other):
        return other + str.__str__(self) + self.figures

# ------------------------------------------------------------ config


def producer_entry(name, url, **keys):
    keys = dict(name=name, url=url, **keys)
    return '{ %s }' % ' '.join('%s = %s;' % (k, lc_value(v)) for k, v in keys.items())


def producer_daemon(producers, tls=False, **server):
    """A started wsflowd with these producers.  producers: a list of
    (name, url, keys) or a function of the daemon returning one (for URLs
    of its own listeners)."""
    d = Daemon(tls=tls, **server)
    if callable(producers):
        producers = producers(d)
    with open(d.conf, 'a') as f:
        f.write('producers = (\n  %s\n);\n' % ',\n  '.join(
            producer_entry(n, u, **k) for n, u, k in producers))
    d.start()
    # the listener accepts a moment before the control socket exists
    check(wait_for(lambda: ctl(d, 'status')[0] == 0 or not d.alive(), 10, 0.05)
          and d.alive(), 'wsflowctl status never answered:\n' + d.log_tail())
    return d

# ------------------------------------------------------------ observing


def sock_of(d):
    return os.path.join(tmpdir(), d.name + '.sock')


def ctl(d, *args, timeout=10):
    """wsflowctl -j: (exit status, parsed JSON or None)."""
    r = subprocess.run([WSFLOWCTL, '-j', '-s', sock_of(d)] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout * SLOW,
                       stdin=subprocess.DEVNULL)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        out = None
    return r.returncode, out


def show(d, name):
    """The stream NAME as `wsflowctl -j show` has it, None once gone."""
    rc, out = ctl(d, 'show', name)
    if rc == 1:
        return None
    check(rc == 0 and out and 'stream' in out,
          'wsflowctl show %s: exit %s, %r' % (name, rc, out))
    return out['stream']


def status(d):
    rc, out = ctl(d, 'status')
    check(rc == 0 and out, 'wsflowctl status: exit %s, %r' % (rc, out))
    return out


RETRY = r'\[producer \d+ %s\] .*retry (\d+) in (\d+) ms'
FINISHED = r'\[producer (\d+) %s\] (.*): (\d+) bytes sent, (\d+) digests, (\d+) verified, (\d+) mismatched'


def finished(d, name):
    """The producer's last line, as a dict, or None while it runs."""
    m = None
    for m in re.finditer(FINISHED % re.escape(name), d.log_text()):
        pass
    if m is None:
        return None
    return dict(id=int(m.group(1)), why=m.group(2), bytes=int(m.group(3)),
                digests=int(m.group(4)), verified=int(m.group(5)),
                mismatched=int(m.group(6)))


def wait_finished(d, name, timeout):
    r = []

    def done():
        alive = d.alive()       # before reading: a stopped daemon's log is whole
        r[:] = [finished(d, name)]
        check(alive or r[0] is not None,
              'wsflowd died (exit %s):\n%s' % (d.proc.poll(), d.log_tail()))
        return r[0] is not None
    if not wait_for(done, timeout, 0.05):
        raise CheckFailed('producer %s not finished after %gs; ctl show: %r'
                          % (name, timeout * SLOW, show(d, name)))
    return r[0]


def check_finished(f, name, nbytes=None, verified=None, mismatched=0):
    """The finished line: the byte count, verified > 0 (or exactly
    verified), every digest accounted for, mismatched as given."""
    check(f['why'] == 'finished', '%s ended with "%s", not "finished": %r' % (name, f['why'], f))
    if nbytes is not None:
        check(f['bytes'] == nbytes, '%s sent %d bytes, want %d' % (name, f['bytes'], nbytes))
    if verified is None:
        check(f['verified'] > 0, '%s: no digest verified: %r' % (name, f))
    else:
        check(f['verified'] == verified, '%s: %d verified, want %d: %r'
              % (name, f['verified'], verified, f))
    check(f['mismatched'] == mismatched, '%s: %d mismatched, want %d: %r'
          % (name, f['mismatched'], mismatched, f))
    check(f['digests'] == f['verified'] + f['mismatched'],
          '%s: digests != verified + mismatched: %r' % (name, f))


def wait_stream(d, name, cond, timeout, what):
    """Poll `show NAME` until cond(stream); returns the stream."""
    return wait_value(d, lambda: show(d, name), cond, timeout, what, name)


def log_lines(d, pattern):
    return [l for l in d.log_text().splitlines() if re.search(pattern, l)]


def metrics(d):
    """GET /metrics on the daemon's ws listener: {name: value}."""
    with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % d.port,
                                timeout=10 * SLOW) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith('#'):
            name, value = line.rsplit(None, 1)
            out[name] = float(value)
    return out


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK   # utime + stime


def backoff_bad(retries):
    """Retry lines (attempt, ms) against the schedule: attempt k waits
    min(250 * 2^(k-1), 8000) ms +-25 %, attempts numbered 1, 2, 3..."""
    bad = []
    for i, (a, ms) in enumerate(retries):
        base = min(250 << min(a - 1, 6), 8000)
        if a != i + 1 or not 0.75 * base <= ms <= 1.25 * base:
            bad.append((a, ms, base))
    return bad

# ------------------------------------------------------------ server peers


def start_server(script, port, *args, seconds=60):
    """An Autobahn server peer on port, accepting when this returns."""
    p = start_peer(script, '--port', port, '--seconds', seconds * SLOW, *args)

    def up():
        if p.poll() is not None:
            raise CheckFailed('%s exited %s at start: %s' % (script, p.returncode,
                                                            p.stderr.read()[-1500:]))
        try:
            socket.create_connection(('127.0.0.1', port), 0.5).close()
            return True
        except OSError:
            return False
    check(wait_for(up, 20, 0.05), '%s not listening on %d' % (script, port))
    return p


def record_server(port, *args, seconds=60):
    """server_record.py on port with --record: (process, record file)."""
    path = os.path.join(tmpdir(), 'record-%d.jsonl' % port)
    return start_server('server_record.py', port, '--record', path, *args,
                        seconds=seconds), path


def wait_closes(path, n, timeout=10):
    """The first n connection ends server_record.py wrote to path."""
    recs = []

    def enough():
        try:
            with open(path) as f:
                recs[:] = [json.loads(l) for l in f if l.strip()]
        except (OSError, ValueError):
            return False
        return len(recs) >= n
    check(wait_for(enough, timeout, 0.05), 'the tutorial server recorded %d connection '
          'end(s) in %gs, want %d: %r' % (len(recs), timeout * SLOW, n, recs))
    return recs


def day_seconds(t):
    """time.time() as seconds since local midnight (the log's clock)."""
    lt = time.localtime(t)
    return lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec + t % 1


def log_day_seconds(line):
    h, m, sec = line.split()[0].split(':')
    return int(h) * 3600 + int(m) * 60 + float(sec)


def stop_server(p, what='server peer'):
    """SIGTERM by PID; its JSON totals."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    rc, r = wait_peer(p, 15)
    check(rc == 0, '%s exited %s: %r' % (what, rc, r))
    return r

# ------------------------------------------------------------ 1. tutorial servers


def autobahn_case(mode, script, path, nbytes, digests, **keys):
    framing = keys.get('framing')
    desc = 'mode "%s"%s -> %s (tutorial server), bytes = %d: finished, %d digests ' \
        'verified, 0 mismatched' % (mode, ' framing "%s"' % framing if framing else '',
                                   script, nbytes, digests)

    @case(desc)
    def _():
        port = free_port()
        peer = start_server(script, port, '--batch-size', MiB)
        d = producer_daemon([('p', 'ws://127.0.0.1:%d%s' % (port, path),
                              dict(mode=mode, bytes=nbytes, **keys))])
        f = wait_finished(d, 'p', 60)
        check_finished(f, 'p', nbytes, verified=digests)
        check(wait_for(lambda: (show(d, 'p') or {}).get('state') == 'finished', 5),
              'wsflowctl show p does not say the producer finished: %r' % show(d, 'p'))
        r = stop_server(peer, script)
        check(r.get('bytes') == nbytes and r.get('digests') == digests
              and r.get('connections') == 1,
              '%s saw %r, want %d bytes, %d digests, 1 connection' % (script, r, nbytes, digests))
        d.check_clean_stop()


autobahn_case('producer', 'server_streaming.py', '/', 64 * MiB, 64, framing='wsflow')
autobahn_case('producer', 'server_streaming.py', '/', 64 * MiB, 64, framing='lws')
autobahn_case('streaming', 'server_streaming.py', '/', 32 * MiB, 32)
# frame_size 64 KiB, message_size 1 MiB: a digest per frame, 16 per message
autobahn_case('frame', 'server_frame.py', '/frame', 32 * MiB, 512)
autobahn_case('message', 'server_message.py', '/message', 32 * MiB, 32)

# ------------------------------------------------------------ 2. wsflowd's server

MODE_PATHS = [('producer', '/'), ('streaming', '/stream'), ('frame', '/frame'),
              ('message', '/message')]


@case('each mode against wsflowd\'s own server (/, /stream, /frame, /message, endless): '
      'verified grows on every producer, 0 mismatches in show, status and /metrics; '
      'a hashlib tap between them agrees with every digest and the octet counts')
def _():
    taps = {}

    def producers(d):
        for m, path in MODE_PATHS:
            taps['own-' + m] = WSTap(d.port)
        return [('own-' + m, taps['own-' + m].url(path), dict(mode=m))
                for m, path in MODE_PATHS]
    d = producer_daemon(producers)
    names = ['own-' + m for m, _ in MODE_PATHS]
    first = {n: wait_stream(d, n, lambda s: s['digests_verified'] > 0, 10,
                            'first verified digest') for n in names}
    for n in names:
        s = wait_stream(d, n, lambda s, n=n: s['digests_verified'] >
                        first[n]['digests_verified'], 10, 'verified growing')
        check(s is not None, '%s gone' % n)
        check(s['role'] == 'producer' and s['mode'] == n[4:], '%s: %r' % (n, s))
        check(s['digests_verified'] > first[n]['digests_verified'],
              '%s: verified did not grow: %d -> %d' % (n, first[n]['digests_verified'],
                                                       s['digests_verified']))
        check(s['digest_mismatches'] == 0, '%s: %d mismatches' % (n, s['digest_mismatches']))
        # the tap passed each digest on after checking it: it has seen at
        # least as many as the producer verified
        taps[n].check(min_verified=s['digests_verified'])
        diag('%s: %d bytes, %d verified; %s' % (n, s['bytes'], s['digests_verified'],
                                                taps[n].summary()))
    rc, streams = ctl(d, 'streams')
    check(rc == 0, 'wsflowctl streams exit %d' % rc)
    servers = [s for s in streams['streams'] if s['role'] == 'server']
    check(sorted(s['mode'] for s in servers) == ['frame', 'message', 'streaming', 'streaming'],
          'server streams: %r' % servers)
    st = status(d)['producers']
    check(st['running'] == 4 and st['digest_mismatches'] == 0 and st['digests_verified'] > 0,
          'status producers: %r' % st)
    m = metrics(d)
    check(m.get('wsflow_producer_digests_verified_total', 0) > 0
          and m.get('wsflow_producer_digest_mismatches_total') == 0
          and m.get('wsflow_producer_bytes_sent_total', 0) > 0,
          '/metrics: %r' % {k: v for k, v in m.items() if 'producer' in k})
    d.check_clean_stop()
    for n in names:     # SIGTERM ends every producer, still 0 mismatched
        f = finished(d, n)
        check(f is not None and f['mismatched'] == 0 and f['verified'] > 0,
              '%s after SIGTERM: %r' % (n, f))
        check(wait_for(lambda: taps[n].bytes == f['bytes'], 5),
              '%s sent %d octets, the tap saw %d' % (n, f['bytes'], taps[n].bytes))
        taps[n].check(min_verified=f['verified'])
        taps[n].close()


def tls_daemon(producer_keys, cert_san=None, tap=None):
    """A daemon with a wss listener (throw-away cert, or one for cert_san
    only) and one producer "tls" to it: wss://127.0.0.1:PORT/; with tap (a
    list), through a TLS WSTap (the listener's cert) appended to it."""
    def conf(d):
        if cert_san:        # same paths: the daemon reads them at start
            key = d.cert[:-len('cert.pem')] + 'key.pem'
            subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
                            '-days', '1', '-subj', '/CN=' + cert_san.split(':', 1)[1],
                            '-addext', 'subjectAltName=' + cert_san,
                            '-keyout', key, '-out', d.cert],
                           check=True, capture_output=True, timeout=60)
        keys = dict(mode='streaming', bytes=16 * MiB)
        keys.update(producer_keys(d))
        if tap is not None:
            tap.append(WSTap(d.tls_port, tls=(d.cert, d.cert[:-len('cert.pem')] + 'key.pem')))
            return [('tls', tap[0].url('/'), keys)]
        return [('tls', 'wss://127.0.0.1:%d/' % d.tls_port, keys)]
    return producer_daemon(conf, tls=True)


def tls_verified_case(desc, producer_keys):
    @case(desc)
    def _():
        tap = []
        d = tls_daemon(producer_keys, tap=tap)
        f = wait_finished(d, 'tls', 30)
        check_finished(f, 'tls', 16 * MiB, verified=16)
        tap[0].check(min_verified=16)
        check(tap[0].bytes == 16 * MiB and tap[0].digests == 16,
              'through TLS: %s' % tap[0].summary())
        diag(tap[0].summary())
        tap[0].close()
        check(log_lines(d, r'\[stream \d+\] closed: %d bytes' % (16 * MiB)),
              'the TLS server stream did not log its 16 MiB')
        d.check_clean_stop()


def tls_refused_case(desc, producer_keys, reason, cert_san=None):
    @case(desc)
    def _():
        d = tls_daemon(producer_keys, cert_san)
        # reconnect = true (the default): it keeps failing, never streams
        check(wait_for(lambda: len(re.findall(RETRY % 'tls', d.log_text())) >= 2, 10),
              'no 2 retry lines:\n' + d.log_tail())
        s = show(d, 'tls')
        check(s is not None and s['bytes'] == 0 and s['digests_verified'] == 0
              and s['state'] in ('backoff', 'connecting'),
              'connected although the certificate is not trusted: %r' % s)
        why = log_lines(d, r' warning: \[producer \d+ tls\] .*TLS .*%s' % reason)
        check(why, 'no "[producer N tls] ... TLS ... %s" line:\n%s' % (reason, d.log_tail()))
        check(not log_lines(d, r'\[stream \d+\] streaming stream from'),
              'the TLS server saw a WebSocket stream')
        diag(why[0])
        diag(log_lines(d, RETRY % 'tls')[0])
        d.check_clean_stop()
        f = finished(d, 'tls')
        check(f is not None and f['bytes'] == 0 and f['verified'] == 0,
              'after SIGTERM: %r' % f)


tls_verified_case('wss, tls = { verify = false; }, self-signed listener: 16 digests verified '
                  '(and by a hashlib tap terminating TLS between them)',
                  lambda d: {'tls': {'verify': False}})
# The throw-away certificate has subjectAltName IP:127.0.0.1 (and
# DNS:localhost): verification and the hostname check stay on and pass.
tls_verified_case('wss, tls = { ca = "<the listener\'s cert>"; } (hostname check on, '
                  'SAN IP:127.0.0.1): 16 digests verified (and by a hashlib tap)',
                  lambda d: {'tls': {'ca': d.cert}})
tls_refused_case('wss, verify = true and no ca (system store) against a self-signed cert: '
                 'does not connect, retries, the log says why, 0 verified',
                 lambda d: {}, 'self[- ]signed')
tls_refused_case('wss, tls = { ca = CERT; } but CERT is for other.example only: '
                 'refused by the hostname check, 0 verified',
                 lambda d: {'tls': {'ca': d.cert}}, 'IP address mismatch',
                 cert_san='DNS:other.example')

# ------------------------------------------------------------ 3. corrupt digest


@case('a server sending a wrong digest 3 (--corrupt-digest 3): exactly 1 mismatch, '
      'one error line naming the producer and digest 3')
def _():
    port = free_port()
    peer = start_server('server_streaming.py', port, '--corrupt-digest', 3)
    d = producer_daemon([('corrupt', 'ws://127.0.0.1:%d/' % port,
                          dict(mode='streaming', bytes=16 * MiB))])
    f = wait_finished(d, 'corrupt', 60)
    check_finished(f, 'corrupt', 16 * MiB, verified=15, mismatched=1)
    errs = log_lines(d, r' error: ')
    check(len(errs) == 1, 'want 1 error line, got %d:\n%s' % (len(errs), '\n'.join(errs)))
    want = r' error: \[producer %d corrupt\] digest 3 mismatch: expected [0-9a-f]{64}, got "[0-9a-f]{64}"' % f['id']
    check(re.search(want, errs[0]), 'error line %r does not match %r' % (errs[0], want))
    m = metrics(d)
    check(m.get('wsflow_producer_digest_mismatches_total') == 1
          and m.get('wsflow_producer_digests_verified_total') == 15,
          '/metrics: %r' % {k: v for k, v in m.items() if 'producer' in k})
    r = stop_server(peer)
    check(r.get('corrupted') == 1, 'peer corrupted %r digests' % r.get('corrupted'))
    diag(errs[0])
    d.check_clean_stop()

# ------------------------------------------------------------ 4. backpressure


BACKPRESSURE = Described('backpressure: producer mode to a server reading at 5 MB/s for '
                         '20 s: RSS grows < 2 MiB, CPU < 10 %, throughput 5 MB/s +-50 %, '
                         'backpressure_pauses > 0')


@case(BACKPRESSURE)
def _():
    rate = 5000000
    backoff_probe()     # its case, at the end, reads what it did meanwhile
    port = free_port()
    peer = start_server('server_streaming.py', port, '--rate', rate, seconds=90)
    d = producer_daemon([('slow', 'ws://127.0.0.1:%d/' % port, dict(mode='producer'))])
    wait_stream(d, 'slow', lambda s: s['state'] == 'sending', 10, 'sending')
    t_open = time.monotonic()
    time.sleep(3)       # socket buffers fill in the first seconds
    t1, rss1, cpu1 = time.monotonic(), d.rss_kib(), cpu_seconds(d.pid)
    s1 = show(d, 'slow')
    rss_max = rss1
    while time.monotonic() < t_open + 20:
        time.sleep(1)
        rss_max = max(rss_max, d.rss_kib())
        check(d.alive(), 'wsflowd died')
    t2, rss2, cpu2 = time.monotonic(), d.rss_kib(), cpu_seconds(d.pid)
    s2 = show(d, 'slow')
    check(s1 is not None and s2 is not None, 'producer gone: %r %r' % (s1, s2))
    tput = (s2['bytes'] - s1['bytes']) / (t2 - t1)
    cpu = 100.0 * (cpu2 - cpu1) / (t2 - t1)
    growth = max(rss2, rss_max) - rss1
    BACKPRESSURE.figures = ' (measured: RSS +%d KiB, CPU %.1f %%, %.2f MB/s, %d pauses)' % (
        growth, cpu, tput / 1e6, s2['backpressure_pauses'])
    diag('%.1f s: %d -> %d bytes, %.2f MB/s (ctl bytes_per_sec %.2f MB/s), '
         'CPU %.1f %% of a core, RSS %d -> %d KiB (max %d), %d backpressure pauses, '
         '%d verified' % (t2 - t1, s1['bytes'], s2['bytes'], tput / 1e6,
                          s2['bytes_per_sec'] / 1e6, cpu, rss1, rss2, rss_max,
                          s2['backpressure_pauses'], s2['digests_verified']))
    check(s2['digests_verified'] > s1['digests_verified'] > 0 and s2['digest_mismatches'] == 0,
          'verified %d -> %d, %d mismatches' % (s1['digests_verified'], s2['digests_verified'],
                                                s2['digest_mismatches']))
    check(0.5 * rate <= tput <= 1.5 * rate,
          'throughput %.2f MB/s, want 5 MB/s +-50 %%' % (tput / 1e6))
    check(s2['backpressure_pauses'] > 0, 'backpressure_pauses = %d' % s2['backpressure_pauses'])
    check(cpu < 10 * (2 if SANITIZE else 1), 'wsflowd used %.1f %% of a core' % cpu)
    if not SANITIZE:
        check(growth < 2048, 'RSS grew by %d KiB (%d -> %d, max %d)'
              % (growth, rss1, rss2, rss_max))
    d.check_clean_stop()
    stop_server(peer)

# ------------------------------------------------------------ 5. limits


@case('bytes = 10000000: exactly 10000000 bytes sent to wsflowd (its stream closed '
      'with 10000000 bytes; a hashlib tap between them saw 10000000 octets and verified '
      'the 9 digests) and to a tutorial server (close 1000, clean)')
def _():
    n = 10000000
    port = free_port()
    peer, rec = record_server(port)
    tap = []

    def producers(d):
        tap.append(WSTap(d.port))
        return [('own', tap[0].url('/'), dict(mode='producer', bytes=n)),
                ('peer', 'ws://127.0.0.1:%d/' % port, dict(mode='producer', bytes=n))]
    d = producer_daemon(producers)
    for name in ('own', 'peer'):
        f = wait_finished(d, name, 30)
        check_finished(f, name, n, verified=n // MiB)
    check(tap[0].bytes == n and tap[0].digests == n // MiB, tap[0].summary())
    tap[0].check(min_verified=n // MiB)
    tap[0].close()
    check(wait_for(lambda: log_lines(d, r'\[stream \d+\] closed: %d bytes, 1 message, %d digests'
                                     % (n, n // MiB)), 5),
          'wsflowd\'s server stream did not log "closed: %d bytes, 1 message, %d digests"'
          % (n, n // MiB))
    closes = wait_closes(rec, 1)
    check(len(closes) == 1 and closes[0]['bytes'] == n and closes[0]['code'] == 1000
          and closes[0]['clean'], 'the tutorial server saw %r' % closes)
    stop_server(peer)
    d.check_clean_stop()


DURATION = Described('duration = 3: the producer\'s own record says it ran 3.0 to 3.5 s '
                     '(an ended stream\'s seconds), close 1000 (clean) at the server')


@case(DURATION)
def _():
    port = free_port()
    peer, rec = record_server(port)
    t0 = time.monotonic()
    d = producer_daemon([('timed', 'ws://127.0.0.1:%d/' % port,
                          dict(mode='producer', duration=3))])
    f = wait_finished(d, 'timed', 10)
    took = time.monotonic() - t0
    check_finished(f, 'timed')
    diag('finished after %.2f s, %d bytes' % (took, f['bytes']))
    ran = show(d, 'timed')['seconds']
    DURATION.figures = ' (measured: %.2f s by the daemon, %.2f s from the start)' % (ran, took)
    # the limit is the daemon's to keep, start to end; load may add a turn
    check(3.0 <= ran <= 3.0 + 0.5 * SLOW, 'the daemon says it ran %.2f s' % ran)
    closes = wait_closes(rec, 1)
    check(len(closes) == 1 and closes[0]['code'] == 1000 and closes[0]['clean']
          and closes[0]['bytes'] == f['bytes'],
          'the tutorial server saw %r (producer sent %d)' % (closes, f['bytes']))
    stop_server(peer)
    d.check_clean_stop()


@case('close handshake: the producer waits for the server\'s close reply (RFC 6455 7.1.1) - '
      'bytes = 4 MiB + 1 MB to a server reading at 2 MB/s: it finishes after the server '
      'read its close frame, not ~0.5 s before')
def _():
    # The last digest is due at 4 MiB; the 1 MB tail after it takes the
    # server ~0.5 s more, then it reads the close frame and replies.
    port = free_port()
    peer, rec = record_server(port, '--rate', 2000000)
    n = 4 * MiB + 1000000
    d = producer_daemon([('polite', 'ws://127.0.0.1:%d/' % port,
                          dict(mode='producer', bytes=n))])
    f = wait_finished(d, 'polite', 20)
    check_finished(f, 'polite', n, verified=4)
    line = log_lines(d, r'\[producer \d+ polite\] finished:')[-1]
    closes = wait_closes(rec, 1, 15)   # the server drains its backlog meanwhile
    c = closes[0]
    check(c['code'] == 1000 and c['clean'] and c['bytes'] == f['bytes'],
          'the tutorial server saw %r (producer sent %d)' % (c, f['bytes']))
    check(c['close_frame_at'] is not None, 'no close frame reached the server: %r' % c)
    early = (day_seconds(c['close_frame_at']) - log_day_seconds(line) + 43200) % 86400 - 43200
    diag('the producer finished %.3f s %s the server read its close frame'
         % (abs(early), 'before' if early > 0 else 'after'))
    check(early < 0.1, 'the producer closed TCP %.2f s before the server read its close '
          'frame: it did not wait for the close reply\n%s' % (early, line))
    stop_server(peer)
    d.check_clean_stop()

# ------------------------------------------------------------ 6. reconnect



RESTART = Described('server killed (SIGTERM) and restarted on the same port after 1 s: the '
                    'producer reconnects < 12 s after, verified grows again, one retry line '
                    'per attempt')


@case(RESTART)
def _():
    port = free_port()
    peer = start_server('server_record.py', port)
    d = producer_daemon([('re', 'ws://127.0.0.1:%d/' % port, dict(mode='streaming'))])
    wait_stream(d, 're', lambda s: s['digests_verified'] >= 5, 10, '5 verified')
    r = stop_server(peer, 'first server')
    t_down = time.monotonic()
    check(r.get('connections') == 1, 'first server: %r' % r)
    s_mid = wait_stream(d, 're', lambda s: s['state'] in ('backoff', 'connecting'), 5,
                        'backoff or connecting while the server is down')
    peer2 = start_server('server_record.py', port)
    t_up = time.monotonic()
    s2 = wait_stream(d, 're', lambda s: s['digests_verified'] > s_mid['digests_verified'],
                     12, 'verified growing again')
    t_again = time.monotonic()
    retries = [(int(a), int(ms)) for a, ms in re.findall(RETRY % 're', d.log_text())]
    diag('down %.2f s, reconnected %.2f s after the restart; retries: %s'
         % (t_up - t_down, t_again - t_up, retries))
    RESTART.figures = ' (measured: reconnected %.2f s after the restart, %d retries)' % (
        t_again - t_up, len(retries))
    check(t_again - t_up < 12, 'reconnected %.2f s after the restart' % (t_again - t_up))
    check(1 <= len(retries) <= 10, '%d retry lines over %.1f s down'
          % (len(retries), t_again - t_down))
    check(not backoff_bad(retries), 'retries off the 250 ms * 2^n +-25 %% schedule '
          '(attempt, ms, base): %r' % backoff_bad(retries))
    check(s2['digest_mismatches'] == 0, '%d mismatches' % s2['digest_mismatches'])
    d.check_clean_stop()
    r2 = stop_server(peer2, 'restarted server')
    check(r2.get('connections') == 1 and r2.get('digests', 0) > 0,
          'restarted server: %r' % r2)

# ------------------------------------------------------------ ending


def ending_case(desc, mode, path, how, code):
    """A producer streaming to a recording tutorial server (endless) is ended
    by `how`: it ends its message, collects what it is owed, closes code."""
    @case(desc)
    def _():
        port = free_port()
        peer, rec = record_server(port, '--mode', mode)
        d = producer_daemon([('end', 'ws://127.0.0.1:%d%s' % (port, path),
                              dict(mode=mode, frame_size=100000, message_size=1 << 40))])
        wait_stream(d, 'end', lambda s: s['digests_verified'] >= 3, 10, '3 verified')
        how(d)
        f = wait_finished(d, 'end', 10)
        check(f['mismatched'] == 0 and f['verified'] == f['digests'] > 0, '%r' % f)
        owed = log_lines(d, 'still owed')
        check(not owed, 'digests left owed: %s' % owed)
        if mode == 'frame':     # one 1 TiB message: ended by an empty final frame
            check(f['bytes'] % 100000 == 0 and f['digests'] == f['bytes'] // 100000 + 1,
                  'want a digest per 100000-octet frame plus one for the empty final '
                  'frame: %r' % f)
        rc = d.stop()
        check(rc == 0, 'wsflowd exited %s' % rc)
        closes = wait_closes(rec, 1)
        stop_server(peer)
        check(len(closes) == 1 and closes[0]['code'] == code and closes[0]['clean']
              and closes[0]['bytes'] == f['bytes'] and closes[0]['digests'] == f['digests'],
              'the tutorial server saw %r; the producer %r' % (closes, f))
        diag('%s: %r' % (mode, closes[0]))


def ctl_stop(d):
    rc, out = ctl(d, 'stop', 'end')
    check(rc == 0, 'wsflowctl stop end: exit %s, %r' % (rc, out))


ending_case('wsflowctl stop NAME on a streaming producer: close 1000, every digest verified',
            'streaming', '/', ctl_stop, 1000)
ending_case('SIGTERM on a frame producer mid-message: an empty final frame, its digest '
            'verified, close 1001, exit 0', 'frame', '/frame',
            lambda d: d.proc.send_signal(signal.SIGTERM), 1001)

# ------------------------------------------------------------ 7. rate


RATE = Described('rate = 2000000 against wsflowd: measured over 4 s within 2 MB/s +-30 %, '
                 'its digests verified by a hashlib tap too')


@case(RATE)
def _():
    rate = 2000000
    tap = []

    def producers(d):
        tap.append(WSTap(d.port))
        return [('rated', tap[0].url('/'), dict(mode='producer', rate=rate))]
    d = producer_daemon(producers)
    wait_stream(d, 'rated', lambda s: s['state'] == 'sending', 10, 'sending')
    time.sleep(0.5)
    s1, t1 = show(d, 'rated'), time.monotonic()
    time.sleep(4)
    s2, t2 = show(d, 'rated'), time.monotonic()
    tput = (s2['bytes'] - s1['bytes']) / (t2 - t1)
    diag('%.2f MB/s over %.1f s (ctl bytes_per_sec %.2f MB/s), %d verified'
         % (tput / 1e6, t2 - t1, s2['bytes_per_sec'] / 1e6, s2['digests_verified']))
    RATE.figures = ' (measured: %.2f MB/s)' % (tput / 1e6)
    check(0.7 * rate <= tput <= 1.3 * rate, 'measured %.2f MB/s' % (tput / 1e6))
    check(0.7 * rate <= s2['bytes_per_sec'] <= 1.3 * rate,
          'ctl bytes_per_sec %.2f MB/s' % (s2['bytes_per_sec'] / 1e6))
    check(s2['digests_verified'] > 0 and s2['digest_mismatches'] == 0,
          'verified %d, mismatched %d' % (s2['digests_verified'], s2['digest_mismatches']))
    tap[0].check(min_verified=s2['digests_verified'])
    d.check_clean_stop()
    tap[0].close()


# ------------------------------------------------------------ backoff cap

_probe = []


def backoff_probe():
    """A daemon whose producer connects to a closed port, started early (by
    the backpressure case) so that its retries reach the cap meanwhile."""
    if not _probe:
        port = free_port()      # nothing listens there
        d = producer_daemon([('nowhere', 'ws://127.0.0.1:%d/' % port, dict(mode='streaming'))])
        _probe.append((d, time.monotonic()))
    return _probe[0]


@case('backoff to a closed port: retry k after min(250 ms * 2^(k-1), 8 s) +-25 %, '
      'capped at 8 s, one line per attempt, no tight loop')
def _():
    d, t0 = backoff_probe()
    # the cap (attempt 6) comes 250+500+...+4000 ms = 7.75 s +-25 % in
    wait_for(lambda: len(re.findall(RETRY % 'nowhere', d.log_text())) >= 7, 30)
    up = time.monotonic() - t0
    retries = [(int(a), int(ms)) for a, ms in re.findall(RETRY % 'nowhere', d.log_text())]
    diag('%d retries in %.1f s: %s' % (len(retries), up, retries))
    check(len(retries) >= 7, 'only %d retries in %.1f s' % (len(retries), up))
    check(not backoff_bad(retries), 'off the schedule (attempt, ms, base): %r'
          % backoff_bad(retries))
    check(all(ms <= 10000 for _, ms in retries), 'a wait above 8 s + 25 %%: %r' % retries)
    # cumulative waits bound the count: no more lines than attempts made
    check(sum(ms for _, ms in retries[:-1]) / 1000.0 <= up + 0.5,
          '%d retry lines in %.1f s: more than the waits allow' % (len(retries), up))
    s = show(d, 'nowhere')
    check(s is not None and s['state'] in ('backoff', 'connecting') and s['bytes'] == 0,
          'wsflowctl show nowhere: %r' % (s or (ctl(d, 'show', 'nowhere'),)))
    d.check_clean_stop()
    f = finished(d, 'nowhere')
    check(f is not None and f['why'] == 'stopped', 'after SIGTERM in backoff: %r' % f)



@case('the request a producer sends: Host with the port when it is not the default, no '
      'Origin, the configured headers as given; a header with a CR LF is refused with '
      'file:line')
def _():
    lst = socket.socket()
    lst.bind(('127.0.0.1', 0))
    lst.listen(1)
    lst.settimeout(10 * SLOW)
    port = lst.getsockname()[1]
    d = Daemon()
    with open(d.conf, 'a') as f:
        f.write('producers = ( { name = "hdr"; url = "ws://127.0.0.1:%d/stream"; '
                'reconnect = false; headers = ( "Authorization: Bearer x", '
                '"X-Test: one two" ); } );\n' % port)
    d.start()
    try:
        conn, _ = lst.accept()
        conn.settimeout(5 * SLOW)
        head = b''
        while b'\r\n\r\n' not in head:
            more = conn.recv(4096)
            if not more:
                break
            head += more
        conn.close()
    finally:
        lst.close()
    lines = head.decode('latin-1').split('\r\n')
    names = [l.split(':', 1)[0].lower() for l in lines[1:] if ':' in l]
    check(lines[0] == 'GET /stream HTTP/1.1', 'request line %r' % lines[0])
    check('Host: 127.0.0.1:%d' % port in lines, 'no Host with the port: %r' % lines)
    check('origin' not in names, 'a made-up Origin: %r' % lines)
    check('Authorization: Bearer x' in lines and 'X-Test: one two' in lines,
          'the configured headers are not in %r' % lines)
    d.check_clean_stop()
    bad = tmpfile('badhdr.conf', 'producers = ( { name = "b"; url = "ws://127.0.0.1:1/";\n'
                  '  headers = ( "X-Evil: a\\r\\nX-Injected: yes" ); } );\n')
    r = run_wsflowd(['-n', '-f', bad])
    check(r.returncode == 78 and '%s:2:' % bad in r.stderr and 'control characters' in r.stderr,
          '-n on a header with CR LF: exit %d, %r' % (r.returncode, r.stderr))

run_cases()
