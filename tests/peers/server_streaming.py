#!/usr/bin/python3
"""Streaming server (AutobahnPython streaming tutorial).

Per message a running hash; after every --batch-size octets of the message
it sends the hex digest of everything so far in that message.  Any number
of batch boundaries may fall in one received chunk; a tail shorter than a
batch gets no digest.  Nothing is buffered, so endless frames are fine.

Prints {"listening": PORT} once listening, and the totals as a JSON line
when it stops (--seconds, SIGTERM or SIGINT).
"""
from autobahn.twisted.websocket import WebSocketServerProtocol

import wspeer


class StreamingHashServerProtocol(wspeer.ServerMixin, WebSocketServerProtocol):

    def messageBegin(self):
        a = self.factory.args
        self.hasher = wspeer.BatchHasher(a.digest, a.batch_size)

    def frameData(self, payload):
        for digest in self.hasher.update(payload):
            self.sendDigest(digest)


if __name__ == '__main__':
    wspeer.run_server(StreamingHashServerProtocol,
                      wspeer.server_parser(__doc__.split('\n')[0]).parse_args())
