#!/usr/bin/python3
# timeout: 180
"""The tools around the tests (issue #10.15):

a) `make deps` waits for another apt's dpkg lock instead of failing at
   once: it hands apt-get DPkg::Lock::Timeout (checked with a stand-in
   apt-get first on PATH and a package that is not installed);
b) Ctrl-C stops `make check`: SIGINT to tests/run while a test program
   runs ends the runner (exit 130) within seconds, the program (in a
   session of its own under timeout) is gone and its /tmp/wsflow-test-*
   directory removed;
c) wsflow.conf(5) renders its examples as written (issue #10.14: a .Qq
   inside .Li put the closing quote after the semicolon), with mandoc
   and man-db alike.
"""
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from wsflowtest import SLOW, SRCDIR, case, check, diag, run_cases, tmpdir, wait_for


@case('a) make deps with a package missing: apt-get update and install both get '
      '-o DPkg::Lock::Timeout=N (N > 0): it waits for another apt instead of failing')
def deps_lock():
    fake = os.path.join(tmpdir(), 'fakebin')
    os.makedirs(fake)
    calls = os.path.join(tmpdir(), 'apt-calls')
    with open(os.path.join(fake, 'apt-get'), 'w') as f:
        f.write('#!/bin/sh\necho "$*" >>%s\n' % calls)
    os.chmod(os.path.join(fake, 'apt-get'), 0o755)
    r = subprocess.run(['make', '-s', '-C', SRCDIR, 'deps', 'DEPS=wsflow-no-such-package'],
                       capture_output=True, text=True, timeout=60 * SLOW,
                       env=dict(os.environ, PATH=fake + ':' + os.environ['PATH']),
                       stdin=subprocess.DEVNULL)
    check(r.returncode == 0, 'make deps: exit %d %s%s' % (r.returncode, r.stdout, r.stderr))
    with open(calls) as f:
        got = f.read().splitlines()
    check(len(got) == 2, 'apt-get calls: %s' % got)
    for line in got:
        words = line.split()
        ok = any(w.startswith('DPkg::Lock::Timeout=') and
                 int(w.split('=', 1)[1]) > 0 for w in words)
        check(ok, 'apt-get %s: no -o DPkg::Lock::Timeout=N' % line)


def descendants(pid):
    kids = {}
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % p) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(')') + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().split()[2] != 'Z'
    except OSError:
        return False


@case('b) SIGINT (Ctrl-C) to tests/run while test_hardening runs: the runner exits 130 '
      'within 20 s, no process it started is left, the program\'s /tmp/wsflow-test-* '
      'directory is removed')
def runner_sigint():
    # A TMPDIR of its own: other test runs on the machine make and remove
    # wsflow-test-* directories in /tmp at any time.
    tmp = tempfile.mkdtemp(prefix='ops-tmp-', dir=tmpdir())
    before = set(glob.glob(os.path.join(tmp, 'wsflow-test-*')))
    p = subprocess.Popen([os.path.join(SRCDIR, 'tests', 'run'), 'test_hardening'],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True,
                         env=dict(os.environ, TMPDIR=tmp))
    try:
        new = set()
        check(wait_for(lambda: new.update(set(glob.glob(os.path.join(tmp, 'wsflow-test-*')))
                                          - before) or new, 30),
              'test_hardening made no /tmp/wsflow-test-* directory in 30 s')
        kids = descendants(p.pid)
        check(kids, 'tests/run has no children')
        os.killpg(p.pid, signal.SIGINT)     # what the terminal does on Ctrl-C
        t0 = time.monotonic()
        try:
            out, _ = p.communicate(timeout=20 * SLOW)
        except subprocess.TimeoutExpired:
            raise AssertionError('tests/run still running 20 s after SIGINT')
        diag('runner ended %.1f s after SIGINT, exit %d' % (time.monotonic() - t0, p.returncode))
        check(p.returncode == 130, 'tests/run exit %d after SIGINT, want 130:\n%s'
              % (p.returncode, out.decode(errors='replace')[-800:]))
        check(wait_for(lambda: not any(alive(k) for k in kids), 10),
              'left running after Ctrl-C: %s' % [k for k in kids if alive(k)])
        left = []
        gone = wait_for(lambda: not left.clear() and
                        not left.extend(d for d in new if os.path.exists(d)), 10)
        diag('temporary directories gone %s' % ('yes' if gone else 'no: %s' % left))
        check(gone, 'temporary directories left: %s' % left)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


@case('c) wsflow.conf(5) as mandoc and man render it: { address = "127.0.0.1"; port = 9000; }, '
      'tls = { cert = "..."; key = "..."; }, { ca = "..."; verify = true; } exactly')
def man_render():
    page = os.path.join(SRCDIR, 'daemon', 'wsflow.conf.5')
    want = ('{ address = "127.0.0.1"; port = 9000; }', 'tls = { cert = "..."; key =',
            '{ ca = "..."; verify = true; }')
    probs = []
    for cmd in (['mandoc', '-Tutf8', page], ['man', '-l', page]):
        if shutil.which(cmd[0]) is None:
            diag('%s not installed: not checked with it' % cmd[0])
            continue
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, MANWIDTH='100', MAN_KEEP_FORMATTING=''),
                           stdin=subprocess.DEVNULL)
        text = re.sub(r'.\x08', '', r.stdout)          # overstrike bold/underline
        text = re.sub(r'\s+', ' ', text)
        for w in want:
            if w not in text:
                probs.append('%s: no %r' % (cmd[0], w))
        if '127.0.0.1; port' in text:
            probs.append('%s: a misplaced quote: 127.0.0.1; port' % cmd[0])
    check(not probs, '\n'.join(probs))


if __name__ == '__main__':
    run_cases()
