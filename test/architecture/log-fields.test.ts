import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

/**
 * A log line is one JSON object: a field a log call sets must not be one that
 * pino itself writes (`msg`, `level`, `time`, `pid`, `hostname`, and `name`,
 * the root logger's), or the line carries the key twice and log shippers
 * keep one of them at random.
 */
const RESERVED = ['msg', 'level', 'time', 'pid', 'hostname', 'name'];
const SRC = resolve(import.meta.dirname, '../../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : n.endsWith('.ts') ? [p] : [];
  });
}

test('no log call sets a field pino writes itself', () => {
  const call = new RegExp(`\\.(?:trace|debug|info|warn|error|fatal)\\(\\{([^}]*)\\}`, 'g');
  const key = new RegExp(`(?:^|[,{\\s])(${RESERVED.join('|')})\\s*:`);
  const found: string[] = [];
  let calls = 0;
  for (const file of files(SRC)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(call)) {
      calls++;
      const k = key.exec(m[1]!);
      if (k !== null) found.push(`${relative(SRC, file)}: ${k[1]} in {${m[1]!.trim().slice(0, 80)}}`);
    }
  }
  assert.ok(calls > 50, `the scan sees the log calls (${calls})`);
  assert.deepEqual(found, []);
});
