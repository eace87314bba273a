// The broker through Node's `ws` client, as a JavaScript application would use it: subscribe,
// publish, wildcards, errors that keep the connection, and recovery after a forced disconnect.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHerald } from './herald.mjs';

let herald;
before(async () => { herald = await startHerald(['--threads', '2']); });
after(async () => { await herald.stop(); });

// A connection whose incoming messages are parsed and queued for next().
async function connect() {
  const ws = new WebSocket(herald.url('/ws'), 'herald.v1');
  const queue = [];
  const waiters = [];
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    const w = waiters.shift();
    if (w) w(m); else queue.push(m);
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  assert.equal(ws.protocol, 'herald.v1');
  const next = () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r)));
  const welcome = await next();
  assert.equal(welcome.type, 'welcome');
  const send = (o) => ws.send(JSON.stringify(o));
  return { ws, next, send };
}

test('subscribe, publish and receive, with ids echoed', async () => {
  const a = await connect();
  const b = await connect();
  a.send({ op: 'sub', topic: 'js.room', id: 'a1' });
  const ack = await a.next();
  assert.equal(ack.type, 'ack');
  assert.equal(ack.id, 'a1');
  assert.equal(typeof ack.epoch, 'string');
  b.send({ op: 'pub', topic: 'js.room', data: { text: 'hello', list: [1, 2, 3] }, id: 7 });
  const pubAck = await b.next();
  assert.deepEqual({ type: pubAck.type, id: pubAck.id, offset: pubAck.offset, reach: pubAck.reach },
    { type: 'ack', id: 7, offset: 1, reach: 1 });
  const msg = await a.next();
  assert.deepEqual(msg, { type: 'msg', topic: 'js.room', data: { text: 'hello', list: [1, 2, 3] }, offset: 1 });
  a.ws.close();
  b.ws.close();
});

test('wildcards and errors that keep the connection open', async () => {
  const c = await connect();
  c.send({ op: 'sub', topic: 'js.*' });
  assert.equal((await c.next()).type, 'ack');
  c.send({ op: 'nope' });
  const err = await c.next();
  assert.equal(err.type, 'error');
  assert.equal(err.code, 'unknown_op');
  c.ws.send('{broken');
  assert.equal((await c.next()).code, 'bad_json');
  c.send({ op: 'pub', topic: 'js.wild', data: 'still here' });
  const [first, second] = [await c.next(), await c.next()];
  const kinds = [first.type, second.type].sort();
  assert.deepEqual(kinds, ['ack', 'msg']);
  c.ws.close();
});

test('recovery after a forced disconnect misses nothing and repeats nothing', async () => {
  const p = await connect();
  let s = await connect();
  s.send({ op: 'sub', topic: 'js.feed' });
  const { epoch } = await s.next();
  for (let i = 1; i <= 50; i++) p.send({ op: 'pub', topic: 'js.feed', data: i });
  let last = 0;
  while (last < 20) last = (await s.next()).offset;
  s.ws.terminate(); // no close handshake: like a dropped network
  for (let i = 51; i <= 100; i++) p.send({ op: 'pub', topic: 'js.feed', data: i });
  s = await connect();
  s.send({ op: 'sub', topic: 'js.feed', recover: { epoch, offset: last } });
  const ack = await s.next();
  assert.equal(ack.recovered, true);
  for (let off = last + 1; off <= 100; off++) {
    const m = await s.next();
    assert.equal(m.offset, off);
    assert.equal(m.data, off);
  }
  p.ws.close();
  s.ws.close();
});

// A burst longer than --history-size (one HTTP batch, or pipelined WebSocket publishes: a worker
// handles a whole read before it serves any subscriber's wake) reaches a subscriber that keeps
// up, in order. It used to close it with 4008 "fell behind the history" after 0 messages.
test('a burst longer than the history reaches a subscriber that keeps up', async () => {
  const key = 'burst-test-key-0123456789';
  const h = await startHerald(['--threads', '2', '--history-size', '100', '--api-key', key]);
  try {
    const ws = new WebSocket(h.url('/ws'), 'herald.v1');
    const got = [];
    let closed = null;
    let acked;
    const ackP = new Promise((r) => { acked = r; });
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === 'msg') got.push(m.data);
      else if (m.type === 'ack') acked();
    });
    ws.on('close', (code) => { closed = code; });
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ op: 'sub', topic: 'burst' }));
    await ackP;
    const batch = Array.from({ length: 1500 }, (_, i) => ({ topic: 'burst', data: i + 1 }));
    const res = await fetch(`http://127.0.0.1:${h.port}/api/publish`, {
      method: 'POST', headers: { authorization: `Bearer ${key}` }, body: JSON.stringify(batch),
    });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).results.length, 1500);
    // The same through a pipelining WebSocket publisher.
    const pub = new WebSocket(h.url('/ws'), 'herald.v1');
    await new Promise((r) => pub.once('open', r));
    for (let i = 1501; i <= 3000; i++) pub.send(JSON.stringify({ op: 'pub', topic: 'burst', data: i }));
    const deadline = Date.now() + 20000;
    while (got.length < 3000 && closed === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(closed, null, `closed with ${closed} after ${got.length} messages`);
    assert.equal(got.length, 3000);
    got.forEach((v, i) => assert.equal(v, i + 1));
    pub.close();
    ws.close();
  } finally {
    await h.stop();
  }
});

// Presence events are held to the same budget as messages: a member that stops reading while its
// room churns is not sent (and the server does not queue) every join and leave; it falls behind the
// presence log and gets presence_lost when it reads again. They used to be queued all, without
// limit: the server's memory grew by every event (100 MB in 8 s of churn) and the member got them
// all, however late.
test('a member that stops reading gets presence_lost, not every event', async () => {
  const h = await startHerald(['--threads', '2']);
  try {
    const open = async () => {
      const ws = new WebSocket(h.url('/ws'), 'herald.v1');
      await new Promise((r) => ws.once('open', r));
      return ws;
    };
    const member = await open();
    const seen = { join: 0, leave: 0, presence_lost: 0 };
    let last = Date.now();
    let subscribed;
    const ready = new Promise((r) => { subscribed = r; });
    member.on('message', (d) => {
      const m = JSON.parse(d.toString());
      last = Date.now();
      if (m.type in seen) seen[m.type]++;
      if (m.type === 'ack') subscribed();
    });
    member.send(JSON.stringify({ op: 'sub', topic: 'busy', presence: true }));
    await ready;
    member.pause(); // stops reading its socket
    const churner = await open();
    const pad = 'y'.repeat(200); // 60,000 events of 280 bytes: more than the sockets' buffers hold
    let acks = 0;
    const done = new Promise((r) => churner.on('message', (d) => {
      if (JSON.parse(d.toString()).type === 'ack' && ++acks === 60000) r();
    }));
    for (let i = 0; i < 30000; i++) {
      churner.send(JSON.stringify({ op: 'sub', topic: 'busy', presence: { info: { pad } } }));
      churner.send(JSON.stringify({ op: 'unsub', topic: 'busy' }));
      if (i % 500 === 0) await new Promise((r) => setImmediate(r));
    }
    await done;
    member.resume();
    last = Date.now();
    while (Date.now() - last < 1000) await new Promise((r) => setTimeout(r, 100));
    assert.ok(seen.presence_lost >= 1, `no presence_lost: ${JSON.stringify(seen)}`);
    assert.ok(seen.join + seen.leave < 60000, `every event was kept for it: ${JSON.stringify(seen)}`);
    churner.close();
    member.close();
  } finally {
    await h.stop();
  }
});
