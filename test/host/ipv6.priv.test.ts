/**
 * IPv6 end to end (root): the hub and two hosts run `vnet daemon` in network
 * namespaces of their own joined by an IPv6-only underlay (no IPv4 address on
 * any link between them; TLS tunnels, control channels to the controller in
 * this process and migration channels all on unique-local IPv6 addresses),
 * and two VMs (namespaces with the TAP devices their daemons made) have IPv6
 * addresses only. Duplicate address detection and neighbour discovery go
 * through the overlay (their multicast flooded like broadcast); then one VM
 * pings the other with `ping -6` through the hub, all-nodes multicast reaches
 * the other VM, and pings over a fast-path link the operator added are
 * counted on that link. Fails (does not skip) without root, `ip` or `ping`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startNetnsOverlay } from '../helpers/netns-overlay.ts';
import { waitFor } from '../helpers/wait.ts';

test('IPv6 between VMs on an IPv6-only underlay: through the hub, multicast, and over a fast-path link', { timeout: 180_000 }, async (t) => {
  const o = await startNetnsOverlay(t, {
    hosts: ['c1', 'c2'],
    vms: [{ host: 'c1' }, { host: 'c2' }],
    // No fast path of the controller's own: the first pings must go through the hub.
    policy: '  updatePeriodMs: 200\n  fastPathBudget: 0',
    tools: ['ping'],
    ipv6: true,
  });
  const u = o.underlay!;
  const model = o.model;
  const [v0, v1] = [o.vms[0]!, o.vms[1]!];

  // The underlay and the VMs have no IPv4 but loopback's; the controller knows each host by its IPv6 address.
  for (const h of ['hub', 'c1', 'c2']) {
    const v4 = await o.harness.exec(u.namespace(h), ['ip', '-4', '-o', 'addr', 'show']);
    assert.deepEqual(v4.stdout.trim().split('\n').map((l) => l.split(/\s+/)[1]), ['lo'], `${h}: IPv4 on lo only`);
    assert.deepEqual(model.getHost(h)!.addresses.map((a) => a.host), [u.address(h)], `${h} reported its IPv6 listen address`);
  }
  for (const i of [0, 1]) {
    const v4 = await o.exec(i, ['ip', '-4', '-o', 'addr', 'show']);
    assert.deepEqual(v4.stdout.trim().split('\n').map((l) => l.split(/\s+/)[1]), ['lo'], `vm${i}: no IPv4`);
  }

  // Duplicate address detection over the overlay ends with the address usable (not tentative, not failed).
  for (const i of [0, 1]) {
    await waitFor(async () => (await o.exec(i, ['ip', '-6', 'addr', 'show', 'dev', o.vms[i]!.dev, 'tentative'])).stdout.trim() === '', `vm${i}: DAD finished`, 20_000);
    const failed = await o.exec(i, ['ip', '-6', 'addr', 'show', 'dev', o.vms[i]!.dev, 'dadfailed']);
    assert.equal(failed.stdout.trim(), '', `vm${i}: DAD did not fail`);
  }

  // Neighbour discovery settles (bounded), then not one ping lost through the hub.
  let tries = 0;
  await waitFor(async () => ++tries > 40 || (await o.exec(0, ['ping', '-6', '-c', '1', '-W', '1', v1.ip])).code === 0, 'a first ping -6 answered (neighbour discovery done)', 60_000);
  assert.ok(tries <= 40, 'neighbour discovery settled within 40 pings');
  assert.equal(model.getLink('c1', 'c2'), undefined, 'no fast path yet');
  const backbone = (): number => model.listLinks().filter((l) => l.kind === 'backbone').reduce((s, l) => s + l.frames, 0);
  const bb0 = backbone();
  const viaHub = await o.exec(0, ['ping', '-6', '-c', '20', '-i', '0.05', v1.ip]);
  assert.match(viaHub.stdout, / 0% packet loss/, viaHub.stdout + viaHub.stderr);
  // 20 requests and 20 replies, each on two backbone links (c1–hub, hub–c2).
  await waitFor(() => backbone() - bb0 >= 80, 'the 20 pings counted on the backbone', 15_000);

  // All-nodes multicast (ff02::1) is flooded like broadcast: vm1 answers from its link-local address.
  const linkLocal = (await o.exec(1, ['ip', '-6', '-o', 'addr', 'show', 'dev', v1.dev, 'scope', 'link'])).stdout.match(/inet6 (fe80::[0-9a-f:]+)\//)?.[1];
  assert.ok(linkLocal !== undefined, 'vm1 has a link-local address');
  const multicast = await o.exec(0, ['ping', '-6', '-c', '3', '-i', '0.2', '-I', v0.dev, 'ff02::1']);
  assert.ok(multicast.stdout.includes(`from ${linkLocal}`), `vm1 (${linkLocal}) answered the all-nodes ping:\n${multicast.stdout}${multicast.stderr}`);

  // A fast-path link, dialled at the peer's IPv6 address, carries the next pings.
  await model.addFastPathLink('c1', 'c2', 'IPv6 fast path', 'test');
  await waitFor(() => model.getLink('c1', 'c2')?.state === 'up', 'fast path c1–c2 up over IPv6', 30_000);
  await waitFor(() => model.listHosts().every((h) => { const r = model.getRules(h.id); return r !== undefined && r.appliedVersion === r.version; }), 'rules applied', 15_000);
  const fastFrames = (): number => model.getLink('c1', 'c2')!.frames;
  const fast0 = fastFrames();
  const overFast = await o.exec(0, ['ping', '-6', '-c', '20', '-i', '0.05', v1.ip]);
  assert.match(overFast.stdout, / 0% packet loss/, overFast.stdout + overFast.stderr);
  await waitFor(() => fastFrames() - fast0 >= 40, 'the 20 pings (40 frames) counted on the fast path', 15_000);
});
