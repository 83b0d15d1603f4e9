/**
 * The README's install, for real and offline (root): `npm pack` of the
 * checkout, then `npm install -g` of the tarball into a temporary prefix with
 * an empty cache and a registry on 127.0.0.1 that this test serves itself,
 * holding exactly the runtime dependency tree (test/helpers/local-npm-registry.ts);
 * registry and install run in a network namespace with nothing but loopback,
 * so anything fetched from elsewhere would fail the install.
 * Node-gyp builds the TAP addon and SQLite's binding at install, from the
 * local Node headers (`--nodedir`; without it node-gyp fails here fetching
 * them from nodejs.org), better-sqlite3 from source (`--build-from-source`:
 * its prebuild-install would first try GitHub, fail, and fall back to
 * compiling). Then `vnet` from the prefix's PATH, without tsx, makes
 * certificates and runs a TLS hub daemon with a TAP port in a namespace this
 * test creates, answers `vnet status`, and stops cleanly on SIGTERM.
 * Several minutes on 2 cores (compiling SQLite); each step is bounded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { packRuntimeTree, startLocalNpmRegistry } from '../helpers/local-npm-registry.ts';
import { requireTools, run, uniqueName, waitFor } from '../helpers/netns.ts';

requireTools(['ip', 'npm', 'g++', 'make', 'python3', 'tar']);

const ROOT = join(import.meta.dirname, '../..');
const NODE_HEADERS = '/usr'; // Debian's nodejs: /usr/include/node
const PORT_MAC = '02:00:00:77:00:01';
const PORT_IP = '10.77.0.1/24';

interface Output {
  stdout: string;
  stderr: string;
}

/** Runs a command with a deadline; on failure the error carries its output. */
async function sh(file: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Output> {
  try {
    return await promisify(execFile)(file, args, { cwd: options.cwd, env: options.env, timeout: options.timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

/** A copy of the checkout's tracked files (node_modules linked), so packing builds dist/ there and not in the checkout. */
async function copyCheckout(to: string): Promise<void> {
  const { stdout } = await sh('git', ['-C', ROOT, 'ls-files', '-z'], { timeoutMs: 30_000 });
  for (const file of stdout.split('\0').filter((f) => f !== '' && existsSync(join(ROOT, f)))) {
    mkdirSync(dirname(join(to, file)), { recursive: true });
    copyFileSync(join(ROOT, file), join(to, file));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(to, 'node_modules'));
}

/** Every file under `dir` whose name ends with `suffix`. */
function findFiles(dir: string, suffix: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith(suffix));
}

test('npm pack → npm install -g from a loopback registry builds the addons, puts vnet on the PATH, and the installed vnet runs a daemon', { timeout: 600_000 }, async (t) => {
  const started = performance.now();
  const step = (what: string) => console.log(`# ${what}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const tmp = mkdtempSync(join(tmpdir(), 'vnet-npm-install-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));

  // 1. The tarball, as `npm pack` makes it (its `prepare` compiles src/ to dist/).
  const checkout = join(tmp, 'checkout');
  await copyCheckout(checkout);
  const packed = JSON.parse((await sh('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: checkout, timeoutMs: 300_000 })).stdout) as Array<{ filename: string }>;
  const tarball = join(tmp, packed[0]!.filename);
  const listing = (await sh('tar', ['tzf', tarball], { timeoutMs: 30_000 })).stdout.split('\n');
  assert.ok(listing.includes('package/dist/cli/main.js') && listing.includes('package/bin/vnet.js'), 'the tarball has the compiled CLI');
  assert.ok(listing.includes('package/binding.gyp') && listing.some((f) => f.startsWith('package/native/')), 'the tarball has the addon\'s sources');
  assert.deepEqual(listing.filter((f) => f.endsWith('.node') || f.startsWith('package/src/')), [], 'no prebuilt binary and no TypeScript sources in the tarball');
  step('npm pack');

  // 2. The runtime dependency tree, served on loopback.
  const tree = await packRuntimeTree(ROOT, join(tmp, 'registry'));
  const names = new Set(tree.map((p) => p.name));
  for (const dev of ['tsx', 'esbuild', 'typescript']) assert.ok(!names.has(dev), `${dev} is not in the runtime tree`);
  // The install runs in a namespace with nothing but loopback, where this registry is the only thing to reach.
  const sealed = uniqueName('vnt-');
  await run(['ip', 'netns', 'add', sealed]);
  t.after(async () => { await run(['ip', 'netns', 'del', sealed], { allowFailure: true }); });
  await run(['ip', '-n', sealed, 'link', 'set', 'lo', 'up']);
  const registry = await startLocalNpmRegistry(tree, { netns: sealed });
  t.after(() => registry.close());
  step(`${tree.length} runtime packages packed and served`);

  // 3. The install: empty cache, empty HOME (no ~/.npmrc, no node-gyp header cache), no network but loopback.
  const prefix = join(tmp, 'prefix');
  const home = join(tmp, 'home');
  mkdirSync(home);
  const env: NodeJS.ProcessEnv = {
    PATH: `${join(prefix, 'bin')}:${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: home,
    npm_config_nodedir: NODE_HEADERS,
    npm_config_build_from_source: 'true',
    npm_config_update_notifier: 'false',
  };
  await sh('ip', ['netns', 'exec', sealed, 'npm', 'install', '-g', '--prefix', prefix, '--cache', join(tmp, 'cache'), '--registry', registry.url,
    '--allow-scripts=vnet,better-sqlite3', '--no-audit', '--no-fund', tarball], { cwd: tmp, env, timeoutMs: 420_000 });
  // npm looks up optional peer dependencies (ws: bufferutil, utf-8-validate) and goes on without them.
  const optionalPeers = new Set(tree.flatMap((p) => Object.entries((p.manifest.peerDependenciesMeta ?? {}) as Record<string, { optional?: boolean }>).filter(([, m]) => m.optional === true).map(([name]) => `GET /${name}`)));
  assert.deepEqual(registry.misses.filter((m) => !optionalPeers.has(m)), [], 'npm asked the registry only for packages of the tree and optional peers');
  assert.ok(registry.requests.some((r) => r.endsWith('.tgz')), 'the dependencies came from the loopback registry');
  step('npm install -g');

  const installed = join(prefix, 'lib', 'node_modules', 'vnet');
  assert.ok(findFiles(join(installed, 'build', 'Release'), '.node').length > 0, 'the TAP addon was built at install');
  assert.ok(existsSync(join(installed, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node')), 'SQLite\'s binding was built at install');
  const allModules = readdirSync(join(installed, 'node_modules'));
  for (const dev of ['tsx', 'esbuild', '@esbuild', 'typescript']) assert.ok(!allModules.includes(dev), `${dev} is not installed`);
  assert.equal((await sh('sh', ['-c', 'command -v vnet'], { env, timeoutMs: 10_000 })).stdout.trim(), join(prefix, 'bin', 'vnet'), 'vnet is on the prefix\'s PATH');

  // 4. The installed CLI, from compiled JavaScript (tsx is not there to fall back on).
  const vnet = (args: string[], timeoutMs = 60_000) => sh('vnet', args, { cwd: tmp, env, timeoutMs });
  assert.equal((await vnet(['--version'])).stdout.trim(), '0.1.0');
  const help = (await vnet(['--help'])).stdout;
  for (const command of ['daemon', 'controller', 'status', 'certs', 'ctl']) assert.match(help, new RegExp(`^\\s+${command}\\b`, 'm'), `--help lists ${command}`);
  const certs = join(tmp, 'certs');
  await vnet(['certs', 'init', '--dir', certs]);
  await vnet(['certs', 'host', '--dir', certs, '--host', 'h1', '--ip', '127.0.0.1']);
  assert.ok(existsSync(join(certs, 'ca.pem')) && existsSync(join(certs, 'hosts', 'h1.pem')), 'vnet certs made the CA and the host certificate');
  step('vnet --version, --help, certs');

  // 5. A hub daemon with a TAP port in a namespace of this test.
  const ns = uniqueName('vnt-');
  await run(['ip', 'netns', 'add', ns]);
  t.after(async () => { await run(['ip', 'netns', 'del', ns], { allowFailure: true }); });
  const runDir = join(tmp, 'run');
  const socket = join(runDir, 'admin.sock');
  const daemon = spawn('vnet', ['daemon', '--host', 'h1', '--role', 'hub', '--listen', '127.0.0.1:0', '--migration', '127.0.0.1:0',
    '--transport', 'tls', '--tls-dir', certs, '--run-dir', runDir, '--admin', `unix:${socket}`,
    '--port', `vmp0,tap,${PORT_MAC},${PORT_IP}`, '--netns', ns], { cwd: tmp, env: { ...env, VNET_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  daemon.stdout.on('data', (d: Buffer) => (logs += d.toString()));
  daemon.stderr.on('data', (d: Buffer) => (logs += d.toString()));
  const exited = new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));
  t.after(() => { if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL'); });

  const status = await waitFor(async () => {
    if (daemon.exitCode !== null) throw new Error(`the installed daemon exited ${daemon.exitCode}:\n${logs}`);
    if (!existsSync(socket)) return undefined;
    return (await vnet(['status', '--admin', `unix:${socket}`, '--interval', '0'], 30_000).catch(() => undefined))?.stdout;
  }, `vnet status from the installed daemon (log: ${logs})`, 120_000);
  assert.match(status, /h1/, `vnet status names the host:\n${status}`);
  assert.match(status, /vmp0/, `vnet status lists the TAP port:\n${status}`);
  const addr = JSON.parse((await run(['ip', '-n', ns, '-j', 'addr', 'show', 'dev', 'vmp0'])).stdout) as Array<{ flags: string[]; address: string; addr_info: Array<{ local: string; prefixlen: number }> }>;
  assert.ok(addr[0]!.flags.includes('UP') && addr[0]!.address === PORT_MAC, `the TAP port is up in ${ns} with its MAC`);
  assert.ok(addr[0]!.addr_info.some((a) => `${a.local}/${a.prefixlen}` === PORT_IP), `the TAP port has ${PORT_IP}`);
  step('daemon running, vnet status answered');

  daemon.kill('SIGTERM');
  assert.equal(await exited, 0, `the daemon stops cleanly on SIGTERM:\n${logs}`);
  await waitFor(async () => (await run(['ip', '-n', ns, 'link', 'show', 'dev', 'vmp0'], { allowFailure: true })).code !== 0, 'the TAP device gone with its daemon', 10_000);
  step('daemon stopped; whole test');
});
