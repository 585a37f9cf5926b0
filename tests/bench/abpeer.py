#!/usr/bin/python3
"""Benchmark peers: the AutobahnPython producer-consumer tutorial's
streaming producer client and the streaming tutorial's hashing server,
for autobahn 22.7 / Twisted on Python 3.  Run with Debian's /usr/bin/python3.

    abpeer.py client URL [--seconds S] [--bytes N] [--pool K] [--verify]
    abpeer.py server [--port P] [--seconds S] [--batch-size B]

client: one binary message with one endless frame (declared 2^63-1 long),
  fed by a Twisted push producer with sendMessageFrameData() of 64 KiB
  chunks taken round-robin from a pool of K pre-generated random chunks
  (so that generating random data is not what is measured).  It stops
  after N octets or S seconds by dropping TCP, as the tutorial client does.
  The digests the server sends back are counted (the tutorial client only
  prints them); --verify also checks them against a local running hash.
server: per message a running sha256; after every B octets of the message
  the hex digest of everything so far (the tutorial's BATCH_SIZE rule).
  Nothing is buffered and nothing is printed per digest.

Both print JSON lines on stdout: {"open": ...} / {"listening": PORT} when
ready, {"stats": ...} on SIGUSR1 (counters and CLOCK_MONOTONIC time, so the
caller can measure a window), and a final {"result": ...} line.

Masking: without wsaccel (not packaged in Debian) autobahn masks octet by
octet in Python at a few MB/s; FastXorMasker does the same XOR at C speed
with big integers, standing in for wsaccel on both sides.
"""
import argparse
import collections
import hashlib
import json
import os
import signal
import sys
import time

import autobahn.websocket.protocol as _wsproto

ENDLESS = 0x7FFFFFFFFFFFFFFF
CHUNK = 65536


class FastXorMasker:
    """Drop-in for autobahn's XorMasker (pointer/reset/process)."""
    __slots__ = ('_mask', '_ptr', '_key')

    def __init__(self, mask, length=None):
        self._mask = bytes(mask)
        self._ptr = 0
        self._key = {}          # (offset mod 4, n) -> key as an int

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
        k = self._key.get((off, n))
        if k is None:
            if len(self._key) > 64:
                self._key.clear()
            m = self._mask[off:] + self._mask[:off]
            k = int.from_bytes((m * (n // 4 + 1))[:n], 'little')
            self._key[(off, n)] = k
        return (int.from_bytes(data, 'little') ^ k).to_bytes(n, 'little')


_wsproto.create_xor_masker = FastXorMasker


def emit(obj):
    """One JSON line on stdout, written with os.write: safe from a signal
    handler that interrupts another print."""
    os.write(1, (json.dumps(obj, sort_keys=True) + '\n').encode())


def stop_reactor():
    from twisted.internet import reactor
    if reactor.running:
        reactor.stop()


# --------------------------------------------------------------- client

def run_client(a):
    from autobahn.twisted.websocket import (WebSocketClientFactory,
                                            WebSocketClientProtocol, connectWS)
    from twisted.internet import interfaces, reactor
    from zope.interface import implementer

    pool = [os.urandom(CHUNK) for _ in range(max(1, a.pool))]
    r = {'bytes': 0, 'digests': 0, 'verified': 0, 'mismatched': 0,
         'pauses': 0, 'resumes': 0}

    @implementer(interfaces.IPushProducer)
    class RandomByteStreamProducer:
        def __init__(self, proto):
            self.proto = proto
            self.paused = False

        def pauseProducing(self):
            self.paused = True
            r['pauses'] += 1

        def resumeProducing(self):
            self.paused = False
            r['resumes'] += 1
            self.proto.produce()

        def stopProducing(self):
            self.paused = True

    class Client(WebSocketClientProtocol):
        def onOpen(self):
            self.sending = True
            self.i = 0
            self.expected = collections.deque()
            self.h = hashlib.sha256() if a.verify else None
            r['t_open'] = time.monotonic()
            emit({'open': True, 't': r['t_open']})
            self.beginMessage(isBinary=True)
            self.beginMessageFrame(ENDLESS)
            self.producer = RandomByteStreamProducer(self)
            self.registerProducer(self.producer, True)
            if a.seconds > 0:
                reactor.callLater(a.seconds, self.drop, 'seconds')
            self.producer.resumeProducing()

        def produce(self):
            p, n = self.producer, len(pool)
            # The transport pauses us (synchronously, inside write) once its
            # buffer is full; the bound only keeps timers alive if it never does.
            for _ in range(64):
                if p.paused or not self.sending:
                    return
                if a.bytes and r['bytes'] >= a.bytes:
                    self.drop('bytes')
                    return
                data = pool[self.i]
                self.i = (self.i + 1) % n
                if self.h is not None:
                    self.h.update(data)
                    if (r['bytes'] + CHUNK) % a.batch_size < CHUNK:
                        # CHUNK divides batch_size: at most one boundary
                        self.expected.append(self.h.hexdigest())
                r['bytes'] += CHUNK
                if self.sendMessageFrameData(data) <= 0:
                    self.beginMessageFrame(ENDLESS)     # never in practice
            reactor.callLater(0, self.produce)

        def onMessage(self, payload, isBinary):
            r['digests'] += 1
            if self.h is not None:
                want = self.expected.popleft() if self.expected else None
                if payload.decode('ascii', 'replace') == want:
                    r['verified'] += 1
                else:
                    r['mismatched'] += 1

        def drop(self, why):
            if not self.sending:
                return
            self.sending = False
            r['t_end'] = time.monotonic()
            r['ended_by'] = why
            self.transport.abortConnection()

        def onClose(self, wasClean, code, reason):
            r.setdefault('t_end', time.monotonic())
            r['close'] = [wasClean, code, reason]
            stop_reactor()

    factory = WebSocketClientFactory(a.url)
    factory.protocol = Client
    factory.setProtocolOptions(openHandshakeTimeout=10, closeHandshakeTimeout=2)

    def failed(connector, reason):
        r['error'] = 'connect failed: %s' % reason.getErrorMessage()
        stop_reactor()
    factory.clientConnectionFailed = failed

    def on_usr1(signum, frame):
        emit({'stats': dict(r), 't': time.monotonic()})
    signal.signal(signal.SIGUSR1, on_usr1)

    def deadline():
        r['error'] = 'hard deadline reached'
        stop_reactor()
    reactor.callLater(a.seconds + 20 if a.seconds > 0 else 600, deadline)
    connectWS(factory, timeout=10)
    reactor.run()
    emit({'result': r})
    return 0 if 'error' not in r and r['mismatched'] == 0 else 1


# --------------------------------------------------------------- server

def run_server(a):
    from autobahn.twisted.websocket import (WebSocketServerFactory,
                                            WebSocketServerProtocol)
    from twisted.internet import reactor

    st = {'bytes': 0, 'digests': 0, 'connections': 0, 'messages': 0}
    B = a.batch_size

    class StreamingHashServerProtocol(WebSocketServerProtocol):
        """The tutorial's streaming server through autobahn's streaming
        API (onMessageBegin / onMessageFrameData ...), so nothing is
        buffered: an endless frame costs no memory."""

        def onConnect(self, request):
            st['connections'] += 1

        def onMessageBegin(self, isBinary):
            st['messages'] += 1
            self.sha256 = hashlib.sha256()
            self.in_batch = 0

        def onMessageFrameBegin(self, length):
            pass

        def onMessageFrameData(self, payload):
            st['bytes'] += len(payload)
            n = len(payload)
            if self.in_batch + n < B:
                self.sha256.update(payload)
                self.in_batch += n
                return
            mv = memoryview(payload)
            while len(mv):
                take = min(len(mv), B - self.in_batch)
                self.sha256.update(mv[:take])
                mv = mv[take:]
                self.in_batch += take
                if self.in_batch == B:
                    self.in_batch = 0
                    st['digests'] += 1
                    self.sendMessage(self.sha256.hexdigest().encode('ascii'),
                                     isBinary=False)

        def onMessageFrameEnd(self):
            pass

        def onMessageEnd(self):
            pass

    factory = WebSocketServerFactory('ws://127.0.0.1')
    factory.protocol = StreamingHashServerProtocol
    factory.setProtocolOptions(openHandshakeTimeout=10, closeHandshakeTimeout=2)
    port = reactor.listenTCP(a.port, factory, interface='127.0.0.1')

    def on_usr1(signum, frame):
        emit({'stats': dict(st), 't': time.monotonic()})
    signal.signal(signal.SIGUSR1, on_usr1)
    emit({'listening': port.getHost().port})
    reactor.callLater(a.seconds, stop_reactor)
    reactor.run()               # Twisted stops it on SIGTERM/SIGINT too
    emit({'result': st})
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='role', required=True)
    c = sub.add_parser('client')
    c.add_argument('url')
    c.add_argument('--seconds', type=float, default=15,
                   help='drop TCP after this long (0: only --bytes)')
    c.add_argument('--bytes', type=int, default=0, help='drop after N octets')
    c.add_argument('--pool', type=int, default=32, help='random chunks in the pool')
    c.add_argument('--batch-size', type=int, default=1048576)
    c.add_argument('--verify', action='store_true')
    s = sub.add_parser('server')
    s.add_argument('--port', type=int, default=0)
    s.add_argument('--seconds', type=float, default=120)
    s.add_argument('--batch-size', type=int, default=1048576)
    a = p.parse_args()
    rc = run_client(a) if a.role == 'client' else run_server(a)
    sys.stdout.flush()
    os._exit(rc)


if __name__ == '__main__':
    main()
