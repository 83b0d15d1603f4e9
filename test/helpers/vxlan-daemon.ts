/**
 * A `vnet daemon` whose one tunnel is VXLAN, for the interop tests with the
 * kernel's vxlan devices and Open vSwitch: a hub with no spokes in host
 * namespace `hostNs`, its VTEP at `listenIp`:4789 facing one peer VTEP, and a
 * TAP port (offloads on: super-frames are segmented before encapsulation) in
 * the VM namespace `vmNs`, up with `vmIp`/24. Its output is kept for the
 * tests' failure messages.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { waitFor, type NetnsHarness } from './netns.ts';

const VNET = resolve(import.meta.dirname, '../../bin/vnet.js');

export interface VxlanDaemonInit {
  dir: string;
  hostNs: string;
  vmNs: string;
  vni: number;
  listenIp: string;
  vtep: { peer: string; host: string };
  mac: string;
  vmIp: string;
}

export async function startVxlanDaemon(h: NetnsHarness, o: VxlanDaemonInit): Promise<{ tap: string; admin: string; log: () => string }> {
  const tap = h.linkName();
  const admin = join(o.dir, 'hD.sock');
  const yaml = [
    'host: hD',
    'role: hub',
    'listen: { host: 127.0.0.1, port: 0 }',
    `admin: { socket: ${admin} }`,
    `vxlan: { trustedUnderlay: true, vni: ${o.vni}, listen: { host: ${o.listenIp}, port: 4789 }, vteps: [{ peer: ${o.vtep.peer}, host: ${o.vtep.host}, port: 4789 }] }`,
    'ports:',
    `  - { name: ${tap}, type: tap, mac: "${o.mac}", netns: ${o.vmNs}, offload: true }`,
  ].join('\n');
  writeFileSync(join(o.dir, 'hD.yaml'), yaml + '\n');
  let log = '';
  const child = h.spawn(o.hostNs, [process.execPath, VNET, 'daemon', '--config', join(o.dir, 'hD.yaml')]);
  child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  await waitFor(async () => (await h.link(o.vmNs, tap)) !== undefined, `TAP ${tap} in ${o.vmNs}`, 20_000).catch((err: Error) => {
    throw new Error(`${err.message}; daemon log:\n${log}`);
  });
  await h.addAddress(o.vmNs, tap, `${o.vmIp}/24`);
  await h.linkUp(o.vmNs, tap);
  return { tap, admin, log: () => log };
}
