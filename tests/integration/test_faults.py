#!/usr/bin/python3
# timeout: 240
"""Faults (testing.md §6 items 7, 11, 13; interface.md §3, §4):

a) a server wsflowd is killed (SIGKILL) while a producer hosted by a second
   wsflowd streams to it, and restarted on the same port: the producer is
   back within its backoff cap (8 s + 25 %), verified grows, 0 mismatches;
b) a producer whose server is gone for good waits cheaply: < 5 % CPU, one
   `retry` line per attempt (<= 15 in 10 s);
c) changing control commands are refused (exit 4) for a user that is not
   root nor in the control group, read-only ones work;
d) the configuration cannot make the daemon read other files: @include is
   refused with file:line; a FIFO, /dev/zero, a directory, a > 1 MiB file
   as -f are refused promptly, also on reload;
e) TLS producers: no CA -> no connection (log says why); ca = the cert ->
   verified; verify = false -> verified; ca but the wrong host -> refused;
f) a client that never reads its digests while sending 64 MiB: wsflowd
   stops reading it (bounded RSS) and keeps serving others promptly.

In a)-c) a wsflowd producer streams to a wsflowd server: both count a digest
as verified through the same daemon/batch.c, so a WSTap between them checks
every digest against hashlib as well.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import threading
import time

from wsflowtest import (BUILD, SANITIZE, SLOW, SRCDIR, WSFLOWD, CheckFailed, Daemon,
                        WSClient, WSTap, case, check, diag, frame_header, hexdigest,
                        run_cases, run_wsflowd, tmpdir, tmpfile, wait_for,
                        wait_value, lc_value, unix_accepts)

WSFLOWCTL = os.environ.get('WSFLOWCTL') or os.path.join(SRCDIR, BUILD, 'wsflowctl')
MiB = 1 << 20
CLK_TCK = os.sysconf('SC_CLK_TCK')
RETRY = r'\[producer \d+ %s\] .*retry (\d+) in (\d+) ms'

# ------------------------------------------------------------ helpers


def producer_daemon(producers, **server):
    """A started wsflowd hosting producers [(name, url, keys)] (or a
    function of the daemon returning them)."""
    d = Daemon(**server)
    if callable(producers):
        producers = producers(d)
    with open(d.conf, 'a') as f:
        f.write('producers = (\n  %s\n);\n' % ',\n  '.join(
            '{ %s }' % ' '.join('%s = %s;' % (k, lc_value(v))
                                for k, v in dict(name=n, url=u, **k).items())
            for n, u, k in producers))
    return start(d)


def sock_of(d):
    return d.conf[:-len('.conf')] + '.sock'


def start(d):
    """d.start() returns once the WebSocket port accepts; the control
    socket comes a moment later: wait for it too."""
    d.start()
    check(wait_for(lambda: unix_accepts(sock_of(d)), 10),
          'control socket %s does not accept:\n%s' % (sock_of(d), d.log_tail()))
    return d


def ctl_run(d, *args, user=None, timeout=10, ctl=WSFLOWCTL):
    """wsflowctl -s SOCK args (as user nobody if user): CompletedProcess."""
    cmd = [ctl, '-s', sock_of(d)] + [str(a) for a in args]
    if user:
        cmd = ['setpriv', '--reuid=' + user, '--regid=nogroup', '--clear-groups'] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * SLOW,
                          stdin=subprocess.DEVNULL)


def ctl(d, *args):
    r = ctl_run(d, '-j', *args)
    check(r.returncode == 0, 'wsflowctl %s: exit %d %s' % (args, r.returncode, r.stderr))
    return json.loads(r.stdout)


def producer(d, name):
    """The producer NAME in `wsflowctl -j streams`, None if not listed."""
    for s in ctl(d, 'streams')['streams']:
        if s['role'] == 'producer' and s['name'] == name:
            return s
    return None


def wait_producer(d, name, cond, timeout, what):
    return wait_value(d, lambda: producer(d, name), cond, timeout, what, name)


def retries(d, name):
    return [(int(a), int(ms)) for a, ms in re.findall(RETRY % re.escape(name), d.log_text())]


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK       # utime + stime


def kill9(d):
    os.kill(d.pid, signal.SIGKILL)
    d.proc.wait(10)

# ------------------------------------------------------------ a) SIGKILL + restart


@case('a) server wsflowd SIGKILLed mid-stream, down ~10 s, restarted on the same port: '
      'the producer (reconnect = true) streams again < 12 s after the restart, '
      'verified grows, 0 mismatches; a hashlib tap between them agrees before and after')
def _():
    srv = start(Daemon())
    tap = WSTap(srv.port)
    prod = producer_daemon([('re', tap.url('/'), dict(mode='producer', reconnect=True))])
    s1 = wait_producer(prod, 're', lambda s: s['digests_verified'] >= 3, 10, '3 verified')
    tap.check(min_verified=s1['digests_verified'])
    kill9(srv)
    tap.pause()         # the server's port refuses, as without the tap
    t_down = time.monotonic()
    s_mid = wait_producer(prod, 're', lambda s: s['state'] in ('backoff', 'connecting'),
                          5, 'backoff after the kill')
    time.sleep(max(0, t_down + 10 - time.monotonic()))     # backoff reaches its cap
    s_mid = producer(prod, 're')
    check(s_mid is not None and s_mid['state'] in ('backoff', 'connecting'),
          'producer while the server is down: %r' % s_mid)
    n_down = len(retries(prod, 're'))
    start(srv)
    tap.resume()
    t_up = time.monotonic()
    s2 = wait_producer(prod, 're', lambda s: s['digests_verified'] > s_mid['digests_verified'],
                       14, 'verified growing after the restart')
    t_again = time.monotonic()
    s3 = wait_producer(prod, 're', lambda s: s['digests_verified'] >= s2['digests_verified'] + 3,
                       10, '3 more verified')
    r = retries(prod, 're')
    diag('verified %d before the kill, %d while down, %d after; %d retries while down '
         '(delays ms %s); back %.2f s after the restart (down %.1f s)'
         % (s1['digests_verified'], s_mid['digests_verified'], s3['digests_verified'],
            n_down, [ms for _, ms in r], t_again - t_up, t_up - t_down))
    diag('FIGURES: reconnected %.2f s after the restart' % (t_again - t_up))
    check(t_again - t_up < 12, 'reconnected %.2f s after the restart (cap 8 s + 25 %%)'
          % (t_again - t_up))
    check(s3['digest_mismatches'] == 0, '%d mismatches' % s3['digest_mismatches'])
    # the tap verified at least what the producer did, over 2 connections
    # (the one before the kill and the one after the restart)
    tap.check(min_verified=s3['digests_verified'])
    check(tap.conns == 2, 'the tap relayed %d connections, want 2: %s'
          % (tap.conns, tap.summary()))
    diag(tap.summary())
    check([a for a, _ in r] == list(range(1, len(r) + 1)),
          'retry attempts not numbered 1..n: %r' % r)
    check(all(ms <= 10000 for _, ms in r), 'a delay beyond 8 s + 25 %%: %r' % r)
    check(max(ms for _, ms in r) >= 3000, 'backoff did not grow in 10 s '
          'down: %r' % r)
    st = ctl(srv, 'status')['server']
    check(st['connections'] == 1 and st['bytes_received'] > 0,
          'restarted server: %r' % st)
    prod.check_clean_stop()
    srv.check_clean_stop()
    tap.close()

# ------------------------------------------------------------ b) server gone


@case('b) server gone for good: the waiting producer uses < 5 % CPU over 10 s and '
      'logs one retry line per attempt (<= 15 in 10 s); its digests before were '
      'verified by a hashlib tap too')
def _():
    srv = start(Daemon())
    tap = WSTap(srv.port)
    prod = producer_daemon([('gone', tap.url('/stream'), dict(mode='streaming',
                                                             reconnect=True))])
    s0 = wait_producer(prod, 'gone', lambda s: s['digests_verified'] >= 3, 10, '3 verified')
    srv.stop()
    tap.close()         # gone for good: its port refuses too
    tap.check(min_verified=s0['digests_verified'])
    diag(tap.summary())
    wait_producer(prod, 'gone', lambda s: s['state'] in ('backoff', 'connecting'), 5,
                  'backoff')
    n0, cpu0, t0 = len(retries(prod, 'gone')), cpu_seconds(prod.pid), time.monotonic()
    lines0 = len(prod.log_text().splitlines())
    time.sleep(10)
    n1, cpu1, t1 = len(retries(prod, 'gone')), cpu_seconds(prod.pid), time.monotonic()
    window = prod.log_text().splitlines()[lines0:]
    cpu = 100.0 * (cpu1 - cpu0) / (t1 - t0)
    r = retries(prod, 'gone')
    diag('FIGURES: producer daemon CPU %.2f %% over %.1f s (%.2f s utime+stime); %d retry '
         'lines in the window, %d log lines; delays ms %s'
         % (cpu, t1 - t0, cpu1 - cpu0, n1 - n0, len(window), [ms for _, ms in r]))
    check(cpu < 5, 'the waiting producer used %.1f %% CPU' % cpu)
    check(1 <= n1 - n0 <= 15, '%d retry lines in 10 s' % (n1 - n0))
    check([a for a, _ in r] == list(range(1, len(r) + 1)),
          'retry attempts not numbered 1..n (one line per attempt): %r' % r)
    # nothing else repeats per attempt: at most the retry line and one more
    other = [l for l in window if 'gone' in l and not re.search(RETRY % 'gone', l)]
    check(len(other) <= n1 - n0 + 1, '%d other lines about the producer in the window:\n%s'
          % (len(other), '\n'.join(other[:10])))
    p = producer(prod, 'gone')
    check(p is not None and p['digest_mismatches'] == 0, 'producer: %r' % p)
    tap.check(min_verified=p['digests_verified'])
    prod.check_clean_stop()

# ------------------------------------------------------------ c) control permissions


@case('c) control socket mode 0666, group that does not exist: as nobody, stop all / '
      'stop NAME / start / reload exit 4 and change nothing; status and streams exit 0; '
      'root may stop; the loop\'s digests verified by a hashlib tap too')
def _():
    os.chmod(tmpdir(), 0o711)       # nobody reaches the socket by its path only
    ctlbin = tmpfile('wsflowctl')   # a copy nobody may run wherever the build is
    shutil.copy(WSFLOWCTL, ctlbin)
    os.chmod(ctlbin, 0o755)
    d = Daemon()
    with open(d.conf) as f:
        text = f.read()
    text = text.replace('control: { path = "%s"; };' % sock_of(d),
                        'control: { path = "%s"; mode = "0666"; '
                        'group = "wsflow-test-nosuchgroup"; };' % sock_of(d))
    check('nosuchgroup' in text, 'control line not found in %s' % d.conf)
    tap = WSTap(d.port)
    with open(d.conf, 'w') as f:
        f.write(text + 'producers = ( { name = "loop"; url = "%s"; mode = "streaming"; } );\n'
                % tap.url('/'))
    start(d)
    wait_producer(d, 'loop', lambda s: s['digests_verified'] >= 2, 10, '2 verified')
    mode = stat.S_IMODE(os.stat(sock_of(d)).st_mode)
    check(mode == 0o666, 'control socket mode %o, configured 0666' % mode)
    check(re.search(r'control group .*nosuchgroup.* does not exist', d.log_text()),
          'no warning about the missing group:\n' + d.log_tail())
    results = {}
    for args, want in ((('stop', 'all'), 4), (('stop', 'loop'), 4), (('reload',), 4),
                       (('start', d.url('/'), '--bytes', 1000), 4),
                       (('status',), 0), (('streams',), 0), (('-j', 'status'), 0),
                       (('digests',), 0)):
        r = ctl_run(d, *args, user='nobody', ctl=ctlbin)
        results[' '.join(map(str, args))] = r.returncode
        check(r.returncode == want, 'as nobody `wsflowctl %s`: exit %d, want %d\n%s%s'
              % (' '.join(map(str, args)), r.returncode, want, r.stdout, r.stderr))
        if want == 4:
            check('permission denied' in r.stderr, 'no "permission denied": %r' % r.stderr)
    diag('as nobody: %s' % results)
    p1 = producer(d, 'loop')
    check(p1 is not None, 'nobody\'s stop removed the producer')
    p2 = wait_producer(d, 'loop', lambda s: s['digests_verified'] > p1['digests_verified'],
                       10, 'verified growing after nobody\'s stop')
    tap.check(min_verified=p2['digests_verified'])
    diag(tap.summary())
    check(len([s for s in ctl(d, 'streams')['streams'] if s['role'] == 'producer']) == 1,
          'nobody\'s `start` started a producer')
    r = ctl_run(d, 'stop', 'all', ctl=ctlbin)
    check(r.returncode == 0, 'as root `stop all`: exit %d %s' % (r.returncode, r.stderr))
    check(wait_for(lambda: producer(d, 'loop') is None, 5), 'root\'s stop all did not stop')
    d.check_clean_stop()
    tap.check()
    tap.close()

# ------------------------------------------------------------ d) config files

GOOD = 'log_level = "info";\nserver: { batch_size = 1048576; };\n'


def refused_promptly(path, what, reason):
    """wsflowd -n -f path: exit 78 within 5 s with 'path...: reason'."""
    t = time.monotonic()
    try:
        r = subprocess.run([WSFLOWD, '-n', '-f', path], capture_output=True, text=True,
                           timeout=5, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise CheckFailed('wsflowd -n -f %s (%s) still running after 5 s: hangs' % (path, what))
    took = time.monotonic() - t
    out = r.stdout + r.stderr
    diag('%s: exit %d in %.2f s: %s' % (what, r.returncode, took, out.strip()))
    check(r.returncode == 78, '%s: exit %d, want 78: %s' % (what, r.returncode, out))
    check(re.search(reason, out), '%s: message %r does not match %r' % (what, out, reason))
    return out


@case('d) @include "/etc/passwd" (line 3) is refused: wsflowd -n exits 78 with FILE:3:, '
      'and the daemon does not start (78)')
def _():
    conf = tmpfile('include.conf', GOOD + '@include "/etc/passwd"\n')
    out = refused_promptly(conf, '@include', re.escape(conf) + r':3: .*include')
    check('root:' not in out, 'the message quotes /etc/passwd: %r' % out)
    r = run_wsflowd(['-d', '-f', conf], timeout=5)
    check(r.returncode == 78, 'wsflowd -d -f include.conf: exit %d' % r.returncode)


@case('d) -f /dev/zero, a directory, a 2 MiB file (comments only) are refused '
      'at once (exit 78, why)')
def _():
    refused_promptly('/dev/zero', '/dev/zero', r'/dev/zero: not a regular file')
    refused_promptly(tmpdir(), 'a directory', r'not a regular file|[Ii]s a directory')
    big = tmpfile('big.conf')
    with open(big, 'w') as f:
        f.write(GOOD)
        line = '# ' + 'x' * 97 + '\n'
        f.write(line * (2 * MiB // len(line) + 1))
    refused_promptly(big, '2 MiB file', r'big\.conf: .*too large')
    ok = tmpfile('ok.conf', GOOD)
    r = run_wsflowd(['-n', '-f', ok], timeout=5)
    check(r.returncode == 0, 'the good config is refused: %s' % (r.stdout + r.stderr))


@case('d) -f FIFO (nobody writing) is refused within 5 s, not waited on')
def _():
    fifo = os.path.join(tmpdir(), 'fifo.conf')
    os.mkfifo(fifo)
    refused_promptly(fifo, 'FIFO', r'fifo\.conf: not a regular file')


def unblock_fifo(path):
    """Open the FIFO's write end (non-blocking) and close it: a reader
    blocked in open() gets EOF."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        return True
    except OSError:
        return False


@case('d) reload with the config path replaced by a FIFO / a 2 MiB file: refused '
      '(wsflowctl reload exit 1) within 5 s, the daemon keeps serving')
def _():
    d = start(Daemon())
    with open(d.conf) as f:
        good = f.read()
    os.rename(d.conf, d.conf + '.good')
    try:
        with open(d.conf, 'w') as f:
            f.write(good + '#' * (2 * MiB) + '\n')
        r = ctl_run(d, 'reload', timeout=5)
        check(r.returncode == 1 and 'too large' in r.stdout + r.stderr,
              'reload of a 2 MiB file: exit %d %r' % (r.returncode, r.stdout + r.stderr))
        os.unlink(d.conf)
        os.mkfifo(d.conf)
        t = time.monotonic()
        try:
            r = subprocess.run([WSFLOWCTL, '-s', sock_of(d), 'reload'], capture_output=True,
                               text=True, timeout=5, stdin=subprocess.DEVNULL)
            took = time.monotonic() - t
        except subprocess.TimeoutExpired:
            alive = False
            try:
                c = WSClient(d.port, '/message', timeout=2)
                c.send_frame(b'x')
                alive = c.recv_message()[1] == hexdigest(b'x').encode()
            except Exception:
                pass
            unblocked = unblock_fifo(d.conf)
            raise CheckFailed('wsflowctl reload with the config a FIFO: no answer in 5 s; '
                              'the daemon %s serving meanwhile (%s)'
                              % ('kept' if alive else 'stopped',
                                 'it recovered when a writer opened the FIFO'
                                 if unblocked else 'nothing blocked on the FIFO'))
        diag('reload of a FIFO: exit %d in %.2f s: %s' % (r.returncode, took,
                                                         (r.stdout + r.stderr).strip()))
        check(r.returncode == 1 and 'not a regular file' in r.stdout + r.stderr,
              'reload of a FIFO: exit %d %r' % (r.returncode, r.stdout + r.stderr))
        c = WSClient(d.port, '/message')
        c.send_frame(b'abc')
        check(c.recv_message()[1] == hexdigest(b'abc').encode(), 'wrong digest after reload')
        c.close()
    finally:
        if os.path.exists(d.conf):
            os.unlink(d.conf)
        os.rename(d.conf + '.good', d.conf)
    d.check_clean_stop()

# ------------------------------------------------------------ e) TLS


def self_signed(cert, key, subj, san):
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                    '-subj', subj, '-addext', 'subjectAltName=' + san,
                    '-keyout', key, '-out', cert],
                   check=True, capture_output=True, timeout=60)


@case('e) wss listener with a throw-away self-signed cert (SAN IP:127.0.0.1 only): '
      'verify = true without ca -> not connected, log says why; ca = CERT -> verified; '
      'verify = false -> verified; ca = CERT but url host "localhost" -> refused')
def _():
    srv = Daemon(tls=True)
    key = srv.cert[:-len('cert.pem')] + 'key.pem'
    self_signed(srv.cert, key, '/CN=wsflow-test', 'IP:127.0.0.1')
    start(srv)
    url = 'wss://127.0.0.1:%d/' % srv.tls_port
    prod = producer_daemon([
        ('noca', url, dict(mode='streaming', tls={'verify': True})),
        ('ca', url, dict(mode='streaming', tls={'ca': srv.cert})),
        ('noverify', url, dict(mode='streaming', tls={'verify': False})),
        ('wronghost', 'wss://localhost:%d/' % srv.tls_port,
         dict(mode='streaming', tls={'ca': srv.cert})),
    ])
    for name in ('ca', 'noverify'):
        wait_producer(prod, name, lambda s: s['digests_verified'] >= 3, 15,
                      '3 verified over TLS')
    check(wait_for(lambda: len(retries(prod, 'noca')) >= 2
                   and len(retries(prod, 'wronghost')) >= 2, 10),
          'the refused producers did not retry twice:\n' + prod.log_tail())
    for name in ('noca', 'wronghost'):
        s = producer(prod, name)
        check(s is not None and s['bytes'] == 0 and s['digests_verified'] == 0
              and s['state'] in ('backoff', 'connecting'),
              '%s connected although it must not: %r' % (name, s))
    # why: on the producer's own retry line, nowhere else
    lines = prod.log_text().splitlines()
    for n, reason in (('noca', r'self[- ]signed|unable to get local issuer'),
                      ('wronghost', r'hostname mismatch|[Hh]ost.*mismatch')):
        own = [i for i, l in enumerate(lines) if re.search(RETRY % n, l)]
        check(own, '%s: no retry line' % n)
        hits = [lines[i] for i in own if re.search(reason, lines[i])]
        check(hits, '%s: its retry line does not say why (%s):\n%s'
              % (n, reason, '\n'.join(lines[max(0, own[0] - 3):own[0] + 1])))
        diag('%s: %s' % (n, hits[0]))
    for name in ('ca', 'noverify'):
        s = producer(prod, name)
        check(s['digest_mismatches'] == 0, '%s: %r' % (name, s))
        diag('%s: %d bytes, %d verified' % (name, s['bytes'], s['digests_verified']))
    servers = [s for s in ctl(srv, 'streams')['streams'] if s['role'] == 'server']
    check(len(servers) == 2, 'the wss server has %d streams, want 2 (ca, noverify): %r'
          % (len(servers), servers))
    prod.check_clean_stop()
    srv.check_clean_stop()

# ------------------------------------------------------------ f) never-reading client


def server_stream(d):
    ss = [x for x in ctl(d, 'streams')['streams'] if x['role'] == 'server']
    check(len(ss) == 1, 'want 1 server stream: %r' % ss)
    return ss[0]


@case('f) a client at /stream that never reads its digests while sending 64 MiB '
      '(batch 512: 131072 digests owed): wsflowd stops reading it, VmRSS grows < 4 MiB, '
      'another client\'s digests come correct and prompt; reading again resumes it')
def _():
    d = start(Daemon(batch_size=512, idle_timeout=0))
    s = socket.create_connection(('127.0.0.1', d.port), 10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(('GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n'
               'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
               'Sec-WebSocket-Version: 13\r\n\r\n').encode())
    head = b''
    while b'\r\n\r\n' not in head:
        chunk = s.recv(1)               # byte by byte: leave the digests unread
        check(chunk, 'closed during the handshake')
        head += chunk
    check(head.startswith(b'HTTP/1.1 101'), 'handshake: %r' % head)
    time.sleep(0.3)
    rss0 = d.rss_kib()
    block = os.urandom(MiB)
    total = 64 * MiB
    sent = [0]
    stop = threading.Event()

    def sender():
        try:
            s.sendall(frame_header(total))      # zero mask key: octets as is
            for _ in range(64):
                view = memoryview(block)
                while view and not stop.is_set():
                    try:
                        n = s.send(view)
                    except socket.timeout:
                        continue
                    view = view[n:]
                    sent[0] += n
                if stop.is_set():
                    return
        except OSError:
            pass
    s.settimeout(0.2)
    t = threading.Thread(target=sender, daemon=True)
    t.start()
    samples = [rss0]
    last, still = -1, 0
    deadline = time.monotonic() + 40 * SLOW
    while time.monotonic() < deadline and t.is_alive():
        time.sleep(0.5)
        samples.append(d.rss_kib())
        still = still + 1 if sent[0] == last else 0
        last = sent[0]
        if still >= 6:                  # no progress for 3 s: it is held back
            break
    held = t.is_alive()
    st1 = server_stream(d)
    time.sleep(2)
    st2 = server_stream(d)
    # meanwhile a second client is served
    c = WSClient(d.port, '/frame', timeout=5)
    t0 = time.monotonic()
    h = b''
    lat = []
    for i in range(20):                 # one message of 20 frames
        payload = block[i * 50000:(i + 1) * 50000]
        h += payload
        t1 = time.monotonic()
        c.send_frame(payload, opcode=0 if i else 2, fin=i == 19)
        got = c.recv_digests(1)[0]
        lat.append(time.monotonic() - t1)
        check(got == hexdigest(h), 'second client: digest %d wrong' % i)
    took = time.monotonic() - t0
    c.close()
    samples.append(d.rss_kib())
    growth = max(samples) - rss0
    diag('FIGURES: the never-reading client got %.1f MiB of 64 MiB out before being held '
         '(%s); wsflowd read %d octets of it and sent %d digests, then nothing for 2 s '
         '(%d octets; state "%s", %d backpressure pauses, backpressure_usec %s); VmRSS '
         '%d KiB -> max %d KiB (growth %d KiB); second client: 20 digests in %.3f s '
         '(max %.3f s each)'
         % (sent[0] / MiB, 'sender blocked' if held else 'sender finished', st1['bytes'],
            st1['digests'], st2['bytes'], st2['state'], st2['backpressure_pauses'],
            st2.get('backpressure_usec'), rss0, max(samples), growth, took, max(lat)))
    check(held, 'the sender got all 64 MiB out: nothing held it back')
    check(st2['bytes'] == st1['bytes'] < total,
          'wsflowd kept reading from a peer that reads nothing: %d -> %d octets'
          % (st1['bytes'], st2['bytes']))
    check(st2['backpressure_pauses'] >= 1, 'no backpressure pause counted: %r' % st2)
    check(took < 2 * SLOW, 'second client needed %.2f s for 20 digests' % took)
    if SANITIZE:
        diag('RSS bound not checked under ASan')
    else:
        check(growth < 4096, 'VmRSS grew %d KiB' % growth)
    # the peer reads again: the stream resumes, every digest correct
    want = []
    hh = hashlib.sha256()
    for i in range(64):
        for off in range(0, MiB, 512):
            hh.update(block[off:off + 512])
            want.append(hh.hexdigest())
            if len(want) >= st2['digests'] + 20000:
                break
        if len(want) >= st2['digests'] + 20000:
            break
    # (a 4 KiB receive window crawls on loopback: open it up)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    buf, got, bad = b'', 0, 0
    t0 = time.monotonic()
    while got < len(want) and time.monotonic() - t0 < 10 * SLOW:
        try:
            chunk = s.recv(1 << 16)
        except socket.timeout:
            continue
        check(chunk, 'connection closed after %d digests' % got)
        buf += chunk
        i = 0
        while len(buf) - i >= 66 and got < len(want):
            check(buf[i] == 0x81 and buf[i + 1] == 64, 'not a digest frame: %r'
                  % buf[i:i + 2])
            bad += buf[i + 2:i + 66].decode() != want[got]
            got += 1
            i += 66
        buf = buf[i:]
    st3 = server_stream(d)
    diag('reading again: %d digests read in %.1f s (%d wrong); wsflowd read %d -> %d octets'
         % (got, time.monotonic() - t0, bad, st2['bytes'], st3['bytes']))
    check(bad == 0, '%d wrong digests' % bad)
    # Resumed = wsflowd reads again and the digests keep coming right.
    # (Not "more than st2's digests": those sit in the kernel's send
    # queue, megabytes of them, and the small window drains it slowly.)
    check(got > 0 and st3['bytes'] > st2['bytes'],
          'the stream did not resume: %d digests read, %d -> %d octets'
          % (got, st2['bytes'], st3['bytes']))
    stop.set()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.close()
    t.join(5)
    check(wait_for(lambda: ctl(d, 'status')['server']['connections'] == 0, 5),
          'the dropped never-reading stream is still counted')
    d.check_clean_stop()


run_cases()                             # TEST_ONLY=a,f while debugging
