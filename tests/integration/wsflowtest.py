"""Helpers for the wsflow integration tests (run with /usr/bin/python3).

Reporting follows tests/run: one "ok - what" / "not ok - what" line per case
("ok - what # skip why" when skipped), lines starting with "# " are
diagnostics, and the program exits non-zero if any case failed.

Environment (exported by tests/run): WSFLOWD, SRCDIR, BUILD, PYTHON and
SANITIZE ("1" for an ASan build: timings are stretched, RSS bounds skipped).
"""
import atexit
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get('SRCDIR') or os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get('BUILD', 'build')
WSFLOWD = os.environ.get('WSFLOWD') or os.path.join(SRCDIR, BUILD, 'wsflowd')
PYTHON = os.environ.get('PYTHON', '/usr/bin/python3')
PEERS = os.path.join(SRCDIR, 'tests', 'peers')
SANITIZE = os.environ.get('SANITIZE') == '1'
SLOW = 4 if SANITIZE else 1        # stretch every deadline under ASan

# ---------------------------------------------------------------- reporting

_failed = 0
_cases = []


class Skip(Exception):
    pass


class CheckFailed(Exception):
    pass


def diag(msg):
    for line in str(msg).rstrip('\n').split('\n'):
        print('# ' + line)
    sys.stdout.flush()


def ok(cond, desc, why=None):
    global _failed
    print(('ok - ' if cond else 'not ok - ') + desc, flush=True)
    if not cond:
        _failed += 1
        if why:
            diag(why)
    return cond


def skip(desc, why):
    print('ok - %s # skip %s' % (desc, why), flush=True)


def check(cond, msg='check failed'):
    """Fail the current case with msg unless cond."""
    if not cond:
        raise CheckFailed(msg)


def case(desc):
    """Decorator: register fn as a test case named desc, run by run_cases()."""
    def register(fn):
        _cases.append((desc, fn))
        return fn
    return register


def plan(n, left_out=0, why=''):
    """TAP's plan: this program reports n cases (tests/run fails it when
    it reports another number); left_out: cases a filter dropped, said so."""
    print('1..%d' % n, flush=True)
    if left_out:
        print('# filtered: %d cases left out by %s' % (left_out, why), flush=True)


def only(env, names, key):
    """The cases a filter variable (a comma list) keeps: (kept, left out)."""
    want = os.environ.get(env)
    if not want:
        return list(names), 0
    keep = [x for x in names if key(x) in want.split(',')]
    return keep, len(names) - len(keep)


def run_cases():
    """Run every registered case (one failing or crashing case does not stop
    the others), then exit with the overall status.  TEST_ONLY=a,b keeps
    the cases whose names start with "a)" or "b)" (say so in the plan)."""
    global _cases
    _cases, left = only('TEST_ONLY', _cases, lambda c: c[0].split(')')[0])
    plan(len(_cases), left, 'TEST_ONLY')
    for desc, fn in _cases:
        before = len(Daemon.started)
        try:
            fn()
            ok(True, desc)
        except Skip as e:
            skip(desc, e)
        except CheckFailed as e:
            ok(False, desc, str(e))
            _dump_logs(Daemon.started[before:] or Daemon.live())
        except Exception:
            ok(False, desc, traceback.format_exc())
            _dump_logs(Daemon.started[before:] or Daemon.live())
    finish()


def finish():
    _cleanup()
    sys.exit(1 if _failed else 0)


def _dump_logs(daemons):
    for d in daemons:
        diag('--- last lines of %s (pid %s):\n%s' % (d.log, d.pid, d.log_tail(15)))

# ---------------------------------------------------------------- temp dir

_tmp = None


def tmpdir():
    """The temp dir of this test program, removed at exit."""
    global _tmp
    if _tmp is None:
        _tmp = tempfile.mkdtemp(prefix='wsflow-test-')
    return _tmp


def tmpfile(name, text=None):
    path = os.path.join(tmpdir(), name)
    if text is not None:
        with open(path, 'w') as f:
            f.write(text)
    return path


def _daemon_exit_problem(d, was_running):
    """Why d's end is not a clean one, or None.  Every SIGTERM stop() sends
    must end in exit 0 (a hang is SIGKILLed: -9); a daemon that ended otherwise may have
    been killed (SIGKILL/SIGTERM) or refused a config on purpose, but a
    crash signal or a sanitizer report is never on purpose."""
    rc = d.returncode
    errs = d.sanitizer_errors()
    if errs:
        return 'sanitizer report: %s' % errs[:3]
    if d.term_rc not in (None, 0):
        return 'exited %s on SIGTERM%s' % (d.term_rc, ' (at exit)' if was_running else '')
    if rc is not None and rc < 0 and -rc not in (signal.SIGKILL, signal.SIGTERM):
        return 'ended by signal %d' % -rc
    return None


def _cleanup():
    problems = []
    for d in Daemon.started:
        was_running = d.alive()
        d.stop()
        why = _daemon_exit_problem(d, was_running)
        if why:
            problems.append('%s (pid %d): %s' % (d.name, d.pid, why))
    for p in _peers:
        if p.poll() is None:
            p.kill()
            p.wait()
    if _interrupted:
        # Ctrl-C or a time limit: the daemons got the group's SIGTERM
        # along with us, mid-case; their ends prove nothing, and nobody
        # reads the logs of a run that was stopped (issue #10.15).
        for p in problems:
            print('# (interrupted) ' + p)
        problems = []
    if _tmp and not os.environ.get('WSFLOW_KEEP_TMP') and not problems:
        shutil.rmtree(_tmp, ignore_errors=True)
    if problems:
        # After the cases: tests/run counts a non-zero exit as a failure.
        for p in problems:
            print('# daemon not stopped cleanly: ' + p)
        print('# logs kept in ' + str(_tmp))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


_interrupted = False


def _on_sigterm(*_):
    global _interrupted
    if _interrupted:
        return          # timeout sends the group a second TERM: let cleanup finish
    _interrupted = True
    sys.exit(124)


atexit.register(_cleanup)
# tests/run's timeout (or its Ctrl-C) sends SIGTERM: exit through atexit so
# no daemon is left
signal.signal(signal.SIGTERM, _on_sigterm)

# ---------------------------------------------------------------- config


def terminate(p, timeout=10):
    """SIGTERM to the process p by PID, a wait bounded by timeout (stretched
    under ASan), then SIGKILL; returns its exit status (negative: the signal
    that ended it)."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def free_port():
    """A port free right now (bind port 0, close)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def make_cert(name='tls'):
    """Throw-away self-signed certificate for localhost: (cert, key) paths."""
    cert, key = tmpfile(name + '-cert.pem'), tmpfile(name + '-key.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
                    '-days', '1', '-subj', '/CN=localhost',
                    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
                    '-keyout', key, '-out', cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def config_text(listen, log_level='info', control_path=None, **server):
    """libconfig text: listen is a list of ports or (port, cert, key) for
    tls; server holds more server keys (strings quoted, ints as is)."""
    entries = []
    for l in listen:
        if isinstance(l, tuple):
            port, cert, key = l
            entries.append('{ address = "127.0.0.1"; port = %d; tls = { cert = "%s"; key = "%s"; }; }'
                           % (port, cert, key))
        else:
            entries.append('{ address = "127.0.0.1"; port = %d; }' % l)
    lines = ['log_level = "%s";' % log_level, 'server: {',
             '  listen = ( %s );' % ',\n             '.join(entries)]
    for k, v in server.items():
        if isinstance(v, bool):
            v = 'true' if v else 'false'
        elif isinstance(v, str):
            v = '"%s"' % v
        elif isinstance(v, (list, tuple)):
            v = '( %s )' % ', '.join('"%s"' % x for x in v)
        lines.append('  %s = %s;' % (k, v))
    lines += ['};', 'control: { path = "%s"; };' % control_path, '']
    return '\n'.join(lines)

# ---------------------------------------------------------------- daemon


class Daemon:
    """wsflowd -d -f CONF in the foreground, stderr to a log in the temp dir."""
    started = []
    _n = 0

    def __init__(self, tls=False, env=None, **server):
        Daemon._n += 1
        self.env = env          # more environment variables for wsflowd
        self.name = 'wsflowd%d' % Daemon._n
        self.port = free_port()
        self.tls_port = None
        listen = [self.port]
        if tls:
            cert, key = make_cert(self.name)
            self.cert = cert
            self.tls_port = free_port()
            listen.append((self.tls_port, cert, key))
        self.ctl_sock = tmpfile(self.name + '.sock')
        self.conf = tmpfile(self.name + '.conf', config_text(
            listen, control_path=self.ctl_sock, **server))
        self.log = tmpfile(self.name + '.log')
        self.proc = None
        self.returncode = None
        self.term_rc = None     # exit status after a SIGTERM stop() sent
        self.args = []          # more wsflowd options (e.g. -v), before -f
        self.host = '127.0.0.1'  # where start() sees the listeners accept

    @property
    def pid(self):
        return self.proc.pid

    def url(self, path='/', tls=False):
        if tls:
            return 'wss://localhost:%d%s' % (self.tls_port, path)
        return 'ws://127.0.0.1:%d%s' % (self.port, path)

    def start(self, timeout=10):
        if not os.access(WSFLOWD, os.X_OK):
            raise CheckFailed('daemon binary %s missing (run make)' % WSFLOWD)
        with open(self.log, 'ab') as log:
            self.proc = subprocess.Popen([WSFLOWD, '-d'] + self.args + ['-f', self.conf],
                                         stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log,
                                         env=dict(os.environ, **self.env)
                                         if self.env else None)
        Daemon.started.append(self)
        deadline = time.monotonic() + timeout * SLOW
        for port in filter(None, (self.port, self.tls_port)):
            while True:         # ready = the port accepts connections
                if self.proc.poll() is not None:
                    raise CheckFailed('wsflowd exited %d at start:\n%s'
                                      % (self.proc.returncode, self.log_tail()))
                try:
                    socket.create_connection((self.host, port), 0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise CheckFailed('wsflowd not accepting on %d after %gs'
                                          % (port, timeout * SLOW))
                    time.sleep(0.02)
        # ... and, like READY=1, the control socket accepts too.
        while True:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(0.5)
                    s.connect(self.ctl_sock)
                break
            except OSError:
                if self.proc.poll() is not None or \
                        time.monotonic() > deadline:
                    raise CheckFailed('wsflowd control socket %s not '
                                      'accepting after %gs:\n%s'
                                      % (self.ctl_sock, timeout * SLOW,
                                         self.log_tail()))
                time.sleep(0.02)
        return self

    @classmethod
    def live(cls):
        return [d for d in cls.started if d.alive()]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self):
        with open('/proc/%d/status' % self.pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
        raise CheckFailed('no VmRSS for pid %d' % self.pid)

    def stop(self, timeout=10):
        """SIGTERM, wait (bounded), then SIGKILL; returns the exit status
        (negative: killed by that signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.term_rc = terminate(self.proc, timeout)    # checked at exit: 0 or fail
        self.returncode = self.proc.returncode
        return self.returncode

    def log_text(self):
        try:
            with open(self.log, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def log_tail(self, n=25):
        return '\n'.join(self.log_text().splitlines()[-n:])

    def sanitizer_errors(self):
        return [l for l in self.log_text().splitlines()
                if 'Sanitizer' in l and 'ERROR' in l or 'runtime error:' in l]

    def check_clean_stop(self):
        """Stop and require exit 0 and no sanitizer report."""
        rc = self.stop()
        check(rc == 0, 'wsflowd exited %s on SIGTERM' % rc)
        errs = self.sanitizer_errors()
        check(not errs, 'sanitizer report: %s' % errs[:3])


def run_wsflowd(args, timeout=20):
    """wsflowd with args (e.g. -n -f FILE): CompletedProcess, text output."""
    return subprocess.run([WSFLOWD] + list(args), capture_output=True,
                          text=True, timeout=timeout * SLOW,
                          stdin=subprocess.DEVNULL)

# ---------------------------------------------------------------- peers

_peers = []


def peer_cmd(name, *args):
    return [PYTHON, os.path.join(PEERS, name)] + [str(a) for a in args]


def run_peer(name, *args, timeout=60):
    """Run a tests/peers program to the end: (exit status, final JSON)."""
    p = start_peer(name, *args)
    return wait_peer(p, timeout)


def start_peer(name, *args):
    p = subprocess.Popen(peer_cmd(name, *args), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _peers.append(p)
    return p


def wait_peer(p, timeout=60):
    try:
        out, err = p.communicate(timeout=timeout * SLOW)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    result = None
    for line in reversed(out.splitlines()):
        try:
            result = json.loads(line)
            break
        except ValueError:
            pass
    if result is None:
        result = {'error': 'no JSON result', 'stdout': out[-2000:]}
    if err.strip():
        result['stderr'] = err[-2000:]
    return p.returncode, result


def check_peer(rc, result, what, **want):
    """The peer exited 0 and its result has the wanted values."""
    bad = {k: result.get(k) for k, v in want.items() if result.get(k) != v}
    check(rc == 0 and not bad,
          '%s: exit %s, unexpected %s\n%s' % (what, rc, bad, json.dumps(result)))

# ---------------------------------------------------------------- raw client


def mask(data, key):
    """RFC 6455 masking, at C speed (int XOR)."""
    if key == b'\0\0\0\0' or not data:
        return bytes(data)
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, 'little') ^ int.from_bytes(k, 'little')).to_bytes(n, 'little')


def frame_header(length, opcode=2, fin=True, key=b'\0\0\0\0'):
    b0 = (0x80 if fin else 0) | opcode
    if length < 126:
        h = struct.pack('!BB', b0, 0x80 | length)
    elif length < 65536:
        h = struct.pack('!BBH', b0, 0x80 | 126, length)
    else:
        h = struct.pack('!BBQ', b0, 0x80 | 127, length)
    return h + key


class Closed(Exception):
    """The server closed: .code is the close code, or None for TCP end."""

    def __init__(self, code, why=''):
        super().__init__('closed by server: %s %s' % (code, why))
        self.code = code


class WSClient:
    """Minimal stdlib WebSocket client for tests that need exact framing."""

    def __init__(self, port, path='/', tls=False, timeout=10, host='127.0.0.1'):
        self.timeout = timeout * SLOW
        s = socket.create_connection((host, port), self.timeout)
        hosthdr = '[%s]' % host if ':' in host else host
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname='localhost')
        self.sock = s
        self.buf = b''
        self.messages = []           # filled by the reader thread
        self.end = None              # Closed() once the reader saw the end
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(('GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n'
                   'Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n'
                   'Sec-WebSocket-Version: 13\r\n\r\n' % (path, hosthdr, port, key)).encode())
        while b'\r\n\r\n' not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b'\r\n\r\n', 1)
        accept = base64.b64encode(hashlib.sha1(
            (key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').encode()).digest()).decode()
        head = head.decode('latin-1')
        if not head.startswith('HTTP/1.1 101') or accept not in head:
            raise CheckFailed('handshake to %s failed:\n%s' % (path, head))

    def _fill(self):
        try:
            data = self.sock.recv(262144)
        except (ConnectionError, ssl.SSLError) as e:
            raise Closed(None, repr(e))
        if not data:
            raise Closed(None, 'EOF')
        self.buf += data

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, payload, opcode=2, fin=True, key=None):
        key = os.urandom(4) if key is None else key
        self.sock.sendall(frame_header(len(payload), opcode, fin, key) + mask(payload, key))

    def recv_frame(self):
        b0, b1 = self._take(2)
        n = b1 & 0x7f
        if n == 126:
            n = struct.unpack('!H', self._take(2))[0]
        elif n == 127:
            n = struct.unpack('!Q', self._take(8))[0]
        key = self._take(4) if b1 & 0x80 else b'\0\0\0\0'
        return bool(b0 & 0x80), b0 & 0x0f, mask(self._take(n), key)

    def recv_message(self):
        """Next data message as (opcode, payload); raises Closed on close."""
        parts, first = [], None
        while True:
            fin, op, payload = self.recv_frame()
            if op == 8:
                code = struct.unpack('!H', payload[:2])[0] if len(payload) >= 2 else 1005
                raise Closed(code, payload[2:].decode('utf-8', 'replace'))
            if op == 9:
                self.send_frame(payload, opcode=10)
                continue
            if op == 10:
                continue
            first = op if first is None else first
            parts.append(payload)
            if fin:
                return first, b''.join(parts)

    def recv_digests(self, n):
        """n text messages, as str."""
        out = []
        for _ in range(n):
            op, payload = self.recv_message()
            check(op == 1, 'digest sent as opcode %d, not text' % op)
            out.append(payload.decode('ascii'))
        return out

    def expect_silence(self, seconds=0.3):
        """The message arriving within seconds, or None (e.g. no digest for
        a tail).  A timeout may lose a partial frame: use it last."""
        self.sock.settimeout(seconds * SLOW)
        try:
            op, payload = self.recv_message()
            return payload
        except socket.timeout:
            return None
        finally:
            self.sock.settimeout(self.timeout)

    def start_reader(self, on_message=None):
        """Collect messages in a thread (while the main thread sends)."""
        def loop():
            try:
                while True:
                    op, payload = self.recv_message()
                    self.messages.append(payload.decode('ascii', 'replace'))
                    if on_message:
                        on_message(len(self.messages))
            except Closed as e:
                self.end = e
            except Exception as e:     # socket timeout, reset, closed by us
                self.end = Closed(None, repr(e))
        self.reader = threading.Thread(target=loop, daemon=True)
        self.reader.start()

    def close(self, code=1000):
        """Clean close: send ours, wait for the server's close."""
        self.send_frame(struct.pack('!H', code), opcode=8)
        try:
            while True:
                self.recv_message()
        except Closed as e:
            return e.code
        finally:
            self.sock.close()

    def abort(self):
        """Drop TCP at once (RST), like Twisted's abortConnection."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack('ii', 1, 0))
        except OSError:
            pass
        self.sock.close()


def wait_for(cond, timeout, step=0.02):
    """Poll cond() until true or timeout (stretched under ASan)."""
    deadline = time.monotonic() + timeout * SLOW
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def wait_value(d, fetch, cond, timeout, what, name):
    """Poll fetch() until cond(value) holds, the daemon d alive all along;
    returns the value, or fails naming what was awaited and the last one."""
    last = [None]

    def ok():
        check(d.alive(), 'wsflowd died (exit %s):\n%s' % (d.proc.poll(), d.log_tail()))
        last[0] = fetch()
        return last[0] is not None and cond(last[0])
    if not wait_for(ok, timeout, 0.1):
        raise CheckFailed('%s: %s not reached after %gs; last: %r'
                          % (name, what, timeout * SLOW, last[0]))
    return last[0]


def lc_value(v):
    """A Python value as libconfig text (64-bit integers get their L)."""
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, int):
        return '%dL' % v if not -2**31 <= v < 2**31 else str(v)
    if isinstance(v, str):
        return '"%s"' % v.replace('\\', '\\\\').replace('"', '\\"')
    if isinstance(v, dict):
        return '{ %s }' % ' '.join('%s = %s;' % (k, lc_value(x)) for k, x in v.items())
    raise TypeError(v)


def unix_accepts(path):
    """Something listens on the Unix socket path."""
    with socket.socket(socket.AF_UNIX) as u:
        try:
            u.connect(path)
            return True
        except OSError:
            return False


def hexdigest(data, name='sha256'):
    return hashlib.new(name, data).hexdigest()


def batch_digests(data, batch_size, name='sha256'):
    """The digests a streaming server owes for one message of data."""
    h, out = hashlib.new(name), []
    for off in range(0, len(data) - batch_size + 1, batch_size):
        h.update(data[off:off + batch_size])
        out.append(h.hexdigest())
    return out

# ---------------------------------------------------------------- digest tap


class WSTap:
    """An independent reference for every digest: a TCP relay between a
    WebSocket client (a wsflowd producer) and a server (a wsflowd
    listener) that unmasks what the client sends, hashes it with Python's
    hashlib (not daemon/batch.c, which producer and server share) and
    checks every digest the server sends against it before passing it on.

    The mode follows the request path like the server's (/ and /stream: a
    digest every batch_size octets of a message; /frame: after every
    frame; /message: after every message).  digest and batch_size are read
    when a connection is accepted.  tls=(cert, key): TLS on both sides.
    Counters (all connections): conns, bytes (data payload octets the
    client sent), digests (the server sent), verified, mismatches (a list
    of what differed), errors; last: the last verified digest."""

    def __init__(self, upstream_port, digest='sha256', batch_size=1 << 20, tls=None):
        self.upstream = upstream_port
        self.digest, self.batch_size, self.tls = digest, batch_size, tls
        self.lock = threading.Lock()
        self.conns = self.bytes = self.digests = self.verified = 0
        self.mismatches, self.errors, self.seen = [], [], set()
        self.last = None
        self.port = free_port()
        self.lsock = None
        self._socks = set()
        self.resume()

    def url(self, path='/'):
        return '%s://127.0.0.1:%d%s' % ('wss' if self.tls else 'ws', self.port, path)

    # -- listener

    def resume(self):
        """Listen (again) on self.port."""
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('127.0.0.1', self.port))
        s.listen(128)
        self.lsock = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def pause(self):
        """Stop listening (a client then sees connection refused) and drop
        the connections it relays."""
        s, self.lsock = self.lsock, None
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self.lock:
            socks, self._socks = list(self._socks), set()
        for x in socks:
            try:
                x.close()
            except OSError:
                pass

    close = pause

    def _accept(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            u = socket.create_connection(('127.0.0.1', self.upstream), 5)
            if self.tls:
                sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                sctx.load_cert_chain(*self.tls)
                c = sctx.wrap_socket(c, server_side=True)
                cctx = ssl.create_default_context()
                cctx.check_hostname = False
                cctx.verify_mode = ssl.CERT_NONE
                u = cctx.wrap_socket(u, server_hostname='localhost')
        except (OSError, ssl.SSLError):
            c.close()
            return
        for x in (c, u):
            x.settimeout(None)
        with self.lock:
            self.conns += 1
            self._socks.update((c, u))
        st = {'digest': self.digest, 'batch': self.batch_size, 'mode': None,
              'expected': [], 'got': 0}
        t = threading.Thread(target=self._relay, args=(u, c, st, False), daemon=True)
        t.start()
        self._relay(c, u, st, True)
        t.join()
        for x in (c, u):
            try:
                x.close()
            except OSError:
                pass
        with self.lock:
            self._socks.difference_update((c, u))

    def _relay(self, src, dst, st, from_client):
        parse = _TapParser(self, st, from_client)
        try:
            while True:
                data = src.recv(262144)
                if not data:
                    break
                # parse first: a digest owed for these octets is known
                # before the server can have them
                parse.feed(data)
                dst.sendall(data)
        except (OSError, ssl.SSLError):
            pass
        except Exception as e:     # a parser bug is a test failure, not a hang
            with self.lock:
                self.errors.append(repr(e))
        try:
            if self.tls:
                dst.close()
                src.close()
            else:
                dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    # -- results

    def _record(self, st, text):
        with self.lock:
            self.digests += 1
            i = st['got']
            st['got'] += 1
            want = st['expected'][i] if i < len(st['expected']) else None
            if text == want:
                self.verified += 1
                self.last = text
                if len(self.seen) < 100000:
                    self.seen.add(text)
            else:
                self.mismatches.append('connection %d digest %d: server sent %r, '
                                       'hashlib %s says %r' % (self.conns, i + 1, text,
                                                               st['digest'], want))

    def summary(self):
        with self.lock:
            return ('tap: %d connections, %d octets, %d digests, %d verified by hashlib, '
                    '%d mismatched%s%s' % (self.conns, self.bytes, self.digests, self.verified,
                                           len(self.mismatches),
                                           ('; first: ' + self.mismatches[0]) if self.mismatches else '',
                                           ('; errors: %s' % self.errors[:3]) if self.errors else ''))

    def check(self, min_verified=1):
        """Fail unless every digest so far matched hashlib and at least
        min_verified did."""
        check(not self.mismatches and not self.errors and self.verified >= min_verified,
              'independent check (hashlib) failed: ' + self.summary())


class _TapParser:
    """One direction of one tapped connection: HTTP head, then frames."""

    def __init__(self, tap, st, from_client):
        self.tap, self.st, self.from_client = tap, st, from_client
        self.head = b''
        self.in_head = True
        self.hdr = b''
        self.left = 0           # payload octets of the current frame still to come
        self.frame = None       # (opcode, fin, key) of the current frame
        self.phase = 0
        self.msg_op = None
        self.h = None           # client: the running hash of the message
        self.fill = 0
        self.text = b''         # server: the text message so far
        self.ctrl = False

    def feed(self, data):
        mv = memoryview(data)
        if self.in_head:
            self.head += bytes(mv)
            end = self.head.find(b'\r\n\r\n')
            if end < 0:
                return
            head, rest = self.head[:end].decode('latin-1'), self.head[end + 4:]
            self.in_head = False
            self.head = b''
            if self.from_client:
                path = head.split(' ', 2)[1] if head.count(' ') >= 2 else '/'
                path = path.split('?', 1)[0]
                self.st['mode'] = {'/frame': 'frame', '/message': 'message'}.get(
                    path, 'streaming')
            mv = memoryview(rest)
        while len(mv):
            if self.frame is None:
                need = self._header_len()
                take = need - len(self.hdr) if need else 2 - len(self.hdr)
                if take <= 0:
                    take = 1
                self.hdr += bytes(mv[:take])
                mv = mv[take:]
                need = self._header_len()
                if need and len(self.hdr) >= need:
                    self._start_frame()
                continue
            n = min(self.left, len(mv))
            self._payload(bytes(mv[:n]))
            mv = mv[n:]
            self.left -= n
            if self.left == 0:
                self._end_frame()

    def _header_len(self):
        if len(self.hdr) < 2:
            return 0
        b1 = self.hdr[1]
        n = 2 + {126: 2, 127: 8}.get(b1 & 0x7f, 0)
        return n + (4 if b1 & 0x80 else 0)

    def _start_frame(self):
        h = self.hdr
        b0, b1 = h[0], h[1]
        n, i = b1 & 0x7f, 2
        if n == 126:
            n, i = struct.unpack('!H', h[2:4])[0], 4
        elif n == 127:
            n, i = struct.unpack('!Q', h[2:10])[0], 10
        key = h[i:i + 4] if b1 & 0x80 else b'\0\0\0\0'
        self.hdr = b''
        op, fin = b0 & 0x0f, bool(b0 & 0x80)
        self.frame, self.left, self.phase = (op, fin, key), n, 0
        self.ctrl = op >= 8
        if not self.ctrl and op != 0:
            self.msg_op = op
            if self.from_client:
                self.h = hashlib.new(self.st['digest'])
                self.fill = 0
            else:
                self.text = b''
        if n == 0:
            self._end_frame()

    def _payload(self, data):
        op, fin, key = self.frame
        if self.ctrl:
            self.phase += len(data)
            return
        if self.from_client:
            k = key[self.phase % 4:] + key[:self.phase % 4]
            self.phase += len(data)
            data = mask(data, k)
            with self.tap.lock:
                self.tap.bytes += len(data)
            if self.st['mode'] != 'streaming':
                self.h.update(data)
                return
            batch = self.st['batch']
            while data:
                room = batch - self.fill
                part, data = data[:room], data[room:]
                self.h.update(part)
                self.fill += len(part)
                if self.fill == batch:
                    self.fill = 0
                    self._owe()
        else:
            self.text += data

    def _owe(self):
        with self.tap.lock:
            self.st['expected'].append(self.h.hexdigest())

    def _end_frame(self):
        op, fin, key = self.frame
        self.frame = None
        if self.ctrl:
            return
        if self.from_client:
            if self.st['mode'] == 'frame' or (fin and self.st['mode'] == 'message'):
                self._owe()
        elif fin and self.msg_op == 1:
            self.tap._record(self.st, self.text.decode('ascii', 'replace'))
