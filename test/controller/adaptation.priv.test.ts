/**
 * Adaptation with real kernel traffic (root): three `vnet daemon` processes
 * (the hub and two hosts, TLS tunnels on loopback, control channels to the
 * controller in this process), two VMs as network namespaces holding TAP
 * devices their daemons made (`netns:` port option). One VM pings the
 * other: the controller must add a fast-path link between the two hosts,
 * the pings must then go host to host (the backbone carries none of a ping
 * burst), and when the pings stop the link must go again. Fails (does not
 * skip) without root, `ip` or `ping`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startNetnsOverlay } from '../helpers/netns-overlay.ts';
import { waitFor } from '../helpers/wait.ts';

test('real IP traffic between VM namespaces: a fast path is added, carries the pings, and goes when they stop', { timeout: 120_000 }, async (t) => {
  const o = await startNetnsOverlay(t, {
    hosts: ['c1', 'c2'],
    vms: [{ host: 'c1' }, { host: 'c2' }],
    policy: '  updatePeriodMs: 200\n  smoothingIntervalMs: 400\n  fastPathBudget: 1\n  fastPathMinBytesPerSec: 5000',
    tools: ['ping'],
  });
  const model = o.model;
  const peer = o.vms[1]!.ip;

  // v0 pings v1 (about 25 kB/s each way): through the hub first, then the controller adds c1–c2.
  const pinger = o.spawn(0, ['ping', '-q', '-i', '0.05', '-s', '1200', peer]);
  await waitFor(() => model.getLink('c1', 'c2')?.kind === 'fast-path' && model.getLink('c1', 'c2')?.state === 'up', 'fast path c1–c2 up', 20_000);
  assert.equal(model.getLink('c1', 'c2')!.requestedBy, 'adaptation');
  assert.ok(model.listDecisions({}).some((d) => d.kind === 'fast-path-added' && d.detail.a === 'c1' && d.detail.b === 'c2'));
  await waitFor(() => model.listHosts().every((h) => { const r = model.getRules(h.id); return r !== undefined && r.appliedVersion === r.version; }), 'rules applied', 10_000);

  // A burst over the fast path: the link's counters grow by it, the backbone's do not.
  // Counters reach the controller once per update period: wait until they cover the burst.
  const backbone = (): number => model.listLinks().filter((l) => l.kind === 'backbone').reduce((s, l) => s + l.frames, 0);
  const fastFrames = (): number => model.getLink('c1', 'c2')!.frames;
  const before = { fast: fastFrames(), bb: backbone() };
  const r = await o.exec(0, ['ping', '-c', '100', '-i', '0.002', '-s', '1200', peer]);
  assert.match(r.stdout, / 0% packet loss/, r.stdout + r.stderr);
  await waitFor(() => fastFrames() - before.fast >= 200, 'the 100-ping burst (200 frames) counted on the fast path', 10_000);
  // Through the hub the burst would add at least 400 frames to the backbone (200 frames, each on two backbone links).
  // The backbone still floods the namespaces' own multicast (IPv6 neighbour discovery, MLD) meanwhile: a few dozen at most.
  assert.ok(backbone() - before.bb < 100, `the burst did not cross the backbone (${backbone() - before.bb} frames there meanwhile)`);

  // The pings stop: the link goes after the hysteresis.
  pinger.kill('SIGINT');
  await waitFor(() => model.getLink('c1', 'c2') === undefined, 'fast path removed', 20_000);
  assert.ok(model.listDecisions({}).some((d) => d.kind === 'fast-path-removed' && d.detail.a === 'c1'));
});
