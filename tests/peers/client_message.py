#!/usr/bin/python3
"""Message-based client (AutobahnPython streaming tutorial) for /message.

--messages messages of --message-size random octets, one message in flight:
the server answers each with the digest of the whole message.  --text sends
UTF-8 text messages (with multi-byte characters) hashed over their octets.
Then a clean close (1000).

Prints {"digests", "verified", "mismatched", "bytes", ...}; exits 0 when all
digests matched and the close was clean.
"""
import os
import random

from autobahn.twisted.websocket import WebSocketClientProtocol

import wspeer

TEXT_CHARS = 'abcxyz 019\n\u00e4\u00df\u20ac\u4e2d\U0001f600'   # 1 to 4 octets each


def random_text(size):
    """Exactly size octets of valid UTF-8."""
    text = ''.join(random.choices(TEXT_CHARS, k=size // 2 + 8)).encode()
    text = text[:size].decode('utf-8', 'ignore').encode()   # cut on a char
    return text + b'.' * (size - len(text))


class MessageBasedHashClientProtocol(wspeer.ClientMixin, WebSocketClientProtocol):

    def onOpen(self):
        self.sendNext()

    def sendNext(self):
        a = self.factory.args
        data = random_text(a.message_size) if a.text else os.urandom(a.message_size)
        h = wspeer.new_hash(a.digest)
        h.update(data)
        self.expected.append(h.hexdigest())
        self.sendMessage(data, isBinary=not a.text)
        self.r['bytes'] += len(data)

    def onDigest(self):
        if self.r['digests'] < self.factory.args.messages:
            self.sendNext()
        else:
            self.sendClose(1000)


def main():
    p = wspeer.client_parser(__doc__.split('\n')[0], '/message')
    p.add_argument('--messages', type=int, default=10)
    p.add_argument('--message-size', type=int, default=1048576)
    p.add_argument('--text', action='store_true', help='send text messages')
    args = p.parse_args()
    wspeer.run_client(MessageBasedHashClientProtocol, args,
                      lambda r: r['verified'] == args.messages and r['clean_close'])


if __name__ == '__main__':
    main()
