#!/usr/bin/python3
"""Streaming hashing server (the AutobahnPython tutorial's) on python3-websockets.

Debian's websockets 10.4 assembles whole messages in its asyncio API, and a
wsflowd producer sends one endless fragmented message, so this server uses
websockets' Sans-I/O layer (websockets.server.ServerConnection), which
hands over every frame as it is parsed: per message a running SHA-256, and
after every --batch-size octets of the message the hex digest of all of it
so far, as a text message.  A tail shorter than a batch gets no digest.
Pings are answered and closes completed by websockets itself.

Prints {"listening": PORT} once listening and, on SIGTERM or after
--seconds, the totals as a JSON line: "connections" (opening handshakes
accepted), "bytes", "digests", "messages", "closes" (per connection the
client's close code, null for none).
"""
import argparse
import asyncio
import hashlib
import json
import signal

from websockets.frames import OP_BINARY, OP_CONT, OP_TEXT
from websockets.connection import CONNECTING
from websockets.http11 import Request
from websockets.server import ServerConnection

stats = {'connections': 0, 'bytes': 0, 'digests': 0, 'messages': 0, 'closes': []}


async def serve(reader, writer, batch_size):
    conn = ServerConnection(max_size=None)      # endless messages
    h, in_batch = None, 0
    try:
        while True:
            data = await reader.read(65536)
            if data:
                conn.receive_data(data)
            else:
                conn.receive_eof()
            for ev in conn.events_received():
                if isinstance(ev, Request):
                    conn.send_response(conn.accept(ev))
                    stats['connections'] += 1
                elif ev.opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                    if ev.opcode != OP_CONT:
                        h, in_batch = hashlib.sha256(), 0
                        stats['messages'] += 1
                    mv = memoryview(ev.data)
                    stats['bytes'] += len(mv)
                    while len(mv):
                        take = min(len(mv), batch_size - in_batch)
                        h.update(mv[:take])
                        mv, in_batch = mv[take:], in_batch + take
                        if in_batch == batch_size:
                            conn.send_text(h.hexdigest().encode())
                            stats['digests'] += 1
                            in_batch = 0
            for out in conn.data_to_send():
                if out:
                    writer.write(out)
                elif writer.can_write_eof():
                    writer.write_eof()
            await writer.drain()
            if not data or conn.close_rcvd is not None:
                break
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        if conn.state is not CONNECTING:       # not a port probe
            stats['closes'].append(conn.close_rcvd.code if conn.close_rcvd else None)
        writer.close()


async def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--batch-size', type=int, default=1048576)
    p.add_argument('--seconds', type=float, default=60)
    a = p.parse_args()
    server = await asyncio.start_server(lambda r, w: serve(r, w, a.batch_size),
                                        '127.0.0.1', a.port)
    print(json.dumps({'listening': a.port}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), a.seconds)
    except asyncio.TimeoutError:
        pass
    server.close()
    print(json.dumps(stats, sort_keys=True), flush=True)


if __name__ == '__main__':
    asyncio.run(main())
