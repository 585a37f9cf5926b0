#!/usr/bin/python3
"""Hashing server that records how each connection ended.

The streaming, frame or message tutorial server (--mode), with every option
of those (--batch-size, --rate, --corrupt-digest, ...), that also prints one
JSON line per connection when it ends:

    {"closed": {"n": 1, "clean": true, "code": 1000, "reason": "done",
                "bytes": 10000000, "messages": 1, "digests": 9, "seconds": 0.4}}

("code" is the close code the client sent, null if it sent none) and adds
the list of those objects as "closes" to the totals it prints at the end.
With --record FILE each object is also appended to FILE as it happens, with
"close_frame_at" (time.time() when the client's close frame was read, null
if none came) and "at" (when the connection ended), so a test can see a
close without stopping the server.  For the tests of wsflowd's producers:
a clean end is close 1000.
"""
import json
import time

import server_frame
import server_message
import server_streaming
import wspeer

MODES = {
    'streaming': server_streaming.StreamingHashServerProtocol,
    'frame': server_frame.FrameBasedHashServerProtocol,
    'message': server_message.MessageBasedHashServerProtocol,
}


def recording(base):
    class Recording(base):

        def onOpen(self):
            super().onOpen()
            from twisted.internet import reactor
            st = self.factory.stats
            st['opened'] = st.get('opened', 0) + 1
            self._rec = {'n': st['opened'], 'bytes': 0, 'messages': 0,
                         'digests': 0, 't0': reactor.seconds()}

        def onMessageBegin(self, isBinary):
            if hasattr(self, '_rec'):
                self._rec['messages'] += 1
            super().onMessageBegin(isBinary)

        def onMessageFrameData(self, payload):
            if hasattr(self, '_rec'):
                self._rec['bytes'] += len(payload)
            super().onMessageFrameData(payload)

        def onCloseFrame(self, code, reasonRaw):
            if getattr(self, '_rec', None) is not None:
                self._rec.setdefault('close_frame_at', time.time())
            return super().onCloseFrame(code, reasonRaw)

        def sendDigest(self, hexdigest):
            if hasattr(self, '_rec'):
                self._rec['digests'] += 1
            super().sendDigest(hexdigest)

        def onClose(self, wasClean, code, reason):
            rec = getattr(self, '_rec', None)
            if rec is None:         # never opened: nothing to record
                return
            from twisted.internet import reactor
            rec['seconds'] = round(reactor.seconds() - rec.pop('t0'), 3)
            rec.update(clean=wasClean, code=code, reason=reason or '', at=time.time())
            rec.setdefault('close_frame_at', None)
            self.factory.stats.setdefault('closes', []).append(rec)
            wspeer.emit({'closed': rec})
            path = self.factory.args.record
            if path:
                with open(path, 'a') as f:
                    f.write(json.dumps(rec, sort_keys=True) + '\n')
            del self._rec

    return Recording


if __name__ == '__main__':
    p = wspeer.server_parser(__doc__.split('\n')[0])
    p.add_argument('--mode', choices=sorted(MODES), default='streaming')
    p.add_argument('--record', metavar='FILE',
                   help='append a JSON line per ended connection to FILE')
    args = p.parse_args()
    wspeer.run_server(recording(MODES[args.mode]), args)
