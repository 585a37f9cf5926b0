#!/usr/bin/python3
# timeout: 300
"""wsflowd's hashing server (interface.md §1-§3) against the AutobahnPython
tutorial clients (tests/peers) and a raw-frame client; every digest is
checked against hashlib."""
import os
import socket
import ssl
import threading
import time
import urllib.request

from wsflowtest import (SLOW, CheckFailed, Closed, Daemon, WSClient,
                        batch_digests, case, check, check_peer, diag,
                        frame_header, hexdigest, mask, run_cases, run_peer,
                        run_wsflowd, start_peer, tmpfile, wait_for, wait_peer)

MiB = 1 << 20
ENDLESS = 0x7FFFFFFFFFFFFFFF
_shared = []


def shared():
    """The daemon most cases share (a ws and a wss listener, defaults)."""
    if _shared and not _shared[-1].alive():
        dead = _shared.pop()
        raise CheckFailed('wsflowd died (exit %s) in an earlier case'
                          % dead.proc.returncode)
    if not _shared:
        _shared.append(Daemon(tls=True).start())
    return _shared[-1]


def first_mismatch(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return 'digest %d: got %s, want %s' % (i, g, w)
    return 'got %d digests, want %d' % (len(got), len(want))


def check_digests(got, want, what):
    check(got == want, '%s: %s' % (what, first_mismatch(got, want)))

# ------------------------------------------------------------ tutorial clients


@case('producer client: endless 2^63-1 frame at /, 64 MiB paced by TCP backpressure, '
      'then TCP drop; 64 digests verified')
def _():
    d = shared()
    rc, r = run_peer('client_producer.py', d.url('/'), '--bytes', 64 * MiB,
                     '--seconds', 60 * SLOW)
    check_peer(rc, r, 'client_producer', verified=64, mismatched=0, bytes=64 * MiB)
    check(d.alive(), 'wsflowd died after the drop')


@case('streaming client: 16 batches at /stream, one batch in flight, all verified')
def _():
    d = shared()
    rc, r = run_peer('client_streaming.py', d.url('/stream'), '--batches', 16,
                     '--seconds', 60 * SLOW)
    check_peer(rc, r, 'client_streaming', verified=16, mismatched=0)


@case('frame client: ten 1 MiB frames and an empty final frame at /frame, '
      '11 digests verified, clean close')
def _():
    d = shared()
    rc, r = run_peer('client_frame.py', d.url('/frame'), '--frames', 10,
                     '--frame-size', MiB, '--seconds', 60 * SLOW)
    check_peer(rc, r, 'client_frame', verified=11, mismatched=0, close_code=1000)


@case('message client: 10 x 1 MiB messages at /message, all verified, clean close')
def _():
    d = shared()
    rc, r = run_peer('client_message.py', d.url('/message'), '--messages', 10,
                     '--message-size', MiB, '--seconds', 60 * SLOW)
    check_peer(rc, r, 'client_message', verified=10, mismatched=0, close_code=1000)

# ------------------------------------------------------------ raw-frame cases


def fresh_client_served(d):
    c = WSClient(d.port, '/message')
    data = os.urandom(100000)
    c.send_frame(data)
    check_digests(c.recv_digests(1), [hexdigest(data)], 'fresh client')
    check(c.close() == 1000, 'fresh client: no clean close')


@case('a client dropping TCP mid-frame (RST, then FIN) is a normal end; '
      'a fresh client is served correctly after it')
def _():
    d = shared()
    for how in ('rst', 'fin'):
        c = WSClient(d.port, '/stream')
        data = os.urandom(MiB + MiB // 2)
        c.send(frame_header(4 * MiB, key=b'\1\2\3\4') + mask(data, b'\1\2\3\4'))
        check_digests(c.recv_digests(1), batch_digests(data, MiB), 'before drop (%s)' % how)
        if how == 'rst':
            c.abort()
        else:
            c.sock.close()
        fresh_client_served(d)
    check(d.alive(), 'wsflowd died')


@case('text messages at /message are hashed over their UTF-8 octets '
      '(also split inside a code point across frames)')
def _():
    d = shared()
    text = ('wsflow \u00e4\u20ac\U0001f600 ' * 5000).encode()
    cut = text.index('\U0001f600'.encode()) + 2          # inside the emoji
    c = WSClient(d.port, '/message')
    c.send_frame(text[:cut], opcode=1, fin=False)
    c.send_frame(text[cut:], opcode=0, fin=True)
    c.send_frame('one frame \u00e9'.encode(), opcode=1)
    check_digests(c.recv_digests(2), [hexdigest(text), hexdigest('one frame \u00e9'.encode())],
                  'raw text')
    check(c.close() == 1000, 'no clean close')
    rc, r = run_peer('client_message.py', d.url('/message'), '--text', '--messages', 3,
                     '--message-size', 100000, '--seconds', 30 * SLOW)
    check_peer(rc, r, 'client_message --text', verified=3, mismatched=0)


@case('invalid UTF-8 in a text message closes with 1007; the daemon serves on')
def _():
    d = shared()
    c = WSClient(d.port, '/message')
    c.send_frame(b'abc\xc3\x28def', opcode=1)        # 0xc3 needs a continuation
    try:
        got = c.recv_message()
        check(False, 'got a message instead of close 1007: %r' % (got,))
    except Closed as e:
        check(e.code == 1007, 'closed with %s, want 1007' % e.code)
    c.abort()
    fresh_client_served(d)


@case('wss: tutorial clients over TLS with a throw-away certificate (verified)')
def _():
    d = shared()
    rc, r = run_peer('client_message.py', d.url('/message', tls=True), '--cafile', d.cert,
                     '--messages', 3, '--message-size', MiB, '--seconds', 30 * SLOW)
    check_peer(rc, r, 'client_message wss', verified=3, mismatched=0, close_code=1000)
    rc, r = run_peer('client_producer.py', d.url('/', tls=True), '--cafile', d.cert,
                     '--bytes', 16 * MiB, '--seconds', 60 * SLOW)
    check_peer(rc, r, 'client_producer wss', verified=16, mismatched=0)


def unmasked_frame_answer(d):
    """What an unmasked 1-octet frame gets: 'digests' or a close code."""
    c = WSClient(d.port, '/message')
    try:
        c.sock.sendall(bytes([0x82, 0x01]) + b'x')
        try:
            c.recv_digests(1)
            return 'digests'
        except Closed as e:
            return e.code
    finally:
        c.close()


@case('server.framing: "wsflow" (default) parses plain ws itself (an unmasked frame gets '
      '1002); "lws" hands it to lws (accepted), and the four tutorial clients are served '
      'right by both')
def _():
    check(unmasked_frame_answer(shared()) == 1002, 'default framing: an unmasked frame '
          'was not refused with 1002: wsflowd\'s own parser is not in use')
    d = Daemon(framing='lws').start()
    try:
        check(unmasked_frame_answer(d) == 'digests',
              'framing = "lws": an unmasked frame was not accepted (lws 4.1.6 accepts it)')
        for peer, path, args, want in (
                ('client_producer.py', '/', ('--bytes', 16 * MiB), dict(verified=16)),
                ('client_streaming.py', '/stream', ('--batches', 4), dict(verified=4)),
                ('client_frame.py', '/frame', ('--frames', 3, '--frame-size', MiB),
                 dict(verified=4, close_code=1000)),
                ('client_message.py', '/message', ('--messages', 3, '--message-size', MiB),
                 dict(verified=3, close_code=1000))):
            rc, r = run_peer(peer, d.url(path), *args, '--seconds', 60 * SLOW)
            check_peer(rc, r, peer + ' (framing = "lws")', mismatched=0, **want)
    finally:
        d.stop()


@case('two producer clients at once at /, 32 MiB each, both verified')
def _():
    d = shared()
    ps = [start_peer('client_producer.py', d.url('/'), '--bytes', 32 * MiB,
                     '--seconds', 60 * SLOW) for _ in range(2)]
    for i, p in enumerate(ps):
        rc, r = wait_peer(p, 90)
        check_peer(rc, r, 'client_producer #%d' % i, verified=32, mismatched=0)


@case('batch_size = 7: one 64 KiB frame at /stream gives floor(65536/7) = 9362 '
      'digests, all correct; no digest for the tail; the next message starts afresh')
def _():
    d = Daemon(batch_size=7).start()
    c = WSClient(d.port, '/stream')
    data = os.urandom(65536)
    c.send_frame(data)
    check_digests(c.recv_digests(9362), batch_digests(data, 7), 'message 1')
    second = os.urandom(10)
    c.send_frame(second)
    check_digests(c.recv_digests(1), [hexdigest(second[:7])], 'message 2')
    extra = c.expect_silence(0.5)
    check(extra is None, 'unexpected message for a short tail: %r' % extra)
    c.abort()
    d.check_clean_stop()


@case('batch_size = 1000: batches spanning frames of 65536, 3333, 1, 70000 octets '
      'and an empty final frame; producer client with --batch-size 1000')
def _():
    d = Daemon(batch_size=1000).start()
    c = WSClient(d.port, '/stream')
    frames = [os.urandom(n) for n in (65536, 3333, 1, 70000, 0)]
    for i, f in enumerate(frames):
        c.send_frame(f, opcode=2 if i == 0 else 0, fin=i == len(frames) - 1)
    want = batch_digests(b''.join(frames), 1000)
    check_digests(c.recv_digests(len(want)), want, 'frames')
    check(c.close() == 1000, 'no clean close')
    rc, r = run_peer('client_producer.py', d.url('/'), '--batch-size', 1000,
                     '--bytes', 4 * MiB, '--seconds', 60 * SLOW)
    check_peer(rc, r, 'client_producer --batch-size 1000', verified=4194, mismatched=0)
    d.check_clean_stop()


def digest_case(name):
    @case('digest = "%s": /message, /stream and /frame give hashlib\'s %s' % (name, name))
    def _():
        d = Daemon(digest=name, batch_size=4096).start()
        c = WSClient(d.port, '/message')
        data = os.urandom(100000)
        c.send_frame(data)
        check_digests(c.recv_digests(1), [hexdigest(data, name)], '/message')
        c.close()
        c = WSClient(d.port, '/stream')
        c.send_frame(data[:10000])
        check_digests(c.recv_digests(2), batch_digests(data[:10000], 4096, name), '/stream')
        c.close()
        c = WSClient(d.port, '/frame')
        c.send_frame(data[:5000], fin=False)
        c.send_frame(data[5000:7000], opcode=0)
        check_digests(c.recv_digests(2), [hexdigest(data[:5000], name),
                                          hexdigest(data[:7000], name)], '/frame')
        c.close()
        rc, r = run_peer('client_frame.py', d.url('/frame'), '--digest', name,
                         '--frames', 3, '--frame-size', 65536, '--seconds', 30 * SLOW)
        check_peer(rc, r, 'client_frame --digest ' + name, verified=4, mismatched=0)
        d.check_clean_stop()


for _name in ('sha3-256', 'sha512', 'blake2b512'):
    digest_case(_name)

# ------------------------------------------------------------ -n


GOOD_CONF = '''log_level = "info";
server: {
  listen = ( { address = "127.0.0.1"; port = 9123; } );
  batch_size = 1048576;
  digest = "sha256";
};
control: { path = "%s"; };
'''


@case('-n on a good file prints "configuration OK" and exits 0')
def _():
    conf = tmpfile('good.conf', GOOD_CONF % tmpfile('good.sock'))
    p = run_wsflowd(['-n', '-f', conf])
    check(p.returncode == 0 and 'configuration OK' in p.stdout,
          'exit %d, stdout %r, stderr %r' % (p.returncode, p.stdout, p.stderr))


def bad_conf_case(what, good_line, bad_line, marker=None):
    @case('-n on a file with %s exits 78 with "file:line:" on stderr' % what)
    def _():
        text = GOOD_CONF % tmpfile('bad.sock')
        check(good_line in text, 'test bug: %r' % good_line)
        text = text.replace(good_line, bad_line)
        line = text[:text.index(marker or bad_line)].count('\n') + 1
        conf = tmpfile('bad-%d.conf' % line, text)
        p = run_wsflowd(['-n', '-f', conf])
        prefix = '%s:%d:' % (conf, line)
        check(p.returncode == 78 and any(l.startswith(prefix) for l in p.stderr.splitlines()),
              'want exit 78 and a line starting %r; got exit %d, stderr %r'
              % (prefix, p.returncode, p.stderr))
        check('configuration OK' not in p.stdout, 'also printed "configuration OK"')


bad_conf_case('an unknown key', '  digest = "sha256";\n',
              '  digest = "sha256";\n  bogus_key = 1;\n', 'bogus_key')
bad_conf_case('a wrong type', 'batch_size = 1048576;', 'batch_size = "big";')
bad_conf_case('an out-of-range port', 'port = 9123;', 'port = 70000;')
bad_conf_case('an unknown digest', 'digest = "sha256";', 'digest = "nosuchhash";')
bad_conf_case('a syntax error', 'batch_size = 1048576;', 'batch_size = = 1;')

# ------------------------------------------------------------ SIGTERM


@case('SIGTERM while a client streams (and never answers the close): wsflowd exits 0 after '
      'its 3 s grace, not later, and the client gets close 1001 "shutting down"')
def _():
    d = Daemon().start()
    c = WSClient(d.port, '/')
    block = os.urandom(MiB)
    want = batch_digests(block * 8, MiB)

    def send():         # endless frame, zero mask key: the block goes as is
        try:
            c.send(frame_header(ENDLESS, fin=False))
            while c.end is None:
                c.send(block)
        except OSError:
            pass
    c.start_reader()
    t = threading.Thread(target=send, daemon=True)
    t.start()
    check(wait_for(lambda: len(c.messages) >= 2, 20), 'no digests while streaming')
    t0 = time.monotonic()
    rc = d.stop(timeout=10)         # SIGTERM, then SIGKILL after 10 s
    took = time.monotonic() - t0
    wait_for(lambda: c.end is not None, 5)
    c.abort()
    n = min(len(c.messages), len(want))
    check_digests(c.messages[:n], want[:n], 'digests before SIGTERM')
    diag('stopped in %.2fs, exit %s, client saw %s' % (took, rc, c.end))
    check(rc == 0, 'exit %s on SIGTERM' % rc)
    # it keeps streaming and never answers the close: the daemon's whole
    # 3 s grace (WSFLOW_STOP_GRACE_US), then it closes; not more
    check(2.9 <= took <= 3.0 + 0.5 * SLOW, 'took %.2fs to stop, want the 3 s grace' % took)
    check(c.end is not None and c.end.code == 1001 and 'shutting down' in str(c.end),
          'client saw %s, want close 1001 "shutting down"' % c.end)
    check(not d.sanitizer_errors(), 'sanitizer: %s' % d.sanitizer_errors()[:3])


def digests_sent(d):
    """wsflow_server_digests_sent_total from /metrics on the plain port."""
    with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % d.port,
                                timeout=5 * SLOW) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('wsflow_server_digests_sent_total '):
                return int(line.split()[1])
    raise CheckFailed('no wsflow_server_digests_sent_total in /metrics')


@case('SIGTERM while the producer client streams over wss: exit 0, '
      'the client gets close 1001, its digests all verified')
def _():
    d = Daemon(tls=True).start()
    p = start_peer('client_producer.py', d.url('/', tls=True), '--cafile', d.cert,
                   '--seconds', 60 * SLOW)
    # SIGTERM once the client is in full stream: two digests sent
    check(wait_for(lambda: digests_sent(d) >= 2, 15),
          'the wss client got no digests in 15 s:\n' + d.log_tail())
    rc = d.stop(timeout=10)
    prc, r = wait_peer(p, 30)
    check(rc == 0, 'wsflowd exit %s on SIGTERM' % rc)
    check(r.get('close_code') == 1001 and r.get('mismatched') == 0
          and r.get('verified', 0) > 0, 'producer result: %s' % r)


@case('the shared daemon survived every case and exits 0 on SIGTERM, '
      'no sanitizer report')
def _():
    d = shared()
    fresh_client_served(d)
    d.check_clean_stop()


def upgrade_status(port, tls, origin=None):
    """The status line a bare upgrade to /stream gets (with this Origin)."""
    s = socket.create_connection(('127.0.0.1', port), 5 * SLOW)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname='localhost')
    with s:
        s.sendall(('GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n'
                   'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
                   'Sec-WebSocket-Version: 13\r\n%s\r\n'
                   % ('Origin: %s\r\n' % origin if origin else '')).encode())
        head = b''
        while b'\r\n' not in head:
            more = s.recv(1024)
            if not more:
                break
            head += more
    return head.split(b'\r\n')[0].decode('latin-1')


@case('server.origins: an Origin outside the list gets 403, one in it (any case) and none '
      'at all get 101, on plain and TLS listeners alike')
def _():
    d = Daemon(tls=True)
    with open(d.conf) as f:
        text = f.read()
    with open(d.conf, 'w') as f:
        f.write(text.replace('server: {', 'server: {\n  origins = ( "https://ok.example", '
                             '"http://127.0.0.1:8080" );', 1))
    d.start()
    for port, tls in ((d.port, False), (d.tls_port, True)):
        for origin, want in (('https://evil.example', '403'), ('https://ok.example', '101'),
                             ('HTTPS://OK.EXAMPLE', '101'), ('http://127.0.0.1:8080', '101'),
                             ('http://127.0.0.1:8081', '403'), (None, '101')):
            line = upgrade_status(port, tls, origin)
            check(line.startswith('HTTP/1.1 ' + want), '%s, Origin %r: %r, want %s'
                  % ('wss' if tls else 'ws', origin, line, want))
    d.check_clean_stop()


@case('idle_timeout counts any frame from the peer: pings every 0.5 s keep a stream open past '
      'it; silence then closes it with 1001 "idle timeout" (plain and TLS)')
def _():
    d = Daemon(tls=True, idle_timeout=2).start()
    for port, tls in ((d.port, False), (d.tls_port, True)):
        kind = 'wss' if tls else 'ws'
        c = WSClient(port, '/stream', tls=tls)
        t0 = time.monotonic()
        # One thread: an SSL socket is no place for a reader thread beside
        # a writer.  Each ping is answered by its pong.
        while time.monotonic() - t0 < 4 * SLOW:
            c.send_frame(b'p', opcode=9)
            try:
                fin, op, payload = c.recv_frame()
            except Closed as e:
                raise CheckFailed('%s: closed while pinging, after %.1f s: %s'
                                  % (kind, time.monotonic() - t0, e))
            check(op == 10 and payload == b'p', '%s: a ping answered by opcode %d %r'
                  % (kind, op, payload))
            time.sleep(0.5)
        t1 = time.monotonic()
        try:
            while True:
                c.recv_message()
        except Closed as e:
            end = e
        took = time.monotonic() - t1
        check(end.code == 1001 and 'idle timeout' in str(end) and took < 5 * SLOW,
              '%s: ended with %s after %.1f s' % (kind, end, took))
        diag('%s: closed %.1f s after the last ping: %s' % (kind, took, end))
    d.check_clean_stop()

if __name__ == '__main__':
    run_cases()
