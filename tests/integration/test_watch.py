#!/usr/bin/python3
# timeout: 90
"""wsflowctl watch (issue #12, interface.md §6): one JSON snapshot per line
with -j, at the interval, flushed as it goes; plain snapshots to a pipe;
in place on a terminal (a pty of 10 rows: home, erase, never more lines
than the window); --count, --interval with fractions and suffixes,
--bits; SIGINT ends it with 0, a daemon that goes away with 3.

One daemon ("D") runs "loop" (a producer to D itself, at 4 MiB/s) and
four producers to a listener that never answers a handshake (rows enough
to overflow a 10-row window).
"""
import fcntl
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import time

from wsflowtest import (BUILD, SLOW, SRCDIR, CheckFailed, Daemon, case, check, lc_value,
                        run_cases, wait_for)

WSFLOWCTL = os.environ.get('WSFLOWCTL') or os.path.join(SRCDIR, BUILD, 'wsflowctl')
ESC = '\x1b'
ROWS, COLS = 10, 80

D = None
SILENT = None       # accepts, never answers: producers stay "connecting"


def shared():
    global D, SILENT
    if D is not None and D.alive():
        return D
    if SILENT is None:
        SILENT = socket.socket()
        SILENT.bind(('127.0.0.1', 0))
        SILENT.listen(64)
    silent = 'ws://127.0.0.1:%d/' % SILENT.getsockname()[1]
    d = Daemon()
    prods = [('loop', d.url('/'), dict(mode='producer', rate=4 << 20))] + \
        [('hush%d' % i, silent, {}) for i in range(4)]
    with open(d.conf, 'a') as f:
        f.write('producers = (\n  %s\n);\n' % ',\n  '.join(
            '{ %s }' % ' '.join('%s = %s;' % (k, lc_value(v))
                                for k, v in dict(name=n, url=u, **k).items())
            for n, u, k in prods))
    d.start()
    check(wait_for(lambda: ctl(d, '-j', 'show', 'loop').rc == 0 and
                   json.loads(ctl(d, '-j', 'show', 'loop').out)['stream']['bytes'] > 0,
                   10 * SLOW), 'loop never sent:\n' + d.log_tail())
    D = d
    return d


class Run:
    def __init__(self, argv, rc, out, err, secs):
        self.argv, self.rc, self.out, self.err, self.secs = argv, rc, out, err, secs

    def __str__(self):
        return 'wsflowctl %s: exit %s after %.2fs\nstdout: %r\nstderr: %r' % (
            ' '.join(self.argv), self.rc, self.secs, self.out[-1500:], self.err[-800:])


def ctl(d, *args, timeout=20):
    argv = ['-s', d if isinstance(d, str) else d.ctl_sock] + [str(a) for a in args]
    t0 = time.monotonic()
    try:
        cp = subprocess.run([WSFLOWCTL] + argv, capture_output=True, text=True,
                            timeout=timeout * SLOW, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise CheckFailed('wsflowctl %s: no end in %gs' % (' '.join(argv), timeout * SLOW))
    return Run(argv, cp.returncode, cp.stdout, cp.stderr, time.monotonic() - t0)


def start(d, *args, **kw):
    return subprocess.Popen([WSFLOWCTL, '-s', d.ctl_sock] + [str(a) for a in args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def finish(p, timeout=10):
    """Wait for p (bounded; killed by its PID after), its (rc, out, err)."""
    try:
        out, err = p.communicate(timeout=timeout * SLOW)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise CheckFailed('wsflowctl watch did not end in %gs: %r %r' % (
            timeout * SLOW, out[-500:], err[-500:]))
    return p.returncode, out, err


def snapshots(out):
    lines = out.splitlines()
    try:
        return [json.loads(l) for l in lines]
    except ValueError:
        raise CheckFailed('not one JSON object per line:\n%s' % out[-2000:])


def producer(snap, name):
    return next((s for s in snap['streams'] if s['name'] == name), None)


def on_pty(d, *args, signal_after=None, resize_to=None, timeout=15):
    """watch on a pty of ROWS x COLS: (exit status, everything it wrote).
    signal_after: send SIGINT once that many frames have come; resize_to:
    after the first frame, make the window that many rows (SIGWINCH)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', ROWS, COLS, 0, 0))
    p = subprocess.Popen([WSFLOWCTL, '-s', d.ctl_sock] + [str(a) for a in args],
                         stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    buf, sent = b'', False
    deadline = time.monotonic() + timeout * SLOW
    try:
        while time.monotonic() < deadline:
            if resize_to and buf.count(b'\x1b[H') == 1 and buf.endswith(b'\x1b[J'):
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack('HHHH', resize_to, COLS, 0,
                                                                    0))
                p.send_signal(signal.SIGWINCH)
                resize_to = None
            if signal_after and not sent and buf.count(b'\x1b[H') >= signal_after:
                p.send_signal(signal.SIGINT)
                sent = True
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:         # EIO: the other side is gone
                    break
                if not chunk:
                    break
                buf += chunk
            elif p.poll() is not None:
                break
        else:
            raise CheckFailed('watch on a pty: no end in %gs: %r' % (timeout * SLOW, buf[-800:]))
        rc = p.wait(5)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    return rc, buf.decode('utf-8', 'replace')


def frames(text):
    """The frames of a terminal's output: what follows each cursor home."""
    return text.split(ESC + '[H')[1:]


def visible(line):
    return re.sub(r'\x1b\[[0-9;?]*[A-Za-z]', '', line).replace('\r', '')

# ============================================================ cases


@case('watch --count 3 -j: 3 lines of JSON, each {time, status (as status -j), streams '
      '(as streams -j)}, the producer in each with growing bytes, about a second apart; '
      'each line flushed as it is made')
def _():
    d = shared()
    p = start(d, 'watch', '--count', '3', '-j')
    try:
        r, _, _ = select.select([p.stdout], [], [], 5 * SLOW)
        check(r, 'no first line within 5 s')
        first = p.stdout.readline()
        check(p.poll() is None, 'the first line came only at the end (not flushed)')
    finally:
        rc, out, err = finish(p)
    check(rc == 0 and err == '', 'exit %s, stderr %r' % (rc, err))
    snaps = snapshots(first + out)
    check(len(snaps) == 3, '%d lines, want 3:\n%s' % (len(snaps), first + out))
    for s in snaps:
        check(set(s) >= {'time', 'status', 'streams'} and isinstance(s['time'], float),
              'fields: %s' % sorted(s))
        st = s['status']
        check(set(st) >= {'version', 'pid', 'uptime_sec', 'server', 'producers', 'listeners'}
              and set(st['server']) >= {'connections', 'connections_total', 'bytes_received',
                                        'digests_sent'}
              and set(st['producers']) >= {'running', 'bytes_sent', 'digests_received',
                                           'digests_verified', 'digest_mismatches'},
              'status fields: %s' % st)
        loop = producer(s, 'loop')
        check(loop is not None, 'loop missing: %s' % s['streams'])
        check(set(loop) >= {'id', 'role', 'name', 'peer', 'mode', 'state', 'bytes', 'digests',
                            'digests_verified', 'digest_mismatches', 'bytes_per_sec',
                            'backpressure_pauses'}, 'stream fields: %s' % sorted(loop))
    b = [producer(s, 'loop')['bytes'] for s in snaps]
    check(b[0] < b[1] < b[2], 'bytes do not grow: %s' % b)
    gaps = [b['time'] - a['time'] for a, b in zip(snaps, snaps[1:])]
    check(all(0.8 <= g <= 3 * SLOW for g in gaps), 'gaps %s, want about 1 s' % gaps)
    check(abs(snaps[0]['time'] - time.time()) < 30, 'time is not Unix seconds: %s'
          % snaps[0]['time'])


@case('watch --interval 0.2s --count 3 (and 0.2, --interval=0.2s): 3 snapshots about 0.2 s '
      'apart; bad values, a count of 0 and unknown options are usage errors (exit 2)')
def _():
    d = shared()
    for iv in (('--interval', '0.2s'), ('--interval', '0.2'), ('--interval=0.2s',)):
        r = ctl(d, 'watch', *iv, '--count', '3', '-j')
        check(r.rc == 0, str(r))
        snaps = snapshots(r.out)
        check(len(snaps) == 3, '%s: %d snapshots\n%s' % (iv, len(snaps), r))
        gaps = [b['time'] - a['time'] for a, b in zip(snaps, snaps[1:])]
        check(all(0.16 <= g <= 1.5 * SLOW for g in gaps), '%s: gaps %s' % (iv, gaps))
    for bad in (('--interval', '0'), ('--interval', 'x'), ('--interval', '-1'),
                ('--interval', '2d'), ('--interval', '0x10'), ('--interval', '1e1'),
                ('--interval', 'inf'), ('--interval', '.'), ('--interval',), ('--count', '0'), ('--count', '-1'),
                ('--count', '2x'), ('--bogus',), ('extra',)):
        r = ctl(d, 'watch', *bad)
        check(r.rc == 2 and r.err.strip() and r.out == '', 'watch %s: %s' % (bad, r))


@case('watch --count 2 to a pipe: two plain snapshots apart by a blank line, no escape '
      'codes; header with version, uptime, totals and the time, then the streams table; '
      '--bits gives rates in b/s')
def _():
    d = shared()
    r = ctl(d, 'watch', '--count', '2', '--interval', '0.3')
    check(r.rc == 0 and r.err == '', str(r))
    check(ESC not in r.out, 'escape codes in a pipe: %r' % r.out[:300])
    heads = [m.start() for m in re.finditer(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  wsflowd ',
                                            r.out, re.M)]
    check(len(heads) == 2, 'want 2 snapshots:\n%s' % r.out)
    first, second = r.out[:heads[1]], r.out[heads[1]:]
    check(first.endswith('\n\n') and not first.endswith('\n\n\n'),
          'snapshots not apart by one blank line:\n%r' % r.out)
    version = json.loads(ctl(d, '-j', 'status').out)['version']
    for s in (first, second):
        lines = s.strip('\n').split('\n')
        check(' wsflowd %s, pid %d, up ' % (version, d.pid) in lines[0], 'header: %r' % lines[0])
        check(lines[1].startswith('Server:') and lines[2].startswith('Producers:'),
              'totals: %r' % lines[1:3])
        check(re.match(r'ID\s+ROLE\s+NAME\s+MODE\s+STATE\s+BYTES\s+RATE\s', lines[4]),
              'table header: %r' % lines[4])
        check(any(re.match(r'\d+\s+producer\s+loop\s', l) for l in lines[5:]),
              'no loop row:\n%s' % s)
    check(re.search(r'^\d+\s+producer\s+loop\s.*\s[0-9.]+[kMG]?/s\s', r.out, re.M),
          'no rate in B/s:\n%s' % r.out)
    r = ctl(d, 'watch', '--count', '1', '--bits')
    check(r.rc == 0 and re.search(r'^\d+\s+producer\s+loop\s.*\s[0-9.]+[kMG]?b/s\s', r.out,
                                  re.M) and 'bit/s' not in r.out.split('\n')[0],
          'no rate in bit/s:\n%s' % r)


@case('watch on a terminal (pty, %d rows): each refresh homes the cursor, redraws and erases '
      'to the end of the screen; no frame has more lines than the window; lines fit '
      'its width; the cursor comes back at the end' % ROWS)
def _():
    d = shared()
    rc, text = on_pty(d, 'watch', '--interval', '0.2s', '--count', '3')
    check(rc == 0, 'exit %s: %r' % (rc, text[-500:]))
    fs = frames(text)
    check(len(fs) == 3, '%d frames, want 3: %r' % (len(fs), text[:800]))
    for f in fs:
        check(ESC + '[J' in f, 'a frame without erase to the end: %r' % f)
        n = f.count('\n')
        check(n <= ROWS - 1, 'a frame of %d lines in a %d-row window: %r' % (n, ROWS, f))
        lines = [visible(l) for l in f.split('\n')]
        check(all(len(l) < COLS for l in lines), 'a line wider than %d: %r' % (
            COLS, max(lines, key=len)))
        check('wsflowd ' in lines[0] and 'more lines' in f,
              'header or the cut missing: %r' % f)
    check(text.endswith(ESC + '[?25h'), 'cursor not shown again: %r' % text[-50:])


@case('SIGINT ends watch with exit 0: to a pipe, with -j, and on a terminal (the table stays, '
      'the cursor below it)')
def _():
    d = shared()
    for args in (('watch', '--interval', '0.2'), ('watch', '-j')):
        p = start(d, *args)
        try:
            r, _, _ = select.select([p.stdout], [], [], 5 * SLOW)
            check(r, '%s: no output within 5 s' % (args,))
            p.stdout.readline()
            time.sleep(0.1)
            p.send_signal(signal.SIGINT)
        finally:
            rc, out, err = finish(p, 5)
        check(rc == 0 and err == '', '%s: exit %s, stderr %r' % (args, rc, err))
    rc, text = on_pty(d, 'watch', '--interval', '0.2', signal_after=2)
    check(rc == 0, 'pty: exit %s: %r' % (rc, text[-300:]))
    last = frames(text)[-1]
    check(last.count('\n') <= ROWS - 1 and ESC + '[J' in last and
          text.endswith(ESC + '[?25h'), 'pty end: %r' % text[-300:])


@case('a window made smaller (SIGWINCH) is drawn again at once, to its new height')
def _():
    d = shared()
    t0 = time.monotonic()
    rc, text = on_pty(d, 'watch', '--interval', '10', resize_to=6, signal_after=2)
    fs = frames(text)
    check(rc == 0 and len(fs) == 2 and time.monotonic() - t0 < 5 * SLOW,
          'exit %s, %d frames in %.1fs: %r' % (rc, len(fs), time.monotonic() - t0, text[-300:]))
    check(fs[0].count('\n') == ROWS - 1 and fs[1].count('\n') == 6 - 1,
          'frames of %d and %d lines, want %d and 5' % (fs[0].count('\n'), fs[1].count('\n'),
                                                        ROWS - 1))


@case('a daemon stopped mid-watch: the error, exit 3 (text and -j: a last line '
      '{"status": "failed", "code": 3})')
def _():
    for args in (('watch', '--interval', '0.2'), ('watch', '-j', '--interval', '0.2')):
        d = Daemon().start()
        p = start(d, *args)
        try:
            r, _, _ = select.select([p.stdout], [], [], 5 * SLOW)
            check(r, 'no output within 5 s')
            p.stdout.readline()
            d.check_clean_stop()
        finally:
            rc, out, err = finish(p, 25)
        check(rc == 3 and 'wsflowctl: ' in err, '%s: exit %s, stderr %r' % (args, rc, err))
        if '-j' in args:
            last = snapshots(out)[-1]
            check(last.get('status') == 'failed' and last.get('code') == 3 and last.get('error'),
                  'last line: %s' % last)


@case('watch against no daemon: exit 3 at once')
def _():
    r = ctl('/nonexistent/wsflowd.sock', 'watch')
    check(r.rc == 3 and 'is wsflowd running' in r.err and r.out == '', str(r))


@case('wsflowd stops cleanly (exit 0) after the watches')
def _():
    d = shared()
    d.check_clean_stop()
    if SILENT is not None:
        SILENT.close()


if __name__ == '__main__':
    run_cases()
