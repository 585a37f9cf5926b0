#!/usr/bin/python3
"""Frame-based server (AutobahnPython streaming tutorial).

Per message a running hash; after every frame ends (an empty final frame
too) it sends the hex digest of the message so far.

Prints {"listening": PORT} once listening, and the totals as a JSON line
when it stops (--seconds, SIGTERM or SIGINT).
"""
from autobahn.twisted.websocket import WebSocketServerProtocol

import wspeer


class FrameBasedHashServerProtocol(wspeer.ServerMixin, WebSocketServerProtocol):

    def messageBegin(self):
        self.h = wspeer.new_hash(self.factory.args.digest)

    def frameData(self, payload):
        self.h.update(payload)

    def frameEnd(self):
        self.sendDigest(self.h.hexdigest())


if __name__ == '__main__':
    wspeer.run_server(FrameBasedHashServerProtocol,
                      wspeer.server_parser(__doc__.split('\n')[0]).parse_args())
