// The JavaScript client library (clients/js/herald.js) against a real Herald, against a fake
// `ws` server where the server must misbehave on cue (never answer, send duplicates), and with a
// fake WebSocket class where only the client's own logic is under test (backoff, close codes).
import { test, before, after, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import WebSocket, { WebSocketServer } from 'ws';
import { startHerald } from './herald.mjs';
import { Herald, HeraldError } from '../../clients/js/herald.js';

// Generous: under TSan the server is several times slower.
const T = { timeout: 30000 };

let herald;
before(async () => { herald = await startHerald(['--threads', '2']); });
after(async () => { await herald.stop(); });

// Every client a test makes is closed after it, so that a failing test leaves no socket or
// timer behind to keep the process alive.
const clients = [];
afterEach(() => { for (const c of clients.splice(0)) c.close(); });

function client(options = {}, url = herald.url('/ws')) {
  const c = new Herald(url, { WebSocket, minDelay: 20, maxDelay: 200, ...options });
  clients.push(c);
  return c;
}

async function connected(options, url) {
  const c = client(options, url);
  await c.connect();
  return c;
}

// The next `event` of `emitter` whose first argument satisfies `pred`.
function next(emitter, event, pred = () => true, ms = 20000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, fn);
      reject(new Error(`no '${event}' within ${ms} ms`));
    }, ms);
    const fn = (arg) => {
      if (!pred(arg)) return;
      clearTimeout(timer);
      emitter.off(event, fn);
      resolve(arg);
    };
    emitter.on(event, fn);
  });
}

// A subscription handler that records (data, ctx) pairs; until(n) waits for the n-th.
function inbox() {
  const items = [];
  const waiters = [];
  const handler = (data, ctx) => {
    items.push([data, ctx]);
    for (const w of waiters.filter((w) => items.length >= w.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  };
  const until = (n, ms = 20000) => (items.length >= n ? Promise.resolve() : new Promise((resolve, reject) => {
    const w = { n, resolve: () => { clearTimeout(timer); resolve(); } };
    const timer = setTimeout(() => reject(new Error(`only ${items.length} of ${n} messages within ${ms} ms`)), ms);
    waiters.push(w);
  }));
  return { items, handler, until, data: () => items.map(([d]) => d) };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A `ws` server that speaks just enough herald.v1 to be told what to do: it sends the welcome
// and hands every parsed request to onRequest(request, socket).
async function fakeServer(onRequest = () => {}) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => wss.once('listening', resolve));
  const sockets = [];
  let n = 0;
  wss.on('connection', (ws) => {
    sockets.push(ws);
    ws.send(JSON.stringify({ type: 'welcome', version: 'herald.v1', session: `fake-${++n}` }));
    ws.on('message', (data) => onRequest(JSON.parse(data.toString()), ws));
  });
  return {
    url: `ws://127.0.0.1:${wss.address().port}/ws`,
    sockets,
    wss,
    close: () => new Promise((resolve) => {
      for (const ws of wss.clients) ws.terminate();
      wss.close(resolve);
    }),
  };
}

// A WebSocket class with no network: script(socket, n) runs (asynchronously, like a real
// socket's events) for the n-th socket created and drives it with open(), message() and end().
function fakeWebSocket(script) {
  const instances = [];
  class FakeWebSocket {
    constructor(url, protocol) {
      Object.assign(this, { url, protocol, sent: [], closedWith: null });
      instances.push(this);
      const n = instances.length;
      setTimeout(() => script(this, n), 0);
    }

    send(text) { this.sent.push(JSON.parse(text)); }

    close(code, reason) { this.closedWith = { code, reason }; }

    open() { this.onopen?.({}); }

    message(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }

    welcome(n) { this.open(); this.message({ type: 'welcome', version: 'herald.v1', session: `s-${n}` }); }

    end(code, reason = '') { this.onclose?.({ code, reason, wasClean: false }); }
  }
  FakeWebSocket.instances = instances;
  return FakeWebSocket;
}

test('connect() resolves on the welcome, with state and connection events; close() ends it', T, async () => {
  const c = client();
  const states = [];
  c.on('state', (s) => states.push(s));
  const connectingEv = next(c, 'connecting');
  const connectedEv = next(c, 'connected');
  assert.equal(c.state, 'idle');
  assert.equal(c.session, null);
  const first = c.connect();
  assert.equal(c.connect(), first, 'connect() while connecting returns the same promise');
  assert.equal(c.state, 'connecting');
  const { session } = await first;
  assert.equal(typeof session, 'string');
  assert.ok(session.length > 0);
  assert.equal(c.session, session);
  assert.equal(c.state, 'connected');
  assert.deepEqual(await connectingEv, { attempt: 0 });
  assert.deepEqual(await connectedEv, { session });
  assert.deepEqual(await c.connect(), { session }, 'connect() when connected resolves at once');

  const rtt = await c.ping();
  assert.equal(typeof rtt, 'number');
  assert.ok(rtt >= 0 && rtt < 10000, `round trip ${rtt} ms`);

  const other = await connected();
  assert.notEqual(other.session, session, 'every connection has its own session');

  const gone = next(c, 'disconnected');
  c.close();
  assert.deepEqual(await gone, { code: 1000, reason: '', reconnect: false, delay: null });
  assert.equal(c.state, 'closed');
  assert.equal(c.session, null);
  assert.deepEqual(states, ['connecting', 'connected', 'closed']);
  await assert.rejects(c.publish('cl.x', 1), { name: 'HeraldError', code: 'closed' });
  c.close(); // twice is harmless

  // A closed client can connect again.
  const again = await c.connect();
  assert.notEqual(again.session, session);
});

test('subscribe, publish and deliver with offsets; publish acks; wildcards; last N; unsubscribe', T, async () => {
  const a = await connected();
  const b = await connected();
  const room = inbox();
  const sub = a.subscribe('cl.room', room.handler);
  assert.equal(sub.topic, 'cl.room');
  assert.equal(sub.state, 'subscribing');
  const ack = await sub.ready;
  assert.equal(typeof ack.epoch, 'string');
  assert.ok(ack.epoch.length > 0);
  assert.deepEqual(ack, { epoch: ack.epoch, offset: 0, replay: 0 });
  assert.equal(sub.state, 'subscribed');
  assert.equal(sub.epoch, ack.epoch);
  assert.equal(sub.offset, 0);

  assert.deepEqual(await b.publish('cl.room', { text: 'hi', n: [1, 2] }), { offset: 1, reach: 1 });
  await room.until(1);
  assert.deepEqual(room.items[0], [{ text: 'hi', n: [1, 2] }, { topic: 'cl.room', offset: 1 }]);
  assert.equal(sub.offset, 1);
  assert.deepEqual(await b.publish('cl.nobody', null), { offset: 1, reach: 0 }, 'reach 0 is not an error');

  // A pattern gets the concrete topic in ctx; a message matching both subscriptions of one
  // client reaches both handlers.
  const wild = inbox();
  const wsub = a.subscribe('cl.*', wild.handler);
  assert.deepEqual(await wsub.ready, { epoch: '', offset: 0, replay: 0 });
  assert.equal(wsub.epoch, null, 'a pattern has no position of its own');
  assert.deepEqual(await b.publish('cl.room', 2), { offset: 2, reach: 1 });
  assert.deepEqual(await b.publish('cl.other', 3), { offset: 1, reach: 1 });
  await wild.until(2);
  await room.until(2);
  const byTopic = (x, y) => x[1].topic.localeCompare(y[1].topic);
  assert.deepEqual([...wild.items].sort(byTopic), [[3, { topic: 'cl.other', offset: 1 }], [2, { topic: 'cl.room', offset: 2 }]]);
  assert.deepEqual(room.items[1], [2, { topic: 'cl.room', offset: 2 }]);

  // One subscription per topic per client.
  assert.throws(() => a.subscribe('cl.room', () => {}), (e) => e instanceof HeraldError && e.code === 'already_subscribed');
  assert.equal(a.getSubscription('cl.room'), sub);

  // last N replays the newest N messages the topic holds.
  const late = inbox();
  const lsub = b.subscribe('cl.room', late.handler, { last: 5 });
  assert.deepEqual(await lsub.ready, { epoch: ack.epoch, offset: 2, replay: 2 });
  await late.until(2);
  assert.deepEqual(late.items, [[{ text: 'hi', n: [1, 2] }, { topic: 'cl.room', offset: 1 }], [2, { topic: 'cl.room', offset: 2 }]]);

  // After unsubscribe() the handler gets nothing more (the pattern still does), and the topic
  // can be subscribed again.
  await sub.unsubscribe();
  assert.equal(sub.state, 'unsubscribed');
  assert.equal(a.getSubscription('cl.room'), null);
  await sub.unsubscribe(); // twice is harmless
  await b.publish('cl.room', 4);
  await wild.until(3);
  assert.equal(room.items.length, 2);
  const again = a.subscribe('cl.room', room.handler);
  assert.equal((await again.ready).offset, 3);
  await b.publish('cl.room', 5);
  await room.until(3);
  assert.deepEqual(room.items[2], [5, { topic: 'cl.room', offset: 4 }]);
});

test('a stored position resumes a new subscription with exactly the missed messages', T, async () => {
  const p = await connected();
  const s = await connected();
  const first = inbox();
  const sub = s.subscribe('cl.resume', first.handler);
  await sub.ready;
  for (let i = 1; i <= 3; i++) await p.publish('cl.resume', i);
  await first.until(3);
  await sub.unsubscribe();
  const saved = { epoch: sub.epoch, offset: sub.offset };
  assert.equal(saved.offset, 3);
  for (let i = 4; i <= 6; i++) await p.publish('cl.resume', i);
  const rest = inbox();
  const resumed = s.subscribe('cl.resume', rest.handler, { recover: saved });
  assert.deepEqual(await resumed.ready, { epoch: saved.epoch, offset: 6, replay: 3, recovered: true });
  await rest.until(3);
  assert.deepEqual(rest.items.map(([d, ctx]) => [d, ctx.offset]), [[4, 4], [5, 5], [6, 6]]);
});

test('server errors reject with HeraldError carrying the server code; the connection stays', T, async () => {
  const c = await connected();
  const err = await c.publish('a..b', 1).then(() => null, (e) => e);
  assert.ok(err instanceof HeraldError);
  assert.ok(err instanceof Error);
  assert.equal(err.name, 'HeraldError');
  assert.equal(err.code, 'bad_topic');
  assert.equal(typeof err.message, 'string');
  await assert.rejects(c.publish('cl.*', 1), { code: 'bad_topic' });

  const bad = c.subscribe('a..b', () => {});
  const errorEvent = next(bad, 'error');
  await assert.rejects(bad.ready, { name: 'HeraldError', code: 'bad_topic' });
  assert.equal((await errorEvent).code, 'bad_topic');
  assert.equal(bad.state, 'unsubscribed', 'a refused subscription ends');
  assert.equal(c.getSubscription('a..b'), null);

  assert.equal(c.state, 'connected');
  assert.equal((await c.publish('cl.fine', 1)).offset, 1);

  // too_many_subscriptions and not_subscribed, from a server allowing one subscription.
  const small = await startHerald(['--threads', '1', '--max-subscriptions', '1']);
  try {
    const d = await connected({}, small.url('/ws'));
    await d.subscribe('m.one').ready;
    await assert.rejects(d.subscribe('m.two').ready, { code: 'too_many_subscriptions' });
    // Unsubscribed before the server's refusal arrives: the unsub finds nothing to remove.
    const three = d.subscribe('m.three');
    const unsub = three.unsubscribe();
    await assert.rejects(three.ready, { code: 'unsubscribed' });
    await assert.rejects(unsub, { name: 'HeraldError', code: 'not_subscribed' });
    assert.equal(d.state, 'connected');
    d.close();
  } finally {
    await small.stop();
  }
});

test('requests made while not connected are queued and sent on connect, up to queueLimit', T, async () => {
  const c = client({ queueLimit: 3 });
  const mine = inbox();
  const sub = c.subscribe('cl.queue', mine.handler);
  const p1 = c.publish('cl.queue', 'one');
  const p2 = c.publish('cl.queue', 'two');
  const p3 = c.ping();
  await assert.rejects(c.publish('cl.queue', 'three'), { name: 'HeraldError', code: 'queue_full' });
  assert.equal(c.state, 'idle');
  await c.connect();
  // Subscriptions go out before the queue, so the client receives its own queued messages.
  assert.deepEqual(await p1, { offset: 1, reach: 1 });
  assert.deepEqual(await p2, { offset: 2, reach: 1 });
  assert.equal(typeof await p3, 'number');
  await sub.ready;
  await mine.until(2);
  assert.deepEqual(mine.data(), ['one', 'two']);

  // close() rejects what is queued.
  const d = client();
  const never = d.publish('cl.queue', 'never');
  const neverPing = d.ping();
  d.close();
  await assert.rejects(never, { code: 'closed' });
  await assert.rejects(neverPing, { code: 'closed' });

  // requestTimeout counts time in the queue; a request that timed out there is never sent.
  const e = client({ requestTimeout: 100 });
  const t0 = Date.now();
  await assert.rejects(e.publish('cl.queue.timeout', 'late'), { code: 'timeout' });
  assert.ok(Date.now() - t0 >= 90);
  await e.connect();
  // Requests on one connection are answered in order: had the timed-out publish been sent on
  // connect, this later subscription would see offset 1.
  assert.equal((await e.subscribe('cl.queue.timeout').ready).offset, 0, 'the timed-out request was not sent');
});

test('request timeout, requests in flight at a disconnect, duplicates and stray errors (fake server)', T, async () => {
  const requests = [];
  const srv = await fakeServer((req, ws) => {
    requests.push(req);
    if (req.op === 'ping') ws.send(JSON.stringify({ type: 'pong', id: req.id }));
    if (req.op === 'pub' && req.data === 'drop') ws.terminate();
    if (req.op === 'pub' && req.data === 'late') setTimeout(() => ws.send(JSON.stringify({ type: 'ack', op: 'pub', id: req.id, topic: req.topic, offset: 9, reach: 0 })), 300);
    if (req.op === 'sub') {
      // A resubscription is acknowledged as recovered with nothing missed, and then gets the
      // same messages again, as a buggy server might send them.
      const ack = { type: 'ack', op: 'sub', id: req.id, topic: req.topic, epoch: 'e1', offset: 0, replay: 0 };
      if (req.recover) Object.assign(ack, { offset: 3, recovered: true });
      ws.send(JSON.stringify(ack));
      for (const offset of [1, 2, 2, 1, 3]) ws.send(JSON.stringify({ type: 'msg', topic: req.topic, data: `m${offset}`, offset }));
      ws.send(JSON.stringify({ type: 'msg', topic: 'elsewhere', data: 'not mine', offset: 1 }));
      ws.send(JSON.stringify({ type: 'future-type', whatever: true }));
      ws.send(JSON.stringify({ type: 'error', code: 'bad_json', message: 'not valid JSON' }));
    }
  });
  try {
    const c = await connected({ requestTimeout: 150, pingInterval: 0 }, srv.url);
    const t0 = Date.now();
    await assert.rejects(c.publish('t', 'ignored'), { name: 'HeraldError', code: 'timeout' });
    const waited = Date.now() - t0;
    assert.ok(waited >= 140 && waited < 5000, `timed out after ${waited} ms`);
    await assert.rejects(c.publish('t', 'late'), { code: 'timeout' }); // its answer comes later: ignored

    // Duplicated offsets are delivered once; messages of other topics and unknown types are not
    // delivered; an error without an id is reported on 'error'.
    const got = inbox();
    const stray = next(c, 'error');
    const sub = c.subscribe('t', got.handler);
    await got.until(3);
    const e = await stray;
    assert.ok(e instanceof HeraldError);
    assert.equal(e.code, 'bad_json');
    assert.deepEqual(got.items, [['m1', { topic: 't', offset: 1 }], ['m2', { topic: 't', offset: 2 }], ['m3', { topic: 't', offset: 3 }]]);

    // A request in flight when the connection drops rejects with 'disconnected' (it is not
    // retried), and the client reconnects.
    const down = next(c, 'disconnected');
    const back = next(c, 'connected');
    const resubscribed = next(sub, 'subscribed');
    await assert.rejects(c.publish('t', 'drop'), { code: 'disconnected' });
    const ev = await down;
    assert.equal(ev.code, 1006);
    assert.equal(ev.reconnect, true);
    assert.deepEqual(await back, { session: 'fake-2' });
    assert.deepEqual(await resubscribed, { epoch: 'e1', offset: 3, replay: 0, recovered: true });
    await c.ping(); // answered after the messages the resubscription brought

    assert.equal(requests.filter((r) => r.data === 'drop').length, 1, 'a publish is not sent twice');
    const resub = requests.filter((r) => r.op === 'sub');
    assert.equal(resub.length, 2);
    assert.deepEqual(resub[1].recover, { epoch: 'e1', offset: 3 }, 'resubscribed from the last offset seen');
    assert.equal(got.items.length, 3, 'the replayed duplicates of the fake server were dropped');
  } finally {
    await srv.close();
  }
});

test('no pong within pingTimeout closes the socket (4000) and reconnects (fake server)', T, async () => {
  let answerPings = true;
  let pings = 0;
  let threePings;
  const answeredThree = new Promise((resolve) => { threePings = resolve; });
  const srv = await fakeServer((req, ws) => {
    if (req.op !== 'ping') return;
    if (++pings === 3) threePings();
    if (answerPings) ws.send(JSON.stringify({ type: 'pong', id: req.id }));
  });
  try {
    const c = await connected({ pingInterval: 50, pingTimeout: 200 }, srv.url);
    await answeredThree; // answered pings keep the connection
    assert.equal(c.state, 'connected');
    const closedByClient = new Promise((resolve) => srv.sockets[0].once('close', (code) => resolve(code)));
    const down = next(c, 'disconnected');
    const back = next(c, 'connected');
    answerPings = false;
    const ev = await down;
    assert.equal(ev.code, 4000);
    assert.equal(ev.reason, 'ping timeout');
    assert.equal(ev.reconnect, true);
    assert.equal(await closedByClient, 4000);
    answerPings = true;
    assert.deepEqual(await back, { session: 'fake-2' });
  } finally {
    await srv.close();
  }
});

test('reconnect backoff: full jitter within [0, cap], caps doubling up to maxDelay (fake WebSocket)', T, async () => {
  // With random() near 1 every delay is just under its cap, which shows the caps.
  const random = Math.random;
  Math.random = () => 0.9999;
  try {
    const WS = fakeWebSocket((s) => s.end(1006));
    const c = client({ WebSocket: WS, minDelay: 8, maxDelay: 64 }, 'ws://fake/ws');
    const events = [];
    const seven = new Promise((resolve) => c.on('disconnected', (e) => { events.push(e); if (events.length === 7) resolve(); }));
    c.connect();
    await seven;
    c.close();
    const caps = [8, 16, 32, 64, 64, 64, 64];
    events.forEach((e, i) => {
      assert.equal(e.code, 1006);
      assert.equal(e.reconnect, true);
      assert.equal(e.attempt, i + 1);
      assert.ok(e.delay <= caps[i] && e.delay >= Math.floor(caps[i] * 0.999) - 1, `delay ${e.delay} for cap ${caps[i]}`);
    });
    assert.equal(WS.instances[0].protocol, 'herald.v1');

    // A good connection (one that delivered a message, or stayed up STABLE_AFTER = 5 s) resets
    // the backoff, and a slow consumer (4008) then comes back at once. A welcome alone is not
    // enough: a server that closes with 4008 right after every welcome is retried with backoff.
    // The clock is moved on by hand for the connection that stays up.
    let skew = 0;
    const realNow = performance.now.bind(performance);
    const clock = mock.method(performance, 'now', () => realNow() + skew);
    const WS2 = fakeWebSocket((s, n) => {
      if (n === 3) {
        s.welcome(n);
        s.message({ type: 'msg', topic: 't', data: 1, offset: 1 });
        s.end(4008);
      } else if (n === 7) {
        s.welcome(n);
        skew += 5000;
        s.end(4008);
      } else if (n >= 4 && n <= 8) {
        s.welcome(n);
        s.end(4008);
      } else s.end(1006);
    });
    const d = client({ WebSocket: WS2, minDelay: 8, maxDelay: 64 }, 'ws://fake/ws');
    const ev2 = [];
    const nine = new Promise((resolve) => d.on('disconnected', (e) => { ev2.push(e); if (ev2.length === 9) resolve(); }));
    d.connect();
    await nine;
    d.close();
    clock.mock.restore();
    assert.deepEqual(ev2.map((e) => [e.code, e.delay]), [
      [1006, 7], [1006, 15], // no welcome yet: backing off
      [4008, 0], // a message came: good, back at once
      [4008, 15], [4008, 31], [4008, 63], // closed right after each welcome: backing off
      [4008, 0], // up for 5 s: good again
      [4008, 15], [1006, 31],
    ]);
  } finally {
    Math.random = random;
  }

  // With the real random() each delay is anywhere in [0, cap).
  const WS3 = fakeWebSocket((s) => s.end(1006));
  const e = client({ WebSocket: WS3, minDelay: 1, maxDelay: 4 }, 'ws://fake/ws');
  const delays = [];
  const enough = new Promise((resolve) => e.on('disconnected', (ev) => { delays.push(ev.delay); if (delays.length === 40) resolve(); }));
  e.connect();
  await enough;
  e.close();
  delays.forEach((delay, i) => {
    const cap = Math.min(4, 2 ** i);
    assert.ok(Number.isInteger(delay) && delay >= 0 && delay <= cap, `delay ${delay} for cap ${cap}`);
  });
});

test('no reconnect after 1002, 1003, 1008 or 4400-4499; reconnect after the others (fake WebSocket)', T, async () => {
  for (const code of [1002, 1003, 1008, 4400, 4403, 4499]) {
    const WS = fakeWebSocket((s, n) => { s.welcome(n); setTimeout(() => s.end(code, 'refused'), 0); });
    const c = client({ WebSocket: WS, minDelay: 1, maxDelay: 5 }, 'ws://fake/ws');
    const sub = c.subscribe('t');
    await c.connect();
    const ev = await next(c, 'disconnected');
    assert.deepEqual(ev, { code, reason: 'refused', reconnect: false, delay: null }, `close ${code}`);
    assert.equal(c.state, 'closed');
    await assert.rejects(sub.ready, { code: 'closed' }, 'a subscription never acknowledged reports the close');
    await assert.rejects(c.publish('t', 1), { code: 'closed' });
    await sleep(30); // several times maxDelay: nothing reopens
    assert.equal(WS.instances.length, 1, `close ${code}: no second socket`);
  }

  // Refused before the welcome: connect() rejects.
  const WS = fakeWebSocket((s) => s.end(4401, 'no'));
  const refused = client({ WebSocket: WS }, 'ws://fake/ws');
  await assert.rejects(refused.connect(), { name: 'HeraldError', code: 'closed', closeCode: 4401 });

  for (const code of [1000, 1001, 1006, 1007, 1009, 1011, 4008]) {
    const WS2 = fakeWebSocket((s, n) => { s.welcome(n); if (n === 1) setTimeout(() => s.end(code), 0); });
    const c = client({ WebSocket: WS2, minDelay: 1, maxDelay: 5 }, 'ws://fake/ws');
    await c.connect();
    const ev = await next(c, 'disconnected');
    assert.equal(ev.reconnect, true, `close ${code}`);
    assert.equal(typeof ev.delay, 'number');
    await next(c, 'connected');
    assert.equal(c.session, 's-2');
  }

  // reconnect: false stops after any close.
  const WS4 = fakeWebSocket((s, n) => { s.welcome(n); setTimeout(() => s.end(1006), 0); });
  const once = client({ WebSocket: WS4, reconnect: false }, 'ws://fake/ws');
  await once.connect();
  assert.deepEqual(await next(once, 'disconnected'), { code: 1006, reason: '', reconnect: false, delay: null });
  assert.equal(once.state, 'closed');
});

test('subscriptions outlive connections: resent after each welcome before the queue, with recovery (fake WebSocket)', T, async () => {
  const WS = fakeWebSocket((s, n) => s.welcome(n));
  const c = client({ WebSocket: WS, minDelay: 1, maxDelay: 5 }, 'ws://fake/ws');
  const got = inbox();
  const exact = c.subscribe('a', got.handler, { last: 3, presence: { info: { name: 'ann' } } });
  const pattern = c.subscribe('b.*', () => {});
  const queued = c.publish('a', 'queued');
  await c.connect();
  const strip = (sent) => sent.map(({ id, ...rest }) => rest);
  let ws = WS.instances[0];
  assert.deepEqual(strip(ws.sent), [
    { op: 'sub', topic: 'a', last: 3, presence: { info: { name: 'ann' } } },
    { op: 'sub', topic: 'b.*' },
    { op: 'pub', topic: 'a', data: 'queued' },
  ]);
  // The server's side, by hand: the ack (3 to replay), the replay, one duplicate, a live one.
  ws.message({ type: 'ack', op: 'sub', id: ws.sent[0].id, topic: 'a', epoch: 'E', offset: 10, replay: 3 });
  assert.equal(exact.offset, 7);
  for (const offset of [8, 9, 10, 10, 11]) ws.message({ type: 'msg', topic: 'a', data: offset, offset });
  assert.deepEqual(got.data(), [8, 9, 10, 11]);
  assert.deepEqual(await exact.ready, { epoch: 'E', offset: 10, replay: 3 });

  // The connection breaks: the publish in flight fails, both subscriptions go out again, the
  // exact one recovering from offset 11 (its `last` is not used again).
  const back = next(c, 'connected');
  ws.end(1006);
  await assert.rejects(queued, { code: 'disconnected' });
  assert.equal(exact.state, 'subscribing');
  await back;
  ws = WS.instances[1];
  assert.deepEqual(strip(ws.sent), [
    { op: 'sub', topic: 'a', recover: { epoch: 'E', offset: 11 }, presence: { info: { name: 'ann' } } },
    { op: 'sub', topic: 'b.*' },
  ]);
  const resubscribed = next(exact, 'subscribed');
  const unrecovered = next(exact, 'unrecovered');
  ws.message({ type: 'ack', op: 'sub', id: ws.sent[0].id, topic: 'a', epoch: 'F', offset: 2, replay: 0, recovered: false });
  assert.deepEqual(await resubscribed, { epoch: 'F', offset: 2, replay: 0, recovered: false });
  assert.deepEqual(await unrecovered, { epoch: 'F', offset: 2, replay: 0, recovered: false });
  assert.deepEqual([exact.epoch, exact.offset], ['F', 2]);
  ws.message({ type: 'msg', topic: 'a', data: 'new epoch', offset: 3 });
  assert.deepEqual(got.data().at(-1), 'new epoch');

  // Unsubscribing while away needs no server; the pattern is not sent again.
  const away = next(c, 'disconnected');
  ws.end(1001);
  await away;
  await pattern.unsubscribe();
  assert.equal(pattern.state, 'unsubscribed');
  await next(c, 'connected');
  assert.deepEqual(strip(WS.instances[2].sent).map((m) => m.topic), ['a']);

  // close() keeps the subscription for a later connect().
  c.close();
  await c.connect();
  assert.deepEqual(strip(WS.instances[3].sent), [
    { op: 'sub', topic: 'a', recover: { epoch: 'F', offset: 3 }, presence: { info: { name: 'ann' } } },
  ]);
  assert.equal(WS.instances[0].closedWith, null, 'a socket that closed by itself is not closed again');
  assert.deepEqual(WS.instances[2].closedWith, { code: 1000, reason: '' }, 'close() closes with 1000');
});

test('no welcome within connectTimeout: the socket is given up (4000) and another one tried (fake WebSocket)', T, async () => {
  const WS = fakeWebSocket((s, n) => { s.open(); if (n === 2) s.welcome(n); });
  const c = client({ WebSocket: WS, connectTimeout: 50, minDelay: 1, maxDelay: 5 }, 'ws://fake/ws');
  const down = next(c, 'disconnected');
  const t0 = Date.now();
  await c.connect();
  const ev = await down;
  assert.equal(ev.code, 4000);
  assert.equal(ev.reason, 'connect timeout');
  assert.equal(ev.reconnect, true);
  assert.ok(Date.now() - t0 >= 45);
  assert.deepEqual(WS.instances[0].closedWith, { code: 4000, reason: 'connect timeout' });
  assert.equal(c.session, 's-2');
});

test('reconnect after the server is killed and restarted on the same port: new epoch, not recovered', T, async () => {
  const h = await startHerald(['--threads', '2']);
  let h2;
  try {
    const c = await connected({}, h.url('/ws'));
    const got = inbox();
    const sub = c.subscribe('cl.restart', got.handler);
    const ack1 = await sub.ready;
    await c.publish('cl.restart', 'before');
    await got.until(1);
    const session1 = c.session;
    const states = [];
    c.on('state', (s) => states.push(s));

    // A publish in flight when the server dies: freeze the server, publish, kill it.
    await h.kill('SIGSTOP');
    const down = next(c, 'disconnected');
    const inflight = assert.rejects(c.publish('cl.restart', 'lost?'), { code: 'disconnected' });
    await h.kill('SIGKILL');
    await inflight;
    const ev = await down;
    assert.equal(ev.reconnect, true);
    assert.ok(ev.delay >= 0 && ev.delay <= 20, `first delay ${ev.delay} within minDelay`);

    // While it is away, requests wait in the queue.
    const queued = c.publish('cl.restart', 'queued');
    const resubscribed = next(sub, 'subscribed');
    const unrecovered = next(sub, 'unrecovered');
    const back = next(c, 'connected');
    h2 = await startHerald(['--threads', '2'], { port: h.port });
    await back;
    assert.notEqual(c.session, session1);
    const ack2 = await resubscribed;
    assert.equal(ack2.recovered, false, 'a restarted server is a new epoch');
    assert.notEqual(ack2.epoch, ack1.epoch);
    assert.equal(ack2.offset, 0);
    assert.deepEqual(await unrecovered, ack2);
    assert.equal(sub.epoch, ack2.epoch);
    // The queued publish went out after the resubscription: offset 1 of the new epoch, which
    // the old epoch's offset 1 must not shadow.
    assert.deepEqual(await queued, { offset: 1, reach: 1 });
    await got.until(2);
    assert.deepEqual(got.items, [['before', { topic: 'cl.restart', offset: 1 }], ['queued', { topic: 'cl.restart', offset: 1 }]]);
    assert.equal(states[0], 'disconnected');
    assert.equal(states.at(-1), 'connected');
    assert.ok(states.every((s) => ['disconnected', 'connecting', 'connected'].includes(s)), states.join());
  } finally {
    if (h2) await h2.stop();
    else await h.kill('SIGKILL');
  }
});

test('recovery with publishing in flight: the subscriber gets every number exactly once, in order', T, async () => {
  const pub = await connected();
  const c = await connected();
  const seen = [];
  const drops = [40, 120];
  let published = 0;
  let stop = false;
  let wake = () => {};
  const changed = () => new Promise((resolve) => { wake = resolve; });
  const sub = c.subscribe('cl.feed', (n) => {
    seen.push(n);
    // Drop the connection without a close handshake, as a failing network would: ws's
    // terminate() on the client's internal socket.
    if (drops.includes(seen.length)) c._ws.terminate();
    wake();
  });
  await sub.ready;
  const acks = [];
  sub.on('subscribed', (a) => { acks.push(a); wake(); });
  const disconnects = [];
  const bursts = [];
  c.on('disconnected', (e) => {
    if (!e.reconnect) return; // the close() after the test
    disconnects.push(e);
    // More numbers on their way while the subscriber is away (they follow the same counter
    // on the same connection, so each number is its offset).
    for (let k = 0; k < 10; k++) bursts.push(pub.publish('cl.feed', ++published));
  });

  const publishing = (async () => {
    while (!stop) {
      const batch = [];
      for (let k = 0; k < 4; k++) batch.push(pub.publish('cl.feed', ++published));
      await Promise.all(batch);
    }
  })();
  while (seen.length < 200 || acks.length < 2) await changed();
  stop = true;
  await publishing;
  await Promise.all(bursts);
  while (seen.length < published) await changed();

  assert.equal(disconnects.length, 2);
  assert.ok(disconnects.every((e) => e.code === 1006 && e.reconnect));
  assert.equal(acks.length, 2);
  assert.ok(acks.every((a) => a.recovered === true), JSON.stringify(acks));
  assert.deepEqual(seen, Array.from({ length: published }, (_, i) => i + 1));
  assert.equal(sub.offset, published);
  // The bursts went out before the subscriber began to reconnect, so recovery had to replay.
  assert.ok(acks.some((a) => a.replay > 0), `replays ${acks.map((a) => a.replay)}`);
});

test('presence: members with info, join and leave events, presence() count and members', T, async () => {
  const a = await connected();
  const b = await connected();
  const sa = a.subscribe('cl.presence', { presence: { info: { name: 'ann' } } });
  await sa.ready;
  const joins = [];
  sa.on('join', (m) => joins.push(m));
  const bobJoined = next(sa, 'join');
  const sb = b.subscribe('cl.presence', () => {}, { presence: { info: { name: 'bob' } } });
  await sb.ready;
  assert.deepEqual(await bobJoined, { session: b.session, info: { name: 'bob' } });

  const bySession = (x, y) => x.session.localeCompare(y.session);
  const all = await a.presence('cl.presence');
  assert.equal(all.count, 2);
  assert.deepEqual([...all.members].sort(bySession),
    [{ session: a.session, info: { name: 'ann' } }, { session: b.session, info: { name: 'bob' } }].sort(bySession));
  assert.deepEqual(await sb.presence({ limit: 0 }), { count: 2, members: [] });
  assert.equal((await b.presence('cl.presence', { limit: 1 })).members.length, 1);

  // presence: true is a member without info.
  const c = await connected();
  const carlJoined = next(sa, 'join', (m) => m.session === c.session);
  c.subscribe('cl.presence', { presence: true });
  assert.deepEqual(await carlJoined, { session: c.session, info: null });
  assert.equal((await a.presence('cl.presence', { limit: 0 })).count, 3);

  // Leaving: by unsubscribing, and by closing the connection.
  const bobLeft = next(sa, 'leave', (m) => m.session === b.session);
  await sb.unsubscribe();
  assert.deepEqual(await bobLeft, { session: b.session, info: { name: 'bob' } });
  const carlSession = c.session;
  const carlLeft = next(sa, 'leave', (m) => m.session === carlSession);
  c.close();
  assert.deepEqual(await carlLeft, { session: carlSession, info: null });
  assert.deepEqual(await a.presence('cl.presence'), { count: 1, members: [{ session: a.session, info: { name: 'ann' } }] });
  assert.ok(joins.every((m) => m.session !== a.session), 'no join for oneself');

  // A subscription without presence is not a member and is told nothing.
  const quiet = b.subscribe('cl.presence', () => {});
  quiet.on('join', () => assert.fail('join on a subscription without presence'));
  await quiet.ready;
  assert.equal((await a.presence('cl.presence', { limit: 0 })).count, 1);

  // Errors: presence on a pattern, limit out of range.
  await assert.rejects(a.subscribe('cl.*', { presence: true }).ready, { code: 'bad_request' });
  await assert.rejects(a.presence('cl.presence', { limit: 1001 }), { code: 'bad_request' });
});

test('presence: a member that reconnects leaves with its old session and joins with its new one', T, async () => {
  const watcher = await connected();
  const w = watcher.subscribe('cl.presence2', { presence: true });
  await w.ready;
  const m = await connected();
  const joined = next(w, 'join', (x) => x.session === m.session);
  const ms = m.subscribe('cl.presence2', { presence: { info: { name: 'mo' } } });
  await ms.ready;
  await joined;
  const old = m.session;
  const left = next(w, 'leave', (x) => x.session === old);
  const rejoined = next(w, 'join', (x) => x.session !== old);
  const resubscribed = next(ms, 'subscribed');
  m._ws.terminate();
  assert.deepEqual(await left, { session: old, info: { name: 'mo' } });
  const again = await rejoined;
  await resubscribed;
  assert.equal(again.session, m.session);
  assert.deepEqual(again.info, { name: 'mo' });
  assert.equal((await watcher.presence('cl.presence2', { limit: 0 })).count, 2);
});

test('a throwing handler or listener is reported on error and does not stop delivery', T, async () => {
  const c = await connected();
  const errors = [];
  c.on('error', (e) => errors.push(e));
  const got = inbox();
  const sub = c.subscribe('cl.throw', (n, ctx) => {
    got.handler(n, ctx);
    if (n === 1) throw new Error('handler bug');
  });
  sub.on('subscribed', () => { throw new Error('listener bug'); });
  await sub.ready;
  await c.publish('cl.throw', 1);
  await c.publish('cl.throw', 2);
  await got.until(2);
  assert.deepEqual(got.data(), [1, 2]);
  assert.deepEqual(errors.map((e) => e.message).sort(), ['handler bug', 'listener bug']);
});

test('the client uses no regular-expression lookbehind, which Safari before 16.4 cannot parse', () => {
  // A syntax error there stops the whole module, and the chat page with it, from loading.
  const src = readFileSync(new URL('../../clients/js/herald.js', import.meta.url), 'utf8');
  assert.equal(/\(\?<[!=]/.test(src), false);
});

test('a lone surrogate in any string of a request rejects at the call site with bad_string', T, async () => {
  // Without the check the server refuses the text as bad_json with no id: the publish would end
  // only with its timeout and the subscription never.
  const c = await connected({ requestTimeout: 2000 });
  const errors = [];
  c.on('error', (e) => errors.push(e));
  const lone = 'broken \ud83d';
  await assert.rejects(c.publish('cl.utf16', { text: lone }), { name: 'HeraldError', code: 'bad_string' });
  await assert.rejects(c.publish('cl.utf16', { [`k\udc00`]: 1 }), { code: 'bad_string' });
  await assert.rejects(c.publish(`cl.utf16\ud800`, 1), { code: 'bad_string' });
  const sub = c.subscribe('cl.utf16', { presence: { info: { name: `ann${lone}` } } });
  await assert.rejects(sub.ready, { code: 'bad_string' });
  assert.equal(sub.state, 'unsubscribed');

  // Well-formed strings go through untouched: a surrogate pair, and the six characters of an
  // escape written as text.
  const got = inbox();
  await c.subscribe('cl.utf16', got.handler, { presence: { info: { name: 'ann 😀' } } }).ready;
  const fine = { text: 'smile 😀', escape: '\\ud83d', [`k😀`]: '\\\\\\ud800' };
  assert.equal((await c.publish('cl.utf16', fine)).offset, 1);
  await got.until(1);
  assert.deepEqual(got.data(), [fine]);
  assert.equal(c.state, 'connected');
  assert.deepEqual(errors, [], 'no stray error from the server');
});

test('a pattern gets every live message of a topic while an exact subscription to it starts', T, async () => {
  // The ack's replay also counts messages the connection had not been sent yet (published just
  // before the subscription): they are live for a pattern too. A client that kept every replayed
  // message from its patterns (an earlier fix for duplicates) lost those for good.
  const c = await connected();
  const wild = inbox();
  await c.subscribe('cl.live.*', wild.handler).ready;
  const N = 30;
  for (let i = 0; i < N; i++) {
    // In the same tick: a publish to the topic, then an exact subscription to it.
    const pub = c.publish(`cl.live.t${i}`, `m${i}`);
    const sub = c.subscribe(`cl.live.t${i}`, () => {});
    await sub.ready;
    await pub;
  }
  await wild.until(N);
  const got = new Set(wild.data());
  const missing = Array.from({ length: N }, (_, i) => `m${i}`).filter((m) => !got.has(m));
  assert.deepEqual(missing, [], 'the pattern got every message');
});

test('a pattern does not get twice what an exact subscription replays', T, async () => {
  // The replay of `last` goes back into what the pattern was already delivered on this
  // connection; the ack's `delivered` says how far, so those messages go to the exact
  // subscription only. Messages after it (published just before the subscription) are new to
  // the pattern and must still reach it.
  const c = await connected();
  const wild = inbox();
  await c.subscribe('cl.rep.*', wild.handler).ready;
  for (let i = 1; i <= 5; i++) await c.publish('cl.rep.a', `m${i}`);
  await wild.until(5);
  const exact = inbox();
  const pubs = [c.publish('cl.rep.a', 'm6'), c.publish('cl.rep.a', 'm7')];
  const sub = c.subscribe('cl.rep.a', exact.handler, { last: 10 });
  const ack = await sub.ready;
  await Promise.all(pubs);
  await exact.until(7);
  await c.publish('cl.rep.a', 'm8'); // live for both
  await exact.until(8);
  await c.ping(); // anything still on its way to the pattern has arrived
  assert.deepEqual(exact.data(), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8']);
  assert.deepEqual(wild.data(), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8'],
    `each message once for the pattern (ack ${JSON.stringify(ack)})`);
});

test('off(event, fn) removes a listener added with once(event, fn)', T, async () => {
  const c = client();
  const calls = [];
  const fn = (s) => calls.push(s);
  c.once('state', fn);
  c.off('state', fn);
  const kept = [];
  c.once('state', (s) => kept.push(s));
  await c.connect();
  assert.deepEqual(calls, [], 'the once listener was removed');
  assert.deepEqual(kept, ['connecting'], 'another once listener still runs, once');
  // The same on a subscription.
  const sub = c.subscribe('cl.once');
  const subCalls = [];
  const onSub = () => subCalls.push(1);
  sub.once('subscribed', onSub).off('subscribed', onSub);
  await sub.ready;
  assert.deepEqual(subCalls, []);
});

test('requests cut off by a lost connection carry its close code (fake WebSocket)', T, async () => {
  // 1009: the server refused a message as too big; 1006: the network broke. An app can tell.
  for (const code of [1009, 1006]) {
    const WS = fakeWebSocket((s, n) => s.welcome(n));
    const c = client({ WebSocket: WS, minDelay: 1, maxDelay: 5 }, 'ws://fake/ws');
    await c.connect();
    const pending = c.publish('t', 'x'.repeat(100));
    WS.instances[0].end(code, code === 1009 ? 'too big' : '');
    await assert.rejects(pending, { name: 'HeraldError', code: 'disconnected', closeCode: code });
  }
});
