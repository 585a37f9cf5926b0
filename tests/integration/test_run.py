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
g) run NAME: a configured producer with --bytes; usage errors exit 2.

In a) and b) wsflowd's producers stream to wsflowd's server, which share
daemon/batch.c: a WSTap between them checks every digest with hashlib.
"""
import json
import os
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
      'digests')
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
      'says interrupted, the stream is stopped')
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
      'name; usage: --parallel 2 with a NAME, --interval 0, no target -> exit 2')
def _():
    d = daemon()
    r = run('-j', 'run', 'idle', '--bytes', '2M', sock=cfg_daemon().ctl_sock)
    check(r.returncode == 0, 'run idle: exit %d %s%s' % (r.returncode, r.stdout, r.stderr))
    ev, s = summary_of(r)
    check(ev[0]['streams'][0]['name'] == 'idle' and s['bytes'] == 2 * MiB, 'run idle: %s %s'
          % (ev[0], s))
    for args in (('run', 'idle', '--parallel', 2), ('run', d.url(), '--interval', 0),
                 ('run',)):
        r = run(*args)
        check(r.returncode == 2, '%s: exit %d, want 2 %s' % (' '.join(map(str, args)),
                                                            r.returncode, r.stderr))


CFG = None


def cfg_daemon():
    """A daemon with a configured producer "idle" (autostart = false) to D."""
    global CFG
    if CFG is None:
        CFG = Daemon()
        with open(CFG.conf, 'a') as f:
            f.write('producers = ( { name = "idle"; url = "%s"; autostart = false; } );\n'
                    % daemon().url())
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
      '2000 streams and 2000 MiB; stop NAME ends a group')
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
      'one batch in flight): the summary\'s p50 and p99 within 40..60 ms (the bucket edge is '
      'at most a third over), max >= 40 ms; show -j of the stream the same')
def _():
    p, port = peer_server('server_streaming.py', '--delay-digest', 40)
    try:
        r = run('-j', 'run', 'ws://127.0.0.1:%d/' % port, '--mode', 'streaming', '--bytes',
                '16M', '--name', 'late', timeout=120)
        check(r.returncode == 0, 'exit %d %s%s' % (r.returncode, r.stdout[-500:], r.stderr))
        lat = summary_of(r)[1]['digest_latency_us']
        diag('latency: %s' % lat)
        check(40000 <= lat['p50'] <= 60000 and 40000 <= lat['p99'] <= 60000 * SLOW and
              lat['max'] >= 40000, 'latency %s, want 40-60 ms' % lat)
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
