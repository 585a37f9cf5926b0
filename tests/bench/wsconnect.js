#!/usr/bin/env node
// Benchmark peer: N WebSocket connections on the Node `ws` package, the
// anchor for wsflowd's connection rate (bench case 10).
//
//     node wsconnect.js URL N [--hold S]
//
// Opens N connections at once (as fast as the event loop lets it), sends
// one 16-octet binary frame on each (the start of an endless message:
// the server holds it open), and prints {"open": N, "seconds": S} when the
// last one is open, then holds them S seconds and exits.
'use strict';

let WebSocket;
try {
  WebSocket = require('ws');
} catch (e) {
  process.stdout.write(JSON.stringify({ error: 'cannot load ws: ' + e.message }) + '\n');
  process.exit(2);
}

const url = process.argv[2];
const n = parseInt(process.argv[3], 10);
const hold = process.argv[4] === '--hold' ? parseFloat(process.argv[5]) : 2;
const t0 = process.hrtime.bigint();
let open = 0, failed = 0;
const socks = [];

for (let i = 0; i < n; i++) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on('open', () => {
    ws.send(Buffer.alloc(16), { binary: true, fin: false });
    if (++open + failed === n) done();
  });
  ws.on('error', () => { if (open + ++failed === n) done(); });
  socks.push(ws);
}

function done() {
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(JSON.stringify({ open, failed, seconds: s }) + '\n');
  setTimeout(() => { socks.forEach((w) => w.terminate()); process.exit(0); }, hold * 1000);
}
