/**
 * Privileged (root): tunnel link authentication off loopback, with real
 * `vnet daemon` processes in network namespaces on one underlay bridge.
 *
 *   hub ─┬─ hA ── vmA        TCP links authenticated by the deployment link key,
 *        └─ hB ── vmB        members [hub, hA, hB]
 *   attacker (10.202.0.9)    claims to be hA: refused, counted, logged; vmA ↔ vmB lose nothing
 *   hX ── hY                 no key: refused off loopback; linked once allowUnauthenticated is set
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { NetnsHarness, requireTools, waitFor } from '../helpers/netns.ts';
import { adminRequest } from '../helpers/admin-client.ts';
import { linkKeyFile, writeLinkKey } from '../../src/dataplane/link-auth.ts';

const VNET = resolve(import.meta.dirname, '../../bin/vnet.js');
const IMPOSTOR = resolve(import.meta.dirname, 'fixtures/impostor.ts');
const PORT = 7000;

interface Status {
  links: { peer: string; state: string }[];
  stats: { listener?: { refusedByCode: Record<string, number>; pending: number } };
}

describe('tunnel link authentication between namespaces', { timeout: 180_000 }, () => {
  const h = new NetnsHarness('vsa-');
  const dir = mkdtempSync(join(tmpdir(), 'vnet-sec-'));
  const ns = new Map<string, string>();
  const logs = new Map<string, string>();
  const procs = new Map<string, ChildProcess>();
  const ip = (n: number): string => `10.202.0.${n}`;
  const sock = (id: string): string => `unix:${join(dir, `${id}.sock`)}`;
  const status = async (id: string): Promise<Status> => (await adminRequest(sock(id), 'GET', '/status')).json as Status;
  const up = async (id: string, peer: string): Promise<boolean> => (await status(id).catch(() => ({ links: [] }) as unknown as Status)).links.some((l) => l.peer === peer && l.state === 'up');

  /** A host namespace on the underlay bridge, with address 10.202.0.n. */
  const host = async (name: string, n: number, sw: string): Promise<void> => {
    const space = await h.namespace();
    const [inHost, inSwitch] = await h.vethPair({ ns: space }, { ns: sw });
    await h.exec(sw, ['ip', 'link', 'set', inSwitch, 'master', 'br0']);
    await h.addAddress(space, inHost, `${ip(n)}/24`);
    await h.linkUp(space, 'lo');
    ns.set(name, space);
  };

  const startDaemon = (id: string, lines: string[]): void => {
    const file = join(dir, `${id}.yaml`);
    // logLevel: the test reads the daemons' logs, whatever level the test runner set (VNET_LOG_LEVEL=silent).
    writeFileSync(file, [`host: ${id}`, 'logLevel: info', `admin: { socket: ${join(dir, `${id}.sock`)} }`, 'keepaliveMs: 200', 'deadMs: 2000', 'reconnect: { initialMs: 50, maxMs: 500 }', ...lines].join('\n') + '\n');
    const child = h.spawn(ns.get(id)!, [process.execPath, VNET, 'daemon', '--config', file]);
    logs.set(id, '');
    const keep = (d: Buffer): void => void logs.set(id, logs.get(id)! + d.toString());
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    procs.set(id, child);
  };

  const stopDaemon = async (id: string): Promise<void> => {
    const child = procs.get(id)!;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGINT');
    await exited;
  };

  const vmPorts = new Map<string, { vm: string; tap: string; mac: string; vmIp: string }>();

  before(async () => {
    requireTools(['ip', 'ping']);
    const sw = await h.namespace();
    await h.exec(sw, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
    await h.linkUp(sw, 'br0');
    for (const [name, n] of [['hub', 1], ['hA', 2], ['hB', 3], ['hX', 4], ['hY', 5], ['attacker', 9]] as const) await host(name, n, sw);
    const key = linkKeyFile(dir);
    writeLinkKey(key);
    const auth = [`tunnel: { linkKeyFile: ${key} }`, 'members: [hub, hA, hB]'];
    startDaemon('hub', ['role: hub', `listen: { host: ${ip(1)}, port: ${PORT} }`, ...auth]);
    for (const [id, n] of [['hA', 2], ['hB', 3]] as const) {
      const vm = await h.namespace();
      const port = { vm, tap: h.linkName(), mac: `02:00:00:00:02:0${n}`, vmIp: `10.9.8.${n}/24` };
      vmPorts.set(id, port);
      startDaemon(id, ['role: spoke', `listen: { host: ${ip(n)}, port: ${PORT} }`, `hub: { host: ${ip(1)}, port: ${PORT} }`, 'hubId: hub', ...auth,
        'ports:', `  - { name: ${port.tap}, type: tap, mac: "${port.mac}", netns: ${vm} }`]);
    }
    for (const [id, p] of vmPorts) {
      await waitFor(async () => (await h.link(p.vm, p.tap)) !== undefined, `TAP of ${id}`, 20_000).catch((err: Error) => {
        throw new Error(`${err.message}; daemon log:\n${logs.get(id)}`);
      });
      await h.addAddress(p.vm, p.tap, p.vmIp);
      await h.linkUp(p.vm, p.tap);
    }
    await waitFor(async () => (await up('hub', 'hA')) && (await up('hub', 'hB')), 'both spokes linked to the hub with the link key', 20_000);
  });

  after(async () => {
    await h.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an impostor in another namespace claiming hA is refused, counted and logged, and vmA ↔ vmB lose nothing meanwhile', async () => {
    const a = vmPorts.get('hA')!;
    const b = vmPorts.get('hB')!;
    const ping = h.exec(a.vm, ['ping', '-c', '30', '-i', '0.1', '-W', '2', b.vmIp.split('/')[0]!], { timeoutMs: 30_000, allowFailure: true });
    const attack = await h.exec(ns.get('attacker'), [process.execPath, '--import', 'tsx', IMPOSTOR, ip(1), String(PORT), 'hA', '40'], { timeoutMs: 60_000 });
    const r = await ping;
    const result = JSON.parse(attack.stdout.trim()) as { codes: Record<string, number>; frames: number };
    assert.deepEqual(result.codes, { auth: 40 }, 'every try ended with goodbye auth');
    assert.equal(result.frames, 0, 'the impostor got no frame');
    assert.match(r.stdout, / 0% packet loss/, `vmA → vmB pings during the attack:\n${r.stdout}`);
    const s = await status('hub');
    assert.equal(s.stats.listener?.refusedByCode['VNET_ERR_LINK_AUTH'], 40);
    assert.ok(await up('hub', 'hA'), "the real hA's link stayed up");
    const line = logs.get('hub')!.split('\n').find((l) => l.includes('"claimedHost":"hA"') && l.includes(`"source":"${ip(9)}"`));
    assert.ok(line !== undefined, 'the refusal is logged with the claimed host id and the source address');
  });

  it('without a key or certificate, TCP links between namespaces are refused; with allowUnauthenticated they link, with a warning', async () => {
    const plain = (extra: string[]): void => {
      startDaemon('hX', ['role: hub', `listen: { host: ${ip(4)}, port: ${PORT} }`, ...extra]);
      startDaemon('hY', ['role: spoke', `hub: { host: ${ip(4)}, port: ${PORT} }`, 'hubId: hX', ...extra]);
    };
    plain([]);
    await waitFor(() => (logs.get('hY') ?? '').includes('VNET_ERR_UNAUTHENTICATED_LINK'), 'hY refuses to dial without authentication', 20_000);
    await waitFor(async () => (await status('hX').catch(() => undefined)) !== undefined, 'hX up', 60_000);
    assert.equal(await up('hX', 'hY'), false);
    await stopDaemon('hY');
    await stopDaemon('hX');

    plain(['tunnel: { allowUnauthenticated: true }']);
    await waitFor(async () => (await up('hX', 'hY')) && (await up('hY', 'hX')), 'hX–hY linked once allowed', 20_000);
    for (const id of ['hX', 'hY']) assert.match(logs.get(id)!, /allowUnauthenticated/, `${id} warned at start`);
  });
});
