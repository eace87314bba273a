// The benchmark's load generator (bench/wsload) against a real Herald, one short run per scenario:
// every figure in README's benchmark tables comes from it, so what it counts must be right. Each
// run must finish by itself, account for every message it was owed (nothing lost, out of order or
// misrouted) and report what the scripts read from its JSON line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';
import { startHerald } from './herald.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const wsload = process.env.WSLOAD_BIN || path.join(here, '../../build/wsload');
const run = promisify(execFile);
let herald;

before(async () => {
  herald = await startHerald(['--threads', '2', '--echo-path', '/echo', '--max-message', '4194304']);
});
after(async () => { await herald.stop(); });

const pubsub = [
  '--text', '--subprotocol', 'herald.v1', '--skip-first', '2',
  '--sub-template', '{"op":"sub","topic":"{topic}"}',
  '--pub-template', '{"op":"pub","topic":"{topic}","data":"{payload}"}',
];

// Runs wsload (bounded: its own duration plus the settle time, and a hard timeout) and returns the
// parsed JSON line, with wsload's warnings as `stderr`; a non-zero exit fails the test with
// wsload's output.
async function load(args, { mayFail = false } = {}) {
  let stdout, stderr;
  try {
    ({ stdout, stderr } = await run(wsload, ['--warmup', '0.3', '-d', '1', ...args], { timeout: 60000 }));
  } catch (err) {
    if (!mayFail || err.code === undefined || err.killed) throw err;
    ({ stdout, stderr } = err); // exit 1 ("no round trip completed") still reports
  }
  const line = stdout.split('\n').find((l) => l.startsWith('JSON '));
  assert.ok(line, `no JSON line in: ${stdout}`);
  return { ...JSON.parse(line.slice(5)), stderr };
}

function assertClean(r) {
  for (const k of ['errors', 'connect_errors', 'protocol_errors', 'closed']) assert.equal(r[k], 0, `${k}: ${JSON.stringify(r)}`);
  assert.equal(r.open, r.conns, 'every connection open to the end');
}

test('echo: every connection gets its messages back unchanged', async () => {
  const r = await load(['--scenario', 'echo', '--url', herald.url('/echo'), '-c', '20', '-w', '4']);
  assertClean(r);
  assert.equal(r.bad_echoes, 0);
  assert.ok(r.messages > 100, `only ${r.messages} echoes in a second`);
  assert.ok(r.p50_us > 0 && r.p99_us > 0, 'latency measured');
});

test('echo of 1 MiB messages: reads that fill the receive buffer are followed by more reads', async () => {
  // A message is larger than wsload's 256 KiB read buffer, so a read that fills it must be
  // followed by another before waiting (the sockets are edge-triggered): otherwise the rest of
  // the echo stays unread and the run stalls with no round trip.
  const r = await load(['--scenario', 'echo', '--url', herald.url('/echo'), '-c', '4', '-b', '1048576']);
  assertClean(r);
  assert.equal(r.bad_echoes, 0);
  assert.ok(r.messages >= 4, `only ${r.messages} echoes of 1 MiB in a second`);
});

test('fanout: every subscriber gets every publication, in order', async () => {
  const r = await load(['--scenario', 'fanout', '--url', herald.url('/ws'), '-c', '100', '-w', '16',
    '--settle', '5', '--server-pid', String(herald.proc.pid), ...pubsub]);
  assertClean(r);
  assert.equal(r.subscribers, 100);
  assert.ok(r.published > 0);
  assert.equal(r.expected, r.published * 100, 'each publication is owed to all 100 subscribers');
  assert.equal(r.received, r.expected);
  assert.equal(r.lost, 0);
  assert.equal(r.out_of_order, 0);
  assert.equal(r.misrouted, 0);
  assert.ok(r.server_cpu_us_per_msg > 0, 'the server CPU per delivery is measured');
  assert.ok(r.reads > 0 && r.reads <= r.messages * 2, `reads ${r.reads} for ${r.messages} deliveries`);
  assert.ok(Math.abs(r.msgs_per_read - r.messages / r.reads) < 0.01, `msgs_per_read ${r.msgs_per_read}`);
  // The publisher waits for its window to free: its thread blocks in epoll_wait many times a second.
  assert.ok(Number.isFinite(r.gen_sleeps_per_s) && r.gen_sleeps_per_s > 0, `gen_sleeps_per_s ${r.gen_sleeps_per_s}`);
});

test('--spin-us: a thread with recent events polls instead of sleeping, and counts the same', async () => {
  // With events at least every 100 ms the one thread never blocks in epoll_wait during the load
  // (without it, the run above blocks many times a second); what it counts does not change.
  const r = await load(['--scenario', 'fanout', '--url', herald.url('/ws'), '-c', '50', '-w', '16',
    '--spin-us', '100000', '--settle', '5', ...pubsub]);
  assertClean(r);
  assert.equal(r.spin_us, 100000);
  assert.ok(r.published > 0);
  assert.equal(r.received, r.expected);
  assert.equal(r.lost, 0);
  assert.ok(r.gen_sleeps_per_s < 100, `gen_sleeps_per_s ${r.gen_sleeps_per_s} while spinning`);
  for (const bad of ['-1', 'x', '1000001']) {
    await assert.rejects(run(wsload, ['--url', herald.url('/ws'), '--spin-us', bad]), (err) => err.code === 2);
  }
});

test('fanout, two wsload threads: the other thread\'s deliveries move the publisher on', async () => {
  // Thread 0 holds the publisher and subscriber 1, thread 1 subscribers 2 and 3. With one message
  // in flight each publication also waits for subscribers 2 and 3: when they get it last, their
  // thread must wake the publisher's. Without that wake the publisher looks again only when its
  // own sockets have news, or after a second of silence (the stall timeout, which warns): a few
  // publications in the run instead of thousands, and one missed wake is a warning.
  const r = await load(['--scenario', 'fanout', '--url', herald.url('/ws'), '-c', '3', '-w', '1',
    '-t', '2', '--settle', '5', ...pubsub]);
  assertClean(r);
  assert.equal(r.threads, 2);
  assert.doesNotMatch(r.stderr, /no progress/);
  assert.ok(r.published >= 200, `published ${r.published} in 1.3 s with one in flight`);
  assert.equal(r.received, r.published * 3);
  assert.equal(r.lost, 0);
  assert.equal(r.out_of_order, 0);
});

test('fanout, two wsload threads: a delivery on one after the other has finished is counted', async () => {
  // A broker that delivers at once to clients from 127.0.0.2 (client 1, on thread 0 with the
  // publisher) and 400 ms late to 127.0.0.3 and .4 (clients 2 and 3, thread 1): the message in
  // flight at the end reaches thread 1 while thread 0 has settled, drained and returned. Thread
  // 1's delivery completes it and wakes thread 0, whose eventfd must still be open.
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  const subs = new Map();
  wss.on('connection', (ws, req) => {
    ws.on('message', (data) => {
      const msg = data.toString();
      if (msg.startsWith('SUB ')) {
        subs.set(ws, req.socket.remoteAddress === '127.0.0.2' ? 0 : 400);
        ws.send(`OK ${msg}`);
      } else if (msg.startsWith('PUB ')) {
        const text = msg.slice(msg.indexOf(' ', 4) + 1);
        for (const [sub, delay] of subs) setTimeout(() => sub.readyState === 1 && sub.send(text), delay);
      }
    });
    ws.on('close', () => subs.delete(ws));
  });
  await new Promise((resolve) => wss.once('listening', resolve));
  try {
    const r = await load(['--scenario', 'fanout', '--url', `ws://127.0.0.1:${wss.address().port}/`, '-c', '3',
      '-w', '1', '-t', '2', '--text', '--skip-first', '1', '--settle', '3', '--bind-range', '127.0.0.1-127.0.0.4',
      '--sub-template', 'SUB {topic}', '--pub-template', 'PUB {topic} {payload}']);
    assertClean(r);
    assert.equal(r.threads, 2);
    assert.ok(r.published >= 2, `published ${r.published}`);
    assert.equal(r.received, r.published * 3);
    assert.equal(r.lost, 0);
  } finally {
    for (const ws of wss.clients) ws.terminate();
    await new Promise((resolve) => wss.close(resolve));
  }
});

test('rooms, two wsload threads: each client gets exactly its own room\'s messages', async () => {
  const r = await load(['--scenario', 'rooms', '--url', herald.url('/ws'), '-c', '200', '--rooms', '20',
    '--rate', '5', '--settle', '5', '-t', '2', ...pubsub]);
  assertClean(r);
  assert.ok(r.published >= 200, `published ${r.published}`);
  // Ten clients a room: each publication is owed to the ten, its publisher included.
  assert.equal(r.expected, r.published * 10);
  assert.equal(r.received, r.expected);
  assert.equal(r.lost, 0);
  assert.equal(r.misrouted, 0);
  assert.equal(r.out_of_order, 0);
});

// On a server of its own: on the shared one, the connections and messages of the tests before are
// still being freed (connections are reclaimed after a grace period), and malloc may hand that
// memory back to the kernel during this run, so its RSS could shrink under the measurement.
test('connect: connections are opened, subscribed, counted and measured', async () => {
  const own = await startHerald(['--threads', '2']);
  let r;
  try {
    r = await load(['--scenario', 'connect', '--url', own.url('/ws'), '-c', '300', '--own-topics',
      '--skip-first', '2', '--sub-template', '{"op":"sub","topic":"{topic}"}',
      '--server-pid', String(own.proc.pid)]);
  } finally {
    await own.stop();
  }
  assertClean(r);
  assert.equal(r.subscribers, 300);
  assert.equal(r.unready, 0);
  assert.ok(r.conns_per_s > 0);
  assert.ok(r.server_rss_start_kib > 0 && r.server_rss_end_kib >= r.server_rss_start_kib, 'RSS read from /proc');
});

// A server that answers the upgrade, sends one message and closes at once: the message and the end
// of the stream reach wsload together, in one readiness edge. A client that stopped reading at the
// short read would never notice the close.
test('a server that sends its last message and closes at once is seen closing', async () => {
  const server = net.createServer((sock) => {
    let head = '';
    sock.on('data', (d) => {
      if (head === null) return; // upgraded: what the client sends (its SUB) is not read
      head += d;
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const key = /sec-websocket-key:\s*(\S+)/i.exec(head.slice(0, end))[1];
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      const reply = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
      // The 101, one message and the FIN in one go: they are all in the client's socket before
      // it reads the 101, so its first read is short although the close is there too.
      head = null;
      sock.cork();
      sock.write(reply);
      sock.write(Buffer.from([0x81, 3, 0x62, 0x79, 0x65])); // text "bye"
      sock.end();
      sock.uncork();
    });
    sock.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address();
    const r = await load(['--scenario', 'connect', '--url', `ws://127.0.0.1:${port}/`, '-c', '100'], { mayFail: true });
    assert.equal(r.conns, 100);
    assert.equal(r.connect_errors, 0);
    assert.equal(r.closed, 100, `connections seen closed by the server: ${JSON.stringify(r)}`);
  } finally {
    server.close();
  }
});

// --multi, as the NATS peer needs it: a server that puts several deliveries in one WebSocket
// message (NATS sends several MSG lines in one frame). A small broker with ws: "SUB t" answered
// "OK SUB t"; "PUB t payload" queued, and on the next turn of the event loop each subscriber gets
// everything queued since in one message, a line per delivery. Every delivery must be counted.
test('--multi counts every delivery of a message that holds several', async () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  const subs = new Set();
  let queued = [];
  let frames = 0;
  const flush = () => {
    const text = queued.map((p) => `MSG ${p}\r\n`).join('');
    if (queued.length > 1) frames++;
    queued = [];
    for (const ws of subs) ws.send(text);
  };
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const msg = data.toString();
      if (msg.startsWith('SUB ')) {
        subs.add(ws);
        ws.send(`OK ${msg}`);
      } else if (msg.startsWith('PUB ')) {
        if (queued.length === 0) setImmediate(flush);
        queued.push(msg.slice(msg.indexOf(' ', 4) + 1));
      }
    });
    ws.on('close', () => subs.delete(ws));
  });
  await new Promise((resolve) => wss.once('listening', resolve));
  try {
    const r = await load(['--scenario', 'fanout', '--url', `ws://127.0.0.1:${wss.address().port}/`, '-c', '20',
      '-w', '16', '--multi', '--text', '--skip-first', '1', '--settle', '5',
      '--sub-template', 'SUB {topic}', '--pub-template', 'PUB {topic} {payload}']);
    assertClean(r);
    assert.ok(frames > 0, 'some messages held several deliveries');
    assert.ok(r.published > 0);
    assert.equal(r.expected, r.published * 20);
    assert.equal(r.received, r.expected);
    assert.equal(r.lost, 0);
    assert.equal(r.out_of_order, 0);
  } finally {
    for (const ws of wss.clients) ws.terminate();
    await new Promise((resolve) => wss.close(resolve));
  }
});

// bench/pubsub.sh SIDE=1 starts two wsloads at once and needs their measured windows to coincide:
// each creates --ready-file once connected, then waits for --go-file before its load starts.
test('--ready-file and --go-file: the load starts on the go, not before', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsload-gate-'));
  try {
    const ready = path.join(dir, 'a.ready');
    const go = path.join(dir, 'go');
    let settled = false;
    const job = run(wsload, ['--scenario', 'echo', '--url', herald.url('/echo'), '-c', '10',
      '--warmup', '0.3', '-d', '1', '--ready-file', ready, '--go-file', go], { timeout: 60000 })
      .finally(() => { settled = true; });
    for (let i = 0; i < 200 && !fs.existsSync(ready); i++) await sleep(50);
    assert.ok(fs.existsSync(ready), 'no ready file within 10 s');
    await sleep(2000); // longer than warm-up and window together
    assert.equal(settled, false, 'wsload ran its load without the go');
    const goAt = Date.now();
    fs.writeFileSync(go, '');
    const { stdout } = await job;
    const took = Date.now() - goAt;
    assert.ok(took >= 1300, `finished ${took} ms after the go: warm-up and window are 1.3 s`);
    const r = JSON.parse(stdout.split('\n').find((l) => l.startsWith('JSON ')).slice(5));
    assertClean(r);
    assert.ok(r.messages > 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('--go-file that never appears: wsload starts alone after the connect timeout', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsload-gate-'));
  try {
    const { stdout, stderr } = await run(wsload, ['--scenario', 'echo', '--url', herald.url('/echo'),
      '-c', '4', '--warmup', '0.2', '-d', '0.5', '--connect-timeout', '1',
      '--go-file', path.join(dir, 'never')], { timeout: 30000 });
    assert.match(stderr, /did not appear within the connect timeout/);
    const r = JSON.parse(stdout.split('\n').find((l) => l.startsWith('JSON ')).slice(5));
    assert.ok(r.messages > 0, 'the load ran');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
