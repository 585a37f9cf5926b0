"""Shared bits of the wsflow test peers (AutobahnPython 22.7 on Twisted).

The peers are the AutobahnPython streaming / producer-consumer tutorial
clients and servers, rewritten for autobahn 22.7 and Python 3, bounded in
time, and verifying every digest against hashlib.  Each prints one JSON
line as its result on stdout.  Run them with Debian's /usr/bin/python3.
"""
import argparse
import collections
import hashlib
import json
import os
import sys

import autobahn.websocket.protocol as _wsproto

# Length of the endless frame: 2^63-1, the largest RFC 6455 allows.
ENDLESS = 0x7FFFFFFFFFFFFFFF
CHUNK = 65536


class FastXorMasker:
    """Drop-in for autobahn's XorMasker.

    Without wsaccel (not packaged in Debian) autobahn masks byte by byte in
    Python, a few MB/s; XOR of two big ints does the same at C speed.
    """
    __slots__ = ('_mask', '_ptr', '_cache')

    def __init__(self, mask, length=None):
        self._mask = bytes(mask)
        self._ptr = 0
        self._cache = (None, None, None)   # (offset, n, key int)

    def pointer(self):
        return self._ptr

    def reset(self):
        self._ptr = 0

    def process(self, data):
        n = len(data)
        if n == 0:
            return b''
        off = self._ptr & 3
        self._ptr += n
        if self._cache[:2] != (off, n):     # same chunk size: reuse the key
            m = self._mask[off:] + self._mask[:off]
            key = (m * (n // 4 + 1))[:n]
            self._cache = (off, n, int.from_bytes(key, 'little'))
        x = int.from_bytes(data, 'little') ^ self._cache[2]
        return x.to_bytes(n, 'little')


def install_fast_masker():
    _wsproto.create_xor_masker = FastXorMasker


def new_hash(name):
    """hashlib object for an OpenSSL digest name (sha3-256, blake2b512...)."""
    return hashlib.new(name)


class BatchHasher:
    """Running hash over one message with a digest every batch_size octets.

    This is the streaming server's rule: several boundaries may fall inside
    one chunk, and a tail shorter than a batch gets no digest.
    """

    def __init__(self, digest='sha256', batch_size=1048576):
        self.digest, self.batch_size = digest, batch_size
        self.reset()

    def reset(self):
        self.h = new_hash(self.digest)
        self.in_batch = 0       # octets since the last boundary
        self.total = 0

    def update(self, data):
        """Feed data; return the digests of every boundary it crosses."""
        out = []
        mv = memoryview(data)
        while len(mv):
            take = min(len(mv), self.batch_size - self.in_batch)
            self.h.update(mv[:take])
            mv = mv[take:]
            self.in_batch += take
            self.total += take
            if self.in_batch == self.batch_size:
                out.append(self.h.hexdigest())
                self.in_batch = 0
        return out

    def hexdigest(self):
        return self.h.hexdigest()


def client_parser(description, default_path):
    p = argparse.ArgumentParser(description=description)
    p.add_argument('url', nargs='?', default='ws://127.0.0.1:9000' + default_path,
                   help='ws:// or wss:// URL of the hashing server')
    p.add_argument('--seconds', type=float, default=60,
                   help='hard deadline for the whole run')
    p.add_argument('--digest', default='sha256', help='server digest name')
    p.add_argument('--cafile', help='PEM certificate to trust for wss://')
    p.add_argument('--insecure', action='store_true',
                   help='wss:// without certificate verification')
    return p


def connect(factory, args):
    """connectWS with a TLS context for wss:// URLs."""
    from autobahn.twisted.websocket import connectWS
    ctx = None
    if factory.isSecure:
        from twisted.internet import ssl
        if args.cafile:
            with open(args.cafile, 'rb') as f:
                root = ssl.Certificate.loadPEM(f.read())
            ctx = ssl.optionsForClientTLS(factory.host, trustRoot=root)
        elif args.insecure:
            ctx = ssl.CertificateOptions(verify=False)
        else:
            ctx = ssl.optionsForClientTLS(factory.host)
    return connectWS(factory, ctx, timeout=10)


def server_parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--port', type=int, default=9000, help='0 picks a free port')
    p.add_argument('--address', default='127.0.0.1')
    p.add_argument('--batch-size', type=int, default=1048576)
    p.add_argument('--digest', default='sha256')
    p.add_argument('--seconds', type=float, default=60,
                   help='stop serving after this long')
    p.add_argument('--corrupt-digest', type=int, default=-1, metavar='K',
                   help='send a wrong digest for the K-th digest (0-based), once')
    p.add_argument('--rate', type=float, default=0, metavar='BYTES_PER_SEC',
                   help='read at most this fast (TCP backpressure to the sender)')
    p.add_argument('--delay-digest', type=float, default=0, metavar='MS',
                   help='send each digest this many milliseconds late (known latency)')
    p.add_argument('--cert', help='PEM certificate: serve wss://')
    p.add_argument('--key', help='PEM private key for --cert')
    return p


class ClientMixin:
    """Digest checking, result keeping and ending for the tutorial clients.

    Subclasses append to self.expected (the hex digests the server owes, in
    order) as they send, react in onDigest(), and end with self.drop() or
    sendClose(); the connection's end stops the reactor.
    """

    def onConnect(self, response):
        self.r = self.factory.result
        self.expected = collections.deque()

    def onMessage(self, payload, isBinary):
        r = self.r
        r['digests'] += 1
        got = payload.decode('ascii', 'replace') if not isBinary else payload.hex()
        want = self.expected.popleft() if self.expected else None
        if got == want:
            r['verified'] += 1
        else:
            r['mismatched'] += 1
            if 'first_mismatch' not in r:
                r['first_mismatch'] = {'index': r['digests'] - 1,
                                       'got': got, 'want': want}
        self.onDigest()

    def onDigest(self):
        pass

    def drop(self):
        """End as the tutorial producer does: drop TCP mid-frame."""
        self.r['dropped'] = True
        self.transport.abortConnection()

    def onClose(self, wasClean, code, reason):
        r = self.r if hasattr(self, 'r') else self.factory.result
        r.update(clean_close=wasClean, close_code=code,
                 owed=len(getattr(self, 'expected', ())))
        if reason:
            r['close_reason'] = reason
        _stop_reactor()


def _stop_reactor():
    from twisted.internet import reactor
    if reactor.running:
        reactor.stop()


def run_client(protocol, args, success, deadline=None):
    """Connect, run the reactor until the connection ends or the hard
    deadline (default --seconds) passes, print the result, exit.

    success(result) decides the exit status once the connection is gone.
    """
    deadline = args.seconds if deadline is None else deadline
    from autobahn.twisted.websocket import WebSocketClientFactory
    from twisted.internet import reactor
    install_fast_masker()
    factory = WebSocketClientFactory(args.url)
    factory.protocol = protocol
    factory.args = args
    factory.setProtocolOptions(closeHandshakeTimeout=5, openHandshakeTimeout=10)
    factory.result = result = {'digests': 0, 'verified': 0, 'mismatched': 0,
                               'bytes': 0}
    factory.clientConnectionFailed = lambda c, reason: (
        result.update(error='connect failed: %s' % reason.getErrorMessage()),
        _stop_reactor())

    def expire():
        result['error'] = 'deadline of %gs reached' % deadline
        _stop_reactor()
    reactor.callLater(deadline, expire)
    connect(factory, args)
    reactor.run()
    exit_with(result, 'error' not in result and result['mismatched'] == 0
              and success(result))


class ServerMixin:
    """Counting, digest sending, --corrupt-digest and --rate for the servers.

    The mode classes implement messageBegin/frameData/frameEnd/messageEnd;
    autobahn's own buffering (frame_data, message_data) is bypassed so that
    an endless frame costs no memory.
    """

    def onConnect(self, request):
        self.factory.stats['connections'] += 1

    def onOpen(self):
        from twisted.internet import reactor
        self._t0 = reactor.seconds()
        self._rx = 0

    def dataReceived(self, data):
        super().dataReceived(data)
        rate = self.factory.args.rate
        if rate > 0 and hasattr(self, '_t0'):
            # Stop reading until we are back under the rate: the kernel's
            # receive buffer fills and TCP backpressure reaches the sender.
            from twisted.internet import reactor
            self._rx += len(data)
            delay = self._t0 + self._rx / rate - reactor.seconds()
            if delay <= 0.001:
                return
            # TLS hands us several decrypted pieces per TCP read, after we
            # paused: keep one pending resume, at the latest time due.
            call = getattr(self, '_resumeCall', None)
            if call is not None and call.active():
                call.reset(delay)
            else:
                self.transport.pauseProducing()
                self._resumeCall = reactor.callLater(delay, self._resume)

    def _resume(self):
        if self.transport is not None and getattr(self.transport, 'connected', True):
            self.transport.resumeProducing()

    def sendDigest(self, hexdigest):
        st, args = self.factory.stats, self.factory.args
        if st['digests'] == args.corrupt_digest:
            # flip one hex digit: same length, certainly wrong
            hexdigest = ('0' if hexdigest[0] != '0' else '1') + hexdigest[1:]
            st['corrupted'] += 1
        st['digests'] += 1
        if args.delay_digest > 0:
            from twisted.internet import reactor
            reactor.callLater(args.delay_digest / 1000, self._send_late, hexdigest)
            return
        self.sendMessage(hexdigest.encode('ascii'), isBinary=False)

    def _send_late(self, hexdigest):
        if self.transport is not None and getattr(self.transport, 'connected', True):
            self.sendMessage(hexdigest.encode('ascii'), isBinary=False)

    # autobahn's message API, without its buffering
    def onMessageBegin(self, isBinary):
        self.factory.stats['messages'] += 1
        self.messageBegin()

    def onMessageFrameBegin(self, length):
        self.factory.stats['frames'] += 1

    def onMessageFrameData(self, payload):
        self.factory.stats['bytes'] += len(payload)
        self.frameData(payload)

    def onMessageFrameEnd(self):
        self.frameEnd()

    def onMessageEnd(self):
        self.messageEnd()

    def messageBegin(self):
        pass

    def frameData(self, payload):
        pass

    def frameEnd(self):
        pass

    def messageEnd(self):
        pass


def run_server(protocol, args):
    """Listen, print {"listening": port}, serve until --seconds or SIGTERM,
    print the totals."""
    from autobahn.twisted.websocket import WebSocketServerFactory
    from twisted.internet import reactor, ssl
    install_fast_masker()
    # the URL only names the scheme: autobahn's parser refuses port 0
    factory = WebSocketServerFactory('wss://localhost' if args.cert else 'ws://localhost')
    factory.protocol = protocol
    factory.args = args
    factory.stats = {'connections': 0, 'digests': 0, 'bytes': 0,
                     'messages': 0, 'frames': 0, 'corrupted': 0}
    if args.cert:
        ctx = ssl.DefaultOpenSSLContextFactory(args.key or args.cert, args.cert)
        port = reactor.listenSSL(args.port, factory, ctx, interface=args.address)
    else:
        port = reactor.listenTCP(args.port, factory, interface=args.address)
    emit({'listening': port.getHost().port})
    reactor.callLater(args.seconds, reactor.stop)
    reactor.run()       # Twisted stops the reactor on SIGTERM/SIGINT too
    exit_with(factory.stats, True)


def emit(result):
    print(json.dumps(result, sort_keys=True), flush=True)


def exit_with(result, success):
    emit(result)
    sys.stdout.flush()
    os._exit(0 if success else 1)   # the reactor may hold threads; be quick
