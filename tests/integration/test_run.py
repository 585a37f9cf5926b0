#!/usr/bin/python3
# timeout: 420
"""wsflowctl run (issue #12, spec §6): a bounded test that the daemon's
producers carry and wsflowctl follows.

a) run URL --bytes 8M -j against wsflowd: start, interval and end events;
   the summary's bytes = 8 MiB = what the server counted, verified = the
   8 digests due, no mismatch, latency and connect figures; exit 0;
b) --parallel 64 --bytes 64M: 64 streams, each finished and verified;
c) against the AutobahnPython tutorial servers, all four modes: exit 0,
   every digest verified;
d) a server that corrupts one digest: exit 1, the summary counts one
   mismatch and the stream's error names the digest;
e) Ctrl-C (SIGINT) mid-run: the summary still comes (interrupted), the
   stream is stopped, exit 1;
f) text: interval lines, a SUM line with --parallel 2, "result: complete";
g) run NAME: a configured producer with --bytes; usage errors exit 2;
m) run NAME --parallel 4 --bytes 8M: the entry's 4 streams, ids in a row,
   each 2 MiB finished and verified; a configured parallel = 3 without
   --parallel: 3 streams followed (not the first alone);
n) --bits: run's interval lines and summary, show and streams give bit/s,
   8 times the octets; JSON (-j ... --bits) keeps octets;
o) receiver figures, run against the daemon's own listener: the summary's
   receiver is the server stream at the other end (show names each to
   the other), its bytes = what the sender sent = what the server counted,
   its digests sent = the digests verified; text says so; -j intervals
   carry receiver_bytes;
p) --parallel 3 to the own listener: 3 receivers, their sum; a run NAME
   whose URL is the own listener of another daemon: not known there;
q) against the Autobahn tutorial server: the receiver is "not known",
   no figures (none guessed), text and JSON;
r) the same over TLS and over lws's framing (both server adapters);
s) --receiver SOCKET: another wsflowd's server streams, found by the
   producers' own ports, are the receivers; not known without it, and
   "not asked" with a wrong socket.

In a) and b) wsflowd's producers stream to wsflowd's server, which share
daemon/batch.c: a WSTap between them checks every digest with hashlib.
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

from wsflowtest import (BUILD, SLOW, SRCDIR, Daemon, WSClient, WSTap, case, check, diag,
                        run_cases, start_peer, wait_for)

WSFLOWCTL = os.environ.get('WSFLOWCTL') or os.path.join(SRCDIR, BUILD, 'wsflowctl')
MiB = 1 << 20
D = None


def daemon():
    global D
    if D is None:
        D = Daemon().start()
    return D


def run(*args, sock=None, timeout=60):
    sock = sock or daemon().ctl_sock
    return subprocess.run([WSFLOWCTL, '-s', sock] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout * SLOW,
                          stdin=subprocess.DEVNULL)


def events(out):
    ev = []
    for line in out.splitlines():
        ev.append(json.loads(line))
    return ev


def summary_of(r):
    ev = events(r.stdout)
    check(ev and ev[0].get('event') == 'start' and ev[-1].get('event') == 'end',
          'run -j events: %s' % [e.get('event') for e in ev])
    check(all(e.get('event') == 'interval' for e in ev[1:-1]), 'events between: %s'
          % [e.get('event') for e in ev[1:-1]])
    return ev, ev[-1]['summary']


def status():
    r = run('-j', 'status')
    check(r.returncode == 0, 'status: %s' % r.stderr)
    return json.loads(r.stdout)


def wait_for_slow(cond, timeout):
    """wsflowtest.wait_for at a pace that does not load the daemon."""
    return wait_for(cond, timeout, 0.5)


def peer_server(name, *args):
    p = start_peer(name, '--port', 0, '--seconds', 120, *args)
    ready, _, _ = select.select([p.stdout], [], [], 15 * SLOW)
    check(ready, '%s printed nothing in 15 s' % name)
    line = p.stdout.readline()
    port = json.loads(line).get('listening')
    check(port, '%s: %r' % (name, line))
    return p, port


@case('a) run URL --bytes 8M -j: start/interval/end events; summary bytes = 8 MiB = the '
      'server\'s count, verified = 8 digests due, 0 mismatches, latency p50<=p90<=p99<=max, '
      'connect p50 > 0; exit 0; a hashlib tap between them saw 8 MiB and 8 correct digests')
def _():
    d = daemon()
    tap = WSTap(d.port)
    before = status()['server']['bytes_received']
    r = run('-j', 'run', tap.url(), '--bytes', '8M', '--interval', '0.5')
    tap.close()
    check(r.returncode == 0, 'exit %d\n%s%s' % (r.returncode, r.stdout, r.stderr))
    ev, s = summary_of(r)
    diag('summary: %s' % s)
    check(s['bytes'] == 8 * MiB and s['streams'] == 1 and s['digests_verified'] == 8 and
          s['digest_mismatches'] == 0 and s['complete'] is True, 'summary: %s' % s)
    lat = s['digest_latency_us']
    check(0 < lat['p50'] <= lat['p90'] <= lat['p99'] <= lat['max'], 'latency: %s' % lat)
    check(s['connect_us']['p50'] > 0, 'connect: %s' % s['connect_us'])
    check(sum(e['bytes'] for e in ev[1:-1]) == 8 * MiB, 'intervals add up to %d'
          % sum(e['bytes'] for e in ev[1:-1]))
    after = status()['server']['bytes_received']
    check(after - before == 8 * MiB, 'the server counted %d octets, the run sent %d'
          % (after - before, s['bytes']))
    tap.check(min_verified=8)
    check(tap.bytes == 8 * MiB and tap.digests == 8, tap.summary())


@case('b) run --parallel 64 --bytes 64M -j: 64 streams, each finished with its 1 MiB '
      'verified; exit 0; a hashlib tap between them saw 64 connections, 64 MiB, 64 correct '
      'digests; the receivers, behind the tap, are not known (none guessed)')
def _():
    d = daemon()
    tap = WSTap(d.port)
    r = run('-j', 'run', tap.url(), '--parallel', 64, '--bytes', '64M', timeout=120)
    tap.close()
    check(r.returncode == 0, 'exit %d\n%s' % (r.returncode, (r.stdout + r.stderr)[-2000:]))
    ev, s = summary_of(r)
    check(len(ev[0]['streams']) == 64, 'start event names %d streams' % len(ev[0]['streams']))
    check(s['streams'] == 64 and s['streams_finished'] == 64 and s['bytes'] == 64 * MiB and
          s['digests_verified'] == 64 and s['digest_mismatches'] == 0, 'summary: %s' % s)
    tap.check(min_verified=64)
    check(tap.conns == 64 and tap.bytes == 64 * MiB and tap.digests == 64, tap.summary())
    diag(tap.summary())
    check(s['receiver']['known'] is False, 'receiver behind a tap: %s' % s['receiver'])


@case('c) against the AutobahnPython tutorial servers: producer and streaming (to '
      'server_streaming), frame (server_frame), message (server_message): exit 0, '
      'every digest verified')
def _():
    probs = []
    for mode, peer in (('producer', 'server_streaming.py'), ('streaming', 'server_streaming.py'),
                       ('frame', 'server_frame.py'), ('message', 'server_message.py')):
        p, port = peer_server(peer)
        try:
            r = run('-j', 'run', 'ws://127.0.0.1:%d/' % port, '--mode', mode, '--bytes', '4M')
            if r.returncode != 0:
                probs.append('%s: exit %d %s' % (mode, r.returncode, r.stdout[-600:] + r.stderr))
                continue
            s = summary_of(r)[1]
            diag('%s: %s' % (mode, s))
            if not (s['complete'] and s['digest_mismatches'] == 0 and s['digests_verified'] > 0
                    and s['bytes'] == 4 * MiB):
                probs.append('%s: %s' % (mode, s))
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(10)
    check(not probs, '\n'.join(probs))


@case('d) a server that corrupts digest 0: exit 1, the summary counts 1 mismatch, '
      '`show` of the stream names the digest')
def _():
    p, port = peer_server('server_streaming.py', '--corrupt-digest', 0)
    try:
        r = run('-j', 'run', 'ws://127.0.0.1:%d/' % port, '--bytes', '4M', '--name', 'bad')
        check(r.returncode == 1, 'exit %d\n%s%s' % (r.returncode, r.stdout, r.stderr))
        s = summary_of(r)[1]
        check(s['digest_mismatches'] == 1 and s['complete'] is False, 'summary: %s' % s)
        sh = json.loads(run('-j', 'show', 'bad').stdout)['stream']
        check('digest 0' in sh.get('error', ''), 'show bad: error %r' % sh.get('error'))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)


@case('e) SIGINT to run --duration 60 after 1.5 s: exits within 5 s with 1, the end event '
      'says interrupted (its receiver known, no more than sent), the stream is stopped')
def _():
    d = daemon()
    p = subprocess.Popen([WSFLOWCTL, '-s', d.ctl_sock, '-j', 'run', d.url(), '--duration', '60',
                          '--rate', '20M', '--name', 'intr'], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        p.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        out, err = p.communicate(timeout=10 * SLOW)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    check(p.returncode == 1 and took < 5 * SLOW, 'exit %s after %.1f s\n%s' % (p.returncode,
                                                                           took, err))
    ev = events(out)
    s = ev[-1].get('summary', {})
    check(ev[-1].get('event') == 'end' and s.get('interrupted') is True and s['bytes'] > 0,
          'last event: %s' % ev[-1])
    rx = s.get('receiver', {})
    check(rx.get('known') is True and 0 < rx['bytes'] <= rx['bytes_sent'] == s['bytes'],
          'interrupted run\'s receiver: %s' % rx)
    sh = json.loads(run('-j', 'show', 'intr').stdout)['stream']
    check(sh['state'] == 'stopped', 'show intr: %s' % sh['state'])


@case('f) text: run --parallel 2 --bytes 4M --interval 0.5 prints the table head, a SUM line '
      'and "result: complete"; exit 0')
def _():
    d = daemon()
    r = run('run', d.url(), '--parallel', 2, '--bytes', '4M', '--interval', '0.5')
    check(r.returncode == 0, 'exit %d\n%s%s' % (r.returncode, r.stdout, r.stderr))
    out = r.stdout
    check('Interval' in out and '[  SUM]' in out and 'result:    complete' in out and
          '\x1b' not in out, 'output:\n%s' % out)


@case('g) run NAME with --bytes (a configured producer, autostart = false): exit 0, its '
      'name; usage: --parallel 0, --interval 0, no target -> exit 2')
def _():
    d = daemon()
    r = run('-j', 'run', 'idle', '--bytes', '2M', sock=cfg_daemon().ctl_sock)
    check(r.returncode == 0, 'run idle: exit %d %s%s' % (r.returncode, r.stdout, r.stderr))
    ev, s = summary_of(r)
    check(ev[0]['streams'][0]['name'] == 'idle' and s['bytes'] == 2 * MiB, 'run idle: %s %s'
          % (ev[0], s))
    for args in (('run', 'idle', '--parallel', 0), ('run', d.url(), '--interval', 0),
                 ('run',)):
        r = run(*args)
        check(r.returncode == 2, '%s: exit %d, want 2 %s' % (' '.join(map(str, args)),
                                                            r.returncode, r.stderr))


@case('m) run NAME --parallel 4 --bytes 8M -j: 4 streams named NAME with ids in a row, each '
      '2 MiB finished with its 2 digests verified, sum 8 MiB = the server\'s count; an entry '
      'with parallel = 3 run without --parallel: 3 streams, 3 MiB each; start of it names '
      'its 3 ids')
def _():
    c = cfg_daemon()
    before = status()['server']['bytes_received']
    r = run('-j', 'run', 'idle', '--parallel', 4, '--bytes', '8M', sock=c.ctl_sock)
    check(r.returncode == 0, 'exit %d\n%s%s' % (r.returncode, r.stdout[-2000:], r.stderr))
    ev, s = summary_of(r)
    ids = [x['id'] for x in ev[0]['streams']]
    check(len(ids) == 4 and ids == list(range(ids[0], ids[0] + 4)) and
          all(x['name'] == 'idle' for x in ev[0]['streams']) and ev[0]['parallel'] == 4,
          'start event: %s' % ev[0])
    check(s['streams'] == 4 and s['streams_finished'] == 4 and s['bytes'] == 8 * MiB and
          s['digests_verified'] == 8 and s['digest_mismatches'] == 0 and s['complete'],
          'summary: %s' % s)
    rows = [x for x in json.loads(run('-j', 'streams', '-a', sock=c.ctl_sock).stdout)['streams']
            if x['id'] in ids]
    check(len(rows) == 4 and all(x['bytes'] == 2 * MiB and x['state'] == 'finished' and
                                 x['digests_verified'] == 2 for x in rows), 'streams: %s' % rows)
    after = status()['server']['bytes_received']
    check(after - before == 8 * MiB, 'the server counted %d octets' % (after - before))
    r = run('-j', 'run', 'trio', '--bytes', '9M', sock=c.ctl_sock)
    check(r.returncode == 0, 'run trio: exit %d\n%s%s' % (r.returncode, r.stdout[-2000:],
                                                           r.stderr))
    ev, s = summary_of(r)
    check(len(ev[0]['streams']) == 3 and s['streams'] == 3 and s['streams_finished'] == 3 and
          s['bytes'] == 9 * MiB and s['digests_verified'] == 9 and s['complete'],
          'run trio: %s %s' % (ev[0], s))
    import re
    r = run('start', 'trio', sock=c.ctl_sock)
    m = re.match(r'started producer ([0-9]+) trio \(streams ([0-9]+) to ([0-9]+)\)$', r.stdout)
    run('stop', 'trio', sock=c.ctl_sock)
    check(r.returncode == 0 and m and m.group(1) == m.group(2) and
          int(m.group(3)) == int(m.group(1)) + 2, 'start trio: %r %r' % (r.stdout, r.stderr))


def rate_value(text):
    """'33.6 Mbit/s', '4.2 MB/s', '12.34 MiB/s', '33.6M' -> units a second (bits or octets)."""
    import re
    m = re.match(r'\s*([0-9.]+)\s*([kKMGT]?)(i?)', text)
    check(m, 'not a rate: %r' % text)
    mult = {'': 1, 'k': 1e3, 'K': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12}[m.group(2)]
    if m.group(3):
        mult = {'': 1, 'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}[m.group(2)]
    return float(m.group(1)) * mult


@case('n) --bits: run --rate 4M --bytes 8M --bits: interval lines in bit/s, the '
      'summary\'s rate 8 x its MiB over its seconds (2 %); show and streams -a --bits: 8 x the '
      'octet rates; -j with --bits keeps octets')
def _():
    import re
    d = daemon()
    r = run('run', d.url(), '--rate', '4M', '--bytes', '8M', '--interval', '0.5', '--bits',
            '--name', 'bits')
    check(r.returncode == 0, 'exit %d\n%s%s' % (r.returncode, r.stdout, r.stderr))
    lines = [l for l in r.stdout.splitlines() if re.match(r'\[.{5}\] +[0-9.]+-', l)]
    check(lines and all(re.search(r'[0-9] [kMG]?bit/s ', l) for l in lines),
          'interval lines:\n%s' % r.stdout)
    m = re.search(r'^sent: +([0-9.]+) MiB in ([0-9.]+) s, ([0-9.]+ [kMG]?bit/s)', r.stdout,
                  re.M)
    check(m, 'summary:\n%s' % r.stdout)
    want = float(m.group(1)) * MiB * 8 / float(m.group(2))
    got = rate_value(m.group(3))
    check(abs(got - want) <= 0.02 * want, 'summary rate %s, want %.0f bit/s' % (m.group(3), want))

    def show_rates(*extra):
        out = run('show', 'bits', *extra).stdout
        m = re.search(r'^Rate: +(.*) now, (.*) average$', out, re.M)
        check(m, 'show bits %s:\n%s' % (' '.join(extra), out))
        return m.group(1), m.group(2)
    octs, bits = show_rates(), show_rates('--bits')
    check(octs[1].endswith(' MB/s') and bits[1].endswith(' Mbit/s'), 'show: %s %s'
          % (octs, bits))
    check(abs(rate_value(bits[1]) - 8 * rate_value(octs[1])) <= 0.02 * rate_value(bits[1]),
          'show average %s vs %s' % (bits[1], octs[1]))

    def row(*extra):
        out = run('streams', '-a', *extra).stdout.splitlines()
        rows = [l.split() for l in out if len(l.split()) > 2 and l.split()[2] == 'bits']
        check(rows and 'RATE' in out[0], 'streams -a %s:\n%s' % (' '.join(extra), out))
        return rows[-1][6]
    a, b = row(), row('--bits')
    check(a.endswith('/s') and b.endswith('b/s') and
          abs(rate_value(b) - 8 * rate_value(a)) <= 0.02 * rate_value(b),
          'streams RATE %s, --bits %s' % (a, b))
    j1 = json.loads(run('-j', 'show', 'bits').stdout)['stream']
    j2 = json.loads(run('-j', 'show', 'bits', '--bits').stdout)['stream']
    check(j1['bytes_per_sec'] == j2['bytes_per_sec'] and j1['bytes'] == j2['bytes'],
          'json: %s vs %s' % (j1['bytes_per_sec'], j2['bytes_per_sec']))


@case('o) run URL --bytes 8M -j to the daemon\'s own listener: summary.receiver known, its '
      'stream the server stream whose sender_stream is the run\'s stream, bytes = 8 MiB = sent '
      '= the server\'s count, digests_sent = 8 = verified, ended; text: "received:" line, '
      '"every octet sent arrived"')
def _():
    d = daemon()
    before = status()['server']['bytes_received']
    r = run('-j', 'run', d.url(), '--bytes', '8M', '--name', 'rx1')
    check(r.returncode == 0, 'exit %d\n%s%s' % (r.returncode, r.stdout, r.stderr))
    ev, s = summary_of(r)
    rx = s.get('receiver', {})
    diag('receiver: %s' % rx)
    pid = ev[0]['streams'][0]['id']
    after = status()['server']['bytes_received']
    check(rx.get('known') is True and rx['streams'] == 1 and rx['streams_unknown'] == 0 and
          rx['bytes'] == 8 * MiB == s['bytes'] == rx['bytes_sent'] == after - before and
          rx['digests_sent'] == 8 == s['digests_verified'] and rx['streams_ended'] == 1 and
          rx['seconds'] > 0 and rx['bytes_per_sec'] > 0, 'receiver %s; server counted %d'
          % (rx, after - before))
    srv = json.loads(run('-j', 'show', rx['stream']).stdout)['stream']
    prod = json.loads(run('-j', 'show', pid).stdout)['stream']
    check(srv['role'] == 'server' and srv['sender_stream'] == pid and
          prod['receiver_stream'] == rx['stream'] and srv['bytes'] == 8 * MiB and
          srv['digests'] == 8, 'show server %s / producer %s' % (
              {k: srv.get(k) for k in ('id', 'role', 'sender_stream', 'bytes', 'digests')},
              prod.get('receiver_stream')))
    t = run('run', d.url(), '--bytes', '4M', '--name', 'rx2')
    check(t.returncode == 0, 'text: exit %d %s' % (t.returncode, t.stderr))
    import re
    m = re.search(r'^received: +4\.00 MiB in [0-9.]+ s, .* by stream ([0-9]+) of this wsflowd '
                  r'\((finished|stopped)\)\n +4 digests sent, backpressure [0-9.]+ s; every octet '
                  r'sent arrived$', t.stdout, re.M)
    check(m, 'text summary:\n%s' % t.stdout)
    txt = run('show', m.group(1)).stdout
    check(re.search(r'^Sender: +stream [0-9]+ of this daemon$', txt, re.M), 'show:\n%s' % txt)
    # Intervals: the receiver's octets as far as seen, never more than it got in all.
    r = run('-j', 'run', d.url(), '--bytes', '8M', '--rate', '8M', '--interval', '0.25')
    check(r.returncode == 0, 'paced: exit %d %s' % (r.returncode, r.stderr))
    ev, s = summary_of(r)
    got = [e['receiver_bytes'] for e in ev[1:-1]]
    per = [x['receiver_bytes'] for e in ev[1:-1] for x in e['streams']]
    check(all('receiver_bytes' in e for e in ev[1:-1]) and any(g for g in got) and
          0 < sum(g or 0 for g in got) <= s['receiver']['bytes'] and
          sum(p or 0 for p in per) == sum(g or 0 for g in got),
          'interval receiver_bytes %s, receiver %s' % (got, s['receiver']))


@case('p) run --parallel 3 --bytes 6M to the own listener: 3 receivers known, their bytes '
      '6 MiB = sent, 6 digests; run NAME of a daemon whose producer points at another '
      'daemon\'s listener: receiver not known there')
def _():
    d = daemon()
    r = run('-j', 'run', d.url(), '--parallel', 3, '--bytes', '6M')
    check(r.returncode == 0, 'exit %d\n%s%s' % (r.returncode, r.stdout[-1500:], r.stderr))
    rx = summary_of(r)[1]['receiver']
    check(rx['known'] and rx['streams'] == 3 and rx['streams_ended'] == 3 and
          rx['bytes'] == 6 * MiB == rx['bytes_sent'] and rx['digests_sent'] == 6,
          'receiver: %s' % rx)
    # cfg_daemon's producers go to D's listener: another wsflowd, not known to CFG.
    r = run('-j', 'run', 'idle', '--bytes', '1M', sock=cfg_daemon().ctl_sock)
    check(r.returncode == 0, 'run idle: exit %d %s' % (r.returncode, r.stderr))
    rx = summary_of(r)[1]['receiver']
    check(rx == {'known': False, 'reason': rx.get('reason')} and 'not known' in rx['reason'],
          'receiver: %s' % rx)


@case('q) run against the Autobahn tutorial server (server_streaming): exit 0, summary.receiver '
      '{known: false} with no figures; text: "received:  not known"')
def _():
    p, port = peer_server('server_streaming.py')
    try:
        url = 'ws://127.0.0.1:%d/' % port
        r = run('-j', 'run', url, '--bytes', '2M')
        check(r.returncode == 0, 'exit %d %s%s' % (r.returncode, r.stdout[-600:], r.stderr))
        ev, s = summary_of(r)
        rx = s['receiver']
        check(rx.get('known') is False and set(rx) == {'known', 'reason'}, 'receiver: %s' % rx)
        check(all(e['receiver_bytes'] is None for e in ev[1:-1]), 'intervals: %s' % ev[1:-1])
        t = run('run', url, '--bytes', '2M')
        check(t.returncode == 0 and '\nreceived:  not known: the server is not a listener of '
              'this wsflowd' in t.stdout, 'text:\n%s' % t.stdout)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)


@case('r) receiver figures over both data paths and TLS: a daemon with framing = "lws", then '
      '"wsflow", and a TLS listener runs NAME to its own wss:// and ws:// listeners: receiver '
      'known, 4 MiB received = sent, 4 digests sent')
def _():
    for framing in ('lws', 'wsflow'):
        x = Daemon(tls=True, framing=framing)
        with open(x.conf, 'a') as f:
            f.write('producers = ( { name = "overtls"; url = "%s"; autostart = false; '
                    'tls = { ca = "%s"; }; },\n  { name = "plain"; url = "%s"; '
                    'autostart = false; } );\n' % (x.url(tls=True), x.cert, x.url()))
        x.start()
        try:
            for name in ('overtls', 'plain'):
                r = run('-j', 'run', name, '--bytes', '4M', sock=x.ctl_sock)
                check(r.returncode == 0, '%s %s: exit %d %s%s' % (
                    framing, name, r.returncode, r.stdout[-800:], r.stderr))
                rx = summary_of(r)[1]['receiver']
                check(rx['known'] and rx['bytes'] == 4 * MiB == rx['bytes_sent'] and
                      rx['digests_sent'] == 4 and rx['streams_ended'] == 1,
                      '%s %s: receiver %s' % (framing, name, rx))
        finally:
            x.check_clean_stop()


@case('s) --receiver SOCKET: a run from one wsflowd to another\'s listener (4 streams, 8 MiB): '
      'the other daemon\'s 4 server streams found by the producers\' own ports (show: '
      'local_port), 8 MiB received = sent = its own count, 8 digests sent; text names the '
      'socket; without --receiver "not known" with the hint; a wrong socket says it was not '
      'asked; the run succeeds either way')
def _():
    srv = Daemon().start()
    try:
        before = json.loads(run('-j', 'status', sock=srv.ctl_sock).stdout)['server']
        r = run('-j', 'run', srv.url(), '--parallel', 4, '--bytes', '8M', '--receiver',
                srv.ctl_sock)
        check(r.returncode == 0, 'exit %d %s%s' % (r.returncode, r.stdout[-800:], r.stderr))
        ev, s = summary_of(r)
        rx = s['receiver']
        after = json.loads(run('-j', 'status', sock=srv.ctl_sock).stdout)['server']
        check(rx['known'] and rx['socket'] == srv.ctl_sock and rx['streams'] == 4 and
              rx['streams_ended'] == 4 and rx['bytes'] == 8 * MiB == rx['bytes_sent'] and
              rx['digests_sent'] == 8 and
              after['bytes_received'] - before['bytes_received'] == 8 * MiB,
              'receiver %s; the server counted %d' % (
                  rx, after['bytes_received'] - before['bytes_received']))
        ids = [x['id'] for x in ev[0]['streams']]
        ports = set()
        for i in ids:
            sh = json.loads(run('-j', 'show', str(i)).stdout)['stream']
            ports.add(sh['local_port'])
        srv_peers = set(int(x['peer'].rsplit(':', 1)[1]) for x in json.loads(
            run('-j', 'streams', '-a', sock=srv.ctl_sock).stdout)['streams']
            if x['role'] == 'server')
        check(len(ports) == 4 and ports <= srv_peers,
              'local ports %s, the server\'s peers %s' % (ports, srv_peers))
        r = run('run', srv.url(), '--bytes', '4M', '--receiver', srv.ctl_sock)
        check(r.returncode == 0 and re.search(r'received: +4\.00 MiB in .* by stream \d+ of '
                                              r'the wsflowd at %s' % re.escape(srv.ctl_sock),
                                              r.stdout), 'text: %s' % r.stdout)
        r = run('-j', 'run', srv.url(), '--bytes', '4M')
        rx = summary_of(r)[1]['receiver']
        check(r.returncode == 0 and rx['known'] is False and '--receiver' in rx['reason'],
              'without --receiver: %s' % rx)
        r = run('-j', 'run', srv.url(), '--bytes', '4M', '--receiver', srv.ctl_sock + '.none')
        rx = summary_of(r)[1]['receiver']
        check(r.returncode == 0 and rx['known'] is False and 'not asked' in rx['reason'],
              'a wrong socket: %s' % rx)
    finally:
        srv.check_clean_stop()


CFG = None


def cfg_daemon():
    """A daemon with a configured producer "idle" (autostart = false) to D."""
    global CFG
    if CFG is None:
        CFG = Daemon()
        with open(CFG.conf, 'a') as f:
            f.write('producers = ( { name = "idle"; url = "%s"; autostart = false; },\n'
                    '  { name = "trio"; url = "%s"; autostart = false; parallel = 3; } );\n'
                    % (daemon().url(), daemon().url()))
        CFG.start()
    return CFG


@case('i) /metrics: after one run (one stream each side), 5050 more finished connections and '
      'a run of 16 streams add no series (server streams by mode, producers by name); '
      'promtool check metrics passes when promtool is there')
def _():
    d = daemon()

    def series():
        with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % d.port, timeout=10) as f:
            text = f.read().decode()
        return text, [l for l in text.splitlines() if l and not l.startswith('#')]
    # One of each first: a run (ad-hoc producers' group) and its server stream.
    r = run('-j', 'run', d.url(), '--bytes', '1M')
    check(r.returncode == 0, 'first run: exit %d %s' % (r.returncode, r.stderr))
    _, before = series()
    for _ in range(50):
        w = WSClient(d.port, '/frame')
        w.send_frame(b'x' * 16)
        w.recv_digests(1)
        w.close()
    up = ('GET /frame HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n'
          'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
          'Sec-WebSocket-Version: 13\r\n\r\n').encode()
    for _ in range(5000):            # upgraded, then gone: 5000 ended streams
        with socket.create_connection(('127.0.0.1', d.port), 10) as k:
            k.sendall(up)
            k.recv(4096)
    r = run('-j', 'run', d.url(), '--parallel', 16, '--bytes', '16M')
    check(r.returncode == 0, 'run: exit %d %s' % (r.returncode, r.stderr))
    text, after = series()
    check(len(after) == len(before), '%d series before, %d after: new %s' % (
        len(before), len(after), sorted(set(l.split(' ')[0] for l in after) -
                                        set(l.split(' ')[0] for l in before))[:5]))
    if shutil.which('promtool'):
        p = subprocess.run(['promtool', 'check', 'metrics'], input=text, capture_output=True,
                           text=True, timeout=30)
        check(p.returncode == 0, 'promtool: %s%s' % (p.stdout, p.stderr))


def metric(port, name):
    with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port, timeout=10) as f:
        for line in f.read().decode().splitlines():
            if line.startswith(name + ' ') or line.startswith(name + '{'):
                yield line


@case('j) a producer entry with parallel = 2000 (bytes 2000 MiB in all) to another wsflowd: '
      '2000 streams, every one finished with its 1 MiB digest verified; the server counted '
      '2000 streams and 2000 MiB; a group logs one progress line for its streams, '
      'none each; stop NAME ends a group')
def _():
    srv = Daemon(max_connections=5000).start()
    n = 2000
    prod = Daemon()
    with open(prod.conf, 'a') as f:
        f.write('producers = ( { name = "many"; url = "%s"; parallel = %d; bytes = %d; },\n'
                '  { name = "grp"; url = "%s"; parallel = 3; rate = 100000; } );\n'
                % (srv.url(), n, n * MiB, srv.url()))
    prod.start()
    try:
        def done():
            st = json.loads(run('-j', 'status', sock=prod.ctl_sock).stdout)
            return st['producers']['digests_verified'] >= n and \
                st['producers']['running'] <= 3
        check(wait_for_slow(done, 120), 'not all %d verified in 120 s: %s' % (
            n, run('status', sock=prod.ctl_sock).stdout))
        rows = json.loads(run('-j', 'streams', '-a', sock=prod.ctl_sock).stdout)['streams']
        mine = [r for r in rows if r['name'] == 'many']
        st = json.loads(run('-j', 'status', sock=prod.ctl_sock).stdout)['producers']
        sst = json.loads(run('-j', 'status', sock=srv.ctl_sock).stdout)['server']
        diag('producer: %s; server: %s; %d rows named many' % (st, sst, len(mine)))
        check(st['digests_verified'] >= n and st['digest_mismatches'] == 0,
              'producer side: %s' % st)
        check(sst['connections_total'] >= n + 3 and sst['bytes_received'] >= n * MiB,
              'server side: %s' % sst)
        g = json.loads(run('-j', 'streams', sock=prod.ctl_sock).stdout)['streams']
        check(len([r for r in g if r['name'] == 'grp']) == 3, 'group grp: %s' % g)
        # one progress line a 10 s for the group, none per stream
        group_line = re.compile(r'\[producer \d+ grp\] 3 streams \(3 sending\): '
                                r'[\d.]+ MB sent, \d+ digests verified, 0 mismatched, '
                                r'[\d.]+ MB/s')
        check(wait_for_slow(lambda: group_line.search(prod.log_text()), 25),
              'no progress line for group grp in 25 s')
        check(not re.search(r'\[producer \d+ (grp|many)\] [\d.]+ MB sent',
                            prod.log_text()), 'a per-stream progress line of a group')
        r = run('stop', 'grp', sock=prod.ctl_sock)
        check(r.returncode == 0 and '3 streams' in r.stdout, 'stop grp: %r' % r.stdout)
        lines = list(metric(prod.port, 'wsflow_producer_streams_total'))
        check('wsflow_producer_streams_total{name="many"} %d' % n in lines, 'metrics: %s' % lines)
    finally:
        prod.check_clean_stop()
        srv.check_clean_stop()


@case('k) ramp = 20 with parallel = 30: the 29 gaps between the first and the last stream '
      'sending give 20 connections/s within 20 % (the 0.1 s polling counted against it)')
def _():
    prod = Daemon()
    with open(prod.conf, 'a') as f:
        f.write('producers = ( { name = "ramped"; url = "%s"; parallel = 30; ramp = 20; '
                'rate = 100000; } );\n' % daemon().url())
    t0 = time.monotonic()
    prod.start()
    try:
        def count():
            rows = json.loads(run('-j', 'streams', sock=prod.ctl_sock).stdout)['streams']
            return len([r for r in rows if r['name'] == 'ramped' and r['state'] == 'sending'])
        seen = []
        while time.monotonic() - t0 < 8 * SLOW:
            seen.append((time.monotonic(), count()))
            if seen[-1][1] == 30:
                break
            time.sleep(0.05)
        first = next((t for t, c in seen if c >= 1), None)
        full = next((t for t, c in seen if c == 30), None)
        check(first is not None and full is not None, 'not all 30 sending: %s' % seen[-3:])
        # Each observation may be late by one poll (plus one wsflowctl call).
        slop = 0.15
        span = full - first
        fast, slow = 29 / max(span - slop, 0.01), 29 / (span + slop)
        diag('ramp: 29 gaps in %.2f s: %.1f to %.1f connections/s' % (span, slow, fast))
        check(slow <= 24 and fast >= 16, 'ramp 20/s measured %.1f..%.1f/s' % (slow, fast))
    finally:
        prod.check_clean_stop()


@case('l) digest latency against a peer that sends every digest 40 ms late (streaming mode, '
      'one batch in flight): the summary\'s p50 within 40..60 ms (the bucket edge is at most '
      'a third over), p99 from 40 ms to the max, max >= 40 ms; show -j of the stream the same')
def _():
    p, port = peer_server('server_streaming.py', '--delay-digest', 40)
    try:
        r = run('-j', 'run', 'ws://127.0.0.1:%d/' % port, '--mode', 'streaming', '--bytes',
                '16M', '--name', 'late', timeout=120)
        check(r.returncode == 0, 'exit %d %s%s' % (r.returncode, r.stdout[-500:], r.stderr))
        lat = summary_of(r)[1]['digest_latency_us']
        diag('latency: %s' % lat)
        # p99 of 16 is about the max, which one late wakeup on a loaded
        # machine moves: it is held to its definition, not to 60 ms
        check(40000 <= lat['p50'] <= 60000 and 40000 <= lat['p99'] <= lat['max'] and
              lat['max'] >= 40000, 'latency %s, want p50 40-60 ms, p99 from 40 ms to max'
              % lat)
        sh = json.loads(run('-j', 'show', 'late').stdout)['stream']['digest_latency_us']
        check(sh['p50'] == lat['p50'] and sh['count'] == 16, 'show: %s' % sh)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)


@case('h) both daemons stop cleanly (SIGTERM: exit 0, nothing from the sanitizers)')
def _():
    for x in (CFG, D):
        if x is not None:
            x.check_clean_stop()


if __name__ == '__main__':
    run_cases()
