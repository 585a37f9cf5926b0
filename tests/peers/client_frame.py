#!/usr/bin/python3
"""Frame-based client (AutobahnPython streaming tutorial) for /frame.

Messages of --frames frames of --frame-size random octets, one frame in
flight: after each frame the server sends the digest of the message so far.
The message ends with an empty final frame, which gets one more digest
(equal to the hash of all its frames).  Then a clean close (1000).

Prints {"digests", "verified", "mismatched", "bytes", ...}; exits 0 when all
(frames + 1) * messages digests matched and the close was clean.
"""
import os

from autobahn.twisted.websocket import WebSocketClientProtocol

import wspeer


class FrameBasedHashClientProtocol(wspeer.ClientMixin, WebSocketClientProtocol):

    def onOpen(self):
        self.messages = 0
        self.beginMessageOfFrames()

    def beginMessageOfFrames(self):
        self.frames = 0
        self.h = wspeer.new_hash(self.factory.args.digest)
        self.beginMessage(isBinary=True)
        self.sendNextFrame()

    def sendNextFrame(self):
        a = self.factory.args
        if self.frames < a.frames:
            data = os.urandom(a.frame_size)
            self.h.update(data)
            self.sendMessageFrame(data)
            self.r['bytes'] += len(data)
        else:
            self.endMessage()        # the empty final frame
            self.messages += 1
        self.frames += 1
        self.expected.append(self.h.hexdigest())

    def onDigest(self):
        a = self.factory.args
        if self.frames <= a.frames:
            self.sendNextFrame()
        elif self.messages < a.messages:
            self.beginMessageOfFrames()
        else:
            self.sendClose(1000)


def main():
    p = wspeer.client_parser(__doc__.split('\n')[0], '/frame')
    p.add_argument('--frames', type=int, default=10)
    p.add_argument('--frame-size', type=int, default=1048576)
    p.add_argument('--messages', type=int, default=1)
    args = p.parse_args()
    want = (args.frames + 1) * args.messages
    wspeer.run_client(FrameBasedHashClientProtocol, args,
                      lambda r: r['verified'] == want and r['clean_close'])


if __name__ == '__main__':
    main()
