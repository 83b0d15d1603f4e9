/**
 * The TAP device a daemon makes for a QEMU VM on a packet port
 * (src/host/qemu-tap.ts, through `vnet daemon`'s configured ports), against
 * the real kernel (root): made persistent and up with a VLAN tag's room in
 * its MTU, the host's stack kept off it, a packet port on it, deleted with
 * the port; an arriving VM's device named apart from one that has the name;
 * a packet port on an interface that does not exist refused, named; a
 * QEMU VM arriving on a packet port prepared and aborted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { PacketPort } from '../../src/dataplane/packet-port.ts';
import { openConfiguredPort } from '../../src/host/configured-port.ts';
import { PortSetupError } from '../../src/host/errors.ts';
import { freeTapName } from '../../src/host/qemu-tap.ts';
import { startDaemonFromConfig } from '../../src/host/daemon-runner.ts';
import type { MigrationReport } from '../../src/control/migration-control.ts';
import { initCa, issueHostCert } from '../../src/pki/certs.ts';
import { requireTools, run, useNetns, waitFor } from '../helpers/netns.ts';

requireTools(['ip']);

function portSpec(port: Record<string, unknown>, qemuDir: string): ReturnType<typeof parseDaemonConfig>['ports'][number] {
  return parseDaemonConfig({ host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 0 }, qemu: { dir: qemuDir }, ports: [port] }).ports[0]!;
}

const sysctl = (dev: string, key: string): string => readFileSync(`/proc/sys/net/${key.replace('IF', dev)}`, 'utf8').trim();

test('a packet port with qemu: makes its TAP device (up, MTU + 4, IPv6, forwarding and ARP answers off), attaches to it, and deletes it when closed', async (t) => {
  const h = await useNetns(t);
  const dir = mkdtempSync(join(tmpdir(), 'vnet-qemu-tap-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const name = h.linkName();
  h.trackHostLink(name);
  const port = await openConfiguredPort(silentLogger(), portSpec({ name, type: 'packet', mac: '02:00:00:00:0b:01', ip: '10.0.0.11/24', mtu: 1400, qemu: { memoryMiB: 128 } }, dir));
  assert.ok(port instanceof PacketPort);
  assert.equal(port.kind, 'packet');
  assert.equal(port.ifname, name);
  const link = await h.link(undefined, name);
  assert.ok(link !== undefined, 'the TAP device exists');
  assert.equal(link.linkinfo?.info_kind, 'tun');
  assert.equal(link.mtu, 1404);
  assert.ok(link.flags?.includes('UP'));
  assert.equal(sysctl(name, 'ipv6/conf/IF/disable_ipv6'), '1');
  assert.equal(sysctl(name, 'ipv4/conf/IF/forwarding'), '0');
  assert.equal(sysctl(name, 'ipv4/conf/IF/arp_ignore'), '8');
  await port.close();
  await waitFor(() => !existsSync(`/sys/class/net/${name}`), 'the TAP device deleted with the port', 10_000);
});

test('an arriving VM\'s TAP device is named apart when the port\'s name is taken (two daemons on one kernel)', async (t) => {
  const h = await useNetns(t);
  const name = h.linkName();
  assert.equal(freeTapName(name), name);
  await run(['ip', 'tuntap', 'add', 'dev', name, 'mode', 'tap']);
  h.trackHostLink(name);
  assert.equal(freeTapName(name), `${name.slice(0, 12)}.m1`);
});

test('a packet port on an interface that does not exist is refused with a PortSetupError naming the port and the interface', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-qemu-tap-'));
  try {
    await assert.rejects(openConfiguredPort(silentLogger(), portSpec({ name: 'vm9', type: 'packet', ifname: 'vnt-noif9', mac: '02:00:00:00:0b:09' }, dir)), (err: unknown) => {
      assert.ok(err instanceof PortSetupError, String(err));
      assert.match(err.message, /vm9/);
      assert.match(err.message, /vnt-noif9 does not exist/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a QEMU VM arriving on a packet port (portKind packet): prepared on a TAP device of its own behind a held packet port, named apart from the source\'s; an abort deletes it', async (t) => {
  const h = await useNetns(t);
  const dir = mkdtempSync(join(tmpdir(), 'vnet-qemu-tap-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await initCa(dir);
  await issueHostCert(dir, 'h1');
  const running = await startDaemonFromConfig({ logger: silentLogger() }, parseDaemonConfig({ host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 0 }, tls: { dir }, qemu: { dir: join(dir, 'q') } }));
  t.after(() => running.close());
  // The source's device, on the same kernel, still has the port's name.
  const name = h.linkName();
  await run(['ip', 'tuntap', 'add', 'dev', name, 'mode', 'tap']);
  h.trackHostLink(name);
  const reports: MigrationReport[] = [];
  running.migrations.onReport((r) => reports.push(r));
  running.migrations.handle({ type: 'migrate-prepare', id: 'mp', vm: { mac: '02:00:00:00:0b:02', port: name, ip: '10.0.0.12/24', portKind: 'packet' }, from: 'h2' });
  assert.equal(reports[0]?.state, 'prepared', JSON.stringify(reports[0]));
  const port = running.daemon.port(name);
  assert.ok(port instanceof PacketPort, String(port?.kind));
  const ifname = `${name.slice(0, 12)}.m1`;
  assert.equal(port.ifname, ifname);
  h.trackHostLink(ifname);
  assert.ok(existsSync(`/sys/class/net/${ifname}`));
  running.migrations.handle({ type: 'migrate-abort', id: 'mp' });
  await waitFor(() => reports.at(-1)?.state === 'aborted', 'the abort reported', 10_000);
  await waitFor(() => !existsSync(`/sys/class/net/${ifname}`), 'the arriving TAP device deleted with its port', 10_000);
  assert.ok(existsSync(`/sys/class/net/${name}`), 'the source\'s device untouched');
});
