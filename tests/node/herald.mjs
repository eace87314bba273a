// Starting and stopping a real Herald for the Node tests. HERALD_BIN names the binary (the
// Makefile sets it; default ../../build/herald). stop() asserts a clean exit: status 0 and no
// sanitizer report on stderr, as the C harness does. `port` (optional) listens on that port instead
// of a free one, to restart a server where its clients will look for it; kill(signal) sends any
// signal (SIGSTOP to freeze it, SIGKILL to crash it) and resolves on exit for the fatal ones.
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const bin = process.env.HERALD_BIN || path.join(here, '../../build/herald');

export async function startHerald(args = [], { port: listenPort = 0 } = {}) {
  const proc = spawn(bin, ['--listen', `127.0.0.1:${listenPort}`, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`herald did not start: ${log}`)), 20000);
    proc.stderr.on('data', () => {
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(log);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`herald exited ${code}: ${log}`)); });
  });
  const exit = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    port,
    proc,
    exit,
    async kill(signal) {
      proc.kill(signal);
      if (signal === 'SIGCONT') return undefined;
      if (signal !== 'SIGSTOP') return exit;
      // kill() only queues the signal: wait until every thread is stopped, so that nothing
      // sent afterwards can still be served.
      for (;;) {
        const tasks = await readdir(`/proc/${proc.pid}/task`);
        const states = await Promise.all(tasks.map((t) => readFile(`/proc/${proc.pid}/task/${t}/stat`, 'utf8')));
        if (states.every((st) => /^\d+ \(.*\) T /.test(st))) return undefined;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
    url: (p) => `ws://127.0.0.1:${port}${p}`,
    async stop() {
      const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
      proc.kill('SIGTERM');
      const { code, signal } = await exited;
      assert.equal(signal, null, `herald died by ${signal}: ${log}`);
      assert.equal(code, 0, `herald exit ${code}: ${log}`);
      assert.ok(!/Sanitizer|runtime error/.test(log), `sanitizer report: ${log}`);
    },
  };
}
