/**
 * A configuration reload against the real kernel (root): a TAP port added by
 * a reload is made in its VM's namespace, up, with its address; one the next
 * reload removes is gone from the kernel; the TAP port the reloads did not
 * name is the same device throughout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { startDaemonFromConfig } from '../../src/host/daemon-runner.ts';
import { requireTools, run, useNetns } from '../helpers/netns.ts';

requireTools(['ip']);

async function ifindex(ns: string, dev: string): Promise<number | undefined> {
  const r = await run(['ip', '-n', ns, '-j', 'link', 'show', 'dev', dev], { allowFailure: true });
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as { ifindex: number }[])[0]?.ifindex;
}

test('reloads add a TAP port in its namespace and remove it from the kernel; the unchanged TAP port stays the same device', async (t) => {
  const h = await useNetns(t);
  const ns = await h.namespace();
  const kept = h.linkName();
  const added = h.linkName();
  h.trackHostLink(kept);
  h.trackHostLink(added);
  const base = {
    host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 0 },
    ports: [{ name: kept, type: 'tap', mac: '02:00:00:97:00:01', ip: '10.96.0.1/24', netns: ns }],
  };
  const running = await startDaemonFromConfig({ logger: silentLogger() }, parseDaemonConfig(base));
  t.after(() => running.close());
  const keptIndex = await ifindex(ns, kept);
  assert.ok(keptIndex !== undefined);

  const withNew = parseDaemonConfig({ ...base, ports: [...base.ports, { name: added, type: 'tap', mac: '02:00:00:97:00:02', ip: '10.96.0.2/24', netns: ns }] });
  const first = await running.reload(withNew, 'h1.yaml');
  assert.ok(first.applied, JSON.stringify(first));
  const link = await h.link(ns, added);
  assert.ok(link?.flags?.includes('UP'), `the new device is up in ${ns}: ${JSON.stringify(link)}`);
  const addr = await run(['ip', '-n', ns, '-j', 'addr', 'show', 'dev', added]);
  assert.match(addr.stdout, /"local":"10\.96\.0\.2","prefixlen":24/);

  const second = await running.reload(parseDaemonConfig(base), 'h1.yaml');
  assert.ok(second.applied && second.plan.portsRemoved.includes(added), JSON.stringify(second));
  assert.equal(await ifindex(ns, added), undefined, 'the removed port\'s device is gone');
  assert.equal(await ifindex(ns, kept), keptIndex, 'the port the reloads did not name is the same device');
  assert.deepEqual(running.daemon.facts().ports.map((p) => p.name), [kept]);
});
