#!/usr/bin/python3
# timeout: 240
"""wsflowctl and wsflowd's control socket (interface.md §4, §1 /metrics).

One daemon ("M") runs for most cases: a listener, a control socket whose
group does not exist (so only root may change things) and three
producers: "loop" (producer mode to /), "fr" (frame mode to /frame), both
autostarted, and "idle" (autostart = false).  Every command is run in text
and JSON form against it; /metrics is compared with `status` and with
what the test itself sent and received (its own client, a hashlib tap
before an ad-hoc producer); the exit
statuses of §4 are provoked; start/stop, reload (file rewritten, broken
files, SIGHUP), raw abuse of the control protocol (daemon/ctl_proto.h)
and a second daemon on the same control path are checked while streams
keep running.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import time

from wsflowtest import (BUILD, SLOW, SRCDIR, WSFLOWD, CheckFailed, Daemon, Skip, WSClient,
                        WSTap, batch_digests, case, check, diag, run_cases, tmpdir,
                        tmpfile, wait_for, free_port)

WSFLOWCTL = os.environ.get('WSFLOWCTL') or os.path.join(SRCDIR, BUILD, 'wsflowctl')
MiB = 1 << 20
PROMPT = 2.0 * SLOW          # "answers promptly"
NOGROUP = 'wsflowtest-nogroup'

STATUS_FIELDS = ['version', 'pid', 'uptime_sec', 'server', 'producers']
SERVER_FIELDS = ['connections', 'connections_total', 'bytes_received', 'digests_sent']
PRODUCER_FIELDS = ['running', 'bytes_sent', 'digests_received', 'digests_verified',
                   'digest_mismatches']
STREAM_FIELDS = ['id', 'role', 'name', 'peer', 'mode', 'state', 'bytes', 'digests',
                 'digests_verified', 'digest_mismatches', 'bytes_per_sec',
                 'backpressure_pauses']
DIGEST_FIELDS = ['id', 'name', 'role', 'digests_sent', 'digests_received',
                 'digests_verified', 'digest_mismatches', 'last_digest']

# ------------------------------------------------------------ wsflowctl


class Ctl:
    """One wsflowctl run."""

    def __init__(self, argv, rc, out, err, elapsed):
        self.argv, self.rc, self.out, self.err, self.elapsed = argv, rc, out, err, elapsed

    @property
    def json(self):
        try:
            return json.loads(self.out)
        except ValueError:
            raise CheckFailed('%s: stdout is not one JSON object: %r (stderr %r)'
                              % (self, self.out[:500], self.err[:300]))

    def __str__(self):
        return 'wsflowctl %s (exit %s)' % (' '.join(self.argv), self.rc)

    def detail(self):
        return '%s\nstdout: %s\nstderr: %s' % (self, self.out[-1500:], self.err[-800:])


def run_ctl(*args, sock=None, user=None, timeout=10):
    """wsflowctl [-s sock] args...; user: a command prefix (setpriv ...)."""
    argv = (['-s', sock] if sock else []) + [str(a) for a in args]
    cmd = (user or []) + [WSFLOWCTL if not user else NOBODY_CTL] + argv
    t0 = time.monotonic()
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True,
                            timeout=timeout * SLOW, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise CheckFailed('wsflowctl %s: no answer within %gs' % (' '.join(argv), timeout * SLOW))
    return Ctl(argv, cp.returncode, cp.stdout, cp.stderr, time.monotonic() - t0)


DAEMONS = {}        # control socket path -> Daemon


def died(r, sock):
    """After an unexpected exit 3: say so plainly if the daemon is dead."""
    d = DAEMONS.get(sock)
    if r.rc == 3 and d is not None and not d.alive():
        why = [l for l in d.log_text().splitlines()
               if 'ERROR: AddressSanitizer' in l or 'SUMMARY:' in l or 'runtime error' in l]
        raise CheckFailed('%s: wsflowd (pid %d) died, exit %s: %s' % (
            r, d.pid, d.proc.returncode, '\n'.join(why[:3]) or d.log_tail(5)))


def ctl_ok(*args, sock=None):
    sock = sock or M.sock
    r = run_ctl(*args, sock=sock)
    if r.rc != 0:
        died(r, sock)
    check(r.rc == 0, 'expected exit 0: ' + r.detail())
    return r


def jctl(*args, sock=None, rc=0):
    """wsflowctl -j args: the parsed object; exit status must be rc."""
    sock = sock or M.sock
    r = run_ctl('-j', *args, sock=sock)
    if r.rc != rc:
        died(r, sock)
    check(r.rc == rc, 'expected exit %d: %s' % (rc, r.detail()))
    return r.json


def fields(obj, names, what):
    missing = [n for n in names if n not in obj]
    check(not missing, '%s lacks %s: %s' % (what, missing, json.dumps(obj)[:600]))


def streams(sock=None):
    out = jctl('streams', sock=sock)
    check(isinstance(out.get('streams'), list), 'streams: no list: %s' % out)
    return out['streams']


def by_name(rows, name):
    return [r for r in rows if r.get('name') == name]


def show(key, sock=None):
    """The live stream as `show` has it, or None (exit 1: no such stream;
    or an ended one, which show also gives, with its end_reason)."""
    sock = sock or M.sock
    r = run_ctl('-j', 'show', key, sock=sock)
    if r.rc == 1:
        return None
    died(r, sock)
    check(r.rc == 0, r.detail())
    out = r.json
    check(isinstance(out.get('stream'), dict), 'show %s: no "stream" object: %s' % (key, out))
    if out['stream'].get('end_reason'):
        return None
    return out['stream']


def status(sock=None):
    return jctl('status', sock=sock)

# ------------------------------------------------------------ daemon + config


def producer_entry(name, url, **keys):
    keys = dict(name=name, url=url, **keys)
    parts = []
    for k, v in keys.items():
        v = ('true' if v else 'false') if isinstance(v, bool) else \
            '"%s"' % v if isinstance(v, str) else str(v)
        parts.append('%s = %s;' % (k, v))
    return '  { %s }' % ' '.join(parts)


def conf_lines(d, producers, mode=None):
    """Config text as a list of lines (so that tests know line numbers)."""
    ctl = 'control: { path = "%s"; group = "%s";%s };' % (
        d.sock, NOGROUP, ' mode = "%s";' % mode if mode else '')
    lines = ['log_level = "info";', ctl, 'server: {',
             '  listen = ( { address = "127.0.0.1"; port = %d; } );' % d.port,
             '};', 'producers = (']
    entries = [producer_entry(n, u, **k) for n, u, k in producers]
    lines += [e + (',' if i < len(entries) - 1 else '') for i, e in enumerate(entries)]
    lines += [');', '']
    return lines


def write_conf(d, lines):
    # same path, rewritten in place (a reload reads the file by its path)
    with open(d.conf, 'w') as f:
        f.write('\n'.join(lines))


def std_producers(d, fr=True, added=False, hup=False):
    p = [('loop', d.url('/'), dict(mode='producer', autostart=True))]
    if fr:
        p.append(('fr', d.url('/frame'), dict(mode='frame', autostart=True)))
    p.append(('idle', d.url('/'), dict(mode='producer', autostart=False)))
    if added:
        p.append(('added', d.url('/message'), dict(mode='message', autostart=True)))
    if hup:
        p.append(('hup', d.url('/'), dict(mode='streaming', autostart=True)))
    return p


def new_daemon(producers_of, mode=None):
    d = Daemon()
    d.sock = os.path.join(tmpdir(), d.name + '.sock')
    DAEMONS[d.sock] = d
    write_conf(d, conf_lines(d, producers_of(d), mode))
    d.start()
    ok_ = wait_for(lambda: os.path.exists(d.sock) and
                   run_ctl('status', sock=d.sock, timeout=5).rc == 0, 10)
    check(ok_, '%s: control socket %s never answered' % (d.name, d.sock))
    return d


M = None


M_DEATHS = []       # exit codes of shared daemons that died under a case


def main_daemon():
    """The shared daemon.  One that died is a failure of the case that finds
    it (and of the final clean-stop case); a replacement keeps later cases
    testing something."""
    global M
    died_rc = None
    if M is not None and not M.alive():
        died_rc = M.proc.poll()
        M_DEATHS.append(died_rc)
        tail = M.log_tail()
    if M is None or not M.alive():
        M = new_daemon(std_producers)
        check(wait_for(lambda: len(by_name(streams(), 'loop')) == 1 and
                       len(by_name(streams(), 'fr')) == 1, 10),
              'loop and fr never showed up: %s' % streams())
    check(died_rc is None, 'the shared wsflowd had died (exit %s); replaced:\n%s'
          % (died_rc, tail if died_rc is not None else ''))
    return M


def log_lines(d, pattern):
    return [l for l in d.log_text().splitlines() if re.search(pattern, l)]


def loop_bytes():
    s = show('loop')
    check(s is not None, 'producer loop is gone: %s' % streams())
    return s['id'], s['bytes']


def daemon_fine(what, before=None):
    """M alive, `status` answers promptly, loop still streams."""
    check(M.alive(), '%s: wsflowd died (exit %s):\n%s' % (what, M.proc.poll(), M.log_tail()))
    r = run_ctl('status', sock=M.sock)
    died(r, M.sock)
    check(r.rc == 0, '%s: status failed afterwards: %s' % (what, r.detail()))
    check(r.elapsed < PROMPT, '%s: status took %.2fs' % (what, r.elapsed))
    if before is not None:
        lid, b0 = before
        grown = []

        def moved():
            s = show('loop')
            grown[:] = [s]
            return s is not None and s['id'] == lid and s['bytes'] > b0
        check(wait_for(moved, 3, 0.1),
              '%s: loop stopped streaming (before id %d bytes %d, now %s)'
              % (what, lid, b0, grown[0] if grown else None))

# ------------------------------------------------------------ raw protocol

HDR = struct.Struct('=IHHII')          # len, version, type, seq, reserved
# The protocol version is the header's, not a copy of it.
with open(os.path.join(os.environ.get('SRCDIR', '.'), 'daemon', 'ctl_proto.h')) as _f:
    CTL_VERSION = int(re.search(r'#define\s+CTL_VERSION\s+(\d+)', _f.read()).group(1))
REQ_STATUS, REQ_STREAMS, REQ_DIGESTS, REQ_START, REQ_STOP, REQ_RELOAD, REQ_STREAMS_ALL = \
    range(1, 8)
REP_STATUS, REP_LISTENER, REP_STREAM, REP_END, REP_RESULT = range(64, 69)
KEY_SIZE, START_SIZE, STATUS_SIZE, RESULT_SIZE = 64, 608, 416, 272
CTL_ERR_BAD_REQUEST, CTL_ERR_VERSION = 1, 2


def msg(mtype, payload=b'', seq=1, version=None, length=None, reserved=0):
    version = CTL_VERSION if version is None else version
    n = HDR.size + len(payload) if length is None else length
    return HDR.pack(n, version, mtype, seq, reserved) + payload


def key(s):
    return s.encode().ljust(KEY_SIZE, b'\0')


def start_payload(name='', url='', flags=0, mode=0, nbytes=0, rate=0, duration=0):
    return (name.encode().ljust(64, b'\0') + url.encode().ljust(512, b'\0') +
            struct.pack('=IIQQII', flags, mode, nbytes, rate, duration, 0))


class Raw:
    """A raw control connection; buf keeps what arrived past a reply."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b''

    def sendall(self, data):
        self.sock.sendall(data)

    def settimeout(self, t):
        self.sock.settimeout(t)

    def recv(self, n):
        return self.sock.recv(n)

    def close(self):
        self.sock.close()


def raw_connect(path=None, timeout=5):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout * SLOW)
    # With a timeout Python's socket is non-blocking underneath: a full
    # listen backlog is EAGAIN (a blocking connect, as wsflowctl's, would
    # wait).  Retry until the daemon has accepted the ones before.
    deadline = time.monotonic() + timeout * SLOW
    while True:
        try:
            s.connect(path or M.sock)
            return Raw(s)
        except BlockingIOError:
            if time.monotonic() > deadline:
                s.close()
                raise CheckFailed('connect %s: backlog still full after %gs'
                                  % (path or M.sock, timeout * SLOW))
            time.sleep(0.005)


def read_reply(s, timeout=3):
    """Messages up to the first RESULT or END: (msgs, how), how being
    'done', 'eof' or 'timeout'.  msgs: (type, seq, payload)."""
    buf, msgs = s.buf, []
    deadline = time.monotonic() + timeout * SLOW
    while True:
        while len(buf) >= HDR.size:
            n, ver, mtype, seq, _ = HDR.unpack_from(buf)
            check(ver == CTL_VERSION and HDR.size <= n <= 4096,
                  'daemon sent a bad header: len %d version %d type %d' % (n, ver, mtype))
            if len(buf) < n:
                break
            msgs.append((mtype, seq, buf[HDR.size:n]))
            buf = s.buf = buf[n:]
            if mtype in (REP_RESULT, REP_END):
                return msgs, 'done'
        left = deadline - time.monotonic()
        if left <= 0:
            return msgs, 'timeout'
        s.settimeout(left)
        try:
            data = s.recv(65536)
        except socket.timeout:
            return msgs, 'timeout'
        except ConnectionError:
            return msgs, 'eof'
        if not data:
            return msgs, 'eof'
        buf = s.buf = buf + data


def result_of(msgs):
    for mtype, seq, p in msgs:
        if mtype == REP_RESULT:
            check(len(p) == RESULT_SIZE, 'RESULT payload of %d octets' % len(p))
            code, _, sid = struct.unpack_from('=IIQ', p)
            return code, sid, p[16:].split(b'\0', 1)[0].decode(errors='replace'), seq
    return None


def status_pid(msgs):
    for mtype, seq, p in msgs:
        if mtype == REP_STATUS:
            check(len(p) == STATUS_SIZE, 'STATUS payload of %d octets' % len(p))
            return struct.unpack_from('=I', p, 48)[0]
    return None


def send_quietly(s, data):
    try:
        s.sendall(data)
    except OSError:
        pass        # the daemon hung up on us first, or stopped reading: allowed


def expect_refusal(what, data, seq=None):
    """Send data on a fresh connection: the daemon must answer a RESULT with
    a non-zero code, or close; a crash or hang fails.  Returns the RESULT."""
    s = raw_connect()
    try:
        send_quietly(s, data)
        msgs, how = read_reply(s)
        res = result_of(msgs)
        check(res is not None or how == 'eof',
              '%s: neither a RESULT nor a close within %gs (got %s, %s)'
              % (what, 3 * SLOW, [m[0] for m in msgs], how))
        if res is not None:
            check(res[0] != 0, '%s: RESULT code 0 (%s)' % (what, res[2]))
            if seq is not None:
                check(res[3] == seq, '%s: RESULT seq %d, not %d' % (what, res[3], seq))
        diag('%s: %s' % (what, 'RESULT %d "%s"' % (res[0], res[2]) if res else 'closed'))
        return res, s
    except Exception:
        s.close()
        raise

# ------------------------------------------------------------ users

NOBODY = None
NOBODY_CTL = WSFLOWCTL
if os.geteuid() == 0:
    if shutil.which('setpriv'):
        NOBODY = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups']
    elif shutil.which('runuser'):
        NOBODY = ['runuser', '-u', 'nobody', '--']

# ============================================================ 1. commands


@case('commands in text and JSON: status, streams, show ID|NAME, digests [ID], help')
def t_read_commands():
    d = main_daemon()
    # status
    r = ctl_ok('status')
    for label in ('Version:', 'PID:', 'Uptime:', 'Server:', 'Producers:', 'Listening:'):
        check(label in r.out, 'status text lacks %s:\n%s' % (label, r.out))
    check(re.search(r'^PID:\s+%d$' % d.pid, r.out, re.M), 'status text: PID is not %d:\n%s'
          % (d.pid, r.out))
    st = status()
    fields(st, STATUS_FIELDS, 'status')
    fields(st['server'], SERVER_FIELDS, 'status.server')
    fields(st['producers'], PRODUCER_FIELDS, 'status.producers')
    check(st['pid'] == d.pid, 'status pid %s, the daemon is %d' % (st['pid'], d.pid))
    check(isinstance(st['version'], str) and st['version'], 'status version %r' % st['version'])
    check(isinstance(st['uptime_sec'], int) and st['uptime_sec'] >= 0, 'uptime %r' % st['uptime_sec'])
    check(st['producers']['running'] >= 2, 'producers running %s' % st['producers'])
    check(st['server']['connections'] >= 2, 'server connections %s' % st['server'])
    # streams
    r = ctl_ok('streams')
    for col in ('ID', 'ROLE', 'NAME', 'MODE', 'STATE', 'BYTES', 'DIGESTS', 'PEER'):
        check(col in r.out.splitlines()[0], 'streams header lacks %s:\n%s' % (col, r.out))
    check(re.search(r'^\d+\s+producer\s+loop\s', r.out, re.M) and
          re.search(r'^\d+\s+producer\s+fr\s', r.out, re.M) and
          re.search(r'^\d+\s+server\s', r.out, re.M), 'streams text rows:\n' + r.out)
    rows = streams()
    for row in rows:
        fields(row, STREAM_FIELDS, 'streams row')
        check(row['role'] in ('server', 'producer'), 'role %r' % row['role'])
    loop, fr = by_name(rows, 'loop'), by_name(rows, 'fr')
    check(len(loop) == 1 and len(fr) == 1, 'loop/fr rows: %s' % rows)
    loop, fr = loop[0], fr[0]
    check(not by_name(rows, 'idle'), 'idle (autostart = false) is running: %s' % rows)
    check(loop['role'] == 'producer' and loop['mode'] == 'producer' and
          loop['peer'] == d.url('/'), 'loop row: %s' % loop)
    check(fr['role'] == 'producer' and fr['mode'] == 'frame' and
          fr['peer'] == d.url('/frame'), 'fr row: %s' % fr)
    servers = [x for x in rows if x['role'] == 'server']
    check(len(servers) == 2 and sorted(x['mode'] for x in servers) == ['frame', 'streaming'],
          'server rows: %s' % servers)
    check(all(x['peer'].startswith('127.0.0.1:') for x in servers), 'server peers: %s' % servers)
    check(wait_for(lambda: show('loop')['digests_verified'] > 0, 5),
          'loop verifies no digest: %s' % show('loop'))
    # show ID, show NAME
    for k in (loop['id'], 'loop'):
        r = ctl_ok('show', k)
        check(re.search(r'^ID:\s+%d$' % loop['id'], r.out, re.M) and
              re.search(r'^Name:\s+loop$', r.out, re.M) and
              re.search(r'^Role:\s+producer$', r.out, re.M), 'show %s text:\n%s' % (k, r.out))
        s = show(k)
        fields(s, STREAM_FIELDS, 'show %s' % k)
        check(s['id'] == loop['id'] and s['name'] == 'loop', 'show %s: %s' % (k, s))
    s = show(servers[0]['id'])
    check(s['role'] == 'server' and s['id'] == servers[0]['id'], 'show server: %s' % s)
    # digests, digests ID, digests NAME
    r = ctl_ok('digests')
    for col in ('ID', 'NAME', 'ROLE', 'SENT', 'RECEIVED', 'VERIFIED', 'MISMATCH'):
        check(col in r.out.splitlines()[0], 'digests header lacks %s:\n%s' % (col, r.out))
    check(re.search(r'^%d\s+loop\s+producer\s' % loop['id'], r.out, re.M),
          'digests text lacks loop:\n' + r.out)
    dg = jctl('digests')
    check(isinstance(dg.get('streams'), list) and len(dg['streams']) >= 4, 'digests: %s' % dg)
    for row in dg['streams']:
        fields(row, DIGEST_FIELDS, 'digests row')
        if row['role'] == 'producer':
            check(row['digests_sent'] == 0 and row['digest_mismatches'] == 0, 'producer: %s' % row)
        else:
            check(row['digests_received'] == 0, 'server row: %s' % row)
    for k in (loop['id'], 'loop'):
        r = ctl_ok('digests', k)
        lines = r.out.strip().splitlines()
        check(len(lines) == 2 and re.match(r'%d\s+loop\s' % loop['id'], lines[1]),
              'digests %s text:\n%s' % (k, r.out))
        one = jctl('digests', k)['streams']
        check(len(one) == 1 and one[0]['id'] == loop['id'] and one[0]['name'] == 'loop' and
              one[0]['digests_received'] > 0 and
              re.fullmatch(r'[0-9a-f]{64}', one[0]['last_digest']), 'digests %s: %s' % (k, one))
    # help (not in the spec's table: an extra) and prefixes
    r = ctl_ok('help')
    for c in ('status', 'streams', 'show', 'start', 'stop', 'digests', 'reload'):
        check(re.search(r'^\s+%s\s' % c, r.out, re.M), 'help lacks %s:\n%s' % (c, r.out))
    names = [c.get('name') for c in jctl('help').get('commands', [])]
    check(set(names) >= {'status', 'streams', 'show', 'start', 'stop', 'digests', 'reload'},
          '-j help: %s' % names)
    check('Version:' in ctl_ok('stat').out, 'stat is not status')
    check(ctl_ok('str').out.startswith('ID '), 'str is not streams')
    check('LAST DIGEST' in ctl_ok('dig').out, 'dig is not digests')
    check(isinstance(jctl('str').get('streams'), list), '-j str')
    r = run_ctl('st', sock=d.sock)
    check(r.rc == 2 and 'ambiguous' in r.err, 'st: ' + r.detail())


@case('commands in text and JSON: start NAME, start URL --mode --bytes --duration --rate --name, stop ID|NAME, reload')
def t_change_commands():
    d = main_daemon()
    # start NAME: text says what it started, id and name
    r = ctl_ok('start', 'idle')
    check(re.fullmatch(r'started producer \d+ idle\n', r.out), 'start idle printed %r' % r.out)
    iid = int(r.out.split()[2])
    s = show('idle')
    check(s and s['id'] == iid and s['role'] == 'producer', 'idle: %s' % s)
    out = jctl('start', 'idle', rc=1)          # already running
    check(out.get('error') and str(iid) in out['error'], 'start idle again: %s' % out)
    # stop NAME (text), then start NAME and stop ID in JSON
    r = ctl_ok('stop', 'idle')
    check(r.out.strip(), 'stop printed nothing')
    check(wait_for(lambda: show('idle') is None, 3), 'idle not gone: %s' % show('idle'))
    out = jctl('start', 'idle')
    check(out.get('status') == 'ok' and isinstance(out.get('id'), int) and out['id'] > iid,
          'start idle JSON: %s' % out)
    iid = out['id']
    check(wait_for(lambda: (show(iid) or {}).get('digests_verified', 0) > 0, 5),
          'idle (again) verifies nothing: %s' % show(iid))
    out = jctl('stop', iid)
    check(out.get('status') == 'ok', 'stop ID JSON: %s' % out)
    check(wait_for(lambda: show(iid) is None, 3), 'idle not gone')
    # start URL with every option: text says id and name
    n = 4000000
    r = ctl_ok('start', d.url('/'), '--mode', 'streaming', '--bytes', n, '--duration', 30,
               '--rate', 2000000, '--name', 'adhoc-t')
    check(re.fullmatch(r'started producer \d+ adhoc-t\n', r.out), 'start URL printed %r' % r.out)
    tid = int(r.out.split()[2])
    s = show(tid)
    check(s and s['name'] == 'adhoc-t' and s['role'] == 'producer' and
          s['mode'] == 'streaming' and s['peer'] == d.url('/'), 'adhoc-t: %s' % s)
    out = jctl('start', d.url('/frame'), '--mode', 'frame', '--name', 'adhoc-j')
    check(out.get('status') == 'ok' and isinstance(out.get('id'), int), 'start URL JSON: %s' % out)
    jid = out['id']
    s = show('adhoc-j')
    check(s and s['id'] == jid and s['mode'] == 'frame' and s['peer'] == d.url('/frame'),
          'adhoc-j: %s' % s)
    out = jctl('stop', 'adhoc-j')
    check(out.get('status') == 'ok' and out.get('id') == jid, 'stop NAME JSON: %s' % out)
    check(wait_for(lambda: show(jid) is None, 3), 'adhoc-j not gone')
    # --duration: an endless producer ends after 1 s
    t1 = time.monotonic()
    did = int(ctl_ok('start', d.url('/'), '--duration', 1, '--name', 'adhoc-d').out.split()[2])
    # --bytes and --rate took effect: ~2 s at 2 MB/s, exactly n octets
    pat = r'\[producer %d adhoc-t\] finished: (\d+) bytes sent' % tid
    check(wait_for(lambda: log_lines(d, pat), 10), 'adhoc-t never finished:\n' + d.log_tail())
    sent = int(re.search(pat, log_lines(d, pat)[0]).group(1))
    check(sent == n, 'adhoc-t --bytes %d sent %d' % (n, sent))
    check(show(tid) is None, 'adhoc-t still listed')
    # The daemon's own clock for the run (its ended record), not ours from
    # before the start: 4 MB at 2 MB/s is 2 s less the first second's
    # burst, however late the producer began.
    ended = jctl('show', tid)['stream']
    check(ended.get('state') == 'finished' and 1.5 <= ended.get('seconds', 0) <= 3 * SLOW,
          'adhoc-t: %d octets at --rate 2000000 ended %s after %.2f s (want finished, '
          '1.5 s at least)' % (n, ended.get('state'), ended.get('seconds', 0)))
    dpat = r'\[producer %d adhoc-d\] finished:' % did
    check(wait_for(lambda: log_lines(d, dpat), 5), 'adhoc-d (--duration 1) never finished')
    took = time.monotonic() - t1
    check(took <= 4 * SLOW, 'adhoc-d --duration 1 took %.2fs' % took)
    ended = jctl('show', did)['stream']
    check(ended.get('end_reason') == 'duration limit' and
          0.95 <= ended.get('seconds', 0) <= 1.5 * SLOW,
          'adhoc-d --duration 1: %s after %.2f s' % (ended.get('end_reason'),
                                                     ended.get('seconds', 0)))
    # reload, unchanged file: text and JSON; loop keeps its id
    lid = show('loop')['id']
    r = ctl_ok('reload')
    check('reload' in r.out, 'reload printed %r' % r.out)
    out = jctl('reload')
    check(out.get('status') == 'ok', 'reload JSON: %s' % out)
    check(show('loop')['id'] == lid, 'loop restarted by a reload of the same file')


@case('status totals agree with streams (live: monotonic; quiescent: exact), stop all, stop a server stream -> 1001')
def t_totals():
    d = main_daemon()
    # Live: streams first, status after: counters only grow, so the totals
    # (which also include finished streams) are >= the sums of the rows.
    rows = streams()
    st = status()
    prod = [r for r in rows if r['role'] == 'producer']
    serv = [r for r in rows if r['role'] == 'server']
    check(st['producers']['bytes_sent'] >= sum(r['bytes'] for r in prod) and
          st['producers']['digests_received'] >= sum(r['digests'] for r in prod) and
          st['producers']['digests_verified'] >= sum(r['digests_verified'] for r in prod) and
          st['server']['bytes_received'] >= sum(r['bytes'] for r in serv) and
          st['server']['digests_sent'] >= sum(r['digests'] for r in serv),
          'totals below the sum of the rows:\n%s\n%s' % (st, rows))
    quiesce()
    st, rows = Q['status'], Q['streams']
    prod = [r for r in rows if r['role'] == 'producer']
    serv = [r for r in rows if r['role'] == 'server']
    check(st['server']['connections'] == len(serv) == 2,
          'connections %d, server rows %d (want 2)' % (st['server']['connections'], len(serv)))
    check(st['producers']['running'] == len(prod) == 0, 'producers running: %s' % st)
    # producer totals include the finished streams: >= the (empty) sum
    check(st['producers']['bytes_sent'] >= sum(r['bytes'] for r in prod), str(st))
    check(st['server']['bytes_received'] >= sum(r['bytes'] for r in serv) >= Q['sent'],
          'server bytes %d, rows %s, we sent %d' % (st['server']['bytes_received'], serv, Q['sent']))
    check(st['producers']['digests_verified'] == st['producers']['digests_received'] and
          st['producers']['digest_mismatches'] == 0, 'producers: %s' % st['producers'])
    check(st['server']['connections_total'] >= 4 + 2, 'connections_total %s' % st['server'])
    mine = [r for r in serv if r['peer'] == '127.0.0.1:%d' % Q['c1'].sock.getsockname()[1]]
    check(len(mine) == 1 and mine[0]['bytes'] == Q['sent'] and mine[0]['digests'] == 1,
          'our client row: %s (sent %d)' % (serv, Q['sent']))


Q = {}


def quiesce():
    """Stop every stream, then hold two idle server connections of ours
    (one has sent 1.5 MiB and got its digest): nothing moves any more."""
    if Q.get('done'):
        return
    r = ctl_ok('stop', 'all')
    check(re.match(r'\d+ streams? stopping', r.out), 'stop all printed %r' % r.out)
    check(wait_for(lambda: not streams(), 5), 'streams left after stop all: %s' % streams())
    out = jctl('stop', 'all')        # nothing left: still ok
    check(out.get('status') == 'ok', 'stop all (none left) JSON: %s' % out)
    c1, c2 = WSClient(M.port, '/'), WSClient(M.port, '/frame')
    Q.update(c1=c1, c2=c2, sent=3 * MiB // 2)
    c1.send_frame(os.urandom(Q['sent']), opcode=2, fin=True)
    check(len(c1.recv_digests(1)) == 1, 'no digest')
    check(wait_for(lambda: len(streams()) == 2, 3), 'our 2 connections: %s' % streams())
    for _ in range(20):
        a, rows, b = status(), streams(), status()
        a.pop('uptime_sec')
        b.pop('uptime_sec')
        if a == b:
            break
        time.sleep(0.2)
    check(a == b, 'not quiescent:\n%s\n%s' % (a, b))
    Q.update(status=a, streams=rows, done=True)


def resume():
    """Close our connections (one via `stop ID`: close 1001), restart loop
    and fr by name."""
    if Q.get('done'):
        sid = [r['id'] for r in streams()
               if r['peer'] == '127.0.0.1:%d' % Q['c2'].sock.getsockname()[1]]
        check(len(sid) == 1, 'c2 row: %s' % streams())
        out = jctl('stop', sid[0])
        check(out.get('status') == 'ok' and out.get('id') == sid[0], 'stop server: %s' % out)
        try:
            Q['c2'].recv_message()
            code = 'a message'
        except Exception as e:
            code = getattr(e, 'code', repr(e))
        check(code == 1001, 'stop ID of a server stream: client saw %s, not close 1001' % code)
        Q['c1'].close()
        Q['done'] = False
    for n in ('loop', 'fr'):
        if not by_name(streams(), n):
            ctl_ok('start', n)
    check(wait_for(lambda: all(len(by_name(streams(), n)) == 1 for n in ('loop', 'fr')), 5),
          'loop and fr did not restart: %s' % streams())

# ============================================================ 2. /metrics


def http_get(port, path):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=5 * SLOW)
    try:
        c.request('GET', path)
        r = c.getresponse()
        return r.status, r.read().decode('utf-8', 'replace')
    finally:
        c.close()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?[ \t]+(\S+)([ \t]+-?\d+)?$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse_metrics(text):
    """Check the text format by hand; returns {(name, labels): value}."""
    helps, types, seen, samples = set(), {}, set(), {}
    check(text.endswith('\n'), 'metrics do not end with a newline')
    for no, line in enumerate(text.split('\n')[:-1], 1):
        if line.startswith('#'):
            m = re.match(r'^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$', line)
            if not m:
                continue                            # a plain comment
            kind, name, rest = m.groups()
            check(name not in seen, 'line %d: %s after its samples' % (no, kind))
            if kind == 'TYPE':
                check(rest in ('counter', 'gauge', 'histogram', 'summary', 'untyped'),
                      'line %d: type %r' % (no, rest))
                check(name not in types, 'line %d: second TYPE for %s' % (no, name))
                types[name] = rest
                if rest == 'counter':
                    check(name.endswith('_total'), 'line %d: counter %s lacks _total' % (no, name))
            else:
                helps.add(name)
            continue
        check(line.strip(), 'line %d: empty line' % no)
        m = SAMPLE.match(line)
        check(m, 'line %d: not "name{labels} value": %r' % (no, line))
        name, labels, value = m.group(1), m.group(2), m.group(3)
        # A histogram's samples carry its name with _bucket, _sum, _count.
        fam = name
        for suffix in ('_bucket', '_sum', '_count'):
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == 'histogram':
                fam = name[:-len(suffix)]
        check(fam in types and fam in helps, 'line %d: %s without HELP/TYPE before' % (no, name))
        lab = ()
        if labels:
            body, pairs = labels[1:-1], []
            while body.strip():
                lm = LABEL.match(body)
                check(lm, 'line %d: labels %r' % (no, labels))
                pairs.append((lm.group(1), lm.group(2)))
                body = body[lm.end():]
            lab = tuple(sorted(pairs))
        try:
            v = float(value)
        except ValueError:
            raise CheckFailed('line %d: value %r' % (no, value))
        check((name, lab) not in samples, 'line %d: duplicate sample' % no)
        seen.add(fam)
        samples[(name, lab)] = v
    check(samples, 'no samples')
    return samples


def promtool(text):
    if not shutil.which('promtool'):
        return None
    p = subprocess.run(['promtool', 'check', 'metrics'], input=text, capture_output=True,
                       text=True, timeout=20)
    check(p.returncode == 0, 'promtool check metrics exit %d:\n%s%s'
          % (p.returncode, p.stdout[-1500:], p.stderr[-1500:]))
    return True


METRIC_OF_STATUS = [
    ('wsflow_server_connections', 'server', 'connections'),
    ('wsflow_server_connections_total', 'server', 'connections_total'),
    ('wsflow_server_bytes_received_total', 'server', 'bytes_received'),
    ('wsflow_server_digests_sent_total', 'server', 'digests_sent'),
    ('wsflow_producers_running', 'producers', 'running'),
    ('wsflow_producer_bytes_sent_total', 'producers', 'bytes_sent'),
    ('wsflow_producer_digests_received_total', 'producers', 'digests_received'),
    ('wsflow_producer_digests_verified_total', 'producers', 'digests_verified'),
    ('wsflow_producer_digest_mismatches_total', 'producers', 'digest_mismatches'),
]


@case('/metrics: text format parsed by hand, totals == status when quiescent; /healthz 200 ok; '
      'then moved by exactly the octets and digests the test itself sent and received')
def t_metrics():
    main_daemon()
    quiesce()
    code, text = http_get(M.port, '/metrics')
    check(code == 200, '/metrics: HTTP %d' % code)
    Q['metrics'] = text
    samples = parse_metrics(text)
    st = status()
    bad = []
    for metric, grp, fld in METRIC_OF_STATUS:
        v = samples.get((metric, ()))
        if v is None or v != st[grp][fld]:
            bad.append('%s = %s, status %s.%s = %s' % (metric, v, grp, fld, st[grp][fld]))
    check(not bad, 'metrics vs status:\n' + '\n'.join(bad))
    # Groups, not streams (no label grows with every connection): server
    # streams by mode, producers by name; quiescent, they add up to the
    # totals, and no series is labelled by a stream's id.
    def total(metric):
        return sum(v for k, v in samples.items() if k[0] == metric)
    check(total('wsflow_server_stream_bytes_total') == st['server']['bytes_received'] and
          total('wsflow_producer_stream_bytes_total') == st['producers']['bytes_sent'],
          'groups: server %s, producers %s; status %s' % (
              total('wsflow_server_stream_bytes_total'),
              total('wsflow_producer_stream_bytes_total'), st))
    check(not [k for k in samples if any(l[0] == 'id' for l in k[1])],
          'a series labelled by id: %s' % [k for k in samples if any(l[0] == 'id' for l in k[1])][:3])
    code, body = http_get(M.port, '/healthz')
    check(code == 200 and body.strip() == 'ok', '/healthz: %d %r' % (code, body))
    known_counts(samples)
    resume()


def known_counts(before):
    """Still quiescent: the test moves the counters by amounts it knows
    itself, then /metrics must have moved by exactly those: a client of
    ours sends 3 MiB + 5 to /stream (3 digests, checked with hashlib), an
    ad-hoc producer sends 4 MiB + 7 through a hashlib tap (which counts its
    octets and the digests it passes on)."""
    data = os.urandom(3 * MiB + 5)
    c = WSClient(M.port, '/stream')
    c.send_frame(data, opcode=2, fin=True)
    got = c.recv_digests(3)
    check(got == batch_digests(data, MiB), 'our 3 digests differ from hashlib\'s')
    check(c.close() == 1000, 'our client: no close 1000')
    tap = WSTap(M.port)
    try:
        n = 4 * MiB + 7
        out = jctl('start', tap.url('/'), '--mode', 'producer', '--bytes', n, '--name', 'mtap')
        check(wait_for(lambda: not by_name(streams(), 'mtap') and tap.bytes == n
                       and tap.digests == 4 and len(streams()) == 2, 10),
              'mtap did not finish: %s; %s' % (streams(), tap.summary()))
        tap.check(min_verified=4)
    finally:
        tap.close()
    code, text = http_get(M.port, '/metrics')
    check(code == 200, '/metrics: HTTP %d' % code)
    after = parse_metrics(text)
    want = {'wsflow_server_bytes_received_total': len(data) + n,
            'wsflow_server_digests_sent_total': len(got) + tap.digests,
            'wsflow_server_connections_total': 2,
            'wsflow_server_connections': 0,
            'wsflow_producer_bytes_sent_total': tap.bytes,
            'wsflow_producer_digests_received_total': tap.digests,
            'wsflow_producer_digests_verified_total': tap.verified,
            'wsflow_producer_digest_mismatches_total': 0}
    bad = ['%s moved %s -> %s, by %s; we know of %d' % (k, before.get((k, ())),
                                                       after.get((k, ())),
                                                       after.get((k, ()), 0) - before.get((k, ()), 0), v)
           for k, v in want.items()
           if after.get((k, ())) is None or after[(k, ())] - before.get((k, ()), 0) != v]
    diag('known counts: sent %d + %d octets, received %d + %d digests' % (
        len(data), n, len(got), tap.digests))
    check(not bad, '/metrics against what the test sent and received:\n' + '\n'.join(bad))


@case('/metrics: promtool check metrics passes (quiescent and busy)')
def t_promtool():
    main_daemon()
    if not shutil.which('promtool'):
        raise Skip('promtool not installed')
    if Q.get('metrics'):
        promtool(Q['metrics'])          # quiescent, from the case above
    resume()
    check(wait_for(lambda: show('loop')['bytes'] > 0 and show('fr')['bytes'] > 0, 5), 'not busy')
    code, text = http_get(M.port, '/metrics')
    check(code == 200, '/metrics: HTTP %d' % code)
    promtool(text)
    parse_metrics(text)
    check('wsflow_producer_streams{name="loop"} 1' in text and
          'wsflow_digest_latency_seconds_bucket{name="loop",le="+Inf"}' in text and
          'wsflow_server_streams{mode="streaming"}' in text,
          'no producer (by name) or server (by mode) groups:\n' + text)

# ============================================================ 3. exit statuses


@case('exit 3: no daemon (missing path, socket nobody listens on, stale file, silent listener)')
def t_exit_nodaemon():
    main_daemon()
    tmp = tmpdir()
    # a listening socket that never answers: wsflowctl's reply timeout
    # (15 s) must end it with 3.  Runs in the background meanwhile.
    silent_path = os.path.join(tmp, 'silent.sock')
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(silent_path)
    silent.listen(4)
    bg = subprocess.Popen([WSFLOWCTL, '-s', silent_path, 'status'], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    t0 = time.monotonic()
    try:
        missing = os.path.join(tmp, 'no-such.sock')
        for args in (('status',), ('-j', 'status'), ('streams',), ('stop', 'all')):
            r = run_ctl(*args, sock=missing)
            check(r.rc == 3, 'missing socket: ' + r.detail())
        out = run_ctl('-j', 'status', sock=missing).json
        check(out.get('error') and 'no-such.sock' in out['error'], '-j, no daemon: %s' % out)
        # bound, never listened, closed: a socket file nobody answers on
        dead = os.path.join(tmp, 'dead.sock')
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(dead)
        s.close()
        r = run_ctl('status', sock=dead)
        check(r.rc == 3, 'dead socket: ' + r.detail())
        stale = tmpfile('stale.sock', 'not a socket\n')
        r = run_ctl('status', sock=stale)
        check(r.rc == 3, 'stale plain file: ' + r.detail())
        r = run_ctl('status', sock='/' + 'x' * 200)
        check(r.rc == 3, 'path too long: ' + r.detail())
        try:
            out, err = bg.communicate(timeout=25 * SLOW)
        except subprocess.TimeoutExpired:
            bg.kill()
            bg.communicate()
            raise CheckFailed('wsflowctl against a silent listener did not give up in 25 s')
        check(bg.returncode == 3, 'silent listener: exit %d, %r' % (bg.returncode, err))
        diag('silent listener: exit 3 after %.1fs: %s' % (time.monotonic() - t0, err.strip()))
    finally:
        if bg.poll() is None:
            bg.kill()
            bg.wait()
        silent.close()


@case('exit 2 on usage errors, 1 on an unknown stream')
def t_exit_usage():
    main_daemon()
    usage = [(), ('bogus',), ('show',), ('show', '1', '2'), ('stop',), ('st',),
             ('start',), ('start', M.url('/'), '--bytes', 'x'),
             ('start', M.url('/'), '--bytes', '-5'), ('start', M.url('/'), '--mode', 'fast'),
             ('start', M.url('/'), '--bogus', '1'), ('start', M.url('/'), '--rate'),
             ('start', 'idle', '--bytes', '1'), ('status', 'extra'), ('-q', 'status'),
             ('--no-such-option', 'status'), ('-j', 'bogus')]
    for args in usage:
        r = run_ctl(*args, sock=M.sock)
        check(r.rc == 2 and r.err.strip(), 'usage error: ' + r.detail())
    check(not by_name(streams(), 'idle'), 'a refused start started something')
    for args in (('show', 9999), ('stop', 'nosuch'), ('stop', 9999), ('digests', 'nosuch'),
                 ('start', 'nosuch')):
        r = run_ctl(*args, sock=M.sock)
        check(r.rc == 1 and r.err.strip(), 'unknown stream: ' + r.detail())
        r = run_ctl('-j', *args, sock=M.sock)
        check(r.rc == 1 and r.json.get('error'), 'unknown stream, JSON: ' + r.detail())


@case('an empty ID|NAME is no stream: show/stop/digests "" exit 1 or 2 and stop nothing')
def t_empty_key():
    main_daemon()
    resume()
    rows0 = sorted(r['id'] for r in streams())
    for args in (('show', ''), ('stop', ''), ('-j', 'show', '')):
        r = run_ctl(*args, sock=M.sock)
        check(r.rc in (1, 2), '%s: an empty key matched something:\n%s' % (r, r.out[:600]))
    time.sleep(0.3)
    rows1 = sorted(r['id'] for r in streams())
    check(rows0 == rows1, '`stop ""` stopped streams: %s -> %s' % (rows0, rows1))


@case('exit 4 for start/stop/reload as nobody (group does not exist); status/streams work')
def t_exit_denied():
    if NOBODY is None:
        raise Skip('needs root and setpriv or runuser')
    global NOBODY_CTL
    tmp = tmpdir()
    os.chmod(tmp, 0o711)             # nobody must reach the socket
    NOBODY_CTL = os.path.join(tmp, 'wsflowctl')
    shutil.copy(WSFLOWCTL, NOBODY_CTL)
    os.chmod(NOBODY_CTL, 0o755)
    n = new_daemon(lambda d: [('idle', d.url('/'), dict(autostart=False))], mode='0666')
    mode = stat.S_IMODE(os.stat(n.sock).st_mode)
    check(mode == 0o666, 'socket mode %o, configured 0666' % mode)
    check(log_lines(n, "control group '%s' does not exist" % NOGROUP),
          'no warning about the missing group:\n' + n.log_tail())
    for args in (('status',), ('streams',), ('-j', 'status'), ('digests',), ('show', 'nosuch')):
        r = run_ctl(*args, sock=n.sock, user=NOBODY)
        want = 1 if args[0] == 'show' else 0
        check(r.rc == want, 'as nobody: ' + r.detail())
    check(run_ctl('-j', 'status', sock=n.sock, user=NOBODY).json['pid'] == n.pid, 'pid')
    for args in (('stop', 'all'), ('start', 'idle'), ('reload',), ('stop', 'nosuch'),
                 ('start', n.url('/'), '--name', 'x')):
        r = run_ctl(*args, sock=n.sock, user=NOBODY)
        check(r.rc == 4 and 'permission' in r.err, 'as nobody: ' + r.detail())
        r = run_ctl('-j', *args, sock=n.sock, user=NOBODY)
        check(r.rc == 4 and 'permission' in r.json.get('error', ''), 'as nobody: ' + r.detail())
    check(not streams(sock=n.sock), 'nobody changed something: %s' % streams(sock=n.sock))
    check(not log_lines(n, 'configuration reloaded'), 'nobody reloaded')
    # root still may
    r = run_ctl('start', 'idle', sock=n.sock)
    check(r.rc == 0, 'root: ' + r.detail())
    r = run_ctl('stop', 'all', sock=n.sock, user=NOBODY)
    check(r.rc == 4, 'as nobody: ' + r.detail())
    check(by_name(streams(sock=n.sock), 'idle'), 'idle gone after a refused stop')
    n.check_clean_stop()
    check(not os.path.exists(n.sock), 'control socket left behind after stop')

# ============================================================ 4. start URL / stop ID


@case('start URL: producer row, verified digests grow; stop ID: gone in 3 s, clean close on both sides')
def t_start_stop():
    d = main_daemon()
    resume()
    before = {r['id'] for r in streams()}
    out = jctl('start', d.url('/'), '--mode', 'streaming', '--name', 'c4')
    pid_ = out['id']
    check(wait_for(lambda: len([r for r in streams() if r['id'] not in before]) == 2, 3),
          'no new producer/server pair: %s' % streams())
    new = [r for r in streams() if r['id'] not in before]
    prow = [r for r in new if r['role'] == 'producer']
    srow = [r for r in new if r['role'] == 'server']
    check(len(prow) == 1 and prow[0]['id'] == pid_ and prow[0]['name'] == 'c4' and
          len(srow) == 1 and srow[0]['mode'] == 'streaming', 'new rows: %s' % new)
    sid = srow[0]['id']
    v0 = show(pid_)['digests_verified']
    check(wait_for(lambda: show(pid_)['digests_verified'] > v0 + 2, 5),
          'verified digests do not grow: %s' % show(pid_))
    s = show(pid_)
    check(s['digest_mismatches'] == 0 and s['digests_verified'] == s['digests'], str(s))
    t0 = time.monotonic()
    r = ctl_ok('stop', pid_)
    check(wait_for(lambda: not [x for x in streams() if x['id'] in (pid_, sid)], 3),
          'stopped streams still listed after 3 s: %s' % streams())
    diag('stop %d: both rows gone in %.2fs' % (pid_, time.monotonic() - t0))
    # Stopped by a user: its end line says so (finished is for limits).
    fin = r'\[producer %d c4\] stopped: (\d+) bytes sent, (\d+) digests, (\d+) verified, 0 mismatched' % pid_
    clo = r'\[stream %d\] closed: (\d+) bytes' % sid
    check(wait_for(lambda: log_lines(d, fin) and log_lines(d, clo), 3),
          'no stopped:/closed: lines for %d/%d:\n%s' % (pid_, sid, d.log_tail()))
    sent = int(re.search(fin, log_lines(d, fin)[0]).group(1))
    got = int(re.search(clo, log_lines(d, clo)[0]).group(1))
    check(sent == got, 'producer sent %d, server received %d: not a clean end' % (sent, got))
    check(not log_lines(d, r'\[producer %d c4\] server closed with 100[1-9]' % pid_),
          'the server closed on the producer: %s' % log_lines(d, r'\[producer %d ' % pid_))
    check(not log_lines(d, r'\[stream %d\] .*(error|idle-timeout)' % sid), 'server side error')

@case('start URL gets the configured defaults: reconnect = true (a closed port is retried in '
      'backoff and the producer stays listed)')
def t_start_defaults():
    main_daemon()
    port = free_port()          # nothing listens there
    out = jctl('start', 'ws://127.0.0.1:%d/' % port, '--name', 'retry1')
    pid_ = out['id']
    # A producer with reconnect = false would be gone after its first
    # refused connect; one with the default (true) backs off and retries.
    check(wait_for(lambda: (show(pid_) or {}).get('state') == 'backoff', 5),
          'ad-hoc producer never in backoff: %s' % streams())
    time.sleep(1.5)             # more than the first backoff step (250 ms)
    s = show(pid_)
    check(s is not None and s['state'] in ('backoff', 'connecting'),
          'ad-hoc producer gone or wrong after 1.5 s: %s' % s)
    ctl_ok('stop', pid_)
    check(wait_for(lambda: show(pid_) is None, 3), 'not stopped: %s' % show(pid_))

# ============================================================ 5. reload


@case('reload: added producer starts, removed one stops, loop keeps id and streams')
def t_reload():
    d = main_daemon()
    resume()
    lid, b0 = loop_bytes()
    n0 = len(log_lines(d, 'configuration reloaded'))
    write_conf(d, conf_lines(d, std_producers(d, fr=False, added=True)))
    r = ctl_ok('reload')
    check(wait_for(lambda: by_name(streams(), 'added') and not by_name(streams(), 'fr'), 3),
          'after reload: %s' % streams())
    check(len(log_lines(d, 'configuration reloaded')) == n0 + 1, 'no log line for the reload')
    check(wait_for(lambda: show('added')['digests_verified'] > 0, 5), 'added verifies nothing')
    check(not by_name(streams(), 'idle'), 'idle (autostart = false) started by reload')
    daemon_fine('reload', (lid, b0))
    # still the same loop: its counters did not restart
    check(show('loop')['bytes'] >= b0, 'loop bytes went down')


@case('reload of a broken file (syntax error, unknown key): exit 1, FILE:LINE:, nothing changes')
def t_reload_broken():
    d = main_daemon()
    if not by_name(streams(), 'added'):
        write_conf(d, conf_lines(d, std_producers(d, fr=False, added=True)))
        ctl_ok('reload')
    good = conf_lines(d, std_producers(d, fr=False, added=True))
    ids0 = {r['name']: r['id'] for r in streams() if r['role'] == 'producer'}
    # a syntax error on a known line
    bad = list(good)
    bad.insert(4, '  this is = = not libconfig')
    syntax_line = 5
    # an unknown key in the first producer's entry
    bad2 = list(good)
    pline = good.index('producers = (') + 1
    bad2[pline] = bad2[pline].replace('autostart = true;', 'autostart = true; bogus_key = 1;')
    check('bogus_key' in bad2[pline], 'test bug: %s' % bad2[pline])
    for what, lines, line in (('syntax error', bad, syntax_line),
                              ('unknown key', bad2, pline + 1)):
        lid, b0 = loop_bytes()
        write_conf(d, lines)
        want = '%s:%d:' % (d.conf, line)
        r = run_ctl('reload', sock=d.sock)
        check(r.rc == 1 and want in r.err, '%s: want exit 1 and %r on stderr: %s'
              % (what, want, r.detail()))
        r = run_ctl('-j', 'reload', sock=d.sock)
        check(r.rc == 1 and want in r.json.get('error', ''), '%s: JSON error lacks %r: %s'
              % (what, want, r.detail()))
        if what == 'unknown key':
            check('bogus_key' in r.json['error'], 'message does not name the key: %s' % r.out)
        daemon_fine('broken reload (%s)' % what, (lid, b0))
        ids = {x['name']: x['id'] for x in streams() if x['role'] == 'producer'}
        check(ids == ids0, '%s: producers changed: %s -> %s' % (what, ids0, ids))
    check(log_lines(d, 'reload refused'), 'no "reload refused" log line')
    write_conf(d, good)


@case('SIGHUP reloads like `wsflowctl reload`')
def t_sighup():
    d = main_daemon()
    lid, b0 = loop_bytes()
    n0 = len(log_lines(d, 'configuration reloaded'))
    write_conf(d, conf_lines(d, std_producers(d, fr=True, added=False, hup=True)))
    os.kill(d.pid, signal.SIGHUP)
    check(wait_for(lambda: len(log_lines(d, 'configuration reloaded')) > n0, 3),
          'no "configuration reloaded" after SIGHUP:\n' + d.log_tail())
    check(wait_for(lambda: by_name(streams(), 'hup') and by_name(streams(), 'fr') and
                   not by_name(streams(), 'added'), 3), 'after SIGHUP: %s' % streams())
    daemon_fine('SIGHUP', (lid, b0))
    # a broken file on SIGHUP: refused, logged, nothing changes
    n1 = len(log_lines(d, 'reload refused'))
    write_conf(d, ['server: {'])
    os.kill(d.pid, signal.SIGHUP)
    check(wait_for(lambda: len(log_lines(d, 'reload refused')) > n1, 3),
          'broken file on SIGHUP not refused:\n' + d.log_tail())
    check(log_lines(d, re.escape(d.conf) + r':\d+:'), 'refusal lacks FILE:LINE:')
    daemon_fine('SIGHUP, broken file', loop_bytes())
    check(by_name(streams(), 'hup'), 'hup gone after a refused reload')
    write_conf(d, conf_lines(d, std_producers(d, fr=True, added=False, hup=True)))


@case('reload changing server.digest and batch_size: a producer it adds hashes with the new ones, '
      '0 mismatches; a hashlib tap checks b\'s sha512 digests by value (65536-octet batches), '
      'and b\'s last_digest is one of them')
def t_reload_digest():
    d = new_daemon(lambda d: [('a', d.url('/'), dict(mode='producer', autostart=True))])
    tap = WSTap(d.port, digest='sha512', batch_size=65536)
    try:
        check(wait_for(lambda: (show('a', sock=d.sock) or {}).get('digests_verified', 0) > 0, 5),
              'a verifies nothing: %s' % show('a', sock=d.sock))
        lines = conf_lines(d, [('a', d.url('/'), dict(mode='producer', autostart=True)),
                               ('b', tap.url('/'), dict(mode='producer', autostart=True))])
        i = lines.index('server: {') + 1
        lines[i:i] = ['  digest = "sha512";', '  batch_size = 65536;']
        write_conf(d, lines)
        ctl_ok('reload', sock=d.sock)
        check(wait_for(lambda: (show('b', sock=d.sock) or {}).get('digests_verified', 0) >= 8, 5),
              'b verifies nothing: %s\n%s' % (show('b', sock=d.sock), d.log_tail()))
        b = show('b', sock=d.sock)
        check(b['digest_mismatches'] == 0, 'b: %s' % b)
        dg = jctl('digests', b['id'], sock=d.sock)
        last = [r for r in dg['streams'] if r['id'] == b['id']][0]['last_digest']
        check(len(last) == 128, 'b\'s last digest is not sha512: %r' % last)
        # the value: sha512 (hashlib) of b's message up to a 65536-octet
        # boundary, as the tap computed it over the octets b sent
        tap.check(min_verified=b['digests_verified'])
        check(last in tap.seen, 'b\'s last digest %s... is none the tap verified (%s)'
              % (last[:16], tap.summary()))
        diag(tap.summary())
        st = status(sock=d.sock)
        check(st['producers']['digest_mismatches'] == 0, 'mismatches: %s' % st['producers'])
    finally:
        d.check_clean_stop()
        tap.close()

# ============================================================ 6. abuse


@case('control socket abuse: garbage, truncated, oversize, bad version/size/type, silent, 50 at once')
def t_abuse():
    d = main_daemon()
    resume()
    held = []
    try:
        # a silent client, and one stuck in the middle of a header: both
        # stay open during everything below
        held.append(raw_connect())
        s = raw_connect()
        s.sendall(msg(REQ_STATUS)[:7])
        held.append(s)
        daemon_fine('silent clients', loop_bytes())

        checks = [
            ('garbage', b'hello wsflowd, this is no frame at all\r\n' * 4, None),
            ('oversize length 10^6', msg(REQ_STATUS, length=10 ** 6) + b'\0' * 65536, None),
            ('length below the header', msg(REQ_STATUS, length=8), None),
            ('wrong version', msg(REQ_STATUS, version=CTL_VERSION + 1, seq=5), 5),
            ('wrong version 0xffff', msg(REQ_STREAMS, key(''), version=0xffff), None),
            ('wrong payload size (status + 8)', msg(REQ_STATUS, b'\0' * 8, seq=6), 6),
            ('wrong payload size (streams, no key)', msg(REQ_STREAMS, seq=7), 7),
            ('wrong payload size (start, short)', msg(REQ_START, b'\0' * 100), None),
            ('unknown type 99', msg(99), None),
            ('unknown type 0', msg(0), None),
            ('unknown type 8 (first after the requests)', msg(8), None),
            ('reply type as a request', msg(REP_STATUS, b'\0' * STATUS_SIZE, seq=8), 8),
            ('reply type RESULT as a request', msg(REP_RESULT, b'\0' * RESULT_SIZE, seq=9), 9),
            ('unterminated key', msg(REQ_STREAMS, b'A' * KEY_SIZE, seq=10), 10),
            ('unterminated stop key', msg(REQ_STOP, b'B' * KEY_SIZE, seq=11), 11),
            ('start with mode 99', msg(REQ_START, start_payload(
                'x-bad-mode', d.url('/'), flags=1, mode=99), seq=12), 12),
            ('start without name or url', msg(REQ_START, start_payload(), seq=13), 13),
            ('start, unterminated url', msg(REQ_START, b'n\0'.ljust(64, b'\0') + b'w' * 512 +
                                         b'\0' * 32, seq=14), 14),
            ('start, unsupported url scheme', msg(REQ_START, start_payload(
                'x-bad-url', 'http://127.0.0.1:1/'), seq=15), 15),
        ]
        for what, data, seq in checks:
            before = loop_bytes()
            res, s = expect_refusal(what, data, seq)
            if res is not None and res[0] not in (CTL_ERR_VERSION,) and \
                    what.startswith(('reply type', 'unterminated', 'start ')):
                # a well-framed bad request: the connection stays usable
                send_quietly(s, msg(REQ_STATUS, seq=99))
                msgs, how = read_reply(s)
                check(how == 'done', '%s: the next request on the same '
                      'connection: %s' % (what, how))
                check(status_pid(msgs) == d.pid and msgs[-1][1] == 99,
                      '%s: the next request got %s' % (what, msgs))
            s.close()
            daemon_fine(what, before)
        check(not [r for r in streams() if r['name'].startswith('x-bad')],
              'a bad start started something: %s' % streams())

        # truncated frames, then close
        for what, data in (('truncated header', msg(REQ_STATUS)[:9]),
                           ('truncated payload', msg(REQ_STREAMS, key('loop'))[:40]),
                           ('truncated start', msg(REQ_START, start_payload('z', d.url('/')))[:300])):
            before = loop_bytes()
            s = raw_connect()
            send_quietly(s, data)
            s.close()
            daemon_fine(what, before)
        check(not by_name(streams(), 'z'), 'truncated start started a producer')

        # slow: a valid request one octet at a time
        before = loop_bytes()
        s = raw_connect()
        for b in msg(REQ_STATUS, seq=42):
            s.sendall(bytes([b]))
            time.sleep(0.005)
        msgs, how = read_reply(s)
        s.close()
        check(how == 'done' and status_pid(msgs) == d.pid and all(m[1] == 42 for m in msgs),
              'byte-at-a-time status: %s %s' % (how, [m[:2] for m in msgs]))
        daemon_fine('byte at a time', before)

        # two requests in one write: two full answers, in order
        s = raw_connect()
        s.sendall(msg(REQ_STATUS, seq=1) + msg(REQ_STREAMS, key('loop'), seq=2))
        m1, h1 = read_reply(s)
        m2, h2 = read_reply(s)
        s.close()
        check(h1 == 'done' and status_pid(m1) == d.pid and h2 == 'done' and
              [m[0] for m in m2] == [REP_STREAM, REP_END] and all(m[1] == 2 for m in m2),
              'pipelined: %s %s / %s %s' % (h1, [m[:2] for m in m1], h2, [m[:2] for m in m2]))

        # a flood of pipelined requests, never read: answers or a close
        before = loop_bytes()
        s = raw_connect()
        s.settimeout(3 * SLOW)
        send_quietly(s, msg(REQ_STATUS) * 4000)
        s.close()
        daemon_fine('4000 pipelined requests never read', before)

        # 50 connections at once, each asks for status
        before = loop_bytes()
        conns = [raw_connect() for _ in range(50)]
        held.extend(conns)
        daemon_fine('50 open connections', before)
        for i, c in enumerate(conns):
            c.sendall(msg(REQ_STATUS, seq=1000 + i))
        for i, c in enumerate(conns):
            msgs, how = read_reply(c)
            check(how == 'done' and status_pid(msgs) == d.pid and msgs[0][1] == 1000 + i,
                  'connection %d of 50: %s %s' % (i, how, [m[:2] for m in msgs]))
        daemon_fine('50 connections answered', before)
        for c in conns:
            c.close()
            held.remove(c)
        daemon_fine('50 connections closed', loop_bytes())
        # beyond the daemon's connection limit (64 in control.c): idle
        # clients fill it for others, never for root (these tests' user
        # when they run as root; otherwise the limit must refuse us too).
        extra = [raw_connect() for _ in range(70)]
        held.extend(extra)
        time.sleep(0.2)
        r = run_ctl('status', sock=M.sock)
        if os.geteuid() == 0:
            check(r.rc == 0, 'root locked out by %d idle control connections: %s'
                  % (len(held), r.detail()))
        else:
            check(r.rc != 0, 'uid %d served past the 64-client limit (%d held)'
                  % (os.geteuid(), len(held)))
        for c in extra:
            c.close()
            held.remove(c)
        # the daemon sees the hang-ups on its next turns: allow it a moment
        check(wait_for(lambda: run_ctl('status', sock=M.sock).rc == 0, 3),
              'wsflowctl still locked out 3 s after the 70 connections closed')
        daemon_fine('70 connections closed', loop_bytes())
        # the held silent clients are still connected, the daemon fine
        check(M.alive(), 'daemon died')
    finally:
        for s in held:
            s.close()
    daemon_fine('after the abuse', loop_bytes())

# ============================================================ 7. second daemon


@case('a second wsflowd on the same control path refuses to start; the first keeps serving')
def t_second_daemon():
    d = main_daemon()
    before = loop_bytes()
    ino = os.stat(d.sock).st_ino
    port2 = free_port()
    conf2 = tmpfile('second.conf', '\n'.join([
        'log_level = "info";',
        'control: { path = "%s"; group = "%s"; };' % (d.sock, NOGROUP),
        'server: { listen = ( { address = "127.0.0.1"; port = %d; } ); };' % port2, '']))
    p = subprocess.Popen([WSFLOWD, '-d', '-f', conf2],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=10 * SLOW)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        raise CheckFailed('the second wsflowd is running on the same control path:\n' + out)
    check(p.returncode != 0, 'second wsflowd exited 0:\n' + out)
    check(re.search(r'in use', out, re.I) and d.sock in out,
          'second wsflowd: no message about the socket in use:\n' + out)
    diag('second wsflowd: exit %d: %s' % (p.returncode, out.strip().splitlines()[-1]))
    check(os.path.exists(d.sock) and os.stat(d.sock).st_ino == ino,
          'the first daemon\'s control socket was removed or replaced')
    daemon_fine('second daemon', before)
    check(status()['pid'] == d.pid, 'status answered by someone else')


@case('wsflowd stops cleanly (exit 0, no sanitizer report) and removes its control socket')
def t_clean_stop():
    check(not M_DEATHS, 'the shared wsflowd died %d time(s) during the run '
          '(exits %s)' % (len(M_DEATHS), M_DEATHS))
    d = main_daemon()
    d.check_clean_stop()
    check(not os.path.exists(d.sock), 'control socket left behind')
    r = run_ctl('status', sock=d.sock)
    check(r.rc == 3, 'after stop: ' + r.detail())


if __name__ == '__main__':
    run_cases()
