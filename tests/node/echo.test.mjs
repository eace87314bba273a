// Real clients against the echo endpoint: Node's `ws` (with and without permessage-deflate) and
// `wscat` run as a user would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startHerald } from './herald.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
let herald;

before(async () => { herald = await startHerald(['--echo-path', '/echo', '--max-message', '4194304']); });
after(async () => { await herald.stop(); });

function open(options = {}) {
  const ws = new WebSocket(herald.url('/echo'), ['echo'], options);
  return new Promise((resolve, reject) => { ws.once('open', () => resolve(ws)); ws.once('error', reject); });
}

function nextMessage(ws) {
  return new Promise((resolve) => ws.once('message', (data, isBinary) => resolve({ data, isBinary })));
}

for (const perMessageDeflate of [false, true]) {
  const mode = perMessageDeflate ? 'with permessage-deflate' : 'without compression';

  test(`ws client ${mode}: text, binary and large messages come back intact`, async () => {
    const ws = await open({ perMessageDeflate });
    assert.equal(ws.protocol, 'echo');
    assert.equal(ws.extensions.includes('permessage-deflate'), perMessageDeflate);
    const cases = ['hello', 'κόσμε 😀', 'x'.repeat(70000), Buffer.from([0, 1, 2, 255]),
      Buffer.alloc(3 * 1024 * 1024, 0x5a)];
    for (const sent of cases) {
      const reply = nextMessage(ws);
      ws.send(sent);
      const { data, isBinary } = await reply;
      assert.equal(isBinary, Buffer.isBuffer(sent));
      assert.ok(Buffer.from(sent).equals(data), `echo of ${Buffer.byteLength(sent)} bytes differs`);
    }
    const closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.close(1000, 'done');
    assert.deepEqual(await closed, { code: 1000, reason: '' });
  });

  test(`ws client ${mode}: many messages in flight keep their order`, async () => {
    const ws = await open({ perMessageDeflate });
    const n = 2000;
    const got = [];
    const all = new Promise((resolve) => ws.on('message', (d) => { got.push(d.toString()); if (got.length === n) resolve(); }));
    for (let i = 0; i < n; i++) ws.send(`message ${i} ${'p'.repeat(i % 200)}`);
    await all;
    got.forEach((m, i) => assert.ok(m.startsWith(`message ${i} `), `message ${i} out of order: ${m.slice(0, 20)}`));
    ws.close();
  });
}

test('ws client: an oversized message closes with 1009', async () => {
  const ws = await open({ perMessageDeflate: false });
  const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  ws.send(Buffer.alloc(5 * 1024 * 1024));
  assert.equal(await closed, 1009);
});

test('wscat: sends a message and prints the echo', async () => {
  const wscat = path.join(here, 'node_modules', '.bin', 'wscat');
  const { stdout } = await promisify(execFile)(wscat, ['-c', herald.url('/echo'), '-x', 'hello from wscat', '-w', '1'], { timeout: 20000 });
  // Without a terminal wscat prints each received message on its own line, unprefixed.
  assert.equal(stdout, 'hello from wscat\n');
});
