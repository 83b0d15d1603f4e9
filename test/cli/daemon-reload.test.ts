import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { silentLogger } from '../../src/common/logger.ts';
import { parseMac } from '../../src/common/mac.ts';
import { defaultAdminSocket } from '../../src/dataplane/admin-access.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import type { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { startDaemonFromConfig, type RunningDaemon } from '../../src/host/daemon-runner.ts';
import { adminRequest } from '../helpers/admin-client.ts';
import { testFrame } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * `vnet daemon` reloads its configuration file on SIGHUP (a real process):
 * what changed is applied, what did not is not touched (the backbone link is
 * not redialled, its counters and the port's keep counting), fixed settings
 * and a bad file are refused with one log line and change nothing.
 */

const VNET = fileURLToPath(new URL('../../bin/vnet.js', import.meta.url));
const BROADCAST = parseMac('ff:ff:ff:ff:ff:ff');

interface LinkView { peer: string; kind: string; state: string; reconnects: number; rxFrames: number }
/** A memory port in a daemon process has no VM behind it: the frames that reach it are counted as dropped there. */
interface PortView { name: string; txDropped: number; security?: { locked: boolean } }

async function inProcessDaemon(t: { after(fn: () => Promise<void>): void }, input: Record<string, unknown>): Promise<RunningDaemon> {
  const running = await startDaemonFromConfig({ logger: silentLogger() }, parseDaemonConfig(input));
  t.after(() => running.close());
  return running;
}

describe('vnet daemon: SIGHUP reload (process)', () => {
  it('applies new ports, rules, fast-path links and security; keeps the unchanged link and port counting; refuses fixed settings and a bad file', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'vnet-reload-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const hub = await inProcessDaemon(t, { host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 0 }, ports: [{ name: 'hv', type: 'memory', mac: '02:00:00:00:01:01' }] });
    const hubPort = hub.daemon.listenAddress!.port;
    const h3 = await inProcessDaemon(t, { host: 'h3', role: 'spoke', listen: { host: '127.0.0.1', port: 0 }, hub: { host: '127.0.0.1', port: hubPort }, hubId: 'h1' });
    const h3Port = h3.daemon.listenAddress!.port;

    const file = join(dir, 'h2.yaml');
    const base = {
      host: 'h2', role: 'spoke', listen: { host: '127.0.0.1', port: 0 }, hub: { host: '127.0.0.1', port: hubPort }, hubId: 'h1', runDir: dir,
      ports: [{ name: 'vm1', type: 'memory', mac: '02:00:00:00:02:01' }],
    };
    writeFileSync(file, stringify(base));
    const child: ChildProcess = spawn(process.execPath, [VNET, 'daemon', '--config', file], { env: { PATH: process.env.PATH ?? '', VNET_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    t.after(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    });
    const admin = `unix:${defaultAdminSocket(dir, 'h2')}`;
    const get = async <T>(path: string): Promise<T> => (await adminRequest(admin, 'GET', path)).json as T;
    const backbone = async (): Promise<LinkView | undefined> => (await get<LinkView[]>('/links').catch(() => [])).find((l) => l.peer === 'h1' && l.state === 'up');
    const port = async (name: string): Promise<PortView | undefined> => (await get<PortView[]>('/ports')).find((p) => p.name === name);
    const logLines = (): Record<string, unknown>[] => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const reloadLines = (): Record<string, unknown>[] => logLines().filter((l) => l.component === 'reload');

    // Broadcasts from the hub's VM reach h2 over the backbone and are delivered to vm1.
    const hv = hub.daemon.port('hv') as MemoryPort;
    let seq = 0;
    const flood = (n: number): void => { for (let i = 0; i < n; i++) hv.transmit(testFrame(BROADCAST, hv.mac, seq++)); };
    await waitFor(backbone, 'h2 up to the hub', 30_000);
    flood(20);
    const before = await waitFor(async () => { const l = await backbone(); return l !== undefined && l.rxFrames >= 20 ? l : undefined; }, 'the broadcasts over the backbone');
    const vm1Before = await waitFor(async () => { const p = await port('vm1'); return p !== undefined && p.txDropped >= 20 ? p : undefined; }, 'the broadcasts at vm1');
    assert.equal(vm1Before.security?.locked, true);

    // 1. A new port, a rule, a fast-path link to h3, vm1 unlocked, debug logging.
    const rule = { id: 'block-9', priority: 50, src: 'any', dst: '02:00:00:00:09:09', action: 'drop' };
    writeFileSync(file, stringify({
      ...base, logLevel: 'debug', rules: [rule], fastPath: [{ peer: 'h3', host: '127.0.0.1', port: h3Port }],
      ports: [{ ...base.ports[0], security: { lock: false } }, { name: 'vm2', type: 'memory', mac: '02:00:00:00:02:02' }],
    }));
    child.kill('SIGHUP');
    await waitFor(async () => (await port('vm2')) !== undefined, 'vm2 added by the reload');
    const rules = await get<{ rules: { id: string }[] }>('/rules');
    assert.ok(rules.rules.some((r) => r.id === 'block-9'), JSON.stringify(rules));
    assert.equal((await port('vm1'))?.security?.locked, false, 'vm1\'s security changed in place');
    await waitFor(async () => (await get<LinkView[]>('/links')).some((l) => l.peer === 'h3' && l.kind === 'fast-path' && l.state === 'up'), 'the fast-path link to h3');
    flood(10);
    const after = await waitFor(async () => { const l = await backbone(); return l !== undefined && l.rxFrames >= before.rxFrames + 10 ? l : undefined; }, 'the backbone still counting');
    assert.equal(after.reconnects, before.reconnects, 'the backbone link was not redialled');
    await waitFor(async () => ((await port('vm1'))?.txDropped ?? 0) >= vm1Before.txDropped + 10, 'vm1 still counting (the same port)');
    const applied = reloadLines().find((l) => l.msg === 'configuration reloaded');
    assert.deepEqual(applied?.portsAdded, ['vm2']);
    assert.deepEqual(applied?.securityChanged, ['vm1']);
    // The fast-path link's 'link set' is logged at debug; the child's stdout may lag the admin API that showed the link up.
    await waitFor(() => logLines().some((l) => l.level === 20), 'debug lines once logLevel: debug applied');

    // 2. A fixed setting: one error line naming it; everything as it was.
    const fixedAt = reloadLines().length;
    writeFileSync(file, stringify({ ...base, role: 'hub', listen: { host: '127.0.0.1', port: 0 } }));
    child.kill('SIGHUP');
    const refused = await waitFor(() => reloadLines().slice(fixedAt).find((l) => l.level === 50), 'the refusal of a fixed setting');
    assert.match(String(refused.msg), /reload refused: .*h2\.yaml: role cannot change while the daemon runs/);
    assert.equal(reloadLines().slice(fixedAt).length, 1, 'one line');

    // 3. A bad file: the error names the file and the line; nothing changes.
    const badAt = reloadLines().length;
    writeFileSync(file, `${stringify({ ...base })}portz: []\n`);
    child.kill('SIGHUP');
    const bad = await waitFor(() => reloadLines().slice(badAt).find((l) => l.level === 50), 'the refusal of a bad file');
    assert.match(String(bad.msg), /reload refused: .*h2\.yaml.*line \d+.*portz/);
    assert.ok((await port('vm2')) !== undefined, 'vm2 still there after the refusals');
    assert.equal((await port('vm1'))?.security?.locked, false);
    assert.ok((await get<{ rules: { id: string }[] }>('/rules')).rules.some((r) => r.id === 'block-9'));
    assert.equal((await backbone())?.reconnects, before.reconnects);

    // 4. Back to the first file: vm2, the rule and the fast-path link go; vm1 is locked again; the backbone stays.
    writeFileSync(file, stringify(base));
    child.kill('SIGHUP');
    await waitFor(async () => (await port('vm2')) === undefined, 'vm2 removed by the reload');
    await waitFor(async () => !(await get<LinkView[]>('/links')).some((l) => l.peer === 'h3'), 'the fast-path link to h3 removed');
    assert.ok(!(await get<{ rules: { id: string }[] }>('/rules')).rules.some((r) => r.id === 'block-9'));
    assert.equal((await port('vm1'))?.security?.locked, true);
    assert.equal((await backbone())?.reconnects, before.reconnects);

    child.kill('SIGTERM');
    assert.equal(await exited, 0, out);
  });
});
