import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../../src/common/errors.ts';
import { MAX_YAML_DEPTH, parseYamlConfig } from '../../src/common/yaml-config.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';

const anything = z.any();

test('an unresolved alias is a configuration error naming the file and the line', () => {
  assert.throws(() => parseYamlConfig('x: 1\na: *nowhere\n', 'f.yaml', anything), (err: unknown) =>
    err instanceof ConfigError && err.code === 'VNET_ERR_CONFIG' && /^f\.yaml: line 2: YAML alias error: .*nowhere/.test(err.message));
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

const strict = z.strictObject({ host: z.string(), ports: z.array(z.unknown()).optional() });

function refusedAt(text: string, line: number, what: RegExp): void {
  assert.throws(() => parseYamlConfig(text, 'c.yaml', strict), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `a ConfigError, not ${String(err)}`);
    assert.equal(err.file, 'c.yaml');
    assert.match(err.message, new RegExp(`^c\\.yaml: (\\S+: )?line ${line}: `), err.message);
    assert.match(err.message, what);
    return true;
  });
}

test('a YAML syntax error names its line (duplicate key, bad flow map, unclosed sequence)', () => {
  refusedAt('host: a\nports: []\nhost: b\n', 3, /YAML syntax error: Map keys must be unique/);
  refusedAt('host: a\nports: [{ x: : 1 }]\n', 2, /YAML syntax error/);
  refusedAt('host: a\nports: [1, 2\n', 3, /YAML syntax error/);
});

test('an empty or comment-only file is refused at line 1, naming the missing key', () => {
  refusedAt('', 1, /host/);
  refusedAt('# nothing here\n', 1, /host/);
});

test('nesting deeper than MAX_YAML_DEPTH is refused at its line, before the parser recurses', () => {
  refusedAt(`host: a\nports: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`, 2, /YAML nesting error: collections nested deeper than 64 levels/);
  refusedAt(`host: a\nports:\n  - ${'{a: '.repeat(100)}1${'}'.repeat(100)}\n`, 3, /YAML nesting error/);
  const block = Array.from({ length: 80 }, (_, d) => `${'  '.repeat(d)}k${d}:`).join('\n');
  // The root map is level 1 and nest's map level 2, so k63 (line 66) is level 65.
  refusedAt(`host: a\nnest:\n${block.replace(/^/gm, '  ')} x\n`, 2 + MAX_YAML_DEPTH, /YAML nesting error/);
  refusedAt(`host: a\nports:\n${'- '.repeat(70)}x\n`, 3, /YAML nesting error/);
  // Within the limit (and brackets inside quotes or comments) it is parsed as usual.
  assert.deepEqual(parseYamlConfig(`host: "[[[[{{{{"  # ]]]] [[[[\nports: ${'['.repeat(30)}${']'.repeat(30)}\n`, 'c.yaml', strict).host, '[[[[{{{{');
});
