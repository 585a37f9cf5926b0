#!/usr/bin/python3
# timeout: 180
"""Promises of interface.md that no other test held to (issue #16 item 10).

a) server.workers = 3 gives exactly the worker threads wsflowd-w0..w2,
   workers = 1 exactly wsflowd-w0.
b) server.metrics = false: GET /metrics and /healthz are 404 (a default
   daemon answers 200 to both), WebSocket streams still served.
c) server.idle_timeout = 0: a silent client is never sent away (one with
   idle_timeout = 1 gets 1001 "idle timeout" in the same time), and its
   next batch gets hashlib's digest.
d) a producer's batch_size: mode streaming, batch_size 4096, bytes 1 MiB
   against the Autobahn streaming server with --batch-size 4096: exactly
   256 digests, all verified (the server counts 256 sent).
e) server.framing is re-read at reload: "wsflow" refuses an unmasked frame
   with 1002, after a reload to "lws" a new connection's unmasked frame is
   hashed, after a reload back it is refused again.
f) log_level and -v: log_level = "warning" logs a warning (a restart-only
   change at reload) but no notice or info line; with -v the same file
   logs a stream's info line.
g) the default -f: wsflowd -n without -f reads /etc/wsflow/wsflow.conf
   (a file overlaid on /etc in a private mount namespace; the real /etc
   is not written): FILE:LINE of a broken one and exit 78, "configuration
   OK" for a good one.
h) SIGINT stops like SIGTERM: a live stream gets close 1001 "shutting
   down", the daemon exits 0.
i) wsflowctl --json (the long form of -j): status and streams as JSON
   with the fields of interface.md §4, the daemon's pid.
j) listen address "*": one listener reached at 127.0.0.1 and at ::1.
k) listen address "::1": reached at ::1 with a digest; 127.0.0.1 refused.
l) socket activation beside configured listeners: port A from
   systemd-socket-activate, port B only in the file: both serve, status
   lists both.
m) make install keeps an existing /etc/wsflow/wsflow.conf byte for byte
   (and mode) and says so; a fresh one is written and checks OK.
n) reload restarts a changed producer (new id, new rate), leaves an
   unchanged one and an ad-hoc one alone (same ids, still sending).

The other promises of that item are held elsewhere: reconnect = false
(test_errors, "reconnect = false" cases: the producer ends as failed),
RestartPreventExitStatus=78 (test_systemd 13: NRestarts 0 after exit 78),
a member of the group running changing commands (test_systemd 9), the
handshake-then-frames sequence (tests/fuzz/fuzz_upgraded.c, test_fuzz.sh).
j) found "*" bound to 0.0.0.0 only (fixed in listen.c).
"""
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess

from wsflowtest import (BUILD, PEERS, SANITIZE, SLOW, SRCDIR, WSFLOWD, CheckFailed, Closed,
                        Daemon, Skip, WSClient, case, check, config_text, diag, frame_header,
                        free_port, hexdigest, lc_value, run_cases, run_wsflowd, start_peer,
                        terminate, tmpdir, tmpfile, wait_for, wait_peer, wait_value)

WSFLOWCTL = os.environ.get('WSFLOWCTL') or os.path.join(os.path.dirname(WSFLOWD), 'wsflowctl')
KiB, MiB = 1 << 10, 1 << 20

# ------------------------------------------------------------ helpers


def ctl(d, *args, sock=None, json_opt='-j'):
    """wsflowctl JSON: (exit status, parsed JSON or None, stderr)."""
    argv = [WSFLOWCTL] + ([json_opt] if json_opt else []) + \
        ['-s', sock or d.ctl_sock] + [str(a) for a in args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=10 * SLOW,
                       stdin=subprocess.DEVNULL)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        out = None
    return r.returncode, out, r.stderr


def ctl_ok(d, *args):
    rc, out, err = ctl(d, *args)
    check(rc == 0 and out is not None, 'wsflowctl %s: exit %d %r %s'
          % (' '.join(map(str, args)), rc, out, err))
    return out


def streams(d):
    return ctl_ok(d, 'streams')['streams']


def by_name(d, name):
    return [s for s in streams(d) if s['name'] == name]


def http_status(port, path, host='127.0.0.1'):
    """GET path: (status, body)."""
    with socket.create_connection((host, port), 10 * SLOW) as s:
        s.sendall(('GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
                   % path).encode())
        s.settimeout(10 * SLOW)
        got = b''
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
            head, sep, body = got.partition(b'\r\n\r\n')
            m = re.search(rb'\r\ncontent-length: *(\d+)', head, re.I)
            if sep and m and len(body) >= int(m.group(1)):
                break
    head, _, body = got.partition(b'\r\n\r\n')
    m = re.match(rb'HTTP/1\.[01] (\d{3}) ', head)
    check(m, 'no HTTP status line from %s: %r' % (path, got[:200]))
    return int(m.group(1)), body


def one_digest(port, host='127.0.0.1', n=1024):
    """A 1024-octet message at /message: its digest must be hashlib's."""
    c = WSClient(port, '/message', host=host)
    data = os.urandom(n)
    c.send_frame(data)
    got = c.recv_digests(1)[0]
    check(got == hexdigest(data), 'digest at [%s]:%d: %s, want %s'
          % (host, port, got, hexdigest(data)))
    check(c.close() == 1000, 'close not echoed with 1000')


def log_lines(d, pattern):
    return [l for l in d.log_text().splitlines() if re.search(pattern, l)]


def rewrite(d, **server):
    """Replace d's configuration (same listener and control socket)."""
    with open(d.conf, 'w') as f:
        f.write(config_text([d.port], control_path=d.ctl_sock, **server))


def producers_text(entries):
    return 'producers = (\n  %s\n);\n' % ',\n  '.join(
        '{ %s }' % ' '.join('%s = %s;' % (k, lc_value(v)) for k, v in e.items())
        for e in entries)


def unmasked_frame_answer(d):
    """An unmasked 1 KiB binary message at /message: the close code it
    gets (1002 from wsflowd's parser), or 'digests' if it is hashed."""
    c = WSClient(d.port, '/message')
    data = os.urandom(KiB)
    b = frame_header(len(data), 2, True)
    c.send(bytes([b[0], b[1] & 0x7f]) + b[2:-4] + data)   # mask bit clear, no key
    try:
        got = c.recv_digests(1)[0]
        check(got == hexdigest(data), 'unmasked frame hashed wrong: %s' % got)
        c.close()
        return 'digests'
    except Closed as e:
        return e.code
    finally:
        c.sock.close()

# ------------------------------------------------------------ a) workers


@case('a) server.workers = 3: exactly the threads wsflowd-w0, w1, w2; workers = 1: exactly w0')
def _():
    for n in (3, 1):
        d = Daemon(workers=n).start()
        want = ['wsflowd-w%d' % i for i in range(n)]

        def names():
            out = []
            for t in os.listdir('/proc/%d/task' % d.pid):
                try:
                    with open('/proc/%d/task/%s/comm' % (d.pid, t)) as f:
                        c = f.read().strip()
                except OSError:
                    continue
                if c.startswith('wsflowd-w'):
                    out.append(c)
            return sorted(out)
        got = wait_value(d, names, lambda v: v == want, 5, 'worker threads %s' % want,
                         'workers = %d' % n)
        diag('workers = %d: %s' % (n, got))
        one_digest(d.port)
        d.check_clean_stop()

# ------------------------------------------------------------ b) metrics


@case('b) server.metrics = false: GET /metrics and /healthz get 404 (200 with the default), '
      'a stream is still hashed')
def _():
    on = Daemon().start()
    st, body = http_status(on.port, '/metrics')
    check(st == 200 and b'wsflow_' in body, 'default: /metrics %d %r' % (st, body[:100]))
    st, body = http_status(on.port, '/healthz')
    check(st == 200 and body == b'ok\n', 'default: /healthz %d %r' % (st, body[:100]))
    on.check_clean_stop()
    off = Daemon(metrics=False).start()
    for path in ('/metrics', '/healthz'):
        st, body = http_status(off.port, path)
        check(st == 404, 'metrics = false: GET %s answered %d %r' % (path, st, body[:100]))
    one_digest(off.port)
    off.check_clean_stop()

# ------------------------------------------------------------ c) idle_timeout = 0


@case('c) server.idle_timeout = 0: a client silent for 3 s is not sent away (idle_timeout = 1 '
      'sends it 1001 "idle timeout" in that time), then its batch gets hashlib\'s digest')
def _():
    ref = Daemon(idle_timeout=1, batch_size=KiB).start()
    c = WSClient(ref.port, '/stream')
    try:
        c.sock.settimeout(4 * SLOW)
        c.recv_message()
        raise CheckFailed('idle_timeout = 1: a message, not a close')
    except Closed as e:
        check(e.code == 1001 and 'idle timeout' in str(e),
              'idle_timeout = 1: %s, want 1001 idle timeout' % e)
    except socket.timeout:
        raise CheckFailed('idle_timeout = 1: no close within 4 s')
    c.sock.close()
    ref.check_clean_stop()

    d = Daemon(idle_timeout=0, batch_size=KiB).start()
    c = WSClient(d.port, '/stream')
    got = c.expect_silence(3)
    check(got is None, 'idle_timeout = 0: the server sent %r to a silent client' % got)
    data = os.urandom(KiB)
    c.send_frame(data)
    got = c.recv_digests(1)[0]
    check(got == hexdigest(data), 'after 3 s silent: digest %s, want %s' % (got, hexdigest(data)))
    check(c.close() == 1000, 'close not echoed with 1000')
    d.check_clean_stop()

# ------------------------------------------------------------ d) producer batch_size


@case('d) a producer\'s batch_size = 4096 (mode streaming, bytes 1 MiB) against the Autobahn '
      'streaming server at --batch-size 4096: 256 digests, 256 verified, 0 mismatched')
def _():
    port = free_port()
    p = start_peer('server_streaming.py', '--port', port, '--batch-size', 4096,
                   '--seconds', 60 * SLOW)

    def up():
        check(p.poll() is None, 'server_streaming.py exited %s' % p.returncode)
        try:
            socket.create_connection(('127.0.0.1', port), 0.5).close()
            return True
        except OSError:
            return False
    check(wait_for(up, 20, 0.05), 'server_streaming.py not listening on %d' % port)
    d = Daemon()
    with open(d.conf, 'a') as f:
        f.write(producers_text([dict(name='p', url='ws://127.0.0.1:%d/' % port,
                                     mode='streaming', batch_size=4096, bytes=MiB,
                                     reconnect=False)]))
    d.start()

    def show():
        rc, out, _ = ctl(d, 'show', 'p')
        return out['stream'] if rc == 0 and out else None
    s = wait_value(d, show, lambda s: s['state'] != 'connecting' and
                   s['state'] in ('finished', 'failed', 'stopped'), 30, 'the end', 'p')
    diag('p: state %s, bytes %s, verified %s, mismatched %s' % (
        s['state'], s['bytes'], s['digests_verified'], s['digest_mismatches']))
    check(s['state'] == 'finished' and s['bytes'] == MiB and s['digests_verified'] == 256 and
          s['digest_mismatches'] == 0, 'p ended %s' % json.dumps(s))
    terminate(p)
    rc, res = wait_peer(p)
    diag('server_streaming.py: %s' % json.dumps(res))
    sent = res.get('digests_sent', res.get('digests'))
    check(sent == 256, 'the server sent %r digests, want 256: %s' % (sent, json.dumps(res)))
    d.check_clean_stop()

# ------------------------------------------------------------ e) framing at reload


@case('e) server.framing re-read at reload: "wsflow" answers an unmasked frame with 1002; '
      'reloaded to "lws" a new connection\'s is hashed; reloaded back, 1002 again')
def _():
    d = Daemon().start()
    check(unmasked_frame_answer(d) == 1002, 'framing "wsflow": unmasked frame not refused 1002')
    rewrite(d, framing='lws')
    ctl_ok(d, 'reload')
    got = unmasked_frame_answer(d)
    check(got == 'digests', 'after a reload to framing "lws": %r, want the digest' % got)
    rewrite(d)
    ctl_ok(d, 'reload')
    got = unmasked_frame_answer(d)
    check(got == 1002, 'after a reload back to "wsflow": %r, want 1002' % got)
    d.check_clean_stop()

# ------------------------------------------------------------ f) log_level, -v


LEVEL = r' wsflowd (error|warning|notice|info|debug): '


@case('f) log_level = "warning": a warning is logged, no notice/info line (a stream, a '
      'reload); -v with the same file: the stream\'s info line')
def _():
    d = Daemon(log_level='warning').start()
    one_digest(d.port)
    wait_value(d, lambda: ctl_ok(d, 'status')['server'],
               lambda s: s['connections_total'] == 1 and s['connections'] == 0, 5,
               'the stream ended', 'status')
    rewrite(d, log_level='warning', workers=2)     # workers: a restart-only change
    ctl_ok(d, 'reload')
    check(wait_for(lambda: log_lines(d, r' wsflowd warning: .*take effect at restart'), 5),
          'no warning for the restart-only change:\n' + d.log_tail())
    low = log_lines(d, r' wsflowd (notice|info|debug): ')
    check(not low, 'log_level = "warning" logged %d lower lines: %s' % (len(low), low[:3]))
    check(log_lines(d, LEVEL), 'no level word in the log')
    d.check_clean_stop()

    v = Daemon(log_level='warning')
    v.args = ['-v']
    v.start()
    one_digest(v.port)
    check(wait_for(lambda: log_lines(v, r' wsflowd info: .*stream from 127\.0\.0\.1'), 5),
          '-v: no info line for the stream:\n' + v.log_tail())
    dbg = log_lines(v, r' wsflowd debug: ')
    check(not dbg, '-v (one): debug lines %s' % dbg[:3])
    v.check_clean_stop()

# ------------------------------------------------------------ g) default -f


@case('g) no -f: wsflowd -n reads /etc/wsflow/wsflow.conf (overlaid in a private mount '
      'namespace): a broken one gives "/etc/wsflow/wsflow.conf:2:" and 78, a good one OK')
def _():
    if os.geteuid() != 0 or not shutil.which('unshare'):
        raise Skip('needs root and unshare for a private mount namespace')
    had = os.path.exists('/etc/wsflow/wsflow.conf')
    before = open('/etc/wsflow/wsflow.conf', 'rb').read() if had else None
    layer = os.path.join(tmpdir(), 'etc-layer')
    os.makedirs(os.path.join(layer, 'wsflow'), exist_ok=True)
    conf = os.path.join(layer, 'wsflow', 'wsflow.conf')
    # The layer over the real /etc (read-only overlay: nothing written there).
    script = ('mount --make-rprivate / && mount -t overlay overlay -o lowerdir=%s:/etc /etc '
              '&& exec "$0" -n' % layer)

    def check_default(text):
        with open(conf, 'w') as f:
            f.write(text)
        r = subprocess.run(['unshare', '-m', 'sh', '-c', script, WSFLOWD], capture_output=True,
                           text=True, timeout=20 * SLOW, stdin=subprocess.DEVNULL)
        if 'mount' in r.stderr and r.returncode not in (0, 78):
            raise Skip('no overlay mount here: %s' % r.stderr.strip()[:200])
        return r
    r = check_default('log_level = "info";\nserver: { bogus_promise_key = 1; };\n')
    check(r.returncode == 78 and r.stderr.startswith('/etc/wsflow/wsflow.conf:2:') and
          'bogus_promise_key' in r.stderr,
          'broken default file: exit %d, stderr %r, stdout %r' % (r.returncode, r.stderr, r.stdout))
    r = check_default('log_level = "info";\nserver: { listen = ( ); };\n')
    check(r.returncode == 0 and r.stdout == 'configuration OK\n',
          'good default file: exit %d, stdout %r, stderr %r' % (r.returncode, r.stdout, r.stderr))
    after = open('/etc/wsflow/wsflow.conf', 'rb').read() \
        if os.path.exists('/etc/wsflow/wsflow.conf') else None
    check(after == before, 'the real /etc/wsflow/wsflow.conf changed')

# ------------------------------------------------------------ h) SIGINT


@case('h) SIGINT while a client streams: close 1001 "shutting down", exit 0')
def _():
    d = Daemon(batch_size=KiB).start()
    c = WSClient(d.port, '/stream')
    data = os.urandom(KiB)
    c.send_frame(data, fin=False)
    check(c.recv_digests(1)[0] == hexdigest(data), 'first batch digest wrong')
    os.kill(d.pid, signal.SIGINT)
    try:
        c.recv_message()
        raise CheckFailed('a message after SIGINT, not a close')
    except Closed as e:
        check(e.code == 1001 and 'shutting down' in str(e), 'after SIGINT: %s' % e)
    c.sock.close()
    try:
        rc = d.proc.wait(10 * SLOW)
    except subprocess.TimeoutExpired:
        raise CheckFailed('still running 10 s after SIGINT')
    check(rc == 0, 'exit %d after SIGINT' % rc)
    check(not d.sanitizer_errors(), 'sanitizer: %s' % d.sanitizer_errors()[:3])

# ------------------------------------------------------------ i) --json


@case('i) wsflowctl --json status / streams: JSON with version, pid (the daemon\'s), '
      'uptime_sec, server and producers totals; streams a list')
def _():
    d = Daemon().start()
    rc, st, err = ctl(d, 'status', json_opt='--json')
    check(rc == 0 and isinstance(st, dict), '--json status: exit %d, not JSON: %s' % (rc, err))
    check(st.get('pid') == d.pid and isinstance(st.get('version'), str) and
          isinstance(st.get('uptime_sec'), (int, float)), '--json status: %s' % st)
    for k in ('connections', 'connections_total', 'bytes_received', 'digests_sent'):
        check(isinstance(st['server'].get(k), int), 'status server.%s: %s' % (k, st['server']))
    for k in ('running', 'bytes_sent', 'digests_received', 'digests_verified',
              'digest_mismatches'):
        check(isinstance(st['producers'].get(k), int), 'status producers.%s' % k)
    rc, sts, err = ctl(d, 'streams', json_opt='--json')
    check(rc == 0 and isinstance(sts, dict) and isinstance(sts.get('streams'), list),
          '--json streams: exit %d %r %s' % (rc, sts, err))
    # and after the command, as a script may write it
    r = subprocess.run([WSFLOWCTL, '-s', d.ctl_sock, 'status', '--json'], capture_output=True,
                       text=True, timeout=10 * SLOW)
    check(r.returncode == 0 and json.loads(r.stdout).get('pid') == d.pid,
          'status --json: exit %d %r' % (r.returncode, r.stdout[:200]))
    d.check_clean_stop()

# ------------------------------------------------------------ j, k) addresses


def listen_on(address):
    d = Daemon()
    with open(d.conf) as f:
        text = f.read()
    with open(d.conf, 'w') as f:
        f.write(text.replace('address = "127.0.0.1"', 'address = "%s"' % address))
    return d


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(('::1', 0))
        return True
    except OSError:
        return False


@case('j) listen address "*": the one listener serves 127.0.0.1 and ::1')
def _():
    if not has_ipv6_loopback():
        raise Skip('no ::1 here')
    d = listen_on('*').start()
    one_digest(d.port, '127.0.0.1')
    one_digest(d.port, '::1')
    d.check_clean_stop()


@case('k) listen address "::1": served at ::1 (digest), 127.0.0.1 refused')
def _():
    if not has_ipv6_loopback():
        raise Skip('no ::1 here')
    d = listen_on('::1')
    d.host = '::1'
    d.start()
    one_digest(d.port, '::1')
    try:
        socket.create_connection(('127.0.0.1', d.port), 2).close()
        raise CheckFailed('127.0.0.1:%d accepted: the listener is not ::1 only' % d.port)
    except ConnectionRefusedError:
        pass
    st = ctl_ok(d, 'status')
    diag('listeners: %s' % st.get('listeners'))
    d.check_clean_stop()

# ------------------------------------------------------------ l) beside socket activation


@case('l) systemd-socket-activate gives port A, the file lists A and B: both serve a digest, '
      'status lists both, exit 0 on SIGTERM')
def _():
    sa = shutil.which('systemd-socket-activate') or '/usr/bin/systemd-socket-activate'
    if not os.access(sa, os.X_OK):
        raise Skip('systemd-socket-activate not installed')
    a, b = free_port(), free_port()
    ctlp = tmpfile('sa.sock')
    conf = tmpfile('sa.conf', config_text([a, b], control_path=ctlp))
    env = {k: v for k, v in os.environ.items()
           if k not in ('NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID', 'LISTEN_FDS',
                        'LISTEN_PID', 'LISTEN_FDNAMES')}
    log = tmpfile('sa.log')
    with open(log, 'wb') as f:
        p = subprocess.Popen([sa, '-l', '127.0.0.1:%d' % a, '-l', ctlp, '--fdname=ws:control',
                              WSFLOWD, '-d', '-f', conf],
                             env=env, stdin=subprocess.DEVNULL, stdout=f, stderr=f)
    try:
        check(wait_for(lambda: os.path.exists(ctlp) or p.poll() is not None, 5) and
              p.poll() is None, 'systemd-socket-activate not listening (exit %s)' % p.poll())
        one_digest(a)           # the first connection starts wsflowd

        def b_up():
            check(p.poll() is None, 'wsflowd exited %s:\n%s' % (p.returncode, open(log).read()))
            try:
                socket.create_connection(('127.0.0.1', b), 0.5).close()
                return True
            except OSError:
                return False
        check(wait_for(b_up, 10), 'configured port %d not accepting:\n%s' % (b, open(log).read()))
        one_digest(b)
        rc, st, err = ctl(None, 'status', sock=ctlp)
        check(rc == 0 and st.get('pid') == p.pid, 'status: %d %r %s' % (rc, st, err))
        ports = sorted(l.get('port') for l in st.get('listeners', []))
        check(ports == sorted([a, b]), 'status listeners %s, want ports %s'
              % (st.get('listeners'), sorted([a, b])))
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(10 * SLOW)
        except subprocess.TimeoutExpired:
            rc = 'still running 10 s after SIGTERM'
        check(rc == 0, 'exit %s on SIGTERM:\n%s' % (rc, open(log).read()[-2000:]))
    finally:
        terminate(p)

# ------------------------------------------------------------ m) install keeps the config


@case('m) make install DESTDIR: a fresh /etc/wsflow/wsflow.conf checks OK and starts no '
      'producer; a second install keeps an edited one byte for byte (and its mode), '
      'saying "keeping"')
def _():
    dest = os.path.join(tmpdir(), 'destdir')

    def install():
        r = subprocess.run(['make', '-s', '-C', SRCDIR, 'install', 'DESTDIR=' + dest,
                            'PREFIX=/usr/local', 'BUILD=' + BUILD,
                            'SANITIZE=' + ('1' if SANITIZE else '0')],
                           capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        check(r.returncode == 0, 'make install: exit %d\n%s%s' % (r.returncode, r.stdout[-1500:],
                                                                 r.stderr[-1500:]))
        return r
    conf = os.path.join(dest, 'etc', 'wsflow', 'wsflow.conf')
    r = install()
    check(os.path.isfile(conf), 'make install wrote no %s' % conf)
    check('keeping' not in r.stdout, 'a fresh install says %r' % r.stdout)
    n = run_wsflowd(['-n', '-f', conf])
    check(n.returncode == 0 and n.stdout == 'configuration OK\n',
          'wsflowd -n on the installed file: %d %r %r' % (n.returncode, n.stdout, n.stderr))
    with open(conf) as f:
        active = [l for l in f if re.match(r'\s*producers\s*=', l)]
    check(not active, 'the installed file starts producers: %s' % active)
    mine = b'# the admin\'s own\nlog_level = "notice";\nserver: { batch_size = 4096; };\n'
    with open(conf, 'wb') as f:
        f.write(mine)
    os.chmod(conf, 0o640)
    r = install()
    with open(conf, 'rb') as f:
        got = f.read()
    check(got == mine, 'a second make install changed the existing file:\n%r' % got[:300])
    check(stat.S_IMODE(os.stat(conf).st_mode) == 0o640, 'mode %o, want 640'
          % stat.S_IMODE(os.stat(conf).st_mode))
    check('keeping %s' % conf in r.stdout, 'make install did not say "keeping %s": %r'
          % (conf, r.stdout))

# ------------------------------------------------------------ n) reload and producers


@case('n) reload with one producer\'s rate changed: it restarts (new id, new rate); the '
      'unchanged one and an ad-hoc one keep their ids and go on sending')
def _():
    d = Daemon()
    base = open(d.conf).read()
    url = d.url('/')

    def entries(chg_rate):
        return [dict(name='keep', url=url, rate=100000), dict(name='chg', url=url, rate=chg_rate)]
    with open(d.conf, 'a') as f:
        f.write(producers_text(entries(100000)))
    d.start()
    rows = wait_value(d, lambda: streams(d),
                      lambda v: all(any(s['name'] == n and s['bytes'] > 0 for s in v)
                                    for n in ('keep', 'chg')), 10, 'keep and chg sending',
                      'streams')
    ids = {s['name']: s['id'] for s in rows if s['role'] == 'producer'}
    ctl_ok(d, 'start', url, '--rate', 100000, '--name', 'adhoc')
    ad = wait_value(d, lambda: by_name(d, 'adhoc'), lambda v: v and v[0]['bytes'] > 0, 10,
                    'adhoc sending', 'adhoc')[0]
    ids['adhoc'] = ad['id']
    with open(d.conf, 'w') as f:
        f.write(base + producers_text(entries(300000)))
    marks = {n: by_name(d, n)[0]['bytes'] for n in ('keep', 'adhoc')}
    ctl_ok(d, 'reload')
    check(wait_for(lambda: log_lines(d, r'configuration reloaded .*: 1 producer\(s\) stopped, '
                                     r'1 started'), 5),
          'no "1 producer(s) stopped, 1 started":\n' + d.log_tail())
    rows = wait_value(d, lambda: streams(d),
                      lambda v: [s['id'] for s in v if s['name'] == 'chg'] not in ([], [ids['chg']]),
                      5, 'a new chg', 'streams')
    got = {}
    for s in rows:
        if s['role'] == 'producer':
            got.setdefault(s['name'], []).append(s['id'])
    check(got.get('keep') == [ids['keep']] and got.get('adhoc') == [ids['adhoc']],
          'after reload: ids %s, before %s' % (got, ids))
    check(len(got.get('chg', [])) == 1 and got['chg'][0] != ids['chg'],
          'chg after reload: %s, before %s' % (got.get('chg'), ids['chg']))
    rc, out, _ = ctl(d, 'show', ids['chg'])
    diag('old chg: exit %d %s' % (rc, out and out.get('stream', {}).get('state')))
    check(rc == 1 or (out and out['stream']['state'] in ('stopped', 'finished')),
          'the old chg %s still running: %s' % (ids['chg'], out))
    # the new one runs the new entry: 300000 octets/s, more than the old rate could
    new = wait_value(d, lambda: ctl_ok(d, 'show', 'chg')['stream'],
                     lambda s: s['age_sec'] >= 1 and
                     s['bytes'] > 100000 * (s['age_sec'] + 1) + 2 * 65536, 8,
                     'more octets than 100000/s allows', 'chg')
    diag('new chg: %d octets in %d s' % (new['bytes'], new['age_sec']))
    wait_value(d, lambda: {n: by_name(d, n)[0]['bytes'] for n in ('keep', 'adhoc')},
               lambda v: all(v[n] > marks[n] for n in v), 10, 'keep and adhoc sending on',
               'bytes')
    d.check_clean_stop()


if __name__ == '__main__':
    if not os.access(WSFLOWD, os.X_OK):
        raise SystemExit('%s missing: run make' % WSFLOWD)
    run_cases()
