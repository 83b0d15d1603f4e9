/**
 * `vnet daemon`'s configured TAP ports against the real kernel (root): the
 * device moved into the VM's namespace, up, with the `ip:` of its
 * configuration; a namespace that does not exist refused before any device
 * is made; frames the kernel refuses reported at warn, rate-limited.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { plainFrame } from '../../src/common/frame.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { TapPort } from '../../src/dataplane/tap-port.ts';
import { openConfiguredPort } from '../../src/host/configured-port.ts';
import { capturingLogger, WARN } from '../helpers/log-capture.ts';
import { requireTools, run, useNetns, waitFor } from '../helpers/netns.ts';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const VNET = fileURLToPath(new URL('../../bin/vnet.js', import.meta.url));

requireTools(['ip', 'ping']);

function portSpec(port: Record<string, unknown>): ReturnType<typeof parseDaemonConfig>['ports'][number] {
  return parseDaemonConfig({ host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 0 }, ports: [port] }).ports[0]!;
}

async function addresses(ns: string, dev: string): Promise<string[]> {
  const r = await run(['ip', '-n', ns, '-j', 'addr', 'show', 'dev', dev]);
  const parsed = JSON.parse(r.stdout) as Array<{ addr_info: Array<{ family: string; local: string; prefixlen: number }> }>;
  return parsed[0]!.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
}

test('a TAP port with netns: and ip: ends up in its namespace, up, with its address, and the VM answers ping there', async (t) => {
  const h = await useNetns(t);
  const ns = await h.namespace();
  const name = h.linkName();
  h.trackHostLink(name);
  const port = await openConfiguredPort(silentLogger(), portSpec({ name, type: 'tap', mac: '02:00:00:98:00:01', ip: '10.97.0.1', netns: ns }));
  t.after(() => port.close());
  const link = await h.link(ns, name);
  assert.ok(link !== undefined, 'the device is in the namespace');
  assert.ok(link.flags?.includes('UP'), `flags ${JSON.stringify(link.flags)}`);
  assert.deepEqual(await addresses(ns, name), ['10.97.0.1/24'], 'an address without a prefix gets /24');
  assert.equal(await h.link(undefined, name), undefined, 'nothing left in the host namespace');
  // The namespace reaches 10.97.0.0/24 through the device: a ping to a neighbour goes out to the daemon's side as ARP.
  const seen: string[] = [];
  port.start((frames) => { for (const f of frames) seen.push(f.data.subarray(12, 14).toString('hex')); });
  await h.exec(ns, ['ping', '-c', '1', '-W', '1', '10.97.0.2'], { allowFailure: true });
  assert.ok(seen.includes('0806'), 'the VM ARPs for its neighbour through the port');
});

test('a TAP port with a prefix keeps it; one without netns: is addressed and up in the daemon\'s own namespace', async (t) => {
  const h = await useNetns(t);
  const name = h.linkName();
  h.trackHostLink(name);
  const ns = await h.namespace();
  const inNs = await openConfiguredPort(silentLogger(), portSpec({ name, type: 'tap', mac: '02:00:00:98:00:02', ip: '10.97.1.1/28', netns: ns }));
  t.after(() => inNs.close());
  assert.deepEqual(await addresses(ns, name), ['10.97.1.1/28']);
  const local = h.linkName();
  h.trackHostLink(local);
  const here = await openConfiguredPort(silentLogger(), portSpec({ name: local, type: 'tap', mac: '02:00:00:98:00:03', ip: '10.97.2.1/30' }));
  t.after(() => here.close());
  const link = await h.link(undefined, local);
  assert.ok(link?.flags?.includes('UP'));
  const r = await run(['ip', '-j', 'addr', 'show', 'dev', local]);
  assert.match(r.stdout, /"local":"10\.97\.2\.1","prefixlen":30/);
});

test('a netns: that does not exist is refused with the port and a hint, and no TAP device is left behind', async (t) => {
  const h = await useNetns(t);
  const name = h.linkName();
  h.trackHostLink(name);
  await assert.rejects(
    openConfiguredPort(silentLogger(), portSpec({ name, type: 'tap', mac: '02:00:00:98:00:04', netns: 'vnet-no-such-ns' })),
    { code: 'VNET_ERR_PORT_SETUP', message: `port ${name}: network namespace vnet-no-such-ns does not exist (create it first: ip netns add vnet-no-such-ns)` },
  );
  assert.equal(await h.link(undefined, name), undefined);
});

test('frames a down TAP device refuses are reported at warn, once for a burst, with the errno', async (t) => {
  const h = await useNetns(t);
  const name = h.linkName();
  h.trackHostLink(name);
  const { logger, records } = capturingLogger();
  const port = TapPort.open({ name, mac: 0x02_00_00_98_00_05, mtu: 1500, up: false, logger });
  t.after(() => port.close());
  const frame = Buffer.alloc(60);
  frame.writeUIntBE(0x02_00_00_98_00_05, 0, 6);
  frame.writeUIntBE(0x02_00_00_98_00_06, 6, 6);
  frame.writeUInt16BE(0x0800, 12);
  for (let i = 0; i < 50; i++) port.send(plainFrame(frame));
  assert.equal(port.stats.txDropped, 50);
  const warns = records.filter((r) => r.level === WARN);
  assert.equal(warns.length, 1, JSON.stringify(warns));
  assert.equal(warns[0]!.msg, 'frames to the VM dropped');
  assert.deepEqual(warns[0]!.dropped, { refused: 1 });
  assert.match(String(warns[0]!.lastError), /^EIO/);
  await port.close();
  const after = records.filter((r) => r.level === WARN);
  assert.equal(after.length, 2, 'the rest of the burst reported when the port closes');
  assert.deepEqual(after[1]!.dropped, { refused: 49 });
});

test('vnet daemon --port NAME,tap,MAC,IP --netns NS: the VM is up with its address in NS; gone when the daemon stops', async (t) => {
  const h = await useNetns(t);
  const ns = await h.namespace();
  const name = h.linkName();
  h.trackHostLink(name);
  const run = mkdtempSync(join(tmpdir(), 'vnet-netns-flag-'));
  t.after(() => rmSync(run, { recursive: true, force: true }));
  const child = spawn(process.execPath, [VNET, 'daemon', '--host', 'h1', '--role', 'hub', '--listen', '127.0.0.1:0', '--run-dir', run, '--port', `${name},tap,02:00:00:98:00:07,10.97.3.1/24`, '--netns', ns], {
    env: { PATH: process.env.PATH ?? '', VNET_LOG_LEVEL: 'silent' }, stdio: 'ignore',
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.after(async () => { if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited; } });
  await waitFor(async () => (await h.link(ns, name))?.flags?.includes('UP'), 'the TAP device up in its namespace', 30_000);
  assert.deepEqual(await addresses(ns, name), ['10.97.3.1/24']);
  child.kill('SIGINT');
  assert.equal(await exited, 0);
  assert.equal(await h.link(ns, name), undefined, 'the daemon\'s TAP device goes with it');
});
