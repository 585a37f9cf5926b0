#!/usr/bin/python3
"""Message-based server (AutobahnPython streaming tutorial).

Hashes each message as it arrives (nothing buffered) and sends the hex
digest of the whole message when it ends.

Prints {"listening": PORT} once listening, and the totals as a JSON line
when it stops (--seconds, SIGTERM or SIGINT).
"""
from autobahn.twisted.websocket import WebSocketServerProtocol

import wspeer


class MessageBasedHashServerProtocol(wspeer.ServerMixin, WebSocketServerProtocol):

    def messageBegin(self):
        self.h = wspeer.new_hash(self.factory.args.digest)

    def frameData(self, payload):
        self.h.update(payload)

    def messageEnd(self):
        self.sendDigest(self.h.hexdigest())


if __name__ == '__main__':
    wspeer.run_server(MessageBasedHashServerProtocol,
                      wspeer.server_parser(__doc__.split('\n')[0]).parse_args())
