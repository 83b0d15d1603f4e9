import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../../src/common/errors.ts';
import { parseYamlConfig } from '../../src/common/yaml-config.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';

const anything = z.any();

test('an unresolved alias is a configuration error naming the file and the line', () => {
  assert.throws(() => parseYamlConfig('x: 1\na: *nowhere\n', 'f.yaml', anything), (err: unknown) =>
    err instanceof ConfigError && err.code === 'VNET_ERR_CONFIG' && /^f\.yaml: YAML alias error at line 2: .*nowhere/.test(err.message));
});

test('an alias bomb is refused as a configuration error, not expanded', () => {
  const bomb = ['a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]'];
  for (const [prev, name] of [['a', 'b'], ['b', 'c'], ['c', 'd'], ['d', 'e'], ['e', 'f']] as const) bomb.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(', ')}]`);
  assert.throws(() => parseYamlConfig(`${bomb.join('\n')}\n`, 'bomb.yaml', anything), (err: unknown) =>
    err instanceof ConfigError && /alias bomb/.test(err.message) && err.file === 'bomb.yaml');
});

/** xorshift32: a seeded stream of numbers, so a failure names the input that caused it. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

const PIECES = ['&a ', '*a', '*b', '&b ', ': ', '- ', '[', ']', '{', '}', ',', '"', "'", '\n', '  ', '!!str ', '!!binary ', '|', '>', '#', '%YAML 1.2\n', '---\n', '...\n', '? ', '<<: *a\n', '\t', '\u0000', '02:00:00:00:00:01', 'hosts', 'vms', 'policy'];

test('10,000 mutated deployment files: each is accepted or refused with a configuration error, never another exception', () => {
  const base = readFileSync(join(import.meta.dirname, '../../topologies/single-site-4.yaml'), 'utf8');
  const next = rng(0xdecaf);
  let refused = 0;
  for (let i = 0; i < 10_000; i++) {
    let text = base;
    const edits = 1 + Math.floor(next() * 4);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(next() * text.length);
      const kind = next();
      if (kind < 0.4) text = text.slice(0, at) + PIECES[Math.floor(next() * PIECES.length)]! + text.slice(at);
      else if (kind < 0.7) text = text.slice(0, at) + text.slice(at + 1 + Math.floor(next() * 8));
      else text = text.slice(0, at) + String.fromCharCode(Math.floor(next() * 128)) + text.slice(at + 1);
    }
    try {
      parseDeployment(text, `fuzz-${i}.yaml`);
    } catch (err) {
      assert.ok(err instanceof ConfigError, `input ${i} threw ${(err as Error).constructor.name}: ${(err as Error).message}\n${text}`);
      refused++;
    }
  }
  assert.ok(refused > 5000, `most mutations are refused (${refused})`);
});
