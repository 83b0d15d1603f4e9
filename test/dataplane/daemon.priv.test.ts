/**
 * Privileged (root): real daemons (the `vnet daemon` CLI) in host network
 * namespaces, each VM a namespace holding a TAP device that its daemon
 * created and moved there. The hosts share an underlay bridge in a "switch"
 * namespace. Everything is created here and removed afterwards.
 *
 *   vm0 ── hub (hH) ─┬─ hA ── vm1
 *                    └─ hB ── vm2        + fast-path hA ═ hB added at run time
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { NetnsHarness, requireTools, waitFor } from '../helpers/netns.ts';
import { adminRequest } from '../helpers/admin-client.ts';
import { linkKeyFile, writeLinkKey } from '../../src/dataplane/link-auth.ts';

const VNET = resolve(import.meta.dirname, '../../bin/vnet.js');

interface Host {
  id: string;
  ns: string;
  vm: string;
  underlay: string;
  tap: string;
  mac: string;
  vmIp: string;
  admin: string;
}

describe('daemons in network namespaces with TAP ports', { timeout: 180_000 }, () => {
  const h = new NetnsHarness('vnd-');
  const dir = mkdtempSync(join(tmpdir(), 'vnet-priv-'));
  const hosts: Host[] = [];
  const logs = new Map<string, string>();

  const byId = (id: string): Host => hosts.find((x) => x.id === id)!;
  const status = async (id: string): Promise<{ links: { peer: string; kind: string; state: string; txFrames: number; rxFrames: number }[] }> =>
    (await adminRequest(byId(id).admin, 'GET', '/status')).json as never;
  const linkFrames = async (id: string, peer: string): Promise<number> => {
    const l = (await status(id)).links.find((x) => x.peer === peer);
    return l === undefined ? -1 : l.txFrames + l.rxFrames;
  };
  const ping = (from: Host, to: Host, extra: string[] = []) =>
    h.exec(from.vm, ['ping', '-c', '3', '-i', '0.2', '-W', '2', ...extra, to.vmIp.split('/')[0]!], { timeoutMs: 20_000, allowFailure: true });

  before(async () => {
    requireTools(['ip', 'ping', 'iperf3']);
    const sw = await h.namespace();
    await h.exec(sw, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
    await h.linkUp(sw, 'br0');
    const specs = [
      { id: 'hub', role: 'hub', n: 1 },
      { id: 'hA', role: 'spoke', n: 2 },
      { id: 'hB', role: 'spoke', n: 3 },
    ] as const;
    for (const s of specs) {
      const ns = await h.namespace();
      const vm = await h.namespace();
      const [inHost, inSwitch] = await h.vethPair({ ns }, { ns: sw });
      await h.exec(sw, ['ip', 'link', 'set', inSwitch, 'master', 'br0']);
      await h.addAddress(ns, inHost, `10.201.0.${s.n}/24`);
      hosts.push({ id: s.id, ns, vm, underlay: `10.201.0.${s.n}`, tap: h.linkName(), mac: `02:00:00:00:01:0${s.n}`, vmIp: `10.9.9.${s.n}/24`, admin: `unix:${join(dir, `${s.id}.sock`)}` });
    }
    // TCP links between namespaces (off loopback) must be authenticated: the deployment's link key.
    const linkKey = linkKeyFile(dir);
    writeLinkKey(linkKey);
    for (const [i, s] of specs.entries()) {
      const host = hosts[i]!;
      const yaml = [
        `host: ${host.id}`,
        `role: ${s.role}`,
        `tunnel: { linkKeyFile: ${linkKey} }`,
        `members: [${specs.map((x) => x.id).join(', ')}]`,
        `listen: { host: ${host.underlay}, port: 7000 }`,
        ...(s.role === 'spoke' ? ['hub: { host: 10.201.0.1, port: 7000 }', 'hubId: hub'] : []),
        `admin: { socket: ${join(dir, `${host.id}.sock`)} }`,
        'keepaliveMs: 200',
        'deadMs: 2000',
        'reconnect: { initialMs: 50, maxMs: 500 }',
        'ports:',
        `  - { name: ${host.tap}, type: tap, mac: "${host.mac}", netns: ${host.vm}, offload: true }`,
      ].join('\n');
      writeFileSync(join(dir, `${host.id}.yaml`), yaml + '\n');
      const child = h.spawn(host.ns, [process.execPath, VNET, 'daemon', '--config', join(dir, `${host.id}.yaml`)]);
      let log = '';
      const keep = (d: Buffer): void => {
        log += d.toString();
        logs.set(host.id, log);
      };
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      child.on('exit', (code) => {
        logs.set(host.id, log);
        if (code !== 0 && code !== null) console.error(`daemon ${host.id} exited with ${code}:\n${log}`);
      });
      logs.set(host.id, '');
    }
    for (const host of hosts) {
      await waitFor(async () => (await h.link(host.vm, host.tap)) !== undefined, `TAP ${host.tap} in ${host.vm}`, 20_000).catch((err: Error) => {
        throw new Error(`${err.message}; daemon log:\n${logs.get(host.id)}`);
      });
      await h.addAddress(host.vm, host.tap, host.vmIp);
      await h.linkUp(host.vm, host.tap);
    }
    await waitFor(async () => (await status('hub').catch(() => ({ links: [] }))).links.filter((l) => l.state === 'up').length === 2, 'both spokes linked to the hub', 20_000);
  });

  after(async () => {
    await h.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the TAP device carries the configured MAC inside the VM namespace', async () => {
    for (const host of hosts) {
      const link = await h.link(host.vm, host.tap);
      assert.equal(link?.address, host.mac);
      assert.equal(link?.mtu, 1500);
    }
  });

  it('ping works VM to VM through the hub, with ARP resolving the peer MAC', async () => {
    const [, a, b] = hosts as [Host, Host, Host];
    const r = await ping(a, b);
    assert.equal(r.code, 0, `ping vm1 -> vm2 failed: ${r.stdout}${r.stderr}`);
    const neigh = await h.exec(a.vm, ['ip', '-j', 'neigh', 'show', b.vmIp.split('/')[0]!]);
    const entries = JSON.parse(neigh.stdout) as { lladdr?: string }[];
    assert.equal(entries[0]?.lladdr, b.mac, 'ARP resolved vm2 to its TAP MAC');
    assert.ok((await linkFrames('hub', 'hA')) > 0 && (await linkFrames('hub', 'hB')) > 0, 'the frames crossed the hub');
  });

  it('1500-byte IP packets pass without fragmentation (DF set)', async () => {
    const [, a, b] = hosts as [Host, Host, Host];
    const r = await ping(a, b, ['-M', 'do', '-s', '1472']);
    assert.equal(r.code, 0, `1500-byte ping failed: ${r.stdout}${r.stderr}`);
  });

  it('an iperf3 TCP stream runs across the overlay', async () => {
    const [, a, b] = hosts as [Host, Host, Host];
    const ip = b.vmIp.split('/')[0]!;
    const server = h.spawn(b.vm, ['iperf3', '-s', '-1', '-B', ip]);
    await waitFor(async () => (await h.exec(b.vm, ['ss', '-ltn'])).stdout.includes(`${ip}:5201`), 'iperf3 server listening', 10_000);
    const r = await h.exec(a.vm, ['iperf3', '-c', ip, '-t', '2', '-J'], { timeoutMs: 30_000 });
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bytes: number; bits_per_second: number } } };
    assert.ok(j.end.sum_received.bytes > 1_000_000, `iperf3 moved only ${j.end.sum_received.bytes} bytes`);
    server.kill();
  });

  it('a fast-path link added at run time carries the traffic instead of the hub', async () => {
    const [, a, b] = hosts as [Host, Host, Host];
    const add = await adminRequest(a.admin, 'POST', '/links', { peer: 'hB', host: b.underlay, port: 7000, reason: 'test' });
    assert.equal(add.status, 201, JSON.stringify(add.json));
    await waitFor(async () => (await status('hA')).links.some((l) => l.peer === 'hB' && l.kind === 'fast-path' && l.state === 'up'), 'fast-path hA-hB up', 15_000);
    await waitFor(async () => (await status('hB')).links.some((l) => l.peer === 'hA' && l.state === 'up'), 'hB sees the fast-path link', 15_000);
    const steer = (dst: string, via: string) => [{ id: `to-${via}`, priority: 100, src: 'any', dst, action: { link: via } }];
    assert.equal((await adminRequest(a.admin, 'PUT', '/rules', steer(b.mac, 'hB'))).status, 200);
    assert.equal((await adminRequest(b.admin, 'PUT', '/rules', steer(a.mac, 'hA'))).status, 200);

    const hubBefore = await linkFrames('hub', 'hA');
    const fastBefore = await linkFrames('hA', 'hB');
    const r = await ping(a, b, ['-c', '20', '-i', '0.05']);
    assert.equal(r.code, 0, `ping over the fast path failed: ${r.stdout}${r.stderr}`);
    const fast = (await linkFrames('hA', 'hB')) - fastBefore;
    const viaHub = (await linkFrames('hub', 'hA')) - hubBefore;
    assert.ok(fast >= 40, `the 20 echo requests and 20 replies crossed the fast-path link (${fast} frames)`);
    // Through the hub, the pings would be 40 frames on its link to hA. Keepalives are not counted; broadcasts the
    // namespaces send on their own (IPv6 neighbour discovery, an ARP refresh) still flood along the backbone.
    assert.ok(viaHub < 5, `the pings did not go through the hub (${viaHub} frames on hub–hA meanwhile)`);
  });

  it('the VM on the hub reaches both spokes (hub-local port)', async () => {
    const [hub, a, b] = hosts as [Host, Host, Host];
    assert.equal((await ping(hub, a)).code, 0);
    assert.equal((await ping(hub, b)).code, 0);
  });
});
