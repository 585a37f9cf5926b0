#!/usr/bin/python3
# timeout: 240
"""Hardening of wsflowd's start-up and of the inputs it acts on:

a) the directory of control.path must be safe: one not owned by the
   daemon's euid (or root), or writable by group or others, is refused
   (exit 1, "control socket directory ... refusing"), also while a racer
   running as nobody swaps the socket for a symlink to a root-only file,
   which stays untouched; a root-owned 0755 directory gets a socket of
   the configured mode and group;
b) a regular file or a directory at control.path is never deleted: exit 1
   ("is not a socket" for the file);
c) producer URLs with control characters or spaces are refused, both by
   `wsflowctl start` (exit 1, nothing reaches the URL's port: no header
   injection) and in a configuration file (-n: exit 78, FILE:LINE);
d) digests OpenSSL names but cannot run (md4, whirlpool) are refused at
   -n with FILE:LINE; sha256, sha512, sha3-256, blake2b512 still pass;
e) TLS files (issue #10.5): a missing certificate, key or producer CA, a
   key of another certificate, a CA file without certificates: -n exits
   78 with FILE:LINE and the reason, and so does a real start (78, not 1:
   systemd must not restart it); "$CREDENTIALS_DIRECTORY/NAME" is read
   from the service's credentials (LoadCredential=).

Needs root (chown to nobody, a racer run as nobody).
"""
import atexit
import grp
import os
import pwd
import re
import select
import shutil
import socket
import stat
import subprocess
import tempfile
import threading

from wsflowtest import (BUILD, PYTHON, SLOW, SRCDIR, WSFLOWD, CheckFailed, Daemon, Skip,
                        case, check, config_text, diag, lc_value, make_cert, run_cases,
                        run_wsflowd, tmpfile, wait_for)

WSFLOWCTL = os.environ.get('WSFLOWCTL') or os.path.join(SRCDIR, BUILD, 'wsflowctl')
GROUP = 'daemon'                    # an existing group other than root's
REFUSED_DIR = re.compile(r'^.*control socket directory.*refusing.*$', re.M)
STARTED = re.compile(r'wsflowd \S+ started')
CTL_CHARS = 'control characters or spaces'

# ------------------------------------------------------------ helpers


def need_root():
    if os.geteuid() != 0:
        raise Skip('needs root')
    try:
        return pwd.getpwnam('nobody').pw_uid, grp.getgrnam(GROUP).gr_gid
    except KeyError as e:
        raise Skip('no such user or group: %s' % e)


_shared = []


def shared_dir(name, mode, owner=0):
    """A fresh directory name (mode, owner) in a root-owned 0755 directory
    that others may traverse (the test's tmpdir is 0700); removed at exit."""
    if not _shared:
        _shared.append(tempfile.mkdtemp(prefix='wsflow-hardening-'))
        os.chmod(_shared[0], 0o755)
        atexit.register(shutil.rmtree, _shared[0], True)
    path = os.path.join(_shared[0], name)
    os.mkdir(path)
    os.chown(path, owner, -1)
    os.chmod(path, mode)
    return path


def ctl_daemon(path, **control):
    """A Daemon (not started) whose control section is path plus control
    (mode, group)."""
    d = Daemon()
    d.ctl_sock = path
    plain = 'control: { path = "%s"; };' % path
    text = config_text([d.port], control_path=path)
    check(plain in text, 'test bug: no control line in config_text')
    with open(d.conf, 'w') as f:
        f.write(text.replace(plain, 'control: %s;' % lc_value(dict(path=path, **control))))
    return d


def launch(d):
    """Start d's wsflowd without awaiting readiness (it may refuse), then
    wait until it exited or logged that it started: is it running?"""
    with open(d.log, 'ab') as log:
        d.proc = subprocess.Popen([WSFLOWD, '-d', '-f', d.conf], stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=log)
    Daemon.started.append(d)
    check(wait_for(lambda: not d.alive() or STARTED.search(d.log_text()), 10),
          'wsflowd neither exited nor started within %gs:\n%s' % (10 * SLOW, d.log_tail()))
    return d.alive()


def refused(d, what):
    """d's wsflowd must exit 1 at start: returns its log."""
    if launch(d):
        d.stop()
        raise CheckFailed('%s: wsflowd started instead of refusing:\n%s' % (what, d.log_tail()))
    check(d.proc.returncode == 1, '%s: wsflowd exited %s, want 1:\n%s'
          % (what, d.proc.returncode, d.log_tail()))
    return d.log_text()


def refused_dir(d, what):
    log = refused(d, what)
    check(REFUSED_DIR.search(log), '%s: no "control socket directory ... refusing" line:\n%s'
          % (what, d.log_tail()))


def file_state(path):
    st = os.lstat(path)
    with open(path, 'rb') as f:
        return 'uid %d gid %d mode %04o content %r' % (st.st_uid, st.st_gid,
                                                      stat.S_IMODE(st.st_mode), f.read())


def conf_error(text, name, needle, what):
    """wsflowd -n on text must exit 78 with FILE:LINE: (LINE: the first
    line holding needle) followed by what."""
    path = tmpfile(name, text)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if needle in l)
    r = run_wsflowd(['-n', '-f', path])
    out = r.stdout + r.stderr
    at = '%s:%d:' % (path, line)
    check(r.returncode == 78, '%s: wsflowd -n exited %d, want 78:\n%s' % (name, r.returncode, out))
    check(any(what in l.split(at, 1)[1] for l in out.splitlines() if at in l),
          '%s: no "%s ... %s" in:\n%s' % (name, at, what, out))


class Sink:
    """A raw TCP listener on 127.0.0.1 recording what each connection sends."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.got = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            with conn:
                data = bytearray()
                self.got.append(data)
                conn.settimeout(0.5)
                try:
                    while len(data) < 65536 and b'\r\n\r\n' not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass

    def close(self):
        self.done.set()
        self.thread.join(5)
        self.sock.close()

# ------------------------------------------------------------ a) control directory


RACER = r'''
import os, stat, sys, threading, time
path, target, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
tmp, n, end, stop = path + '.racer', 0, time.monotonic() + secs, []
threading.Thread(target=lambda: stop.append(sys.stdin.read()), daemon=True).start()
os.symlink(target, tmp)
print('ready', flush=True)
while not stop and time.monotonic() < end:   # until stdin closes, at most secs
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            continue
    except OSError:
        continue
    try:
        os.rename(tmp, path)
        n += 1
    except OSError:
        pass
    try:
        os.symlink(target, tmp)
    except OSError:
        pass
print(n, flush=True)
'''


@case('a) control socket directory: a root-owned 0755 dir gets a socket of mode 0660, group '
      'daemon; a dir owned by nobody (while a racer as nobody swaps the socket for a symlink '
      'to a 0600 root file, 3 starts), a group-writable and a sticky world-writable dir are '
      'refused (exit 1, "control socket directory ... refusing"); the root file is untouched')
def control_dir():
    nobody, gid = need_root()
    # the safe case first: it works
    sock = os.path.join(shared_dir('root', 0o755), 'ctl.sock')
    d = ctl_daemon(sock, mode='0660', group=GROUP).start()
    st = os.lstat(sock)
    check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660 and
          st.st_gid == gid, '%s: mode %o gid %d, want a socket 0660 gid %d (%s)'
          % (sock, st.st_mode, st.st_gid, gid, GROUP))
    d.check_clean_stop()

    # a dir nobody owns, a racer in it as nobody
    target = tmpfile('root-only', 'root only\n')
    os.chown(target, 0, 0)
    os.chmod(target, 0o600)
    before = file_state(target)
    sock = os.path.join(shared_dir('nobody', 0o755, owner=nobody), 'ctl.sock')
    racer = subprocess.Popen([PYTHON, '-c', RACER, sock, target, str(4 * SLOW)],
                             user='nobody', group='nogroup', extra_groups=[],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    outcomes = []
    try:
        check(select.select([racer.stdout], [], [], 10 * SLOW)[0] and
              racer.stdout.readline().strip() == 'ready', 'racer did not start')
        for i in range(3):
            d = ctl_daemon(sock, mode='0666', group=GROUP)
            try:
                refused_dir(d, 'start %d in a dir owned by nobody' % (i + 1))
                outcomes.append(None)
            except CheckFailed as e:
                outcomes.append(str(e))
            d.stop()
    finally:
        try:
            out, _ = racer.communicate('', timeout=5 * SLOW)     # closes its stdin
        except subprocess.TimeoutExpired:
            racer.kill()
            out, _ = racer.communicate()
    diag('racer replaced the socket path %s times' % (out.strip() or '?'))
    after = file_state(target)
    check(after == before, 'root-only file %s changed: %s -> %s' % (target, before, after))
    bad = [o for o in outcomes if o]
    check(not bad, '\n'.join(bad))
    for name, mode in (('group', 0o775), ('sticky', 0o1777)):
        refused_dir(ctl_daemon(os.path.join(shared_dir(name, mode), 'ctl.sock'),
                               mode='0666', group=GROUP), 'root-owned dir, mode %o' % mode)

# ------------------------------------------------------------ b) not a socket


@case('b) a regular file ("precious") at control.path: exit 1, "is not a socket", the file '
      'kept with its content; a directory there: exit 1, the directory kept')
def not_a_socket():
    path = tmpfile('precious.sock', 'precious')
    log = refused(ctl_daemon(path), 'a regular file at control.path')
    check(os.path.isfile(path), 'the regular file %s was removed' % path)
    with open(path) as f:
        check(f.read() == 'precious', 'the regular file %s was changed' % path)
    check('is not a socket' in log, 'no "is not a socket" in the log:\n%s' % log[-2000:])
    path = tmpfile('dir.sock')
    os.mkdir(path)
    refused(ctl_daemon(path), 'a directory at control.path')
    check(os.path.isdir(path), 'the directory %s was removed' % path)

# ------------------------------------------------------------ c) URLs


@case('c1) wsflowctl start with a URL holding CR LF + "X-Injected: yes", a space or a TAB: '
      'exit 1, "control characters or spaces", nothing connects to the URL\'s port in 2 s')
def ctl_url():
    d = Daemon().start()
    sink = Sink()
    try:
        base = 'ws://127.0.0.1:%d/a' % sink.port
        probs = []
        for url in (base + ' HTTP/1.1\r\nX-Injected: yes\r\n', base + ' b', base + '\tb'):
            try:
                r = subprocess.run([WSFLOWCTL, '-s', d.ctl_sock, 'start', url],
                                   capture_output=True, text=True, timeout=10 * SLOW,
                                   stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                probs.append('%r: wsflowctl no answer in %gs' % (url, 10 * SLOW))
                continue
            if r.returncode != 1 or CTL_CHARS not in r.stdout + r.stderr:
                probs.append('%r: exit %d, want 1 and "%s": %s' % (url, r.returncode, CTL_CHARS,
                                                                  (r.stdout + r.stderr).strip()))
        if wait_for(lambda: sink.got, 2):
            probs.append('port %d got %s' % (sink.port, [bytes(g) for g in sink.got]))
        check(not probs, '\n'.join(probs))
    finally:
        sink.close()
    d.check_clean_stop()


@case('c2) a producer url with a space or CR LF in the configuration: wsflowd -n exits 78 '
      'with "FILE:LINE: ... control characters or spaces" (LINE: the url\'s)')
def conf_url():
    for name, url in (('url-space.conf', 'ws://127.0.0.1:1/a b'),
                      ('url-crlf.conf', r'ws://127.0.0.1:1/a HTTP/1.1\r\nX-Injected: yes')):
        text = config_text([1], control_path=tmpfile('unused.sock')) + \
            'producers = (\n  { name = "x";\n    url = "%s"; }\n);\n' % url
        conf_error(text, name, 'url =', CTL_CHARS)

# ------------------------------------------------------------ d) digests


@case('d) server.digest md4 and whirlpool (named by OpenSSL, not runnable): wsflowd -n exits '
      '78 with "FILE:LINE: ... digest"; sha256, sha512, sha3-256, blake2b512: configuration OK')
def digests():
    def text(name):
        return config_text([1], control_path=tmpfile('unused.sock'), digest=name)
    for name in ('md4', 'whirlpool'):
        conf_error(text(name), 'digest-%s.conf' % name, 'digest =', 'digest')
    for name in ('sha256', 'sha512', 'sha3-256', 'blake2b512'):
        r = run_wsflowd(['-n', '-f', tmpfile('ok-%s.conf' % name, text(name))])
        check(r.returncode == 0 and 'configuration OK' in r.stdout + r.stderr,
              'digest %s: exit %d\n%s%s' % (name, r.returncode, r.stdout, r.stderr))


# ------------------------------------------------------------ e) TLS files


@case('e) TLS files: missing cert, key or CA, a key of another cert, a CA file with no '
      'certificate -> wsflowd -n exits 78 "FILE:LINE: ... reason", a start exits 78 too; '
      '$CREDENTIALS_DIRECTORY/NAME read from $CREDENTIALS_DIRECTORY')
def tls_files():
    cert, key = make_cert('hard-a')
    cert2, key2 = make_cert('hard-b')
    nothing = tmpfile('hard-missing.pem')
    if os.path.exists(nothing):
        os.unlink(nothing)
    garbage = tmpfile('hard-garbage.pem', 'not a certificate\n')
    sock = tmpfile('unused.sock')

    def listener(c, k):
        return config_text([(1, c, k)], control_path=sock)

    def producer(ca):
        return config_text([1], control_path=sock) + \
            'producers = (\n  { name = "x"; url = "wss://127.0.0.1:1/";\n' \
            '    autostart = false; tls = { ca = "%s"; }; }\n);\n' % ca
    bad = (('tls-no-cert.conf', listener(nothing, key), 'tls =', 'No such file'),
           ('tls-no-key.conf', listener(cert, nothing), 'tls =', 'No such file'),
           ('tls-other-key.conf', listener(cert, key2), 'tls =', 'does not belong'),
           ('tls-no-ca.conf', producer(nothing), 'name = "x"', 'No such file'),
           ('tls-garbage-ca.conf', producer(garbage), 'name = "x"', 'no certificate'))
    for name, text, needle, what in bad:
        conf_error(text, name, needle, what)
        r = run_wsflowd(['-d', '-f', tmpfile(name)], timeout=10)
        check(r.returncode == 78, '%s: a start exited %d, want 78 (a restart cannot mend '
              'it):\n%s' % (name, r.returncode, r.stderr[-800:]))
    creds = os.path.dirname(cert)
    text = listener('$CREDENTIALS_DIRECTORY/' + os.path.basename(cert),
                    '$CREDENTIALS_DIRECTORY/' + os.path.basename(key))
    path = tmpfile('tls-creds.conf', text)
    r = subprocess.run([WSFLOWD, '-n', '-f', path], capture_output=True, text=True,
                       timeout=20 * SLOW, env=dict(os.environ, CREDENTIALS_DIRECTORY=creds))
    check(r.returncode == 0 and 'configuration OK' in r.stdout,
          'CREDENTIALS_DIRECTORY=%s: exit %d %s%s' % (creds, r.returncode, r.stdout, r.stderr))
    env = dict(os.environ)
    env.pop('CREDENTIALS_DIRECTORY', None)
    r = subprocess.run([WSFLOWD, '-n', '-f', path], capture_output=True, text=True,
                       timeout=20 * SLOW, env=env)
    check(r.returncode == 78 and '/run/credentials/wsflow.service/' in r.stderr,
          'no CREDENTIALS_DIRECTORY: exit %d %r, want 78 naming the service\'s credentials'
          % (r.returncode, r.stderr))


if __name__ == '__main__':
    run_cases()
