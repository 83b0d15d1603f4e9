import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/**
 * The layers of docs/architecture.md, checked on the source itself: every
 * relative import in src/ must go from a folder to one it may use. Bottom up:
 * common → pki, control → dataplane, migration, images, topology (pure), openflow and
 * ovsdb (self-contained) → patterns, host (a daemon's host: dataplane + migration)
 * → controller → cli.
 */
const MAY_USE: Record<string, readonly string[]> = {
  common: [],
  pki: ['common'],
  control: ['common'],
  topology: ['common'],
  openflow: [],
  ovsdb: [],
  dataplane: ['common', 'control', 'pki'],
  migration: ['common', 'control', 'pki'],
  images: ['common', 'pki'],
  patterns: ['common', 'control', 'dataplane', 'topology'],
  host: ['common', 'control', 'pki', 'dataplane', 'migration', 'images'],
  controller: ['common', 'control', 'pki', 'topology', 'migration', 'images', 'openflow', 'ovsdb'],
  cli: ['common', 'control', 'pki', 'dataplane', 'migration', 'images', 'topology', 'openflow', 'ovsdb', 'patterns', 'host', 'controller'],
};

const SRC = resolve(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return name.endsWith('.ts') ? [p] : [];
  });
}

function folderOf(file: string): string {
  return relative(SRC, file).split('/')[0]!;
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) specs.push(m[1]!);
  return specs;
}

test('every folder of src/ is a known layer', () => {
  const folders = readdirSync(SRC).filter((n) => statSync(join(SRC, n)).isDirectory());
  assert.deepEqual(folders.filter((f) => !(f in MAY_USE)), [], 'a new folder needs its place in the layers (here and in docs/architecture.md)');
});

test('no import runs from a lower layer back up (src/topology uses only src/common; src/openflow and src/ovsdb nothing else)', () => {
  const wrong: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = folderOf(file);
    for (const spec of importsOf(file)) {
      const target = resolve(dirname(file), spec);
      if (!target.startsWith(SRC + '/')) {
        wrong.push(`${relative(SRC, file)} imports ${spec}, outside src/`);
        continue;
      }
      const to = folderOf(target);
      if (to !== from && !(MAY_USE[from] ?? []).includes(to)) wrong.push(`${relative(SRC, file)} (${from}) imports ${spec} (${to})`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('the layer check sees imports at all (a broken scan would pass vacuously)', () => {
  const daemon = join(SRC, 'dataplane', 'daemon.ts');
  const targets = importsOf(daemon).map((s) => folderOf(resolve(dirname(daemon), s)));
  assert.ok(targets.includes('common') && targets.includes('control'), `daemon.ts imports seen: ${targets.join(', ')}`);
});
