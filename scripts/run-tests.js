#!/usr/bin/env node
// Runs every test tier with node:test.
//   unit        test/**/*.test.ts            pure and loopback tests, no privileges
//   privileged  test/**/*.priv.test.ts       root: network namespaces, TAP devices, QEMU
//   fuzz        test/**/*.fuzz.test.ts       >= 10^5 random and mutated inputs per decoder (test/fuzz/fuzz-kit.ts:
//                                            VNET_FUZZ_SEED, VNET_FUZZ_COUNT, VNET_FUZZ_CASE)
// The privileged tier runs when we are root. With VNET_REQUIRE_PRIVILEGED=1 (CI) it is
// mandatory: not being root, or missing a tool it needs, is a failure, never a skip.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const tierArg = args.indexOf('--tier');
const tier = tierArg >= 0 ? args[tierArg + 1] : 'all';
const filters = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--tier');

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const all = walk('test').sort();
const isPriv = (f) => f.endsWith('.priv.test.ts');
const isFuzz = (f) => f.endsWith('.fuzz.test.ts');
const requirePriv = process.env.VNET_REQUIRE_PRIVILEGED === '1';
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

const files = all.filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
const knownTiers = ['all', 'unit', 'privileged', 'fuzz'];
if (!knownTiers.includes(tier)) {
  console.error(`unknown tier ${tier}: expected one of ${knownTiers.join(', ')}`);
  process.exit(2);
}
const unit = tier === 'all' || tier === 'unit' ? files.filter((f) => !isPriv(f) && !isFuzz(f)) : [];
let priv = tier === 'all' || tier === 'privileged' ? files.filter(isPriv) : [];
const fuzz = tier === 'all' || tier === 'fuzz' ? files.filter(isFuzz) : [];

if (priv.length > 0 && !isRoot) {
  if (requirePriv) {
    console.error('VNET_REQUIRE_PRIVILEGED=1 but not running as root: the privileged tier cannot run');
    process.exit(1);
  }
  console.error(`not root: skipping ${priv.length} privileged test files (set VNET_REQUIRE_PRIVILEGED=1 to make this fatal)`);
  priv = [];
}

function run(list, concurrency) {
  if (list.length === 0) return 0;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-timeout=600000', ...list], {
    stdio: 'inherit',
    env: { ...process.env, VNET_LOG_LEVEL: process.env.VNET_LOG_LEVEL ?? 'silent' },
  });
  return r.status ?? 1;
}

let status = 0;
status = run(unit, 2) || status;
// Privileged tests share the kernel's namespaces and benchmark-sensitive CPU: run them one at a time.
status = run(priv, 1) || status;
// Fuzz targets are CPU-bound, one core each: two files at a time.
status = run(fuzz, 2) || status;
process.exit(status);
