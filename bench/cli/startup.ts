/**
 * bench/cli — how long `vnet ctl hosts` takes against a real controller, from
 * the compiled JavaScript (`npm run build`; what `vnet` runs after `npm ci`)
 * and from the TypeScript sources through tsx (what it ran before), side by
 * side in one run. Also `vnet --version` (start-up alone). Goal: `vnet ctl
 * hosts` under 0.3 s.
 *
 * Usage: node --import tsx bench/cli/startup.ts [runs]   (default 15 runs each)
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const RUNS = Number(process.argv[2] ?? 15);
const work = mkdtempSync(join(tmpdir(), 'vnet-bench-cli-'));

// The compiled build lives in the repository tree so that it resolves node_modules.
const dist = join(REPO, '.vnet', `bench-cli-${process.pid}`);
const built = spawnSync(process.execPath, ['scripts/build.js', '--out', dist], { cwd: REPO, stdio: 'inherit' });
if (built.status !== 0) throw new Error('build failed');

const source = ['--import', 'tsx', join(REPO, 'src/cli/main.ts')];
const compiled = [join(dist, 'cli/main.js')];

spawnSync(process.execPath, [...compiled, 'certs', 'init', '--dir', join(work, 'certs')], { stdio: 'ignore' });
const controller = spawn(
  process.execPath,
  [...compiled, 'controller', '-t', join(REPO, 'topologies/single-site-4.yaml'), '--db', join(work, 'db'), '--tls-dir', join(work, 'certs'), '--control', '127.0.0.1:0', '--api', '127.0.0.1:0', '--token-file', join(work, 'token')],
  { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, VNET_LOG_LEVEL: 'silent' } },
);
let stderr = '';
controller.stderr.setEncoding('utf8');
let apiUrl: string | undefined;
for await (const chunk of controller.stderr) {
  stderr += chunk as string;
  apiUrl = /API (http:\/\/[0-9.:]+)/.exec(stderr)?.[1];
  if (apiUrl !== undefined) break;
}
if (apiUrl === undefined) throw new Error(`controller did not start: ${stderr}`);
const env = { ...process.env, VNET_CONTROLLER: apiUrl, VNET_TOKEN: readFileSync(join(work, 'token'), 'utf8').trim(), VNET_LOG_LEVEL: 'silent' };

function seconds(args: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
}

console.log(`${'command'.padEnd(20)} ${'from'.padEnd(10)} ${'median s'.padStart(9)} ${'p90 s'.padStart(7)}`);
const medians = new Map<string, number>();
for (const [label, args] of [
  ['vnet --version', ['--version']],
  ['vnet ctl hosts', ['ctl', 'hosts']],
] as const) {
  for (const [from, prefix] of [
    ['compiled', compiled],
    ['tsx', source],
  ] as const) {
    const xs = Array.from({ length: RUNS }, () => seconds([...prefix, ...args]));
    medians.set(`${label}/${from}`, quantile(xs, 0.5));
    console.log(`${label.padEnd(20)} ${from.padEnd(10)} ${quantile(xs, 0.5).toFixed(3).padStart(9)} ${quantile(xs, 0.9).toFixed(3).padStart(7)}`);
  }
}
const ratio = (medians.get('vnet ctl hosts/tsx') ?? Number.NaN) / (medians.get('vnet ctl hosts/compiled') ?? Number.NaN);
console.log(`vnet ctl hosts: compiled is ${ratio.toFixed(1)}x faster than tsx; goal < 0.3 s: ${(medians.get('vnet ctl hosts/compiled') ?? Infinity) < 0.3 ? 'met' : 'NOT met'}`);

controller.kill('SIGTERM');
await once(controller, 'exit');
rmSync(work, { recursive: true, force: true });
rmSync(dist, { recursive: true, force: true });
