'use strict';
// Runs the plan that test_interop.py serves at /plan, in the browser's own
// WebSocket: each scenario opens new WebSocket(url[, protocols]), sends its
// messages one at a time (their octets fetched from /data/ID, so that the
// test knows them exactly) and keeps the digests wsflowd answers to each.
// A message is done after `count` digests, or once the digest `until` came
// (frame mode: the browser picks the frame boundaries).  The results go to
// POST /result; the test checks every digest against hashlib.

const sleep = ms => new Promise(r => setTimeout(r, ms));

async function until(cond, deadline) {
  while (!cond()) {
    if (Date.now() > deadline)
      return false;
    await sleep(5);
  }
  return true;
}

async function scenario(sc, plan) {
  const r = {name: sc.name, opened: false, digests: [], extra: [], error: null, close: null};
  const deadline = Date.now() + plan.timeout_ms;
  const ws = sc.protocols ? new WebSocket(sc.url, sc.protocols) : new WebSocket(sc.url);
  ws.binaryType = 'arraybuffer';
  const inbox = [];
  ws.onmessage = ev => inbox.push(typeof ev.data === 'string' ? ev.data : '<binary message>');
  ws.onerror = () => { r.error = r.error || 'error event'; };
  ws.onclose = ev => { r.close = {code: ev.code, clean: ev.wasClean, reason: ev.reason}; };
  await until(() => ws.readyState !== WebSocket.CONNECTING, deadline);
  if (ws.readyState !== WebSocket.OPEN) {
    r.error = 'did not open: ' + (r.error || 'timeout') + ' ' + JSON.stringify(r.close);
    return r;
  }
  r.opened = true;
  r.protocol = ws.protocol;
  r.extensions = ws.extensions;
  let seen = 0;
  for (const m of sc.messages) {
    const resp = await fetch('/data/' + m.id);
    ws.send(m.text ? await resp.text() : await resp.arrayBuffer());
    const done = () => m.until ? inbox.slice(seen).includes(m.until)
                               : inbox.length - seen >= m.count;
    if (!await until(() => done() || ws.readyState !== WebSocket.OPEN, deadline))
      r.error = r.error || 'message ' + m.id + ': timed out';
    r.digests.push(inbox.slice(seen));
    seen = inbox.length;
  }
  await sleep(plan.quiet_ms);           // nothing more is owed
  r.extra = inbox.slice(seen);
  ws.close(1000, 'done');
  await until(() => r.close !== null, deadline);
  return r;
}

async function main() {
  const plan = await (await fetch('/plan')).json();
  const results = await Promise.all(plan.scenarios.map(
    sc => scenario(sc, plan).catch(e => ({name: sc.name, error: 'exception: ' + e}))));
  await fetch('/result', {method: 'POST', body: JSON.stringify(
    {user_agent: navigator.userAgent, results: results})});
  document.getElementById('log').textContent = 'done';
}

main().catch(e => fetch('/result', {method: 'POST',
                                    body: JSON.stringify({error: 'exception: ' + e})}));
