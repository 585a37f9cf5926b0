#!/usr/bin/python3
"""Streaming client (AutobahnPython streaming tutorial).

One endless binary frame; application-level flow control: send one batch
of --batch-size random octets, wait for its digest, check it, send the next.
After --batches batches it drops TCP mid-frame (an endless frame cannot be
ended any other way).

Prints {"digests", "verified", "mismatched", "bytes", ...}; exits 0 when all
--batches digests matched.
"""
import os

from autobahn.twisted.websocket import WebSocketClientProtocol

import wspeer


class StreamingHashClientProtocol(wspeer.ClientMixin, WebSocketClientProtocol):

    def onOpen(self):
        a = self.factory.args
        self.hasher = wspeer.BatchHasher(a.digest, a.batch_size)
        self.beginMessage(isBinary=True)
        self.beginMessageFrame(wspeer.ENDLESS)
        self.sendBatch()

    def sendBatch(self):
        left = self.factory.args.batch_size
        while left:
            data = os.urandom(min(left, wspeer.CHUNK))
            left -= len(data)
            self.expected.extend(self.hasher.update(data))
            self.sendMessageFrameData(data)
        self.r['bytes'] += self.factory.args.batch_size

    def onDigest(self):
        if self.r['digests'] < self.factory.args.batches:
            self.sendBatch()
        elif not self.r.get('dropped'):
            self.drop()


def main():
    p = wspeer.client_parser(__doc__.split('\n')[0], '/stream')
    p.add_argument('--batch-size', type=int, default=1048576)
    p.add_argument('--batches', type=int, default=16)
    args = p.parse_args()
    wspeer.run_client(StreamingHashClientProtocol, args,
                      lambda r: r.get('dropped') and r['verified'] == args.batches)


if __name__ == '__main__':
    main()
