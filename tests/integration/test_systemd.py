#!/usr/bin/python3
# timeout: 420
"""wsflow under a real systemd: systemd 252 as PID 1 of a systemd-nspawn
container (testing notes §1.5, host /usr on a tmpfs root), with wsflow
installed by `make install DESTDIR=$BUILD/sysroot PREFIX=/usr/local` and
that tree's /usr/local bound into the container (interface.md §2, §5).

Container A (wsflow.service and wsflow.socket disabled by preset: the daemon
binds its own sockets) runs cases 1-5, 7 and 8; container B (wsflow.socket
enabled by preset: listening from boot) runs case 6.

Commands run inside with `nsenter -t INIT -a`; the test's own WebSocket
clients run in threads that joined the container's network namespace
(setns(CLONE_NEWNET) is per thread), peers with `nsenter -t INIT -n`.
Each container is torn down in a finally: SIGTERM to nspawn, bounded wait,
then its cgroups are removed.  nspawn runs in a cgroup of its own
(wsflowtest.PID.NAME under the name=systemd and unified hierarchies) so
that the cleanup touches nothing but ours."""
import atexit
import contextlib
import ctypes
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import threading
import time
import traceback

import wsflowtest
from wsflowtest import (BUILD, PEERS, PYTHON, SANITIZE, SLOW, SRCDIR, CheckFailed, Skip,
                        WSClient, batch_digests, check, diag, frame_header, ok, skip,
                        tmpdir, wait_for)

MiB = 1 << 20
SYSROOT = os.path.join(SRCDIR, BUILD, 'sysroot')
UNITDIR = '/usr/local/lib/systemd/system'
SERVICE = UNITDIR + '/wsflow.service'
SOCKET = UNITDIR + '/wsflow.socket'
WSFLOWCTL_IN = '/usr/local/bin/wsflowctl'
CONF_IN = '/etc/wsflow/wsflow.conf'
CTL_IN = '/run/wsflow/wsflowd.sock'
PORT = 9000                 # the container has its own network: fixed ports are fine
PEER_PORT = 9100
CGROUP_ROOT = '/sys/fs/cgroup'
CG_HIERARCHIES = ('systemd', 'unified')
CLONE_NEWNET = 0x40000000
STATUS_RE = r'\d+ streams?, \d+\.\d GB hashed, \d+ mismatch(es)?'

_libc = ctypes.CDLL(None, use_errno=True)


def now_us():
    return int(time.time() * 1e6)

# ---------------------------------------------------------------- container


class BootFailed(Exception):
    pass


class Container:
    """systemd-nspawn --directory=/ --volatile=yes --boot (notes §1.5)."""
    live = []

    def __init__(self, name, preset):
        self.name = name
        self.machine = 'wsflowtest-%d-%s' % (os.getpid(), name)
        self.dir = os.path.join(tmpdir(), 'nspawn-' + name)
        self.etc = os.path.join(self.dir, 'etc-wsflow')    # bound at /etc/wsflow
        os.makedirs(self.etc)
        os.chmod(self.dir, 0o755)
        os.chmod(self.etc, 0o755)       # read by the unit's DynamicUser
        self.preset = os.path.join(self.dir, '00-wsflow.preset')
        with open(self.preset, 'w') as f:
            f.write(preset)
        self.log = os.path.join(self.dir, 'nspawn.log')
        self.cg = 'wsflowtest.%d.%s' % (os.getpid(), name)
        self.own_cgroup = False
        self.proc = None
        self.init = None

    # -- boot and teardown

    def boot(self, timeout=30):
        nspawn = shutil.which('systemd-nspawn')
        if nspawn is None:
            raise BootFailed('systemd-nspawn not installed (make deps installs systemd-container)')
        if os.geteuid() != 0:
            raise BootFailed('not root')
        paths = []
        try:
            for h in CG_HIERARCHIES:
                if os.path.isdir(os.path.join(CGROUP_ROOT, h)):
                    p = os.path.join(CGROUP_ROOT, h, self.cg)
                    os.makedirs(p, exist_ok=True)
                    paths.append(os.path.join(p, 'cgroup.procs'))
            self.own_cgroup = bool(paths)
        except OSError as e:
            diag('no cgroup of our own for nspawn (%s): using the recipe cleanup' % e)
            paths = []

        def pre():
            os.setsid()
            for p in paths:
                with open(p, 'w') as f:
                    f.write(str(os.getpid()))

        cmd = [nspawn, '--directory=/', '--volatile=yes', '--boot', '--private-network',
               '--register=no', '--keep-unit', '--console=pipe', '--machine=' + self.machine,
               '--bind-ro=%s/usr/local:/usr/local' % SYSROOT,
               '--bind=%s:/etc/wsflow' % self.etc,
               '--bind-ro=%s:/etc/systemd/system-preset/00-wsflow.preset' % self.preset,
               '--', 'systemd.mask=systemd-firstboot.service']
        t0 = time.monotonic()
        with open(self.log, 'wb') as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, preexec_fn=pre)
        Container.live.append(self)
        deadline = t0 + timeout
        while self.init is None:
            if self.proc.poll() is not None:
                raise BootFailed('systemd-nspawn exited %d:\n%s' % (self.proc.returncode,
                                                                  self.log_tail()))
            if time.monotonic() > deadline:
                raise BootFailed('no systemd child of nspawn after %ds' % timeout)
            self.init = self._find_init()
            time.sleep(0.05)
        state = ''
        while state not in ('running', 'degraded'):
            if time.monotonic() > deadline:
                raise BootFailed('container not up after %ds (is-system-running: %s):\n%s'
                                 % (timeout, state, self.log_tail()))
            time.sleep(0.1)
            state = self.sh(['systemctl', 'is-system-running'], timeout=10).stdout.strip()
        diag('container %s: init pid %d, %s in %.1f s' % (self.name, self.init, state,
                                                          time.monotonic() - t0))
        if state == 'degraded':
            diag(self.sh(['systemctl', '--failed', '--no-legend', '--plain']).stdout)
        return self

    def _find_init(self):
        """The container's PID 1: nspawn's child named systemd (an
        intermediate child exists briefly)."""
        for pid in os.listdir('/proc'):
            if not pid.isdigit():
                continue
            try:
                with open('/proc/%s/stat' % pid) as f:
                    st = f.read()
            except OSError:
                continue
            comm = st[st.index('(') + 1:st.rindex(')')]
            ppid = int(st[st.rindex(')') + 2:].split()[1])
            if ppid == self.proc.pid and comm == 'systemd':
                return int(pid)
        return None

    def teardown(self):
        if self in Container.live:
            Container.live.remove(self)
        if self.proc is None:
            return
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)           # clean halt
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                diag('nspawn %d still running 15 s after SIGTERM: SIGTERM again' % self.proc.pid)
                self.proc.send_signal(signal.SIGTERM)       # immediate termination
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        # The container's init is ours (nspawn's child): never leave it behind.
        if self.init is not None and self._alive_init():
            diag('container init %d survived nspawn: SIGKILL' % self.init)
            os.kill(self.init, signal.SIGKILL)
            wait_until(lambda: not self._alive_init(), 10)
        left = []
        if self.own_cgroup:
            for h in CG_HIERARCHIES:
                top = os.path.join(CGROUP_ROOT, h, self.cg)
                left += rmdir_tree(top)
        else:
            # notes §1.5: nspawn leaves these empty cgroups
            for h in CG_HIERARCHIES:
                for d in ('payload', 'supervisor'):
                    left += rmdir_tree(os.path.join(CGROUP_ROOT, h, d))
        if left:
            diag('cgroups not removed: %s' % left[:5])
        diag('container %s torn down in %.1f s' % (self.name, time.monotonic() - t0))

    def _alive_init(self):
        try:
            with open('/proc/%d/stat' % self.init) as f:
                st = f.read()
            return st[st.index('(') + 1:st.rindex(')')] == 'systemd' and \
                int(st[st.rindex(')') + 2:].split()[1]) in (self.proc.pid, 1)
        except OSError:
            return False

    def log_tail(self, n=20):
        try:
            with open(self.log, errors='replace') as f:
                return '\n'.join(f.read().splitlines()[-n:])
        except OSError:
            return ''

    # -- running things inside

    def sh(self, args, timeout=30, input=None):
        """args inside the container (all its namespaces): CompletedProcess."""
        cmd = ['nsenter', '-t', str(self.init), '-a'] + [str(a) for a in args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, input=input,
                                  timeout=timeout * SLOW,
                                  stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise CheckFailed('timed out after %gs: %s' % (timeout * SLOW, ' '.join(args)))

    def ok_sh(self, args, timeout=30):
        r = self.sh(args, timeout)
        check(r.returncode == 0, '%s: exit %d\n%s%s' % (' '.join(map(str, args)), r.returncode,
                                                         r.stdout, r.stderr))
        return r

    def systemctl(self, *args, timeout=30):
        return self.sh(['systemctl', '--no-pager'] + list(args), timeout)

    def show(self, *props, unit='wsflow.service'):
        r = self.systemctl('show', unit, '-p', ','.join(props))
        check(r.returncode == 0, 'systemctl show: %s' % r.stderr)
        out = {}
        for line in r.stdout.splitlines():
            if '=' in line:
                k, v = line.split('=', 1)
                out[k] = v
        return out

    def wsflowctl(self, *args, timeout=20):
        return self.sh([WSFLOWCTL_IN] + list(args), timeout)

    def ctl_json(self, *args):
        r = self.wsflowctl('-j', *args)
        check(r.returncode == 0, 'wsflowctl -j %s: exit %d\n%s%s' % (' '.join(args),
                                                                      r.returncode, r.stdout,
                                                                      r.stderr))
        return json.loads(r.stdout)

    def journal(self, since_us=0, unit='wsflow'):
        """journalctl -u wsflow -o json, entries at or after since_us."""
        r = self.sh(['journalctl', '-u', unit, '-o', 'json', '--no-pager'], timeout=30)
        out = []
        for line in r.stdout.splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if int(e.get('__REALTIME_TIMESTAMP', 0)) >= since_us:
                out.append(e)
        return out

    def journal_text(self, n=30):
        return self.sh(['journalctl', '-u', 'wsflow', '--no-pager', '-n', n,
                        '-o', 'short-monotonic']).stdout

    def path(self, p):
        """A path inside the container, seen from the host."""
        return '/proc/%d/root%s' % (self.init, p)

    def write_file(self, p, text):
        host = self.path(p)
        os.makedirs(os.path.dirname(host), exist_ok=True)
        with open(host, 'w') as f:
            f.write(text)

    def write_conf(self, text):
        """Replace /etc/wsflow/wsflow.conf (the bound dir) atomically."""
        tmp = os.path.join(self.etc, '.wsflow.conf.new')
        with open(tmp, 'w') as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.rename(tmp, os.path.join(self.etc, 'wsflow.conf'))

    def in_netns(self, fn, *args, timeout=60):
        """fn(*args) in a thread that joined the container's network
        namespace: sockets it makes are on the container's loopback."""
        t = self.netns_thread(fn, *args)
        t.join(timeout * SLOW)
        if t.is_alive():
            raise CheckFailed('%s in the container netns still running after %gs'
                              % (fn.__name__, timeout * SLOW))
        return t.result()

    def netns_thread(self, fn, *args):
        init = self.init
        box = {}

        def run():
            try:
                fd = os.open('/proc/%d/ns/net' % init, os.O_RDONLY)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        e = ctypes.get_errno()
                        raise OSError(e, 'setns: ' + os.strerror(e))
                finally:
                    os.close(fd)
                box['value'] = fn(*args)
            except BaseException as e:
                box['error'] = e

        def result():
            if 'error' in box:
                raise box['error']
            return box.get('value')
        t = threading.Thread(target=run, daemon=True)
        t.result = result
        t.start()
        return t

    def popen_netns(self, cmd, **kw):
        """A host program in the container's network namespace only (nsenter
        -n execs it: the Popen pid is the program's)."""
        return subprocess.Popen(['nsenter', '-t', str(self.init), '-n'] + [str(c) for c in cmd],
                                stdin=subprocess.DEVNULL, **kw)

    # -- wsflow.service helpers

    def fresh_start(self, conf):
        """Stop wsflow, write conf, start it; returns the show() after."""
        self.systemctl('stop', 'wsflow.service')
        self.systemctl('reset-failed', 'wsflow.service')
        self.write_conf(conf)
        r = self.systemctl('start', 'wsflow.service', timeout=60)
        check(r.returncode == 0, 'systemctl start wsflow: exit %d %s\n%s'
              % (r.returncode, r.stderr, self.journal_text()))
        return self.show('ActiveState', 'MainPID', 'NRestarts')

    def wait_state(self, want, timeout=10, unit='wsflow.service'):
        last = {}

        def cond():
            last.update(self.show('ActiveState', 'SubState', 'MainPID', unit=unit))
            return last.get('ActiveState') == want
        check(wait_until(cond, timeout), '%s not %s after %gs: %s'
              % (unit, want, timeout * SLOW, last))
        return last


def rmdir_tree(top):
    """rmdir top and everything under it, deepest first; what is left."""
    left = []
    if not os.path.isdir(top):
        return left
    for d, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count('/')):
        try:
            os.rmdir(d)
        except OSError:
            left.append(d)
    return left


def _teardown_all():
    for c in list(Container.live):
        try:
            c.teardown()
        except Exception:
            traceback.print_exc()


atexit.register(_teardown_all)


def wait_until(cond, timeout, step=0.1):
    """wsflowtest.wait_for, polling the container at a gentler pace."""
    return wait_for(cond, timeout, step)

# ---------------------------------------------------------------- config


def _val(v):
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, str):
        return '"%s"' % v
    return str(v)


def wsconf(producers=(), log_level='info'):
    """A wsflow.conf for the container: one listener on 127.0.0.1:9000,
    the default control socket, the given producers."""
    lines = ['# written by tests/integration/test_systemd.py',
             'log_level = "%s";' % log_level,
             'server: {',
             '  listen = ( { address = "127.0.0.1"; port = %d; } );' % PORT,
             '};']
    if producers:
        lines.append('producers = (')
        lines.append(',\n'.join('  { %s }' % ' '.join('%s = %s;' % (k, _val(v))
                                                     for k, v in p.items())
                                for p in producers))
        lines.append(');')
    return '\n'.join(lines) + '\n'

# ---------------------------------------------------------------- clients


def parse_frames(buf):
    """Complete frames at the head of buf: ([(opcode, fin, payload)], rest)."""
    frames = []
    while len(buf) >= 2:
        b0, b1 = buf[0], buf[1]
        n, off = b1 & 0x7f, 2
        if n == 126:
            if len(buf) < 4:
                break
            n, off = struct.unpack('!H', buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, off = struct.unpack('!Q', buf[2:10])[0], 10
        if b1 & 0x80:
            off += 4
        if len(buf) < off + n:
            break
        frames.append((b0 & 0x0f, bool(b0 & 0x80), bytes(buf[off:off + n])))
        buf = buf[off + n:]
    return frames, buf


def stream_until_close(port, started, limit=60):
    """Stream one endless binary message (64 KiB frames, as fast as the
    server takes them) to / until the server closes; answer its close.
    started is set once 2 digests arrived.  Returns a dict: close code,
    octets sent, how sending and reading ended, digests right or not."""
    chunk = os.urandom(65536)
    w = WSClient(port, '/')
    sock, buf = w.sock, bytearray(w.buf)
    sock.setblocking(False)
    h = hashlib.sha256()
    want, got = [], []
    out = bytearray()
    r = {'code': None, 'sent': 0, 'send_error': None, 'recv_end': None,
         'close_answered': False}
    first = True
    deadline = time.monotonic() + limit * SLOW
    try:
        while time.monotonic() < deadline:
            sending = r['send_error'] is None
            if sending and not out and r['code'] is None:
                out += frame_header(len(chunk), 2 if first else 0, fin=False) + chunk
                first = False
                h.update(chunk)
                r['sent'] += len(chunk)
                if r['sent'] % MiB == 0:
                    want.append(h.hexdigest())
            rd, wr, _ = select.select([sock], [sock] if out and sending else [], [], 0.5)
            if wr:
                try:
                    n = sock.send(out)
                    del out[:n]
                except BlockingIOError:
                    pass
                except OSError as e:        # keep reading: a close frame may be queued
                    r['send_error'] = repr(e)
            if rd:
                try:
                    data = sock.recv(262144)
                except BlockingIOError:
                    continue
                except OSError as e:
                    r['recv_end'] = repr(e)
                    break
                if not data:
                    r['recv_end'] = 'EOF'
                    break
                buf += data
                frames, buf = parse_frames(buf)
                for op, fin, payload in frames:
                    if op == 1:
                        got.append(payload.decode('ascii', 'replace'))
                        if len(got) >= 2:
                            started.set()
                    elif op == 8 and r['code'] is None:
                        r['code'] = struct.unpack('!H', payload[:2])[0] if len(payload) >= 2 \
                            else 1005
                        # answered after the frame now in flight
                        out += frame_header(2, 8) + struct.pack('!H', r['code'])
                        r['close_answered'] = True
        else:
            r['recv_end'] = 'still open after %gs' % (limit * SLOW)
    finally:
        sock.close()
        started.set()
    r['digests'] = len(got)
    r['digests_ok'] = got == want[:len(got)]
    return r

# ---------------------------------------------------------------- cases


def case1(c):
    """systemctl start returns after READY; a client right after gets its digests."""
    c.systemctl('stop', 'wsflow.service')
    c.systemctl('reset-failed', 'wsflow.service')
    c.write_conf(wsconf())
    t0 = time.monotonic()
    r = c.systemctl('start', 'wsflow.service', timeout=60)
    took = time.monotonic() - t0
    check(r.returncode == 0, 'systemctl start: exit %d %s\n%s' % (r.returncode, r.stderr,
                                                                  c.journal_text()))
    data = os.urandom(2 * MiB)

    def client():       # at once: no retry, no wait
        w = WSClient(PORT, '/')
        w.send_frame(data)
        got = w.recv_digests(2)
        return got, w.close()
    got, code = c.in_netns(client)
    check(got == batch_digests(data, MiB), 'digests for 2 MiB differ: %s' % got)
    check(code == 1000, 'close answered with %s' % code)
    p = c.show('ActiveState', 'SubState', 'StatusText', 'MainPID', 'Type', 'NotifyAccess')
    check(p.get('ActiveState') == 'active' and p.get('SubState') == 'running',
          'after start: %s' % p)
    check(p.get('Type') == 'notify', 'Type=%s' % p.get('Type'))
    pid = int(p.get('MainPID') or 0)
    check(pid > 0, 'MainPID=%s' % p.get('MainPID'))
    check(re.fullmatch(STATUS_RE, p.get('StatusText', '')),
          'StatusText=%r, want "N streams, X GB hashed, M mismatches"' % p.get('StatusText'))
    st = c.systemctl('status', 'wsflow.service', '-n', '0')
    m = re.search(r'^\s*Status: "(.*)"$', st.stdout, re.M)
    check(st.returncode == 0 and m and re.fullmatch(STATUS_RE, m.group(1)),
          'systemctl status (exit %d) shows no STATUS= line:\n%s' % (st.returncode, st.stdout))
    txt = c.wsflowctl('status')
    check(txt.returncode == 0 and txt.stdout.strip(),
          'wsflowctl status: exit %d %s%s' % (txt.returncode, txt.stdout, txt.stderr))
    js = c.ctl_json('status')
    check(js.get('pid') == pid, 'wsflowctl status pid %s, MainPID %d' % (js.get('pid'), pid))
    check(js.get('server', {}).get('connections_total', 0) >= 1,
          'wsflowctl status server: %s' % js.get('server'))
    diag('case 1: systemctl start took %.3f s; status line: %s' % (took, m.group(1)))


def case2(c):
    """Journal fields of stream open/close; one err entry for a forced mismatch."""
    c.fresh_start(wsconf())
    since = now_us()
    data = os.urandom(MiB)

    def client():
        w = WSClient(PORT, '/')
        lport = w.sock.getsockname()[1]
        w.send_frame(data)
        got = w.recv_digests(1)
        return lport, got, w.close()
    lport, got, code = c.in_netns(client)
    check(got == batch_digests(data, MiB), 'digest differs')
    ours = {}

    def have_open_close():
        ours.clear()
        for e in c.journal(since):
            if e.get('SYSLOG_IDENTIFIER') == 'wsflowd' and \
                    e.get('WSFLOW_PEER', '').endswith(':%d' % lport):
                ours.setdefault(e.get('WSFLOW_EVENT'), []).append(e)
        return 'stream-open' in ours and 'stream-end' in ours
    check(wait_until(have_open_close, 5),
          'no stream-open and stream-end entries with WSFLOW_PEER=...:%d (found %s):\n%s'
          % (lport, sorted(ours), c.journal_text()))
    op, cl = ours['stream-open'][0], ours['stream-end'][0]
    check(len(ours['stream-open']) == 1 and len(ours['stream-end']) == 1,
          'stream-open x%d, stream-end x%d' % (len(ours['stream-open']),
                                                 len(ours['stream-end'])))
    check(op.get('WSFLOW_STREAM') and op.get('WSFLOW_STREAM') == cl.get('WSFLOW_STREAM'),
          'WSFLOW_STREAM open %s close %s' % (op.get('WSFLOW_STREAM'), cl.get('WSFLOW_STREAM')))
    for e in (op, cl):
        check(e.get('PRIORITY') in ('5', '6', '7'), 'stream entry at PRIORITY=%s: %s'
              % (e.get('PRIORITY'), e.get('MESSAGE')))
        check(e.get('_SYSTEMD_UNIT') == 'wsflow.service', '_SYSTEMD_UNIT=%s'
              % e.get('_SYSTEMD_UNIT'))

    # a forced mismatch: a producer to a streaming peer that corrupts digest 0
    peer = c.popen_netns([PYTHON, os.path.join(PEERS, 'server_streaming.py'), '--port',
                          PEER_PORT, '--corrupt-digest', 0, '--seconds', 60 * SLOW],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = read_line(peer.stdout, 15)
        check(line and json.loads(line).get('listening') == PEER_PORT,
              'peer server did not start: %r %s' % (line, peer.poll()))
        since = now_us()
        p0 = c.fresh_start(wsconf([dict(name='bad', url='ws://127.0.0.1:%d/' % PEER_PORT,
                                        bytes=4 * MiB, reconnect=False)]))
        found = {}

        def producer_done():
            found.clear()
            for e in c.journal(since):
                if e.get('SYSLOG_IDENTIFIER') == 'wsflowd':
                    found.setdefault(e.get('WSFLOW_EVENT'), []).append(e)
            return any(e.get('WSFLOW_PRODUCER') == 'bad' for e in found.get('stream-end', ()))
        check(wait_until(producer_done, 20),
              'producer "bad" did not finish 4 MiB within 20 s (events %s):\n%s'
              % (sorted(k or '-' for k in found), c.journal_text()))
        mm = found.get('digest-mismatch', [])
        check(len(mm) == 1, '%d digest-mismatch entries, want 1:\n%s'
              % (len(mm), '\n'.join(e.get('MESSAGE', '') for e in mm)))
        e = mm[0]
        check(e.get('PRIORITY') == '3', 'digest-mismatch at PRIORITY=%s' % e.get('PRIORITY'))
        check(e.get('WSFLOW_PRODUCER') == 'bad' and e.get('WSFLOW_STREAM'),
              'digest-mismatch fields: WSFLOW_PRODUCER=%s WSFLOW_STREAM=%s'
              % (e.get('WSFLOW_PRODUCER'), e.get('WSFLOW_STREAM')))
        errs = [x for k, v in found.items() for x in v if x.get('PRIORITY') in ('0', '1', '2', '3')]
        check(len(errs) == 1, '%d entries at PRIORITY<=3, want only the mismatch:\n%s'
              % (len(errs), '\n'.join('%s %s' % (x.get('WSFLOW_EVENT'), x.get('MESSAGE'))
                                      for x in errs)))
        time.sleep(1)       # the daemon outlives its finished producer
        p1 = c.show('ActiveState', 'MainPID', 'NRestarts')
        check(p1 == p0, 'the daemon died after producer "bad" finished: %s -> %s\n%s'
              % (p0, p1, c.journal_text(40)))
        st = {}
        check(wait_until(lambda: st.update(c.show('StatusText')) or
                         st.get('StatusText', '').endswith(' 1 mismatch'), 5),
              'StatusText after one mismatch: %r' % st.get('StatusText'))
    finally:
        peer.send_signal(signal.SIGTERM)
        try:
            out, err = peer.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            peer.kill()
            out, err = peer.communicate()
    res = last_json(out)
    check(res.get('corrupted') == 1, 'peer corrupted %s digests: %s %s'
          % (res.get('corrupted'), res, err[-500:]))


def read_line(f, timeout):
    """One line from a pipe within timeout (None on timeout or EOF)."""
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        r, _, _ = select.select([f], [], [], 0.2)
        if r:
            line = f.readline()
            return line.strip() or None
    return None


def last_json(text):
    for line in reversed((text or '').splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            pass
    return {}


def producer_ids(c):
    return {s.get('name'): s.get('id') for s in c.ctl_json('streams').get('streams', [])
            if s.get('role') == 'producer'}


def case3(c):
    """reload: changed producer list applied, other streams kept; a broken
    file refused with file:line, old config kept, service active."""
    a = dict(name='a', url='ws://127.0.0.1:%d/' % PORT, rate=2000000)
    b = dict(name='b', url='ws://127.0.0.1:%d/' % PORT, rate=2000000)
    c.fresh_start(wsconf([a]))
    ids = {}
    check(wait_until(lambda: ids.update(producer_ids(c)) or 'a' in ids, 10),
          'producer a not in wsflowctl streams: %s' % ids)
    ida = ids['a']
    before = c.show('MainPID', 'NRestarts')
    # an outside stream across both reloads: half a message now, the rest after
    part1, part2, part3 = os.urandom(MiB), os.urandom(MiB), os.urandom(MiB)
    whole = batch_digests(part1 + part2 + part3, MiB)

    def open_client():
        w = WSClient(PORT, '/')
        w.send_frame(part1, opcode=2, fin=False)
        return w, w.recv_digests(1)
    w, got = c.in_netns(open_client)
    try:
        check(got == whole[:1], 'outside stream: first digest differs')
        since = now_us()
        c.write_conf(wsconf([a, b]))
        r = c.systemctl('reload', 'wsflow.service')
        check(r.returncode == 0, 'systemctl reload: exit %d %s' % (r.returncode, r.stderr))
        check(wait_until(lambda: ids.update(producer_ids(c)) or 'b' in ids, 10),
              'producer b not started by the reload: %s\n%s' % (ids, c.journal_text()))
        check(ids.get('a') == ida, 'producer a was restarted: id %s -> %s' % (ida, ids.get('a')))
        c.wait_state('active', 5)
        after = c.show('MainPID', 'NRestarts')
        check(after == before, 'reload changed %s -> %s' % (before, after))
        w.send_frame(part2, opcode=0, fin=False)
        check(w.recv_digests(1) == whole[1:2], 'outside stream: digest after reload differs')
        check(any(e.get('WSFLOW_EVENT') == 'reload' for e in c.journal(since)),
              'no WSFLOW_EVENT=reload journal entry')
        idb = ids['b']

        # a broken file: refused with file:line, the old configuration stays
        text = wsconf([a, b])
        lines = text.splitlines()
        bad_line = len(lines) - 1        # the line of producer b
        lines[bad_line - 1] = lines[bad_line - 1].replace('rate = 2000000;', 'rate = ;')
        check('rate = ;' in lines[bad_line - 1], 'test bug: no producer b line')
        since = now_us()
        c.write_conf('\n'.join(lines) + '\n')
        r = c.systemctl('reload', 'wsflow.service')
        check(r.returncode != 0, 'systemctl reload of a broken file succeeded (ExecReload '
              'must wait for the daemon\'s answer)')
        refused = []
        check(wait_until(lambda: refused.extend(
            e for e in c.journal(since) if e.get('WSFLOW_EVENT') == 'reload-refused') or refused,
            10), 'no WSFLOW_EVENT=reload-refused entry:\n%s' % c.journal_text())
        e = refused[0]
        check(e.get('PRIORITY') == '3', 'reload-refused at PRIORITY=%s' % e.get('PRIORITY'))
        check('%s:%d' % (CONF_IN, bad_line) in e.get('MESSAGE', ''),
              'reload-refused message lacks %s:%d: %r' % (CONF_IN, bad_line, e.get('MESSAGE')))
        c.wait_state('active', 5)
        after = c.show('MainPID', 'NRestarts', 'ActiveState')
        check(after.get('MainPID') == before['MainPID'] and
              after.get('NRestarts') == before['NRestarts'],
              'broken reload: %s -> %s' % (before, after))
        ids2 = producer_ids(c)
        check(ids2.get('a') == ida and ids2.get('b') == idb,
              'producers after the refused reload: %s, want a=%s b=%s' % (ids2, ida, idb))
        w.send_frame(part3, opcode=0, fin=True)
        check(w.recv_digests(1) == whole[2:3], 'outside stream: digest after the refusal differs')
        check(w.close() == 1000, 'outside stream: close not answered with 1000')
        # a listener change cannot apply at reload: the answer says so
        c.write_conf(wsconf([a, b]).replace('port = %d;' % PORT, 'port = %d;' % (PORT + 1)))
        r = c.wsflowctl('reload')
        check(r.returncode == 0 and 'server.listen' in r.stdout and 'restart' in r.stdout,
              'wsflowctl reload after a listen change: exit %d %r %r (want it to name '
              'server.listen as waiting for a restart)' % (r.returncode, r.stdout, r.stderr))
    finally:
        w.sock.close()


def case4(c):
    """systemctl stop while a client streams: close 1001, exit 0, < 10 s."""
    c.fresh_start(wsconf())
    started = threading.Event()
    t = c.netns_thread(stream_until_close, PORT, started, 60)
    check(started.wait(15 * SLOW), 'the client got no 2 digests within 15 s')
    if not t.is_alive():
        raise CheckFailed('client ended before the stop: %s' % (t.result(),))
    t0 = time.monotonic()
    r = c.systemctl('stop', 'wsflow.service', timeout=60)
    took = time.monotonic() - t0
    t.join(20 * SLOW)
    check(not t.is_alive(), 'the client still streaming 20 s after the stop')
    res = t.result()
    check(r.returncode == 0, 'systemctl stop: exit %d %s' % (r.returncode, r.stderr))
    diag('case 4: systemctl stop took %.2f s; client %s' % (took, res))
    check(res['code'] == 1001, 'client got close code %s, want 1001: %s' % (res['code'], res))
    if res['send_error']:
        diag('note: the daemon did not wait for the client\'s Close reply (the client, still '
             'sending, got %s): RFC 6455 §7.1.1 wants TCP closed after both Close frames'
             % res['send_error'])
    check(res['digests_ok'], 'client digests wrong: %s' % res)
    p = c.show('ActiveState', 'Result', 'ExecMainStatus', 'ExecMainCode', 'TimeoutStopUSec')
    check(p.get('ActiveState') in ('inactive',) and p.get('Result') == 'success',
          'after stop: %s' % p)
    check(p.get('ExecMainStatus') == '0', 'ExecMainStatus=%s (code %s)'
          % (p.get('ExecMainStatus'), p.get('ExecMainCode')))
    check(took < 10, 'systemctl stop took %.1f s (TimeoutStopSec %s)' % (took,
                                                                        p.get('TimeoutStopUSec')))


DROPIN_DIR = '/etc/systemd/system/wsflow.service.d'
WATCHDOG_DROPIN = DROPIN_DIR + '/50-test-watchdog.conf'


@contextlib.contextmanager
def watchdog_service(c):
    """wsflow.service started with the drop-in WatchdogSec=3s (removed
    after, the service stopped): yields (MainPID, NRestarts)."""
    c.write_file(WATCHDOG_DROPIN, '[Service]\nWatchdogSec=3s\n')
    try:
        c.ok_sh(['systemctl', 'daemon-reload'])
        c.fresh_start(wsconf())
        p = c.show('WatchdogUSec', 'MainPID', 'NRestarts')
        check(p.get('WatchdogUSec') == '3s', 'drop-in not applied: WatchdogUSec=%s'
              % p.get('WatchdogUSec'))
        yield int(p['MainPID']), int(p['NRestarts'])
    finally:
        try:
            os.unlink(c.path(WATCHDOG_DROPIN))
        except OSError:
            pass
        c.sh(['systemctl', 'daemon-reload'])
        c.systemctl('stop', 'wsflow.service')
        c.systemctl('reset-failed', 'wsflow.service')


def restarted(c, pid0, n0, last):
    """wsflow.service runs again: NRestarts up, a new MainPID (last: the
    properties seen)."""
    last.update(c.show('MainPID', 'NRestarts', 'ActiveState', 'Result'))
    return int(last.get('NRestarts') or 0) > n0 and \
        last.get('MainPID') not in ('0', str(pid0)) and last.get('ActiveState') == 'active'


def watchdog_logged(c, since):
    msgs = [e.get('MESSAGE', '') for e in c.journal(since)]
    check(any('Watchdog timeout' in m for m in msgs),
          'systemd logged no watchdog timeout:\n%s' % '\n'.join(msgs[-10:]))


def case5(c):
    """SIGSTOP of the main pid: watchdog kill and restart."""
    with watchdog_service(c) as (pid0, n0):
        # pings keep it alive past WatchdogSec
        time.sleep(4)
        q = c.show('MainPID', 'NRestarts', 'ActiveState')
        check(q == dict(MainPID=str(pid0), NRestarts=str(n0), ActiveState='active'),
              'killed while running normally (no WATCHDOG=1 pings?): %s -> %s\n%s'
              % ((pid0, n0), q, c.journal_text()))
        since = now_us()
        c.ok_sh(['kill', '-STOP', pid0])
        t0 = time.monotonic()
        last = {}
        check(wait_until(lambda: restarted(c, pid0, n0, last), 3 + 1 + 4, step=0.1),
              'not restarted within %gs of SIGSTOP: %s\n%s' % ((3 + 1 + 4) * SLOW, last,
                                                              c.journal_text()))
        took = time.monotonic() - t0
        watchdog_logged(c, since)
        diag('case 5: restarted %.1f s after SIGSTOP (WatchdogSec=3s, RestartSec=1s); '
             'MainPID %d -> %s, NRestarts %d -> %s' % (took, pid0, last['MainPID'], n0,
                                                      last['NRestarts']))
        check(took < 3 + 1 + 3, 'restart took %.1f s' % took)


# Run on the host as root: freezes one thread of another process with
# PTRACE_SEIZE + PTRACE_INTERRUPT (the other threads run on) and holds it
# until it dies with its process (reaped here, so the process can finish
# dying), stdin closes or argv[2] seconds pass; then PTRACE_DETACH.  Its
# exit detaches too.  Prints "stopped" once the thread is.
TRACER = r"""
import ctypes, os, select, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)
SEIZE, INTERRUPT, DETACH, WALL = 0x4206, 0x4207, 17, 0x40000000
tid, end = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])

def ptrace(req):
    if libc.ptrace(req, tid, None, None) == -1:
        sys.exit('ptrace(%#x, %d): %s' % (req, tid, os.strerror(ctypes.get_errno())))

ptrace(SEIZE)
try:
    ptrace(INTERRUPT)
    said = False
    while time.monotonic() < end and not select.select([sys.stdin], [], [], 0.05)[0]:
        pid, st = os.waitpid(tid, os.WNOHANG | WALL)
        if pid and not os.WIFSTOPPED(st):
            print('exited', flush=True)
            break
        if pid and not said:
            print('stopped', flush=True)
            said = True
finally:
    libc.ptrace(DETACH, tid, None, None)
"""


def host_pid(c, pid):
    """The host pid of the container's process pid (NSpid: in the host's
    /proc of the processes in the container's pid namespace)."""
    ns = os.readlink('/proc/%d/ns/pid' % c.init)
    for p in filter(str.isdigit, os.listdir('/proc')):
        try:
            if os.readlink('/proc/%s/ns/pid' % p) != ns:
                continue
            with open('/proc/%s/status' % p) as f:
                nspid = [l.split()[1:] for l in f if l.startswith('NSpid:')]
        except OSError:
            continue
        if nspid and nspid[0][-1] == str(pid):
            return int(p)
    return None


def threads(hpid):
    """{tid: (comm, state)} of the host process hpid."""
    out = {}
    for t in os.listdir('/proc/%d/task' % hpid):
        try:
            with open('/proc/%d/task/%s/stat' % (hpid, t)) as f:
                st = f.read()
        except OSError:
            continue
        out[int(t)] = (st[st.index('(') + 1:st.rindex(')')], st[st.rindex(')') + 2])
    return out


def case8(c):
    """A worker thread frozen by ptrace: the watchdog pings stop, restart."""
    wd_sec, restart_sec = 3, 1
    with watchdog_service(c) as (pid0, n0):
        hpid = host_pid(c, pid0)
        check(hpid, 'MainPID %d not found in the host /proc' % pid0)
        ths = threads(hpid)
        w0 = [t for t, (name, _) in ths.items() if name == 'wsflowd-w0']
        check(w0, 'MainPID %d (host pid %d) has no thread wsflowd-w0: %s'
              % (pid0, hpid, sorted(ths.values())))
        tid = w0[0]
        # idle workers turn their loops too: no kill for 2 x WatchdogSec
        last = {}

        def changed():
            last.update(c.show('MainPID', 'NRestarts', 'ActiveState'))
            return last != dict(MainPID=str(pid0), NRestarts=str(n0), ActiveState='active')
        check(not wait_until(changed, 2 * wd_sec),
              'killed while idle: %s -> %s\n%s' % ((pid0, n0), last, c.journal_text()))
        since = now_us()
        budget = 2 * wd_sec + restart_sec + 5
        tracer = subprocess.Popen([PYTHON, '-c', TRACER, str(tid), str((budget + 20) * SLOW)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            line = read_line(tracer.stdout, 10)
            check(line == 'stopped', 'wsflowd-w0 (tid %d) not frozen: %r, tracer exit %s'
                  % (tid, line, tracer.poll()))
            states = {t: s for t, (_, s) in threads(hpid).items()}
            check(states.get(tid) == 't' and states.get(hpid) != 't',
                  'thread states after PTRACE_INTERRUPT of %d: %s' % (tid, states))
            t0 = time.monotonic()
            last = {}
            check(wait_until(lambda: restarted(c, pid0, n0, last) or
                             last.get('Result') == 'watchdog', budget),
                  'no watchdog kill within %gs of freezing wsflowd-w0 only (the main thread '
                  'still pinging?): %s\n%s' % (budget * SLOW, last, c.journal_text()))
            killed = time.monotonic() - t0
            watchdog_logged(c, since)
            check(wait_until(lambda: restarted(c, pid0, n0, last),
                             max(1, budget - killed / SLOW)),
                  'not restarted within %gs of freezing wsflowd-w0: %s\n%s'
                  % (budget * SLOW, last, c.journal_text()))
            diag('case 8: watchdog kill %.1f s, restart %.1f s after freezing wsflowd-w0 '
                 '(WatchdogSec=%ds, RestartSec=%ds): MainPID %d -> %s, NRestarts %d -> %s'
                 % (killed, time.monotonic() - t0, wd_sec, restart_sec, pid0, last['MainPID'],
                    n0, last['NRestarts']))
            # the frozen thread died with its process: reaped, the tracer is done
            check(wait_until(lambda: tracer.poll() is not None, 10),
                  'thread %d of the killed wsflowd still there after %gs' % (tid, 10 * SLOW))
        finally:
            try:
                _, err = tracer.communicate('', timeout=5 * SLOW)   # closes its stdin
            except subprocess.TimeoutExpired:
                tracer.kill()
                _, err = tracer.communicate()
            if err.strip():
                diag('tracer: %s' % err.strip()[-500:])


def case7(c):
    """Off-line: systemd-analyze verify/security, mandoc -Tlint."""
    probs = []
    if os.path.exists('/etc/manpath.config'):
        # man(1) for the Documentation= check needs it; the container's /etc is empty
        shutil.copy('/etc/manpath.config', c.path('/etc/manpath.config'))
    r = c.sh(['systemd-analyze', 'verify', SERVICE, SOCKET], timeout=60)
    if r.returncode != 0 or r.stderr.strip():
        probs.append('systemd-analyze verify: exit %d\n%s' % (r.returncode, r.stderr.strip()))
    r = c.sh(['systemd-analyze', 'security', '--offline=yes', '--no-pager', SERVICE], timeout=60)
    m = re.search(r'Overall exposure level for wsflow\.service: (\d+\.\d+)', r.stdout)
    if not m:
        probs.append('systemd-analyze security: no exposure level (exit %d)\n%s%s'
                     % (r.returncode, r.stdout[-1000:], r.stderr))
    else:
        diag('case 7: exposure level %s' % m.group(1))
        if float(m.group(1)) > 2.0:
            probs.append('exposure level %s > 2.0:\n%s' % (m.group(1), '\n'.join(
                l for l in r.stdout.splitlines() if l.startswith('✗'))))
    # issue #10.12: no IP policy by default (a test tool reaches other hosts)
    r = c.sh(['systemctl', 'show', 'wsflow.service', '-p', 'IPAddressDeny,IPAddressAllow'])
    if any(l.split('=', 1)[1].strip() for l in r.stdout.splitlines() if '=' in l):
        probs.append('wsflow.service sets an IP address policy: %s' % r.stdout.strip())
    mandoc = shutil.which('mandoc')
    pages = [os.path.join(SYSROOT, 'usr/local/share/man', p) for p in
             ('man8/wsflowd.8', 'man8/wsflowctl.8', 'man5/wsflow.conf.5')]
    if mandoc is None:
        probs.append('mandoc not installed (make deps)')
    else:
        for p in pages:
            if not os.path.exists(p):
                probs.append('%s not installed' % p)
                continue
            r = subprocess.run([mandoc, '-Tlint', '-Wwarning', p], capture_output=True,
                               text=True, timeout=30)
            if r.returncode != 0 or r.stdout.strip() or r.stderr.strip():
                probs.append('mandoc -Tlint -Wwarning %s: exit %d\n%s%s'
                             % (p, r.returncode, r.stdout, r.stderr))
    check(not probs, '\n'.join(probs))


def case6(c):
    """Socket activation: zero refused connections through 5 restarts."""
    c.systemctl('stop', 'wsflow.service')      # case 12 activated it
    p = c.show('ActiveState', 'SubState', unit='wsflow.socket')
    check(p.get('ActiveState') == 'active' and p.get('SubState') == 'listening',
          'wsflow.socket after boot: %s' % p)
    stop = threading.Event()
    counts = {'ok': 0, 'refused': 0, 'other': 0, 'errors': []}

    def hammer():
        nxt = time.monotonic()
        while not stop.is_set():
            so = socket.socket()
            so.settimeout(2)
            try:
                so.connect(('127.0.0.1', PORT))
                counts['ok'] += 1
            except ConnectionRefusedError:
                counts['refused'] += 1
            except OSError as e:
                counts['other'] += 1
                counts['errors'].append(repr(e))
            finally:
                so.close()
            nxt += 0.01
            time.sleep(max(0, nxt - time.monotonic()))
    try:
        ino = os.stat(c.path(CTL_IN)).st_ino
    except OSError as e:
        raise CheckFailed('wsflow.socket made no %s: %s' % (CTL_IN, e))
    t = c.netns_thread(hammer)
    restarts = []
    try:
        # the first connection starts the service
        first = c.wait_state('active', 10)
        pid = first['MainPID']
        for i in range(5):
            c.systemctl('reset-failed', 'wsflow.service')    # StartLimitBurst=5
            t0 = time.monotonic()
            r = c.systemctl('restart', 'wsflow.service', timeout=60)
            check(r.returncode == 0, 'restart %d: exit %d %s' % (i + 1, r.returncode, r.stderr))
            took = time.monotonic() - t0
            st = c.wait_state('active', 5)
            check(st['MainPID'] not in ('0', pid), 'restart %d: MainPID %s -> %s'
                  % (i + 1, pid, st['MainPID']))
            pid = st['MainPID']
            try:
                mode = os.stat(c.path(CTL_IN)).st_mode
            except OSError as e:
                raise CheckFailed('restart %d: %s gone: %s' % (i + 1, CTL_IN, e))
            check(stat.S_ISSOCK(mode), 'restart %d: %s is not a socket' % (i + 1, CTL_IN))
            check(os.stat(c.path(CTL_IN)).st_ino == ino,
                  'restart %d: %s is another socket than wsflow.socket made' % (i + 1, CTL_IN))
            js = c.ctl_json('status')
            check(str(js.get('pid')) == pid, 'restart %d: wsflowctl status pid %s, MainPID %s'
                  % (i + 1, js.get('pid'), pid))
            restarts.append(took)
            time.sleep(0.3)
    finally:
        stop.set()
        t.join(10)
    diag('case 6: restarts took %s s; connects ok %d, refused %d, other %d %s'
         % (', '.join('%.2f' % x for x in restarts), counts['ok'], counts['refused'],
            counts['other'], counts['errors'][:3]))
    check(counts['refused'] == 0 and counts['other'] == 0,
          '%d refused and %d failed connections through 5 restarts: %s'
          % (counts['refused'], counts['other'], counts['errors'][:5]))
    check(counts['ok'] >= 100, 'only %d connections made' % counts['ok'])
    # the sockets came from systemd, and the service still serves
    pid_msgs = [e.get('MESSAGE', '') for e in c.journal(0) if e.get('_PID') == pid]
    for what in ('listening on 127.0.0.1:%d' % PORT, 'control socket %s' % CTL_IN):
        check(any(m.startswith(what) and 'from systemd' in m for m in pid_msgs),
              'the last wsflowd (pid %s) did not log "%s ... from systemd":\n%s'
              % (pid, what, '\n'.join(pid_msgs[:10])))
    data = os.urandom(MiB)

    def client():
        w = WSClient(PORT, '/')
        w.send_frame(data)
        return w.recv_digests(1), w.close()
    got, code = c.in_netns(client)
    check(got == batch_digests(data, MiB) and code == 1000, 'client after the restarts: %s %s'
          % (got, code))

# ---------------------------------------------------------------- operating (issue #10)

MEMBER, OUTSIDER = 'alice', 'bob'


def make_users(c):
    """alice in group wsflow, bob not (sysusers.d: useradd wants a login.defs
    the container's empty /etc lacks)."""
    c.write_file('/run/sysusers.d/wsflowtest.conf',
                 'u %s - - -\nm %s wsflow\nu %s - - -\n' % (MEMBER, MEMBER, OUTSIDER))
    c.ok_sh(['systemd-sysusers'])


def as_user(c, user, *args):
    return c.sh(['setpriv', '--reuid', user, '--regid', user, '--init-groups',
                 WSFLOWCTL_IN] + list(args))


def ids_of(c, name):
    """(uid, group gid, primary gid of the user) from the container."""
    u = c.ok_sh(['getent', 'passwd', name]).stdout.split(':')
    g = c.ok_sh(['getent', 'group', name]).stdout.split(':')
    return int(u[2]), int(g[2]), int(u[3])


def check_socket(c, gid):
    st = os.stat(c.path(CTL_IN))
    check(stat.S_ISSOCK(st.st_mode) and st.st_uid == 0 and st.st_gid == gid and
          stat.S_IMODE(st.st_mode) == 0o660,
          '%s is %d:%d %o, want root:wsflow (gid %d) 0660'
          % (CTL_IN, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), gid))


def case9(c):
    """The admin made the group first (groupadd wsflow, as old docs said),
    then installed: sysusers makes the user on that group; the service runs
    as it; a member of wsflow runs every command, a non-member gets exit 4."""
    c.systemctl('stop', 'wsflow.service')
    c.sh(['userdel', 'wsflow'])
    c.sh(['groupdel', 'wsflow'])
    c.ok_sh(['groupadd', '-r', 'wsflow'])
    c.ok_sh(['systemd-sysusers', '/usr/local/lib/sysusers.d/wsflow.conf'])
    uid, gid, ugid = ids_of(c, 'wsflow')
    check(ugid == gid, 'user wsflow has primary gid %d, group wsflow is %d' % (ugid, gid))
    make_users(c)
    a = dict(name='a', url='ws://127.0.0.1:%d/' % PORT, rate=1000000, autostart=False)
    p = c.fresh_start(wsconf([a]))
    with open('/proc/%d/status' % host_pid(c, int(p['MainPID']))) as f:
        m = re.search(r'^Uid:\s+(\d+)', f.read(), re.M)
    check(m and int(m.group(1)) == uid, 'wsflowd runs as uid %s, want wsflow (%d)'
          % (m and m.group(1), uid))
    check_socket(c, gid)
    for args in (('status',), ('start', 'a'), ('streams',), ('stop', 'a'), ('reload',)):
        r = as_user(c, MEMBER, *args)
        check(r.returncode == 0, '%s (member of wsflow): wsflowctl %s: exit %d %s%s'
              % (MEMBER, ' '.join(args), r.returncode, r.stdout, r.stderr))
    r = as_user(c, OUTSIDER, 'status')
    check(r.returncode == 4 and 'permission denied' in r.stderr.lower(),
          '%s (not a member): wsflowctl status: exit %d %r, want 4 and "permission denied"'
          % (OUTSIDER, r.returncode, r.stderr))
    r = c.systemctl('reload', 'wsflow.service')
    check(r.returncode == 0, 'systemctl reload (ExecReload=wsflowctl reload as wsflow): exit %d %s'
          % (r.returncode, r.stderr))


def tls_pair(c, d):
    """A self-signed certificate and key in d (inside), root 0700/0600."""
    tmp = os.path.join(tmpdir(), 'tls-' + c.name)
    os.makedirs(tmp, exist_ok=True)
    r = subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
                        '-subj', '/CN=localhost', '-keyout', tmp + '/key.pem',
                        '-out', tmp + '/cert.pem'], capture_output=True, timeout=60)
    check(r.returncode == 0, 'openssl req failed: %s' % r.stderr[-300:])
    os.makedirs(c.path(d), exist_ok=True)
    os.chmod(c.path(d), 0o700)
    for f in ('key.pem', 'cert.pem'):
        shutil.copy(os.path.join(tmp, f), c.path(d + '/' + f))
        os.chmod(c.path(d + '/' + f), 0o600)


def tls_conf(cert, key):
    return wsconf().replace('port = %d; }' % PORT, 'port = %d; tls = { cert = "%s"; '
                            'key = "%s"; }; }' % (PORT, cert, key))


def case10(c):
    """A key readable only by root: named directly, the start fails once
    with exit 78 (Permission denied, no restart); delivered with
    LoadCredential= and named $CREDENTIALS_DIRECTORY/..., wss:// works."""
    keys = '/etc/wsflow-keys'
    tls_pair(c, keys)
    c.systemctl('stop', 'wsflow.service')
    c.systemctl('reset-failed', 'wsflow.service')
    c.write_conf(tls_conf(keys + '/cert.pem', keys + '/key.pem'))
    r = c.systemctl('start', 'wsflow.service', timeout=60)
    check(r.returncode != 0, 'started with a key it cannot read')
    time.sleep(2.5)             # > RestartSec: a restart would have come
    p = c.show('ActiveState', 'NRestarts', 'ExecMainStatus')
    check(p.get('ActiveState') == 'failed' and p.get('NRestarts') == '0' and
          p.get('ExecMainStatus') == '78', 'unreadable key: %s, want failed, 0 restarts, 78' % p)
    check('Permission denied' in c.journal_text(10), 'the journal does not say Permission '
          'denied:\n' + c.journal_text(10))
    dropin = DROPIN_DIR + '/20-test-credentials.conf'
    c.write_file(dropin, '[Service]\nLoadCredential=wsflow.crt:%s/cert.pem\n'
                 'LoadCredential=wsflow.key:%s/key.pem\n' % (keys, keys))
    try:
        c.ok_sh(['systemctl', 'daemon-reload'])
        c.fresh_start(tls_conf('$CREDENTIALS_DIRECTORY/wsflow.crt',
                               '$CREDENTIALS_DIRECTORY/wsflow.key'))
        data = os.urandom(MiB)

        def client():
            w = WSClient(PORT, '/', tls=True)
            w.send_frame(data)
            got = w.recv_digests(1)
            return got, w.close()
        got, code = c.in_netns(client)
        check(got == batch_digests(data, MiB), 'wss:// digest differs: %s' % got)
    finally:
        os.unlink(c.path(dropin))
        c.sh(['systemctl', 'daemon-reload'])
        c.systemctl('stop', 'wsflow.service')


def case11(c):
    """The journal names the stream in MESSAGE; progress and end entries
    carry their numbers."""
    a = dict(name='jn', url='ws://127.0.0.1:%d/' % PORT, rate=2000000)
    since = now_us()
    c.fresh_start(wsconf([a]))
    ids = {}
    check(wait_until(lambda: ids.update(producer_ids(c)) or 'jn' in ids, 10),
          'producer jn not running: %s' % ids)
    prefix = '[producer %s jn]' % ids['jn']
    prog = []
    check(wait_until(lambda: prog.extend(e for e in c.journal(since)
                                         if e.get('WSFLOW_EVENT') == 'progress') or prog, 15, 0.5),
          'no WSFLOW_EVENT=progress entry within 15 s:\n' + c.journal_text())
    e = prog[0]
    check(prefix in e.get('MESSAGE', ''), 'progress MESSAGE %r does not name %s'
          % (e.get('MESSAGE'), prefix))
    check(e.get('WSFLOW_BYTES', '').isdigit() and e.get('WSFLOW_RATE', '').isdigit(),
          'progress entry lacks numeric WSFLOW_BYTES/WSFLOW_RATE: %s' % e)
    rate = int(e['WSFLOW_RATE'])
    check(1500000 <= rate <= 2500000, 'WSFLOW_RATE=%d for rate = 2000000' % rate)
    r = c.wsflowctl('stop', 'jn')
    check(r.returncode == 0, 'stop jn: %s' % r.stderr)
    end = []
    check(wait_until(lambda: end.extend(e for e in c.journal(since)
                                        if e.get('WSFLOW_EVENT') == 'stream-end' and
                                        e.get('WSFLOW_PRODUCER') == 'jn') or end, 10),
          'no WSFLOW_EVENT=stream-end entry for jn:\n' + c.journal_text())
    check(end[0].get('WSFLOW_END_REASON') and prefix in end[0].get('MESSAGE', ''),
          'stream-end entry: %s' % end[0])
    for e in c.journal(since):
        if e.get('WSFLOW_PRODUCER') == 'jn':
            check(prefix in e.get('MESSAGE', ''), 'journal MESSAGE %r about producer jn does '
                  'not name it (%s)' % (e.get('MESSAGE'), prefix))


def case12(c):
    """A clean boot with wsflow.socket enabled and the installed
    configuration: the socket is root:wsflow 0660 before the daemon runs; a
    member's wsflowctl status starts it; no producer runs."""
    make_users(c)
    _, gid, _ = ids_of(c, 'wsflow')
    s = c.show('ActiveState')
    check(s.get('ActiveState') == 'inactive', 'wsflow.service active before any connection: %s'
          % s)
    check_socket(c, gid)
    r = as_user(c, MEMBER, 'status')
    check(r.returncode == 0, 'wsflowctl status (member, socket activation): exit %d %s%s'
          % (r.returncode, r.stdout, r.stderr))
    c.wait_state('active', 10)
    js = c.ctl_json('status')
    check(js.get('producers', {}).get('running') == 0, 'the installed configuration runs '
          'producers: %s' % js.get('producers'))
    check(not producer_ids(c), 'producers in wsflowctl streams: %s' % producer_ids(c))


def case13(c):
    """A configuration error at restart: one failure (exit 78), no restart,
    wsflow.socket stays active; wsflowctl says why; fixed, it starts."""
    with open(c.path(CONF_IN)) as f:
        good = f.read()
    c.ok_sh(['systemctl', 'start', 'wsflow.service'])
    c.write_conf('server: { bogus = 1; };\n')
    r = c.systemctl('restart', 'wsflow.service', timeout=60)
    check(r.returncode != 0, 'restart with a broken configuration succeeded')
    time.sleep(2.5)             # > RestartSec
    p = c.show('ActiveState', 'NRestarts', 'ExecMainStatus')
    check(p.get('ActiveState') == 'failed' and p.get('NRestarts') == '0' and
          p.get('ExecMainStatus') == '78', 'after a broken restart: %s' % p)
    r = c.wsflowctl('status')
    check(r.returncode != 0 and 'wsflow.conf:1' in r.stderr and 'bogus' in r.stderr,
          'wsflowctl status while the configuration is broken: exit %d %r (want the '
          'file:line of the error)' % (r.returncode, r.stderr))

    def http_get():
        with socket.create_connection(('127.0.0.1', PORT), 10 * SLOW) as k:
            k.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
            k.settimeout(10 * SLOW)
            got = b''
            while True:
                b = k.recv(4096)
                if not b:
                    return got
                got += b
    got = c.in_netns(http_get)
    check(got.startswith(b'HTTP/1.1 503'), 'a TCP client while the configuration is broken got '
          '%r, want a 503' % got[:200])
    time.sleep(1)
    q = c.show('ActiveState', 'Result', unit='wsflow.socket')
    check(q.get('ActiveState') == 'active', 'wsflow.socket after the failed starts: %s' % q)
    p = c.show('NRestarts')
    check(p.get('NRestarts') == '0', 'restarts: %s' % p)
    c.write_conf(good)
    r = c.systemctl('start', 'wsflow.service', timeout=60)
    check(r.returncode == 0, 'start after the fix: exit %d %s' % (r.returncode, r.stderr))
    c.wait_state('active', 10)


# ---------------------------------------------------------------- main


CASES_A = [
    ('1. systemctl start wsflow returns after READY: active/running, Type=notify, StatusText '
     '"N streams, X GB hashed, M mismatches" (also in systemctl status), a client connecting '
     'at once gets the 2 digests of 2 MiB; wsflowctl status works, its pid = MainPID', case1),
    ('2. journalctl -u wsflow -o json: stream-open/stream-end entries with WSFLOW_STREAM, '
     'WSFLOW_PEER, WSFLOW_EVENT, SYSLOG_IDENTIFIER=wsflowd; a producer against a peer that '
     'corrupts one digest gives exactly one PRIORITY=3 WSFLOW_EVENT=digest-mismatch entry '
     '(and "1 mismatch" in StatusText)', case2),
    ('3. systemctl reload: added producer b starts, producer a keeps its stream id, an outside '
     'stream keeps streaming, same MainPID/NRestarts; a broken file is refused (PRIORITY=3 '
     'reload-refused with file:line), service stays active with the old configuration', case3),
    ('4. systemctl stop while a client streams: the client gets close 1001, '
     'ExecMainStatus=0, Result=success, stop < 10 s', case4),
    ('5. watchdog (drop-in WatchdogSec=3s): no kill while pinging; kill -STOP of MainPID -> '
     'systemd kills and restarts it (NRestarts+1, new MainPID) within WatchdogSec+RestartSec+3 s',
     case5),
    ('7. off-line: systemd-analyze verify of the installed units prints nothing on stderr; '
     'systemd-analyze security --offline=yes exposure <= 2.0; no IPAddressDeny/Allow; mandoc -Tlint -Wwarning clean on '
     'wsflowd.8, wsflowctl.8, wsflow.conf.5', case7),
    ('8. watchdog and workers (drop-in WatchdogSec=3s): worker thread wsflowd-w0 alone frozen '
     'from the host (PTRACE_SEIZE + PTRACE_INTERRUPT) while the main thread runs on -> the '
     'WATCHDOG=1 pings stop, systemd kills and restarts it (Result=watchdog or NRestarts+1, '
     'new MainPID) within 2 x WatchdogSec+RestartSec+5 s; no kill while idle', case8),
    ('9. users (issue #10.1-2): groupadd wsflow before the install, then systemd-sysusers: the '
     'user wsflow takes that group, wsflowd runs as it, the control socket is root:wsflow 0660; '
     'a member of wsflow (setpriv) runs status, start, stop, streams, reload; a non-member gets '
     'exit 4 "permission denied"; systemctl reload works (ExecReload=wsflowctl reload)', case9),
    ('10. TLS key (issue #10.5): a root-only key named directly fails the start once (exit 78, '
     'Permission denied, NRestarts 0); delivered with LoadCredential= and named '
     '$CREDENTIALS_DIRECTORY/wsflow.key, a wss:// client gets its digest', case10),
    ('11. journal (issue #10.10): MESSAGE names its stream "[producer N name]"; progress entries '
     'carry WSFLOW_EVENT=progress, WSFLOW_BYTES, WSFLOW_RATE (interval average within 25 % of '
     'rate); stop -> WSFLOW_EVENT=stream-end with WSFLOW_END_REASON', case11),
]
CASES_B = [
    ('12. clean boot with wsflow.socket and the installed /etc/wsflow/wsflow.conf (issue #10.2-3): '
     'socket root:wsflow 0660 before the daemon runs; a member\'s wsflowctl status starts it; '
     'no producer running', case12),
    ('6. socket activation (wsflow.socket enabled from boot): a client connecting every 10 ms '
     'through 5 systemctl restarts sees 0 refused connections; /run/wsflow/wsflowd.sock '
     'survives and wsflowctl status works after each restart', case6),
    ('13. configuration error at restart (issue #10.4): one failure, exit 78, NRestarts 0, '
     'wsflow.socket still active; wsflowctl status names file:line, an HTTP client gets 503 (the '
     'daemon answers what woke the socket before it exits); fixed -> starts', case13),
]


def run_case(c, desc, fn):
    t0 = time.monotonic()
    try:
        fn(c)
        ok(True, desc)
    except Skip as e:
        skip(desc, e)
    except CheckFailed as e:
        ok(False, desc, str(e))
        dump(c)
    except Exception:
        ok(False, desc, traceback.format_exc())
        dump(c)
    diag('(%.1f s)' % (time.monotonic() - t0))


def dump(c):
    try:
        diag('--- journalctl -u wsflow (last lines):\n' + c.journal_text(25))
    except Exception as e:
        diag('(no journal: %r)' % e)


def install():
    """make install DESTDIR=$BUILD/sysroot PREFIX=/usr/local (fails the
    whole program: nothing to test without it)."""
    cmd = ['make', '-s', '-C', SRCDIR, 'install', 'DESTDIR=' + SYSROOT, 'PREFIX=/usr/local',
           'BUILD=' + BUILD, 'SANITIZE=' + ('1' if SANITIZE else '0')]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        return '%s: exit %d\n%s%s' % (' '.join(cmd), r.returncode, r.stdout[-2000:],
                                      r.stderr[-2000:])
    for p in ('usr/local/bin/wsflowd', 'usr/local/bin/wsflowctl',
              'usr/local/lib/systemd/system/wsflow.service',
              'usr/local/lib/systemd/system/wsflow.socket'):
        if not os.path.exists(os.path.join(SYSROOT, p)):
            return 'make install did not install %s' % p
    return None


def sysd_only(cases):
    """WSFLOW_SYSD_CASES=1,4 runs only those."""
    return wsflowtest.only('WSFLOW_SYSD_CASES', cases, lambda x: x[0].split('.')[0])[0]


def run_group(name, preset, cases, conf=None):
    cases = sysd_only(cases)
    if not cases:
        return
    c = Container(name, preset)
    c.write_conf(conf or wsconf())  # there before boot: the socket may start the service
    try:
        try:
            c.boot()
        except BootFailed as e:
            for desc, _ in cases:
                skip(desc, 'systemd-nspawn cannot boot a container here: %s'
                     % ' | '.join(str(e).splitlines()[:3])[:300])
            diag(str(e))
            return
        if SANITIZE:
            # LeakSanitizer stops the world with ptrace, which the unit's
            # SystemCallFilter=@system-service forbids: its report would fail
            # every exit (leaks are test_memory's business).
            c.write_file(DROPIN_DIR + '/10-test-asan.conf',
                         '[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0:abort_on_error=0\n')
            c.sh(['systemctl', 'daemon-reload'])
            diag('ASan build: drop-in %s/10-test-asan.conf sets detect_leaks=0' % DROPIN_DIR)
        for desc, fn in cases:
            run_case(c, desc, fn)
    finally:
        c.teardown()


def main():
    t0 = time.monotonic()
    kept = sysd_only(CASES_A) + sysd_only(CASES_B)
    wsflowtest.plan(len(kept), len(CASES_A + CASES_B) - len(kept), 'WSFLOW_SYSD_CASES')
    why = None
    if shutil.which('systemd-nspawn') is None:
        why = 'systemd-nspawn not installed (make deps installs systemd-container)'
    elif os.geteuid() != 0:
        why = 'systemd-nspawn needs root'
    if why:
        for desc, _ in kept:
            skip(desc, why)
        wsflowtest.finish()
    err = install()
    if err:
        for desc, _ in kept:
            ok(False, desc, err if desc == kept[0][0] else 'make install failed')
        wsflowtest.finish()
    # A: both units disabled: wsflowd binds its own sockets; everything else
    # the host's presets would enable (host services) stays off.
    run_group('a', 'disable wsflow.service\ndisable wsflow.socket\ndisable *\n', CASES_A)
    # B: wsflow.socket listening from boot, the service started by it.
    # make install's own /etc/wsflow/wsflow.conf (it listens on PORT).
    with open(os.path.join(SYSROOT, CONF_IN.lstrip('/'))) as f:
        installed = f.read()
    run_group('b', 'enable wsflow.socket\ndisable wsflow.service\ndisable *\n', CASES_B,
              installed)
    diag('total %.1f s' % (time.monotonic() - t0))
    wsflowtest.finish()


if __name__ == '__main__':
    main()
