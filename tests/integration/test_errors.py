#!/usr/bin/python3
# timeout: 300
"""A producer's connection failures in words a user can act on
(interface.md §6): against a real peer on 127.0.0.1 for each, the reason
is in `wsflowctl show -j`'s `error` (empty while healthy), logged at
warning on the producer's own line, and the stream backs off (showing its
attempt count and next attempt) or, with reconnect = false, ends as
failed.  Also: an answer that is not a digest ends the stream, a
batch_size that differs from the server's says its likely cause once,
and a server refusing a path logs who and which path."""
import os
import re
import socket
import struct
import subprocess
import json
import threading

import wsflowtest
from wsflowtest import (SLOW, BUILD, SRCDIR, CheckFailed, Daemon, Skip,
                        case, check, diag, free_port, lc_value, run_cases,
                        tmpfile, wait_for, wait_value)

WSFLOWCTL = os.environ.get('WSFLOWCTL') or os.path.join(SRCDIR, BUILD, 'wsflowctl')

# ------------------------------------------------------------ helpers


def ctl(d, *args, timeout=10):
    """wsflowctl -j: (exit status, parsed JSON or None)."""
    r = subprocess.run([WSFLOWCTL, '-j', '-s', d.ctl_sock] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout * SLOW,
                       stdin=subprocess.DEVNULL)
    try:
        return r.returncode, json.loads(r.stdout)
    except ValueError:
        return r.returncode, None


def show(d, name):
    """`wsflowctl -j show NAME`'s stream (an ended one too), None if
    there is none."""
    rc, out = ctl(d, 'show', name)
    if rc == 1:
        return None
    check(rc == 0 and out and 'stream' in out, 'show %s: exit %s, %r' % (name, rc, out))
    return out['stream']


def check_failed(d):
    """The ended producer p is kept as failed, with its error."""
    s = show(d, 'p')
    check(s is not None and s.get('state') == 'failed' and s.get('error'),
          'after failing, show p gives %r: want state failed and its error' % s)


def producer_daemon(url, tls=False, server=None, **keys):
    """A started wsflowd with one producer "p" to url (a function of the
    daemon for its own listeners)."""
    d = Daemon(tls=tls, **(server or {}))
    if callable(url):
        url = url(d)
    keys = dict(name='p', url=url, **keys)
    with open(d.conf, 'a') as f:
        f.write('producers = ( { %s } );\n' % ' '.join(
            '%s = %s;' % (k, lc_value(v)) for k, v in keys.items()))
    d.start()
    return d


def warnings(d, name='p'):
    """The producer's lines at warning in the log (-d: stderr)."""
    return [l for l in d.log_text().splitlines()
            if re.search(r' wsflowd warning: \[producer \d+ %s\] ' % name, l)]


FAILED = r'\[producer \d+ %s\] failed: (\d+) bytes sent'


def backoff_case(desc, url, want, tls=False, server=None, sends=False, **keys):
    """reconnect = true (the default): the stream backs off with `error`
    matching want, reconnects >= 1 and next_attempt_in_ms; the same words
    at warning in the log."""
    @case(desc)
    def _():
        d = producer_daemon(url, tls=tls, server=server, **keys)
        s = wait_value(d, lambda: show(d, 'p'),
                       lambda s: s.get('error') and s['state'] == 'backoff'
                       and s.get('reconnects', 0) >= 1, 15,
                       'backoff with an error', 'p')
        diag('error: ' + s['error'])
        check(re.search(want, s['error']), 'error %r does not match %r' % (s['error'], want))
        check((sends or s['bytes'] == 0) and s['digests_verified'] == 0,
              'it streamed: %r' % s)
        check('next_attempt_in_ms' in s and 0 <= s['next_attempt_in_ms'] <= 10000,
              'no next_attempt_in_ms in backoff: %r' % s)
        lines = [l for l in warnings(d) if re.search(want, l)]
        check(lines, 'no warning line matching %r:\n%s' % (want, d.log_tail()))
        check(re.search(r'retry \d+ in \d+ ms', lines[0]), 'no retry on %r' % lines[0])
        text = subprocess.run([WSFLOWCTL, '-s', d.ctl_sock, 'show', 'p'], capture_output=True,
                              text=True, timeout=10 * SLOW).stdout
        check(re.search(r'Error:\s+.*' + want, text) and re.search(r'Reconnects:\s+[1-9]', text)
              and (re.search(r'Next attempt:\s+in [0-9.]+ s', text)
                   or not re.search(r'State:\s+backoff', text)),
              'wsflowctl show prints no error, reconnects or next attempt:\n' + text)
        d.check_clean_stop()
    return _


def failed_case(desc, url, want, tls=False, server=None, **keys):
    """reconnect = false: the stream ends as failed, the reason at warning."""
    @case(desc)
    def _():
        d = producer_daemon(url, tls=tls, server=server, reconnect=False, **keys)
        check(wait_for(lambda: re.search(FAILED % 'p', d.log_text()), 15),
              'the producer did not end as failed:\n' + d.log_tail())
        lines = [l for l in warnings(d) if re.search(want, l)]
        check(lines, 'no warning line matching %r:\n%s' % (want, d.log_tail()))
        diag(lines[0])
        check_failed(d)
        d.check_clean_stop()
    return _


def closed_port():
    return free_port()      # bound, closed: nothing listens there


def other_cert_daemon_url(d):
    """Replace the daemon's TLS certificate by one for other.example only
    (same paths: read at start); the producer trusts it as tls.ca."""
    key = d.cert[:-len('cert.pem')] + 'key.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                    '-subj', '/CN=other.example', '-addext', 'subjectAltName=DNS:other.example',
                    '-keyout', key, '-out', d.cert], check=True, capture_output=True, timeout=60)
    return 'wss://127.0.0.1:%d/' % d.tls_port


class Peer:
    """A helper server process on 127.0.0.1, stopped by PID at the end."""
    def __init__(self, argv, port):
        self.port = port
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        wsflowtest._peers.append(self.p)

        def up():
            if self.p.poll() is not None:
                raise CheckFailed('%s exited %s: %s' % (argv, self.p.returncode,
                                                       self.p.stderr.read()[-1000:]))
            try:
                socket.create_connection(('127.0.0.1', port), 0.5).close()
                return True
            except OSError:
                return False
        check(wait_for(up, 20, 0.05), '%s not listening' % argv)


_http = []


def http_server():
    """python3 -m http.server: answers the upgrade with 200 and a listing."""
    if not _http:
        port = free_port()
        _http.append(Peer(['/usr/bin/python3', '-m', 'http.server', '-b', '127.0.0.1',
                           str(port)], port))
    return _http[0].port


ECHO = '''
import asyncio, sys, websockets
async def echo(ws, path=None):
    try:
        async for m in ws:
            await ws.send(m)
    except websockets.ConnectionClosed:
        pass
async def main():
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), max_size=None):
        await asyncio.sleep(float(sys.argv[2]))
asyncio.run(main())
'''
_echo = []


def echo_server():
    """A WebSocket echo server (python3-websockets): it sends our own
    messages back, never a digest."""
    if not _echo:
        port = free_port()
        _echo.append(Peer(['/usr/bin/python3', tmpfile('echo.py', ECHO), str(port),
                           str(240 * SLOW)], port))
    return _echo[0].port

# ------------------------------------------------------------ 1. connection failures

REFUSED = r'connection refused by 127\.0\.0\.1 port \d+: is the server running'
backoff_case('closed port: "connection refused ... is the server running", backoff '
             'with reconnects and next_attempt_in_ms',
             lambda d: 'ws://127.0.0.1:%d/' % closed_port(), REFUSED)
failed_case('closed port, reconnect = false: ends as failed, refused at warning',
            lambda d: 'ws://127.0.0.1:%d/' % closed_port(), REFUSED)
# TCP to a broadcast address: the kernel refuses connect() with
# ENETUNREACH before any packet is sent (nothing leaves the host).
backoff_case('no route (255.255.255.255, refused by the kernel, no packet sent): '
             '"no route to"', lambda d: 'ws://255.255.255.255:%d/' % closed_port(),
             r'no route to 255\.255\.255\.255: Network is unreachable')
_silent = []


def silent_port():
    """A TCP listener that never accepts nor answers (the kernel completes
    the handshake into its backlog)."""
    if not _silent:
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        s.listen(16)
        _silent.append(s)
    return _silent[0].getsockname()[1]


backoff_case('a listener that never answers, ws:// (handshake_timeout = 2): "no answer to '
             'the WebSocket upgrade"', lambda d: 'ws://127.0.0.1:%d/' % silent_port(),
             r'no answer to the WebSocket upgrade from 127\.0\.0\.1 port \d+ in time',
             server={'handshake_timeout': 2})
backoff_case('a listener that never answers, wss:// (handshake_timeout = 2): "no TLS answer"',
             lambda d: 'wss://127.0.0.1:%d/' % silent_port(),
             r'no TLS answer from 127\.0\.0\.1 port \d+ in time', server={'handshake_timeout': 2})
backoff_case('a wrong path on wsflowd: "HTTP 404 Not Found from the server: no WebSocket '
             'endpoint at /nope"', lambda d: d.url('/nope'),
             r'HTTP 404 Not Found from the server: no WebSocket endpoint at /nope')
backoff_case('python3 -m http.server: "not a WebSocket server ... HTTP 200"',
             lambda d: 'ws://127.0.0.1:%d/' % http_server(),
             r'not a WebSocket server: it answered the upgrade to / with HTTP 200')
backoff_case('ws:// to a TLS port: "closed the connection without an HTTP answer (a TLS '
             'port? then use wss://)"', lambda d: 'ws://127.0.0.1:%d/' % d.tls_port,
             r'without an HTTP answer \(a TLS port\? then use wss://\)', tls=True)
backoff_case('wss:// to a plain port: "no TLS server on port N (a ws:// port? then use '
             'ws://)"', lambda d: 'wss://127.0.0.1:%d/' % d.port,
             r'TLS handshake failed before any certificate: no TLS server on port \d+ '
             r'\(a ws:// port\? then use ws://\)', tls=True)
backoff_case('wss:// to a self-signed listener without tls.ca: "TLS certificate not '
             'trusted ... set tls.ca"', lambda d: 'wss://127.0.0.1:%d/' % d.tls_port,
             r'TLS certificate not trusted \(self-signed certificate\): set tls\.ca',
             tls=True)


@case('wss:// with tls.ca = a certificate for other.example only: "TLS hostname mismatch '
      '... not for 127.0.0.1"')
def _():
    d = Daemon(tls=True)
    url = other_cert_daemon_url(d)
    with open(d.conf, 'a') as f:
        f.write('producers = ( { name = "p"; url = "%s"; tls = { ca = "%s"; }; } );\n'
                % (url, d.cert))
    d.start()
    want = r'TLS hostname mismatch: the server\'s certificate is not for 127\.0\.0\.1'
    s = wait_value(d, lambda: show(d, 'p'), lambda s: s.get('error') and
                   s['state'] == 'backoff', 15, 'backoff with an error', 'p')
    diag('error: ' + s['error'])
    check(re.search(want, s['error']), 'error %r' % s['error'])
    check([l for l in warnings(d) if re.search(want, l)], 'no warning line:\n' + d.log_tail())
    d.check_clean_stop()


@case('wss:// with tls.ca = the listener\'s certificate: streaming, error "" (healthy), '
      'reconnects 0')
def _():
    d = Daemon(tls=True)
    with open(d.conf, 'a') as f:
        f.write('producers = ( { name = "p"; url = "wss://127.0.0.1:%d/"; '
                'tls = { ca = "%s"; }; } );\n' % (d.tls_port, d.cert))
    d.start()
    s = wait_value(d, lambda: show(d, 'p'), lambda s: s['digests_verified'] >= 2, 20,
                   '2 digests verified', 'p')
    check(s.get('error') == '' and s.get('reconnects') == 0 and s['state'] == 'sending'
          and 'next_attempt_in_ms' not in s, 'a healthy stream: %r' % s)
    check(not warnings(d), 'warnings about a healthy stream: %r' % warnings(d))
    d.check_clean_stop()


RESOLV = 'nameserver 127.0.0.1\noptions attempts:1 timeout:2\n'


def nxdomain_server(sock, stop):
    """Answer every DNS query with NXDOMAIN (the question echoed)."""
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            q, addr = sock.recvfrom(512)
        except socket.timeout:
            continue
        except OSError:
            return
        if len(q) < 12:
            continue
        qid, flags = struct.unpack('!HH', q[:4])
        end = 12
        while end < len(q) and q[end] != 0:
            end += q[end] + 1
        question = q[12:end + 5]
        sock.sendto(struct.pack('!HHHHHH', qid, 0x8180 | (flags & 0x0100) | 3, 1, 0, 0, 0)
                    + question, addr)


@case('a name that does not resolve (nonexistent.invalid, asked of a stub name server on '
      '127.0.0.1 in a mount namespace): "name not found"')
def _():
    # The host's resolver would ask a name server off the host: give the
    # daemon its own resolv.conf (mount namespace) naming a stub here.
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        dns.bind(('127.0.0.1', 53))
    except OSError as e:
        raise Skip('cannot serve DNS on 127.0.0.1:53 (%s): the host resolver would send '
                   'the query off the host' % e)
    probe = subprocess.run(['unshare', '-m', 'true'], capture_output=True, timeout=10)
    if probe.returncode != 0:
        dns.close()
        raise Skip('no mount namespace (unshare -m: %s): the host resolver would send the '
                   'query off the host' % probe.stderr.decode().strip())
    stop = threading.Event()
    t = threading.Thread(target=nxdomain_server, args=(dns, stop), daemon=True)
    t.start()
    resolv = tmpfile('resolv.conf', RESOLV)
    wrapper = tmpfile('wsflowd-ns', '#!/bin/sh\nexec unshare -m sh -c \'mount --bind "$0" '
                      '/etc/resolv.conf && exec "$@"\' %s %s "$@"\n' % (resolv, wsflowtest.WSFLOWD))
    os.chmod(wrapper, 0o755)
    real = wsflowtest.WSFLOWD
    try:
        wsflowtest.WSFLOWD = wrapper
        d = producer_daemon('ws://nonexistent.invalid:%d/' % closed_port())
    finally:
        wsflowtest.WSFLOWD = real
    try:
        want = r'name not found: no address for nonexistent\.invalid'
        s = wait_value(d, lambda: show(d, 'p'), lambda s: s.get('error') and
                       s['state'] == 'backoff', 20, 'backoff with an error', 'p')
        diag('error: ' + s['error'])
        check(re.search(want, s['error']), 'error %r' % s['error'])
        check([l for l in warnings(d) if re.search(want, l)],
              'no warning line:\n' + d.log_tail())
        d.check_clean_stop()
    finally:
        stop.set()
        t.join(5)
        dns.close()

# ------------------------------------------------------------ 2. not a hashing server

NOT_DIGEST = r'the server sent a binary message, not a digest: not a wsflow hashing server'
backoff_case('an echo server (mode message): "sent a binary message, not a digest", backs '
             'off, never stays streaming', lambda d: 'ws://127.0.0.1:%d/' % echo_server(),
             NOT_DIGEST, sends=True, mode='message', message_size=4096)


@case('an echo server, reconnect = false: the stream ends as failed (no 0 B/s idling), '
      'the reason once at warning')
def _():
    d = producer_daemon('ws://127.0.0.1:%d/' % echo_server(), reconnect=False,
                        mode='message', message_size=4096)
    check(wait_for(lambda: re.search(FAILED % 'p', d.log_text()), 15),
          'the producer did not end as failed:\n' + d.log_tail())
    lines = [l for l in warnings(d) if re.search(NOT_DIGEST, l)]
    check(len(lines) == 1, 'want one warning line, got %r' % lines)
    check_failed(d)
    d.check_clean_stop()


@case('an echo server in mode streaming (it never echoes the endless message): after '
      '30 s state "stalled", error "no digest for 30 s", no 0.0 MB/s progress lines')
def _():
    d = producer_daemon('ws://127.0.0.1:%d/' % echo_server(), mode='streaming')
    s = wait_value(d, lambda: show(d, 'p'), lambda s: s['state'] == 'stalled', 45,
                   'state stalled', 'p')
    diag('error: ' + s['error'])
    check(re.search(r'no digest for 30 s: is it a wsflow hashing server', s['error']),
          'error %r' % s['error'])
    check([l for l in warnings(d) if 'no digest for 30 s' in l], 'no warning line')
    t = len(d.log_text())
    wait_for(lambda: False, 11)         # one progress interval
    check(not re.search(r'\[producer \d+ p\] [0-9.]+ MB sent', d.log_text()[t:]),
          'progress lines while stalled:\n' + d.log_text()[t:])
    d.check_clean_stop()


@case('batch_size 65536 against a server of 1 MiB (mode producer): the likely cause said '
      'once at warning, at most 10 mismatch lines at err, error names batch_size')
def _():
    d = producer_daemon(lambda d: d.url('/'), mode='producer', batch_size=65536)
    s = wait_value(d, lambda: show(d, 'p'), lambda s: s['digest_mismatches'] >= 30, 30,
                   '30 mismatches', 'p')
    hint = [l for l in warnings(d) if 'does the server use batch_size 65536 and digest' in l]
    check(len(hint) == 1, 'want the hint once, got %r' % hint)
    errs = [l for l in d.log_text().splitlines()
            if re.search(r' wsflowd error: \[producer \d+ p\] digest \d+ mismatch', l)]
    check(1 <= len(errs) <= 10, '%d mismatch lines at err for %d mismatches'
          % (len(errs), s['digest_mismatches']))
    check(re.search(r'batch_size 65536', s['error']), 'error %r' % s['error'])
    diag('hint: ' + hint[0])
    diag('error: ' + s['error'])
    d.check_clean_stop()

# ------------------------------------------------------------ 3. the server side


def refused_path_case(framing):
    @case('server.framing = "%s": a refused path gets an HTTP 404 (no bare drop) and is '
          'logged with the peer address and the path' % framing)
    def _():
        d = Daemon(framing=framing).start()
        with socket.create_connection(('127.0.0.1', d.port), 5 * SLOW) as c:
            c.settimeout(5 * SLOW)
            c.sendall(('GET /nope-%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n'
                       'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
                       'Sec-WebSocket-Version: 13\r\n\r\n' % framing).encode())
            try:
                head = c.recv(4096)
            except OSError as e:
                head = repr(e).encode()
        check(re.match(rb'HTTP/1\.[01] 404 ', head), 'answer to /nope: %r' % head[:200])
        want = r'refused an upgrade from 127\.0\.0\.1:\d+ to /nope-%s: 404' % framing
        check(wait_for(lambda: re.search(want, d.log_text()), 5),
              'no line matching %r:\n%s' % (want, d.log_tail()))
        check('User code denied connection' not in d.log_text(),
              'lws\'s own line without peer or path is still there')
        d.check_clean_stop()


refused_path_case('wsflow')
refused_path_case('lws')

run_cases()
