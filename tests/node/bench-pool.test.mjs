// bench/pool.sh: pooling the rounds of several bench/pubsub.sh result directories.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const pool = join(repo, 'bench', 'pool.sh');

// One runs.tsv line as bench/pubsub.sh's record_load writes it (17 columns).
function tsv(scenario, server, round, rate, p99, cpu, kib = 0) {
  return [scenario, server, round, rate, 1, p99, 1, cpu, 50, 0, 0, 0.3, 0, 10, 100, kib, 80].join('\t');
}

// A result directory: runs.tsv lines and a runs.jsonl naming Herald's revision.
// `spin`: wsload's --spin-us, recorded in its JSON; undefined: a run from before the option.
function resultDir(root, name, rev, lines, spin) {
  const d = join(root, name);
  mkdirSync(d);
  writeFileSync(join(d, 'runs.tsv'), lines.join('\n') + '\n');
  const spinField = spin === undefined ? '' : `,"spin_us":${spin}`;
  writeFileSync(join(d, 'runs.jsonl'),
    `{"bench":"ws-pubsub","scenario":"fanout","server":"herald","round":1,"workers":2,"rev":"${rev}","tool":"wsload"${spinField}}\n`);
  return d;
}

// The table row whose first cells are these.
function row(out, ...cells) {
  const line = out.split('\n').find((l) => l.startsWith(`| ${cells.join(' | ')} |`));
  assert.ok(line, `no row ${cells.join(' | ')} in:\n${out}`);
  return line.split('|').slice(1, -1).map((c) => c.trim());
}

test('rounds of several runs are pooled, and Herald is paired with a peer only within a run\'s round', () => {
  const root = mkdtempSync(join(tmpdir(), 'pool-'));
  try {
    const a = resultDir(root, 'a', 'abc1234', [
      tsv('fanout', 'herald', 1, 200, 100, 0.30), tsv('fanout', 'bun', 1, 100, 200, 0.60),
      tsv('fanout', 'herald', 2, 300, 100, 0.40), tsv('fanout', 'bun', 2, 150, 50, 0.80),
      tsv('connect-one', 'herald', 1, 2000, 0, 0, 0.46), tsv('connect-one', 'bun', 1, 1000, 0, 0, 1.2),
    ]);
    // Round 1 again in another run: its Herald run pairs with its own Bun run (90/100), not a's.
    const b = resultDir(root, 'b', 'abc1234', [
      tsv('fanout', 'herald', 1, 90, 300, 0.36), tsv('fanout', 'bun', 1, 100, 200, 0.60),
    ]);
    const out = execFileSync(pool, [a, b], { encoding: 'utf8' });
    // Herald's three rounds: rates 90, 200, 300; CPU 0.30, 0.36, 0.40, two above 0.35.
    const h = row(out, 'fanout', 'herald');
    assert.equal(h[2], '3');
    assert.equal(h[3], '200.0 (145.0-250.0, 90.0-300.0)');
    assert.match(h[5], /^0\.360 \(0\.330-0\.380, 0\.300-0\.400\)$/);
    assert.equal(h[6], '2 of 3 over 0.35 us');
    // Ratios 2.00, 2.00 and 0.90; p99 0.50, 2.00, 1.50; CPU 0.50, 0.50, 0.60.
    const r = row(out, 'fanout', 'herald/bun');
    assert.deepEqual(r.slice(2), ['3', '2.00 (0.90-2.00)', '1', '1.50 (0.50-2.00)', '2', '0.50 (0.50-0.60)']);
    // Memory: one round, 0.46 KiB, under 0.5.
    assert.equal(row(out, 'connect-one', 'herald')[6], '0 of 1 over 0.5 KiB');
    assert.equal(row(out, 'connect-one', 'herald/bun')[7], '0.38 (0.38-0.38)');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('runs whose wsload spun differently are pooled only with MIXED=1', () => {
  // A run without spin_us (before the option) counts as 0; 0 against 50 is refused, 50 with 50 is not.
  const root = mkdtempSync(join(tmpdir(), 'pool-'));
  try {
    const old = resultDir(root, 'old', 'abc1234', [tsv('fanout', 'herald', 1, 200, 100, 0.30)]);
    const a = resultDir(root, 'a', 'abc1234', [tsv('fanout', 'herald', 1, 200, 100, 0.30)], 50);
    const b = resultDir(root, 'b', 'abc1234', [tsv('fanout', 'herald', 1, 100, 100, 0.50)], 50);
    const refused = spawnSync(pool, [old, a], { encoding: 'utf8' });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /different --spin-us \(0 50\)/);
    const same = spawnSync(pool, [a, b], { encoding: 'utf8' });
    assert.equal(same.status, 0, same.stderr);
    assert.match(same.stdout, /wsload --spin-us 50\n/);
    const mixed = spawnSync(pool, [old, a], { encoding: 'utf8', env: { ...process.env, MIXED: '1' } });
    assert.equal(mixed.status, 0, mixed.stderr);
    assert.match(mixed.stdout, /wsload --spin-us 0 50\n/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('runs of different Herald revisions are pooled only with MIXED=1', () => {
  const root = mkdtempSync(join(tmpdir(), 'pool-'));
  try {
    const a = resultDir(root, 'a', 'abc1234', [tsv('fanout', 'herald', 1, 200, 100, 0.30)]);
    const b = resultDir(root, 'b', 'def5678', [tsv('fanout', 'herald', 1, 100, 100, 0.50)]);
    const refused = spawnSync(pool, [a, b], { encoding: 'utf8' });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /different Herald revisions \(abc1234 def5678 \)/);
    const mixed = spawnSync(pool, [a, b], { encoding: 'utf8', env: { ...process.env, MIXED: '1' } });
    assert.equal(mixed.status, 0, mixed.stderr);
    assert.equal(row(mixed.stdout, 'fanout', 'herald')[2], '2');
    const none = spawnSync(pool, [join(root, 'missing')], { encoding: 'utf8' });
    assert.equal(none.status, 1);
    assert.match(none.stderr, /not a bench\/pubsub\.sh result directory/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
