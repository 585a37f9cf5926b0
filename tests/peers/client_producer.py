#!/usr/bin/python3
"""Streaming producer client (AutobahnPython producer-consumer tutorial).

One endless binary frame (declared 2^63-1 long) of random octets, sent by a
Twisted push producer exactly as fast as TCP backpressure allows.  The
running hash is kept here too and every digest the server sends back (one
per --batch-size octets) is checked.  At the end -- after --bytes octets or
--seconds -- it waits for the digests still owed, then drops TCP mid-frame
as the tutorial client does.

Prints {"digests", "verified", "mismatched", "bytes", "pauses", ...}; exits
0 when every digest owed was received and matched.
"""
import os

from autobahn.twisted.websocket import WebSocketClientProtocol
from twisted.internet import interfaces, reactor
from zope.interface import implementer

import wspeer


@implementer(interfaces.IPushProducer)
class RandomByteStreamProducer:
    """Twisted calls pause/resumeProducing as the send buffer fills and
    drains; while resumed we write random chunks into the frame."""

    def __init__(self, proto):
        self.proto = proto
        self.paused = False

    def pauseProducing(self):
        self.paused = True
        self.proto.r['pauses'] += 1

    def resumeProducing(self):
        self.paused = False
        self.proto.produce()

    def stopProducing(self):
        self.paused = True


class StreamingProducerHashClientProtocol(wspeer.ClientMixin, WebSocketClientProtocol):

    def onOpen(self):
        a = self.factory.args
        self.r['pauses'] = 0
        self.hasher = wspeer.BatchHasher(a.digest, a.batch_size)
        self.sending = True
        self.beginMessage(isBinary=True)
        self.beginMessageFrame(wspeer.ENDLESS)
        self.producer = RandomByteStreamProducer(self)
        self.registerProducer(self.producer, True)
        reactor.callLater(a.seconds, self.stopSending)
        self.producer.resumeProducing()

    def produce(self):
        limit = self.factory.args.bytes
        for _ in range(16):
            if not self.sending or self.producer.paused or self.state != self.STATE_OPEN:
                return
            n = wspeer.CHUNK
            if limit:
                n = min(n, limit - self.r['bytes'])
                if n <= 0:
                    self.stopSending()
                    return
            data = os.urandom(n)
            self.expected.extend(self.hasher.update(data))
            self.r['bytes'] += n
            if self.sendMessageFrameData(data) <= 0:
                # never in practice: 2^63-1 octets sent; start another frame
                self.beginMessageFrame(wspeer.ENDLESS)
        # Not paused after 1 MiB: let the reactor run before going on (a
        # TLS transport that lost its connection swallows writes without
        # ever pausing us, and the deadline timers must get to fire).
        reactor.callLater(0, self.produce)

    def stopSending(self):
        if not self.sending:
            return
        self.sending = False
        self.producer.paused = True
        self.unregisterProducer()
        # grace period for the digests still in flight, then drop
        self.graceCall = reactor.callLater(self.factory.args.grace, self.drop)
        self.onDigest()

    def onCloseFrame(self, code, reasonRaw):
        # The server closes (e.g. 1001 on SIGTERM): stop producing and
        # unregister first -- Twisted's TLS transport will not shut down
        # while a producer is registered, and the client would hang.
        if self.sending:
            self.sending = False
            self.producer.paused = True
            self.unregisterProducer()
        return super().onCloseFrame(code, reasonRaw)

    def onDigest(self):
        if not self.sending and not self.expected and self.state == self.STATE_OPEN:
            if self.graceCall.active():
                self.graceCall.cancel()
            self.drop()


def main():
    p = wspeer.client_parser(__doc__.split('\n')[0], '/')
    p.add_argument('--batch-size', type=int, default=1048576)
    p.add_argument('--bytes', '--drop-after', dest='bytes', type=int, default=0,
                   metavar='N', help='drop TCP after sending N octets (0: never)')
    p.add_argument('--grace', type=float, default=5,
                   help='seconds to wait for owed digests before dropping')
    args = p.parse_args()

    def success(r):
        # we ended it (dropped), nothing owed, and all --bytes went out
        return (r.get('dropped') and r.get('owed') == 0
                and (not args.bytes or r['bytes'] == args.bytes))
    wspeer.run_client(StreamingProducerHashClientProtocol, args, success,
                      deadline=args.seconds + args.grace + 10)


if __name__ == '__main__':
    main()
