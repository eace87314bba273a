// The chat demo (clients/web) in a real headless Chromium, Debian's, driven by playwright-core,
// against a real Herald serving the page. Two pages in two browser contexts join one room; each
// sees the history, the other's messages and the other in the member list. Then one page loses
// its network: its traffic goes through a TCP proxy in this test, which cuts every connection and
// refuses new ones, and its browser context is put offline (Chromium's offline emulation alone
// leaves an open WebSocket open, as tried here; it does fire the "offline" and "online" events).
// The other page sends meanwhile; when the network comes back the first page reconnects by itself
// and shows exactly the messages it missed, once each, in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startHerald } from '../node/herald.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const webRoot = path.resolve(here, '../../clients/web');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshot = path.resolve(here, '../../build/screenshots/chat.png');
const apiKey = 'browser-test-key-0123456789';
const room = 'browser-test';
const WAIT = 15000; // the longest any one condition may take (reconnecting backs off up to 8 s)

let herald;
let proxy;
let browser;
const pageErrors = [];

// A TCP proxy to Herald whose network can be cut: offline() drops every open connection (a reset,
// as a failing network would) and refuses new ones until online().
async function startProxy(port) {
  const pairs = new Set();
  let up = true;
  const server = net.createServer((down) => {
    if (!up) { down.resetAndDestroy(); return; }
    const upstream = net.connect(port, '127.0.0.1');
    const pair = { down, upstream };
    pairs.add(pair);
    const drop = () => { pairs.delete(pair); down.destroy(); upstream.destroy(); };
    down.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    down.pipe(upstream);
    upstream.pipe(down);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    offline() {
      up = false;
      for (const { down, upstream } of pairs) { down.resetAndDestroy(); upstream.destroy(); }
      pairs.clear();
    },
    online() { up = true; },
    close() {
      for (const { down, upstream } of pairs) { down.destroy(); upstream.destroy(); }
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

before(async () => {
  assert.ok(fs.existsSync(chromiumPath),
    `Chromium not found at ${chromiumPath}: run scripts/install-deps (Debian package "chromium"), ` +
    'or set CHROMIUM to its path');
  assert.ok(fs.existsSync(path.join(webRoot, 'herald.js')),
    `${webRoot}/herald.js is missing: run make (it copies clients/js/herald.js there)`);
  // The page loads that copy: testing it is testing clients/js/herald.js only if they are the same.
  assert.ok(fs.readFileSync(path.join(webRoot, 'herald.js')).equals(fs.readFileSync(path.join(webRoot, '../js/herald.js'))),
    `${webRoot}/herald.js differs from clients/js/herald.js: run make (it copies it there)`);
  herald = await startHerald(['--root', webRoot, '--api-key', apiKey]);
  proxy = await startProxy(herald.port);
  try {
    browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  } catch (err) {
    throw new Error(`Chromium (${chromiumPath}) did not start: ${err.message}`);
  }
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await herald?.stop();
});

async function openChat(port, hash = '') {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(`${err.message}\n${err.stack}`));
  page.setDefaultTimeout(WAIT);
  await page.goto(`http://127.0.0.1:${port}/${hash}`);
  return page;
}

// Publishes over the HTTP API, as a backend would.
async function publish(messages) {
  const res = await fetch(`http://127.0.0.1:${herald.port}/api/publish`, {
    method: 'POST', headers: { authorization: `Bearer ${apiKey}` }, body: JSON.stringify(messages),
  });
  assert.equal(res.status, 200);
}

async function join(page, name) {
  await page.fill('#name', name);
  await page.fill('#room', room);
  await page.click('#join-button');
  await page.locator('#chat').waitFor({ state: 'visible' });
}

async function send(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

// Waits for a condition evaluated in the page; on timeout says what was awaited and what the
// page showed.
async function until(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT, polling: 50 });
  } catch (err) {
    const seen = await page.evaluate(() => ({
      state: document.querySelector('#status')?.dataset.state,
      members: [...document.querySelectorAll('#members .member-name')].map((e) => e.textContent),
      last: [...document.querySelectorAll('#messages .msg .text')].slice(-5).map((e) => e.textContent),
    })).catch(() => ({}));
    throw new Error(`timed out waiting for ${what}; the page shows ${JSON.stringify(seen)}`, { cause: err });
  }
}

// Delivered messages as [{offset, name, text}] (pending ones, not yet delivered, left out).
function delivered(page) {
  return page.$$eval('#messages .msg:not(.pending)', (els) => els.map((e) => ({
    offset: Number(e.dataset.offset), name: e.dataset.name, text: e.querySelector('.text').textContent,
  })));
}

const shows = (page, text) => until(page, `message "${text}"`, (t) =>
  [...document.querySelectorAll('#messages .msg:not(.pending) .text')].some((e) => e.textContent === t), text);
const state = (page, s) => until(page, `state ${s}`, (want) =>
  document.querySelector('#status').dataset.state === want, s);
const members = (page, names) => until(page, `members ${names}`, (want) => {
  const got = [...document.querySelectorAll('#members .member-name')].map((e) => e.textContent).sort();
  return JSON.stringify(got) === JSON.stringify(want);
}, [...names].sort());

test('two pages chat, see each other, and one recovers what it missed while offline', { timeout: 60000 }, async () => {
  // 60 messages of history, published by a backend over the HTTP API: a page joining shows 50.
  const batch = Array.from({ length: 60 }, (_, i) =>
    ({ topic: `chat.${room}`, data: { name: 'history', text: `earlier ${i + 1}`, at: Date.now() } }));
  const res = await fetch(`http://127.0.0.1:${herald.port}/api/publish`, {
    method: 'POST', headers: { authorization: `Bearer ${apiKey}` }, body: JSON.stringify(batch),
  });
  assert.equal(res.status, 200);

  const [ann, bob] = await Promise.all([
    openChat(proxy.port), // through the proxy: its network can fail
    openChat(herald.port),
  ]);
  await Promise.all([state(ann, 'connected'), state(bob, 'connected')]);
  // A room name that is not a valid topic segment is refused before anything is sent.
  await ann.fill('#name', 'Ann');
  await ann.fill('#room', 'no spaces');
  await ann.click('#join-button');
  assert.match(await ann.textContent('#join-error'), /no spaces/);
  assert.equal(await ann.isHidden('#chat'), true);
  await Promise.all([join(ann, 'Ann'), join(bob, 'Bob')]);

  for (const page of [ann, bob]) {
    await shows(page, 'earlier 60');
    const history = await delivered(page);
    assert.equal(history.length, 50, 'the last 50 messages of the room are shown');
    assert.deepEqual(history.map((m) => m.text), Array.from({ length: 50 }, (_, i) => `earlier ${i + 11}`));
    await members(page, ['Ann', 'Bob']);
  }
  assert.equal(await ann.locator('#members li', { hasText: '(you)' }).locator('.member-name').textContent(), 'Ann');

  await send(ann, 'hello from Ann');
  await shows(bob, 'hello from Ann');
  await send(bob, 'hi Ann, Bob here');
  for (const page of [ann, bob]) await shows(page, 'hi Ann, Bob here');
  await shows(ann, 'hello from Ann');
  assert.equal(await ann.locator('.msg.mine .text', { hasText: 'hello from Ann' }).count(), 1);

  // Ann's network fails: the proxy cuts her connection and refuses new ones, and her browser
  // goes offline too (which alone would not close an open WebSocket). Her page says it is
  // reconnecting; Bob sees her leave and writes on.
  proxy.offline();
  await ann.context().setOffline(true);
  await state(ann, 'reconnecting');
  await members(bob, ['Bob']);
  const missed = ['while you were away 1', 'while you were away 2', 'while you were away 3'];
  for (const text of missed) await send(bob, text);
  for (const text of missed) await shows(bob, text);
  for (const text of missed) assert.equal(await ann.locator('.msg .text', { hasText: text }).count(), 0);

  // The network comes back: the browser's "online" event lets the client library retry at once
  // instead of sitting out its backoff. Ann's page reconnects by itself and recovers.
  proxy.online();
  await ann.context().setOffline(false);
  await state(ann, 'connected');
  for (const text of missed) await shows(ann, text);
  assert.equal(await ann.locator('#messages .notice').last().textContent(),
    'Reconnected: 3 missed messages recovered.', 'the resubscription recovered exactly the 3 missed');
  await members(ann, ['Ann', 'Bob']);
  await members(bob, ['Ann', 'Bob']);

  await send(ann, 'back again');
  await shows(bob, 'back again');
  await shows(ann, 'back again');

  // Both pages hold the same messages, each once, in offset order without gaps.
  const annSees = await delivered(ann);
  const bobSees = await delivered(bob);
  assert.deepEqual(annSees, bobSees);
  const offsets = annSees.map((m) => m.offset);
  assert.deepEqual(offsets, Array.from({ length: offsets.length }, (_, i) => offsets[0] + i));
  assert.deepEqual(annSees.slice(-6).map((m) => m.text),
    ['hello from Ann', 'hi Ann, Bob here', ...missed, 'back again']);
  for (const text of missed) assert.equal(annSees.filter((m) => m.text === text).length, 1, `"${text}" once`);
  for (const page of [ann, bob]) assert.equal(await page.locator('.msg.pending, .msg.failed').count(), 0);

  fs.mkdirSync(path.dirname(screenshot), { recursive: true });
  await ann.screenshot({ path: screenshot });
  assert.deepEqual(pageErrors, [], 'no uncaught errors in the pages');
});

test('a malformed room in the link and a message with an impossible time do not break the page', { timeout: 60000 }, async () => {
  const errorsBefore = pageErrors.length;
  // Not valid percent-encoding: the page falls back to the default room and connects.
  const page = await openChat(herald.port, '#%E0%A4%A');
  await state(page, 'connected');
  assert.equal(await page.inputValue('#room'), 'lobby');

  // Anyone can publish to a room: a time no Date can hold (1e20) is shown without a time.
  await page.fill('#name', 'Tess');
  await page.fill('#room', 'odd-times');
  await page.click('#join-button');
  await page.locator('#chat').waitFor({ state: 'visible' });
  await members(page, ['Tess']);
  await publish([
    { topic: 'chat.odd-times', data: { name: 'future', text: 'from the year 3 billion', at: 1e20 } },
    { topic: 'chat.odd-times', data: { name: 'now', text: 'from today', at: Date.now() } },
  ]);
  await shows(page, 'from the year 3 billion');
  await shows(page, 'from today');
  assert.equal(await page.locator('.msg', { hasText: 'from the year 3 billion' }).locator('time').count(), 0);
  assert.equal(await page.locator('.msg', { hasText: 'from today' }).locator('time').count(), 1);
  assert.equal(await page.locator('#messages .notice').count(), 0, 'no error notice');
  assert.deepEqual(pageErrors.slice(errorsBefore), [], 'no uncaught errors in the page');
  await page.context().close();
});

test('leaving a room whose unsubscribe fails raises no unhandled rejection', { timeout: 60000 }, async () => {
  const errorsBefore = pageErrors.length;
  const page = await openChat(herald.port);
  await state(page, 'connected');
  await page.fill('#name', 'Lea');
  await page.fill('#room', 'leaving');
  await page.click('#join-button');
  await members(page, ['Lea']);
  // The server's answer does not come in time (as after requestTimeout).
  await page.evaluate(() => {
    const sub = window.heraldClient.getSubscription('chat.leaving');
    sub.unsubscribe = () => Promise.reject(new Error('no answer in time'));
  });
  await page.click('#leave');
  await page.locator('#join').waitFor({ state: 'visible' });
  await page.waitForTimeout(200); // an unhandled rejection is reported after the microtasks
  assert.deepEqual(pageErrors.slice(errorsBefore), [], 'no uncaught errors in the page');
  await page.context().close();
});

test('a long-lived tab keeps only the newest 500 entries on the page', { timeout: 60000 }, async () => {
  const errorsBefore = pageErrors.length;
  const page = await openChat(herald.port);
  await state(page, 'connected');
  await page.fill('#name', 'Max');
  await page.fill('#room', 'long-lived');
  await page.click('#join-button');
  await members(page, ['Max']);
  await publish(Array.from({ length: 520 }, (_, i) =>
    ({ topic: 'chat.long-lived', data: { name: 'feed', text: `n ${i + 1}`, at: Date.now() } })));
  await shows(page, 'n 520');
  const texts = await page.$$eval('#messages .msg .text', (els) => els.map((e) => e.textContent));
  assert.equal(texts.length, 500);
  assert.deepEqual([texts[0], texts.at(-1)], ['n 21', 'n 520']);
  assert.equal(await page.locator('#messages .msg').first().evaluate((e) => e.classList.contains('cont')), false,
    'the first message shown has its sender');
  assert.deepEqual(pageErrors.slice(errorsBefore), [], 'no uncaught errors in the page');
  await page.context().close();
});

test('a message cut off by a lost connection is shown as perhaps not sent, and once if it was', { timeout: 60000 }, async () => {
  const errorsBefore = pageErrors.length;
  const page = await openChat(herald.port);
  await state(page, 'connected');
  await page.fill('#name', 'Una');
  await page.fill('#room', 'unsure');
  await page.click('#join-button');
  await members(page, ['Una']);
  // The next publish goes out (or not), then the connection is given up at once, before any
  // answer: the publish rejects with 'disconnected' and the client reconnects and recovers.
  const cutAfterNextPublish = (reallySend) => page.evaluate((really) => {
    const c = window.heraldClient;
    const ws = c._ws;
    const send = ws.send.bind(ws);
    ws.send = (t) => {
      if (!t.includes('"op":"pub"')) return send(t);
      if (really) send(t);
      c._abandon('cut by the test');
      return undefined;
    };
  }, reallySend);
  const failed = (text) => page.locator('#messages .msg.failed .text', { hasText: text });

  await cutAfterNextPublish(false);
  await send(page, 'never left');
  await failed('never left').waitFor();
  assert.match(await failed('never left').textContent(), /^never left {2}\(may not have been sent: disconnected/);
  await state(page, 'connected');

  await cutAfterNextPublish(true);
  await send(page, 'made it');
  await shows(page, 'made it'); // recovered on the new connection
  assert.equal(await page.locator('#messages .msg .text', { hasText: 'made it' }).count(), 1, 'shown once');
  assert.equal(await failed('made it').count(), 0);
  assert.equal(await failed('never left').count(), 1);
  assert.deepEqual(pageErrors.slice(errorsBefore), [], 'no uncaught errors in the page');
  await page.context().close();
});
