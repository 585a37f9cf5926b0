#!/usr/bin/python3
# timeout: 90
"""The data path's baseline x86-64 variants (daemon/simd.h), which a CPU
without AVX2 runs: on a machine with AVX2, WSFLOW_GENERIC=1 makes wsflowd
run its generic mask (ws_mask_generic: producers mask, servers unmask) and
generator (gen_fill_generic) instead.  tests/unit/test_frame.c checks both
variants against byte-wise references; here a generic wsflowd ("G") and a
normal one ("N") stream to each other and to themselves, every stream
through a hashlib tap (wsflowtest.WSTap), which checks the octets on the
wire, unmasked the RFC 6455 way, against every digest the server sends.

a) G says "mask generic, generator generic" at start, N the variants the
   CPU has; producers G->G (producer mode, /), G->G (frame mode, /frame),
   G->N (producer mode) and N->G (streaming mode) each send 8 MiB + 3:
   finished, every digest verified by the producer and by the tap, the
   tap saw exactly the octets the producer counted.
"""
import json
import os
import re
import subprocess

from wsflowtest import (BUILD, SLOW, SRCDIR, Daemon, WSTap, case, check, diag, lc_value,
                        run_cases, unix_accepts, wait_for)

WSFLOWCTL = os.environ.get('WSFLOWCTL') or os.path.join(SRCDIR, BUILD, 'wsflowctl')
MiB = 1 << 20
N = 8 * MiB + 3
STARTED = r'wsflowd .* started: .*, mask (\w+), generator (\w+)'


def cpu_has_avx2():
    with open('/proc/cpuinfo') as f:
        return any(l.startswith('flags') and ' avx2' in l for l in f)


def add_producers(d, producers):
    with open(d.conf, 'a') as f:
        f.write('producers = (\n  %s\n);\n' % ',\n  '.join(
            '{ %s }' % ' '.join('%s = %s;' % (k, lc_value(v))
                                for k, v in dict(name=n, url=u, **k).items())
            for n, u, k in producers))


def sock_of(d):
    return d.conf[:-len('.conf')] + '.sock'


def ended(d, name):
    """`wsflowctl -j show NAME` once the producer has ended, else None."""
    r = subprocess.run([WSFLOWCTL, '-j', '-s', sock_of(d), 'show', name], capture_output=True,
                       text=True, timeout=10 * SLOW, stdin=subprocess.DEVNULL)
    check(r.returncode in (0, 1), 'wsflowctl show %s: exit %d %s' % (name, r.returncode, r.stderr))
    s = json.loads(r.stdout).get('stream') if r.returncode == 0 else None
    return s if s and s.get('end_reason') else None


def start(d):
    d.start()
    check(wait_for(lambda: unix_accepts(sock_of(d)), 10),
          'control socket of %s does not accept:\n%s' % (d.name, d.log_tail()))


def variants(d):
    """The start line comes a moment after the control socket accepts."""
    m = []
    check(wait_for(lambda: m.append(re.search(STARTED, d.log_text())) or m[-1], 10),
          'no "started: ... mask M, generator G" line:\n' + d.log_tail())
    return m[-1].group(1), m[-1].group(2)


@case('a) WSFLOW_GENERIC=1: the generic mask and generator run; G->G (/ and /frame), '
      'G->N and N->G, 8 MiB + 3 each: finished, every digest verified by the producer '
      'and by a hashlib tap, the octets on the wire as counted')
def _():
    g = Daemon(env={'WSFLOW_GENERIC': '1'})
    n = Daemon(env={'WSFLOW_GENERIC': '0'})
    taps = {'g2g': WSTap(g.port), 'g2gf': WSTap(g.port), 'g2n': WSTap(n.port),
            'n2g': WSTap(g.port)}
    add_producers(g, [('g2g', taps['g2g'].url('/'), dict(mode='producer', bytes=N)),
                      ('g2gf', taps['g2gf'].url('/frame'), dict(mode='frame', bytes=N)),
                      ('g2n', taps['g2n'].url('/'), dict(mode='producer', bytes=N))])
    add_producers(n, [('n2g', taps['n2g'].url('/stream'), dict(mode='streaming', bytes=N))])
    start(n)            # G's producer g2n finds N up
    start(g)
    check(variants(g) == ('generic', 'generic'), 'G runs %s, %s' % variants(g))
    want_n = ('avx2', 'avx2') if cpu_has_avx2() else ('generic', 'generic')
    check(variants(n) == want_n, 'N runs %s, %s; want %s' % (variants(n) + (want_n,)))
    for name, d in (('g2g', g), ('g2gf', g), ('g2n', g), ('n2g', n)):
        found = []

        def done():
            check(d.alive(), '%s died:\n%s' % (d.name, d.log_tail()))
            found[:] = [ended(d, name)]
            return found[0]
        check(wait_for(done, 30, 0.1), '%s did not end:\n%s' % (name, d.log_tail()))
        s = found[0]
        nbytes, digests, verified, mismatched = (s['bytes'], s['digests'], s['digests_verified'],
                                                 s['digest_mismatches'])
        tap = taps[name]
        diag('%s: %s (%s), %d bytes, %d digests verified, %d mismatched; %s'
             % (name, s['state'], s['end_reason'], nbytes, verified, mismatched, tap.summary()))
        tap.check(min_verified=verified)
        check(s['state'] == 'finished' and nbytes == N and mismatched == 0
              and verified == digests > 0, '%s: %s' % (name, json.dumps(s)))
        if name != 'g2gf':
            check(digests == N // MiB, '%s: %d digests, want %d' % (name, digests, N // MiB))
        check(tap.bytes == N and tap.digests == verified,
              '%s: the producer counted %d octets, %d digests; %s'
              % (name, nbytes, verified, tap.summary()))
        tap.close()
    g.check_clean_stop()
    n.check_clean_stop()


run_cases()
