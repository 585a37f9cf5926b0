#!/usr/bin/python3
# timeout: 90
"""wsflowctl as people and scripts meet it (issue #10: items 2, 7, 8 and
13; interface.md §4 and §6): help and version, prefixes, sizes with
suffixes, what start prints, URLs, stop of a producer that is not
running, the streams table, state words, JSON error codes, permission
denied on the socket, plurals, bash completion.

One daemon ("D") runs most cases: "loop" (autostarted, streams to D
itself), "idle" (autostart = false), and two producers to a listener
that never answers a handshake, one of them with a long name and a long
URL (so that rows in `connecting` and rows with long values exist).
"""
import grp
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import time

from wsflowtest import (BUILD, SLOW, SRCDIR, CheckFailed, Daemon, Skip, WSClient, case,
                        check, diag, lc_value, run_cases, tmpdir, tmpfile, wait_for)

WSFLOWCTL = os.environ.get('WSFLOWCTL') or os.path.join(SRCDIR, BUILD, 'wsflowctl')
COMPLETION = os.path.join(SRCDIR, 'ctl', 'wsflowctl.bash')
MODES = ('producer', 'streaming', 'frame', 'message')
COMMANDS = ('status', 'streams', 'show', 'start', 'stop', 'digests', 'reload', 'run', 'watch',
            'help')
MiB = 1 << 20
LONG_NAME = 'a-producer-with-a-name-much-longer-than-any-column-' + 'x' * 12
NOBODY = None
if os.geteuid() == 0 and shutil.which('setpriv'):
    NOBODY = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups']


class Run:
    def __init__(self, argv, cp):
        self.argv, self.rc, self.out, self.err = argv, cp.returncode, cp.stdout, cp.stderr

    @property
    def json(self):
        try:
            return json.loads(self.out)
        except ValueError:
            raise CheckFailed('%s: stdout is not JSON: %r (stderr %r)' % (self, self.out[:300],
                                                                         self.err[:300]))

    def __str__(self):
        return 'wsflowctl %s: exit %s\nstdout: %s\nstderr: %s' % (
            ' '.join(self.argv), self.rc, self.out[-1500:], self.err[-800:])


def ctl(*args, sock=None, user=None, ctlbin=None):
    argv = (['-s', sock] if sock else []) + [str(a) for a in args]
    try:
        cp = subprocess.run((user or []) + [ctlbin or WSFLOWCTL] + argv, capture_output=True,
                            text=True, timeout=20 * SLOW, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise CheckFailed('wsflowctl %s: no answer in %gs' % (' '.join(argv), 20 * SLOW))
    return Run(argv, cp)


def dctl(*args):
    return ctl(*args, sock=D.ctl_sock)


def want(r, rc, what):
    check(r.rc == rc, '%s: want exit %d\n%s' % (what, rc, r))
    return r


def show(key):
    """The live stream key, or None (show also gives ended streams and
    configured producers that are not running: those are not live)."""
    r = dctl('-j', 'show', key)
    st = r.json.get('stream') if r.rc == 0 else None
    if st is None or st.get('state') in ('finished', 'failed', 'stopped'):
        return None
    return st


def log_lines(d, pattern):
    return [l for l in d.log_text().splitlines() if re.search(pattern, l)]

# ------------------------------------------------------------ daemons


D = None
SILENT = None       # a listener that accepts and never answers


def with_producers(d, producers, control=None):
    """Append producers [(name, url, keys)] to d's configuration; control:
    extra keys of control: {}."""
    with open(d.conf) as f:
        text = f.read()
    if control:
        old = 'control: { path = "%s"; };' % d.ctl_sock
        check(old in text, 'no control line in %s' % d.conf)
        text = text.replace(old, 'control: { path = "%s"; %s };' % (
            d.ctl_sock, ' '.join('%s = %s;' % (k, lc_value(v)) for k, v in control.items())))
    if producers:
        text += 'producers = (\n  %s\n);\n' % ',\n  '.join(
            '{ %s }' % ' '.join('%s = %s;' % (k, lc_value(v))
                                for k, v in dict(name=n, url=u, **k).items())
            for n, u, k in producers)
    with open(d.conf, 'w') as f:
        f.write(text)


def shared():
    global D, SILENT
    if D is not None and D.alive():
        return D
    if SILENT is None:
        SILENT = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        SILENT.bind(('127.0.0.1', 0))
        SILENT.listen(64)
    silent = 'ws://127.0.0.1:%d/' % SILENT.getsockname()[1]
    d = Daemon()
    with_producers(d, [('loop', d.url('/'), dict(mode='producer')),
                       ('idle', d.url('/'), dict(autostart=False)),
                       ('hush', silent, {}),
                       (LONG_NAME, silent + 'p' * 200, dict(mode='frame'))],
                   control=dict(group='wsflowtest-nosuchgroup', mode='0666'))
    d.start()
    check(wait_for(lambda: ctl('status', sock=d.ctl_sock).rc == 0, 10),
          'control socket never answered:\n' + d.log_tail())
    D = d
    return d


def nobody_ctl():
    """A wsflowctl that nobody may run, in a directory nobody may enter."""
    if NOBODY is None:
        raise Skip('needs root and setpriv')
    os.chmod(tmpdir(), 0o711)
    path = tmpfile('wsflowctl')
    if not os.path.exists(path):
        shutil.copy(WSFLOWCTL, path)
        os.chmod(path, 0o755)
    return path

# ============================================================ cases


@case('--help, -h, help and `start --help` print to stdout and exit 0 (stderr empty), each '
      'command once; --version, -V and -j --version print the daemon\'s version, exit 0')
def _():
    d = shared()
    for args in (('--help',), ('-h',), ('help',), ('start', '--help'), ('-s', '/nonexistent',
                                                                      '--help')):
        r = want(ctl(*args), 0, 'help')
        check(r.out.startswith('usage: wsflowctl') and r.err == '',
              'help not on stdout alone:\n%s' % r)
        for c in COMMANDS:
            rows = re.findall(r'^  %s\b' % c, r.out, re.M)
            check(len(rows) == 1, '%s: command %s listed %d times:\n%s' % (' '.join(args), c,
                                                                           len(rows), r.out))
        for opt in ('--mode', '--bytes', '--duration', '--rate', '--name', '--json',
                    '--socket', '--version', '--interval', '--count', '--bits'):
            check(opt in r.out, 'help lacks %s:\n%s' % (opt, r.out))
    version = ctl('-j', 'status', sock=d.ctl_sock).json['version']
    for args in (('--version',), ('-V',)):
        r = want(ctl(*args), 0, 'version')
        check(r.out == 'wsflowctl %s\n' % version and r.err == '',
              'version: want "wsflowctl %s":\n%s' % (version, r))
    r = want(ctl('-j', '--version'), 0, '-j --version')
    check(r.json == {'version': version}, '-j --version: %s' % r.out)


@case('an ambiguous prefix names its candidates (text and -j, exit 2); unique prefixes work')
def _():
    shared()
    r = want(dctl('st'), 2, 'st')
    m = re.search(r"ambiguous command 'st': (.*)", r.err)
    check(m and sorted(re.split(r',\s*', m.group(1).strip())) ==
          ['start', 'status', 'stop', 'streams'], 'st: candidates not named:\n%s' % r)
    r = want(dctl('-j', 'st'), 2, '-j st')
    check(all(c in r.json.get('error', '') for c in ('status', 'streams', 'start', 'stop')),
          '-j st: %s' % r.out)
    want(dctl('sta'), 2, 'sta')            # status or start
    check('Version:' in want(dctl('stat'), 0, 'stat').out, 'stat is not status')


@case('sizes K/M/G (KiB...), durations s/m/h, rates K/M/G and N/s take effect; '
      'malformed ones exit 2 before the daemon is asked')
def _():
    d = shared()
    t0 = time.monotonic()
    r = want(dctl('start', d.url('/'), '--bytes', '2M', '--rate', '1M', '--name', 'sized'), 0,
             'start --bytes 2M --rate 1M')
    sid = int(r.out.split()[2])
    r = want(dctl('start', d.url('/'), '--duration=2s', '--rate=512KiB/s', '--name', 'timed'), 0,
             'start --duration=2s --rate=512KiB/s')
    tid = int(r.out.split()[2])
    r = want(dctl('start', d.url('/'), '--duration', '1m', '--bytes', '1G', '--name', 'long'),
             0, 'start --duration 1m --bytes 1G')
    lid = int(r.out.split()[2])
    pat = r'\[producer %d sized\] finished: (\d+) bytes sent' % sid
    check(wait_for(lambda: log_lines(d, pat), 15), 'sized never finished:\n' + d.log_tail())
    took = time.monotonic() - t0
    sent = int(re.search(pat, log_lines(d, pat)[0]).group(1))
    check(sent == 2 * MiB, '--bytes 2M sent %d octets, not %d' % (sent, 2 * MiB))
    check(took >= 1.2, '--bytes 2M at --rate 1M took only %.2fs' % took)
    tpat = r'\[producer %d timed\] finished: (\d+) bytes sent' % tid
    check(wait_for(lambda: log_lines(d, tpat), 10), 'timed (--duration=2s) never finished')
    took = time.monotonic() - t0
    sent = int(re.search(tpat, log_lines(d, tpat)[0]).group(1))
    check(1.5 <= took <= 8 * SLOW and sent <= 4 * 512 * 1024,
          '--duration=2s --rate=512KiB/s: %.2fs, %d octets' % (took, sent))
    check(show(lid) is not None, '--duration 1m ended already')
    want(dctl('stop', lid), 0, 'stop long')
    diag('sized: %d octets; timed: %d octets in %.1fs' % (2 * MiB, sent, took))
    for opt, val in (('--bytes', '1T'), ('--bytes', '10X'), ('--bytes', '-1K'),
                     ('--bytes', 'K'), ('--bytes', '1.5M'), ('--bytes', '99999999999G'),
                     ('--rate', '10M/m'), ('--duration', '10M'), ('--duration', '2d'),
                     ('--duration', '9000h'), ('--duration', '')):
        r = ctl('start', d.url('/'), opt, val, sock='/nonexistent/no.sock')
        check(r.rc == 2 and opt in r.err, '%s %r: want exit 2 naming %s\n%s' % (opt, val, opt, r))


@case('start says what it started: "started producer ID NAME"; -j gives id and name '
      '(configured, ad-hoc with --name, ad-hoc named adhoc-ID)')
def _():
    d = shared()
    r = want(dctl('start', 'idle'), 0, 'start idle')
    m = re.fullmatch(r'started producer (\d+) idle\n', r.out)
    check(m, 'start idle printed %r' % r.out)
    check(show('idle')['id'] == int(m.group(1)), 'idle: id %s is not %s' % (show('idle'),
                                                                             m.group(1)))
    want(dctl('stop', 'idle'), 0, 'stop idle')
    check(wait_for(lambda: show('idle') is None, 5), 'idle still running')
    out = want(dctl('-j', 'start', 'idle'), 0, '-j start idle').json
    check(out.get('status') == 'ok' and out.get('name') == 'idle' and
          isinstance(out.get('id'), int) and show('idle')['id'] == out['id'],
          '-j start idle: %s' % out)
    want(dctl('stop', 'idle'), 0, 'stop idle')
    r = want(dctl('start', d.url('/frame'), '--mode', 'frame', '--name', 'x'), 0, 'start URL x')
    m = re.fullmatch(r'started producer (\d+) x\n', r.out)
    check(m and show('x')['id'] == int(m.group(1)), 'start URL --name x printed %r' % r.out)
    out = want(dctl('-j', 'start', d.url('/'), '--bytes', '1M'), 0, '-j start URL').json
    check(out.get('name') == 'adhoc-%s' % out.get('id') and
          out.get('message') == 'started producer %s adhoc-%s' % (out['id'], out['id']),
          '-j start URL: %s' % out)
    r = want(dctl('start', d.url('/'), '--duration', '30s'), 0, 'start URL')
    m = re.fullmatch(r'started producer (\d+) adhoc-(\d+)\n', r.out)
    check(m and m.group(1) == m.group(2), 'start URL printed %r' % r.out)
    for k in ('x', m.group(1)):
        want(dctl('stop', k), 0, 'stop %s' % k)


@case('a word with :// is a URL: http://, https://, ftp:// get a usage error naming '
      'ws:// and wss:// (exit 2, code 2), never "no producer named"')
def _():
    shared()
    for url in ('http://127.0.0.1:9/', 'https://example.invalid/x', 'ftp://x/'):
        r = want(dctl('start', url), 2, 'start ' + url)
        check('ws://' in r.err and 'wss://' in r.err and 'no producer' not in r.err,
              'start %s:\n%s' % (url, r))
        out = want(dctl('-j', 'start', url, '--name', 'q'), 2, '-j start ' + url).json
        check(out.get('code') == 2 and 'ws://' in out.get('error', ''), '-j: %s' % out)
    check(show('q') is None, 'a refused URL started something')


@case('stop of a configured producer that is not running: exit 0 "not running" (text, -j); '
      'stop of an unknown name: exit 1 "no such stream"')
def _():
    shared()
    if show('idle') is not None:        # left running by an earlier case
        want(dctl('stop', 'idle'), 0, 'stop idle (running)')
    check(wait_for(lambda: show('idle') is None, 5), 'idle runs: %s' % show('idle'))
    r = want(dctl('stop', 'idle'), 0, 'stop idle (not running)')
    check('not running' in r.out and 'no such stream' not in r.out + r.err,
          'stop idle:\n%s' % r)
    out = want(dctl('-j', 'stop', 'idle'), 0, '-j stop idle').json
    check(out.get('status') == 'ok' and 'not running' in out.get('message', ''), '-j: %s' % out)
    r = want(dctl('stop', 'nosuch'), 1, 'stop nosuch')
    check('no such stream' in r.err, 'stop nosuch:\n%s' % r)


def columns(header):
    """{column: (start, end)} of the header's words."""
    return {m.group(0): (m.start(), m.end()) for m in re.finditer(r'\S+', header)}


@case('streams: header and rows in fixed columns for every state (connecting too), '
      'rows within 100 columns with a 63-character name and a 220-character URL')
def _():
    shared()
    seen = {}

    def listing():
        r = want(dctl('streams'), 0, 'streams')
        for line in r.out.splitlines()[1:]:
            seen[line.split()[4]] = r.out
        return 'connecting' in seen and 'open' in seen
    check(wait_for(listing, 20, 0.05), 'no rows in connecting and open: %s' % sorted(seen))
    left = ('ROLE', 'NAME', 'MODE', 'STATE', 'PEER')      # left-aligned: starts fixed
    right = ('BYTES', 'RATE', 'DIGESTS', 'VERIFIED', 'MISMATCH', 'BAD')  # right-aligned
    probs = []
    for state, out in seen.items():
        lines = out.splitlines()
        cols = columns(lines[0])
        check(all(c in cols for c in ('ID', 'BYTES', 'DIGESTS') + left), 'header: %r' % lines[0])
        for line in lines:
            if len(line) > 100:
                probs.append('%d columns: %r' % (len(line), line))
            for c in left:
                s = cols[c][0]
                if not (line[s - 1] == ' ' and line[s:s + 1].strip()):
                    probs.append('%s does not start at %d: %r' % (c, s, line))
            for c in (c for c in right if c in cols):
                e = cols[c][1]
                if not (line[e - 1] != ' ' and line[e:e + 1] == ' '):
                    probs.append('%s does not end at %d: %r' % (c, e, line))
    check(not probs, '\n'.join(probs[:8]) + '\n' + seen['connecting'])
    diag('connecting:\n' + seen['connecting'])
    row = [s for s in want(dctl('-j', 'streams'), 0, '-j').json['streams']
           if s['name'] == LONG_NAME]
    check(row and row[0]['peer'].endswith('p' * 200), '-j: the long URL is cut: %s' % row)


@case('a live producer\'s state is a state, not a mode: "sending"; no row\'s state is a mode')
def _():
    shared()
    check(wait_for(lambda: (show('loop') or {}).get('state') == 'sending', 5),
          'loop: %s' % show('loop'))
    rows = want(dctl('-j', 'streams'), 0, '-j streams').json['streams']
    check(not [r for r in rows if r['state'] in MODES], 'states named like modes: %s'
          % [(r['id'], r['state']) for r in rows])


@case('-j: a failure is {"status": "failed", "error", "code"} with code == the exit status '
      '(1 no stream, 2 usage, 3 no daemon, 4 refused by the daemon)')
def _():
    d = shared()
    cases = [(('show', 9999), d.ctl_sock, None, 1), (('stop', 'nosuch'), d.ctl_sock, None, 1),
             (('start', 'nosuch'), d.ctl_sock, None, 1), (('bogus',), d.ctl_sock, None, 2),
             (('start', d.url('/'), '--rate', 'x'), d.ctl_sock, None, 2),
             (('status',), os.path.join(tmpdir(), 'none.sock'), None, 3)]
    if NOBODY is not None:
        cases.append((('start', 'idle'), d.ctl_sock, NOBODY, 4))
    else:
        diag('not root: code 4 left out')
    for args, sock, user, rc in cases:
        r = ctl('-j', *args, sock=sock, user=user, ctlbin=nobody_ctl() if user else None)
        check(r.rc == rc, 'want exit %d:\n%s' % (rc, r))
        out = r.json
        check(out.get('status') == 'failed' and out.get('error') and out.get('code') == rc,
              '-j %s: want code %d: %s' % (' '.join(map(str, args)), rc, r.out))


@case('a control socket that refuses the connection (EACCES): exit 4, "permission denied" '
      'naming the socket and its group; -j code 4; the same socket for root works; '
      'status says "1 connection", logs say "1 message", "1 digest", "1 stream served"')
def _():
    ctlbin = nobody_ctl()
    group = next((g for g in ('adm', 'daemon', 'sys', 'disk') if _group_ok(g)), None)
    if group is None:
        raise Skip('no group to give the socket')
    e = Daemon()
    with_producers(e, [], control=dict(group=group, mode='0660'))
    e.start()
    sock = e.ctl_sock
    check(wait_for(lambda: ctl('status', sock=sock).rc == 0, 10), 'E never answered')
    r = ctl('status', sock=sock, user=NOBODY, ctlbin=ctlbin)
    check(r.rc == 4 and 'permission denied' in r.err and sock in r.err and
          'group %s' % group in r.err, 'as nobody, want exit 4 naming group %s:\n%s'
          % (group, r))
    r = ctl('-j', 'status', sock=sock, user=NOBODY, ctlbin=ctlbin)
    check(r.rc == 4 and r.json.get('code') == 4 and 'permission denied' in r.json['error'],
          '-j as nobody:\n%s' % r)
    # plurals, on a daemon that served exactly one stream
    c = WSClient(e.port, '/')
    c.send_frame(os.urandom(MiB), opcode=2, fin=True)
    check(len(c.recv_digests(1)) == 1, 'no digest')
    r = want(ctl('status', sock=sock), 0, 'status')
    check(re.search(r'^Server:\s+1 connection \(1 total\), .* 1 digest sent$', r.out, re.M),
          'status text:\n%s' % r.out)
    c.close()
    check(wait_for(lambda: log_lines(e, r'closed: %d bytes, 1 message, 1 digest sent' % MiB), 5),
          'close log:\n' + e.log_tail())
    e.check_clean_stop()
    check(log_lines(e, r'stopped: 1 stream served'), 'stop log:\n' + e.log_tail())


def _group_ok(name):
    try:
        g = grp.getgrnam(name)
    except KeyError:
        return False
    return g.gr_gid != 0 and 'nobody' not in g.gr_mem and \
        g.gr_gid != pwd.getpwnam('nobody').pw_gid


@case('bash completion (ctl/wsflowctl.bash): commands, prefixes, options, modes, '
      'stop/show complete ids, names and all; start completes producer names and ws://; '
      '--bits for streams, show ID and run')
def _():
    d = shared()
    if not shutil.which('bash'):
        raise Skip('no bash')
    check(os.path.exists(COMPLETION), '%s missing' % COMPLETION)
    loop = show('loop')
    check(loop is not None, 'loop not running')
    lines = {
        '': None, 'st': None, '--': None, '-s %s stop ' % d.ctl_sock: None,
        '-s %s sh l' % d.ctl_sock: None, '-s %s start ' % d.ctl_sock: None,
        '-s %s watch --' % d.ctl_sock: None,
        '-s %s start ws://h/ --' % d.ctl_sock: None, '-s %s start ws://h/ --mode f' % d.ctl_sock:
        None, '-s %s stop 1 ' % d.ctl_sock: None, '-s %s start ws:' % d.ctl_sock: None,
        '-s %s streams ' % d.ctl_sock: None, '-s %s show 1 ' % d.ctl_sock: None,
        '-s %s run ws://h/ --' % d.ctl_sock: None,
    }
    script = ['source %s' % COMPLETION,
              'c() { COMP_LINE=$1; COMP_POINT=${#1}; COMPREPLY=(); _wsflowctl;'
              ' printf "%s\\n" "${COMPREPLY[*]}"; }']
    for l in lines:
        script.append('c %s' % "'%s %s'" % (WSFLOWCTL, l))
    cp = subprocess.run(['bash', '--norc', '--noprofile', '-c', '\n'.join(script)],
                        capture_output=True, text=True, timeout=30 * SLOW,
                        stdin=subprocess.DEVNULL)
    got = cp.stdout.split('\n')
    check(cp.returncode == 0 and len(got) >= len(lines), 'bash: %d %s %s' % (
        cp.returncode, cp.stdout, cp.stderr))
    res = dict(zip(lines, (set(g.split()) for g in got)))
    s = '-s %s ' % d.ctl_sock
    wants = [('', set(COMMANDS), '=='), ('st', {'status', 'streams', 'start', 'stop'}, '=='),
             ('--', {'--json', '--socket', '--help', '--version'}, '=='),
             (s + 'stop ', {'all', 'loop', str(loop['id'])}, '>='),
             (s + 'sh l', {'loop'}, '>='),      # and ended streams named l...
             (s + 'watch --', {'--interval', '--count', '--bits'}, '=='),
             (s + 'start ', {'ws://', 'wss://', 'loop', 'hush'}, '>='),
             (s + 'start ws://h/ --', {'--mode', '--bytes', '--duration', '--rate', '--name'},
              '=='),
             (s + 'start ws://h/ --mode f', {'frame'}, '=='), (s + 'stop 1 ', set(), '=='),
             (s + 'start ws:', {'//'}, '=='),
             (s + 'streams ', {'-a', '--all', '--bits'}, '=='), (s + 'show 1 ', {'--bits'}, '=='),
             (s + 'run ws://h/ --', {'--parallel', '--bytes', '--duration', '--rate', '--mode',
                                     '--interval', '--name', '--bits', '--receiver'}, '==')]
    probs = []
    for l, w, how in wants:
        g = res[l]
        if not (g == w if how == '==' else g >= w):
            probs.append('%r: got %s, want %s %s' % (l, sorted(g), how, sorted(w)))
    check(not probs, '\n'.join(probs))


@case('wsflowd stops cleanly (exit 0) with producers connecting and sending')
def _():
    d = shared()
    d.check_clean_stop()
    if SILENT is not None:
        SILENT.close()


if __name__ == '__main__':
    run_cases()
