#!/usr/bin/env node
// Benchmark peer: a producer client on the Node `ws` package.
//
//     node wsnode.js URL [--seconds S] [--bytes N] [--pool K] [--verify]
//
// One connection, one endless binary message of 64 KiB fragments
// (ws.send(buf, {binary: true, fin: false})), sent as fast as backpressure
// allows: send while ws.bufferedAmount is under a high-water mark, then wait
// for the socket's 'drain'.  The chunks come round-robin from a pool of K
// random chunks (generating random data is not what is measured).  Stops
// after N octets or S seconds by dropping TCP, as the Autobahn tutorial
// client does.  Digests the server sends back are counted; --verify checks
// each against a running SHA-256 of what was sent (digest after every
// --batch-size octets of the message, the streaming server's rule).
//
// Prints JSON lines on stdout, as abpeer.py does: {"open": true, "t": ...}
// once connected, {"stats": {...}, "t": ...} on SIGUSR1 and a final
// {"result": {...}} line.  "t" is CLOCK_MONOTONIC seconds (uv_hrtime).
'use strict';

const crypto = require('crypto');

let WebSocket;
try {
  WebSocket = require('ws');
} catch (e) {
  process.stdout.write(JSON.stringify({ result: { error: 'cannot load ws: ' + e.message } }) + '\n');
  process.exit(2);
}

const CHUNK = 65536;
const HWM = 1 << 20;     // bytes queued in ws + the socket before we wait

function parse(argv) {
  const a = { url: null, seconds: 15, bytes: 0, pool: 32, verify: false, batch: 1048576 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--seconds') a.seconds = Number(argv[++i]);
    else if (k === '--bytes') a.bytes = Number(argv[++i]);
    else if (k === '--pool') a.pool = Number(argv[++i]);
    else if (k === '--batch-size') a.batch = Number(argv[++i]);
    else if (k === '--verify') a.verify = true;
    else if (a.url === null) a.url = k;
    else throw new Error('unexpected argument ' + k);
  }
  if (!a.url) throw new Error('usage: wsnode.js URL [--seconds S] [--bytes N] [--verify]');
  return a;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const a = parse(process.argv.slice(2));
const pool = [];
for (let i = 0; i < Math.max(1, a.pool); i++) pool.push(crypto.randomBytes(CHUNK));

let bufferutil = false;
try {
  require.resolve('bufferutil');
  bufferutil = !process.env.WS_NO_BUFFER_UTIL;
} catch (e) { /* masking in JavaScript */ }

const r = { bytes: 0, digests: 0, verified: 0, mismatched: 0, drains: 0,
            bufferutil, ws_version: require('ws/package.json').version,
            node: process.version };
let sending = false;
let i = 0;
let h = a.verify ? crypto.createHash('sha256') : null;
const expected = [];

const ws = new WebSocket(a.url, { perMessageDeflate: false, handshakeTimeout: 10000 });
ws.binaryType = 'nodebuffer';

function drop(why) {
  if (!sending) return;
  sending = false;
  r.t_end = now();
  r.ended_by = why;
  ws._socket.destroy();          // drop TCP mid-frame, as the tutorial client
}

function pump() {
  // at most 64 chunks per turn: a socket that takes everything at once
  // (libuv writes synchronously when it can) must not starve the timers
  // and the digests
  for (let n = 0; sending; n++) {
    if (n === 64) { setImmediate(pump); return; }
    if (a.bytes && r.bytes >= a.bytes) { drop('bytes'); return; }
    if (ws.bufferedAmount >= HWM) {
      const sock = ws._socket;
      if (sock.writableNeedDrain) {
        r.drains++;
        sock.once('drain', pump);
      } else {
        setImmediate(pump);     // queued inside ws, not in the socket
      }
      return;
    }
    const data = pool[i];
    i = (i + 1) % pool.length;
    if (h) {
      h.update(data);
      if ((r.bytes + CHUNK) % a.batch < CHUNK) expected.push(h.copy().digest('hex'));
    }
    r.bytes += CHUNK;
    ws.send(data, { binary: true, fin: false });
  }
}

ws.on('open', () => {
  sending = true;
  r.t_open = now();
  emit({ open: true, t: r.t_open });
  if (a.seconds > 0) setTimeout(() => drop('seconds'), a.seconds * 1000);
  pump();
});

ws.on('message', (data) => {
  r.digests++;
  if (h) {
    const want = expected.shift();
    if (data.toString('latin1') === want) r.verified++;
    else r.mismatched++;
  }
});

ws.on('error', (e) => {
  // our own drop is the normal end; anything else is an error
  if (!r.ended_by && !r.error) r.error = (r.t_open ? '' : 'connect failed: ') + (e.message || e);
});

ws.on('close', (code, reason) => {
  if (!r.t_end) r.t_end = now();
  r.close = [code, String(reason)];
  finish();
});

process.on('SIGUSR1', () => emit({ stats: Object.assign({}, r), t: now() }));
process.on('SIGTERM', () => { r.error = r.error || 'SIGTERM'; finish(); });

let done = false;
function finish() {
  if (done) return;
  done = true;
  emit({ result: r });
  process.exit(r.error || r.mismatched ? 1 : 0);
}

setTimeout(() => { r.error = 'hard deadline reached'; finish(); },
           ((a.seconds > 0 ? a.seconds : 600) + 20) * 1000).unref();
