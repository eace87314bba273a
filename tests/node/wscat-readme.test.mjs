// The wscat session shown in README.md, run as written: the lines between the
// <!-- wscat-session --> and <!-- /wscat-session --> markers give the wscat command, the requests
// typed (`> `) and the server's messages (`< `). wscat runs against a real Herald with the
// README's arguments (its URL pointed at this server), each request is written to its standard
// input once the answers to the previous one have arrived, and what it prints must be exactly the
// README's `<` lines, with session ids and epochs (random per server start) masked.
//
// Without a terminal wscat prints received messages unprefixed (no `< `), leaves out its
// "Connected" line, and writes its readline prompt `> ` before the next message; the prompts are
// stripped here, like in echo.test.mjs, which runs wscat the same way.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHerald } from './herald.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const wscat = path.join(here, 'node_modules', '.bin', 'wscat');
const readme = fs.readFileSync(path.join(here, '../../README.md'), 'utf8');

let herald;
before(async () => { herald = await startHerald(); });
after(async () => { await herald.stop(); });

// The session: the wscat arguments and a list of steps, each a request to type (none for the
// first: the welcome comes on connect) and the messages that answer it.
function readSession() {
  const block = /<!-- wscat-session[^>]*-->([\s\S]*?)<!-- \/wscat-session -->/.exec(readme);
  assert.ok(block, 'README.md has no <!-- wscat-session --> ... <!-- /wscat-session --> block');
  const lines = block[1].split('\n');
  const command = lines.map((l) => /\bnpx wscat (.+)$/.exec(l)).find(Boolean);
  assert.ok(command, 'no `npx wscat ...` command in the README session');
  const args = command[1].replace(/\s+#.*$/, '').trim().split(/\s+/); // without a trailing # comment
  const steps = [{ send: null, expect: [] }];
  for (const line of lines) {
    if (line.startsWith('> ')) steps.push({ send: line.slice(2), expect: [] });
    else if (line.startsWith('< ')) steps.at(-1).expect.push(line.slice(2));
  }
  assert.ok(steps.length >= 3, 'the README session should type at least two requests');
  return { args, steps };
}

const mask = (line) => line.replace(/"(session|epoch)":"[^"]*"/g, '"$1":"…"');

test('the wscat session in README.md gives what the README shows', async () => {
  const { args, steps } = readSession();
  const url = args.findIndex((a) => a.startsWith('ws://'));
  assert.ok(url >= 0, 'the README command names a ws:// URL');
  const wsUrl = new URL(args[url]);
  args[url] = herald.url(wsUrl.pathname);

  const proc = spawn(wscat, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const got = [];
  let buffered = '';
  let stderr = '';
  let wake = null;
  proc.stdout.on('data', (d) => {
    buffered += d;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      got.push(buffered.slice(0, nl).replace(/^(> )+/, ''));
      buffered = buffered.slice(nl + 1);
    }
    wake?.();
  });
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', resolve));

  const waitFor = (count, what) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(
      `wscat: no answer to ${what} within 10 s; printed ${JSON.stringify(got)}, stderr ${stderr}`)), 10000);
    wake = () => { if (got.length >= count) { clearTimeout(timer); wake = null; resolve(); } };
    wake();
  });

  try {
    let expected = 0;
    for (const step of steps) {
      if (step.send !== null) proc.stdin.write(`${step.send}\n`);
      expected += step.expect.length;
      await waitFor(expected, step.send ?? 'the connection (the welcome)');
    }
    assert.deepEqual(got.map(mask), steps.flatMap((s) => s.expect).map(mask));
  } finally {
    proc.stdin.end();
    proc.kill();
    await exited;
  }
});
