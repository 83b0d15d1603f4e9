/**
 * TapDevice.open with `netns` and `attach` on the real kernel (root): what it
 * attaches to, what it refuses (typed errors), and that the calling thread
 * never leaves its namespace (the addon does the work on a helper thread).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NetnsNotFoundError, TapDeviceNotFoundError, TapError, TapPermissionError } from '../../src/dataplane/errors.ts';
import { TapDevice } from '../../src/dataplane/tap-device.ts';
import { requireTools, run, uniqueName, useNetns } from '../helpers/netns.ts';

requireTools(['ip', 'setpriv']);

/** The network namespace of the calling (main) thread. */
function threadNamespace(): number {
  return statSync('/proc/thread-self/ns/net').ino;
}

test('creates a device inside a namespace, attaches a second queue there with the device\'s own flags, and the calling thread stays home', async (t) => {
  const home = threadNamespace();
  const h = await useNetns(t);
  const ns = await h.namespace();
  const name = h.linkName();
  const first = TapDevice.open({ name, netns: ns, multiQueue: true, vnetHdr: true, vnetHdrSize: 12, up: true });
  t.after(() => first.close());
  assert.equal(threadNamespace(), home);
  assert.equal(await h.link(undefined, name), undefined, 'not in the host namespace');
  const link = await h.link(ns, name);
  assert.equal(link?.linkinfo?.info_data?.multi_queue, true);
  assert.ok(link?.flags?.includes('UP'), 'configured (up) inside the namespace');
  assert.equal(first.multiQueue, true);

  const second = TapDevice.open({ name, netns: ns, attach: true });
  t.after(() => second.close());
  assert.equal(threadNamespace(), home, 'the main thread never changed namespace');
  assert.equal(second.vnetHdrSize, 12, 'vnet_hdr and its size as the device has them, not as asked');
  assert.equal(second.multiQueue, true);
  first.close();
  assert.ok((await h.link(ns, name)) !== undefined, 'the device outlives the queue that made it');
  second.close();
  assert.equal(await h.link(ns, name), undefined, 'and goes with its last queue');
});

test('attach: a namespace that does not exist, a device that does not exist (and is not created), a single-queue device with a reader', async (t) => {
  const home = threadNamespace();
  const h = await useNetns(t);
  const ns = await h.namespace();
  assert.throws(() => TapDevice.open({ name: 'vnt-x', netns: uniqueName('vnt-n-'), attach: true }), (e: unknown) => e instanceof NetnsNotFoundError && e instanceof TapError && e.code === 'VNET_ERR_NETNS_NOT_FOUND' && e.errno === 2);
  // A namespace half deleted (`ip netns del` unmounts, then unlinks): its file is there, no namespace behind it.
  const gone = uniqueName('vnt-g-');
  mkdirSync('/var/run/netns', { recursive: true });
  writeFileSync(`/var/run/netns/${gone}`, '');
  t.after(() => rmSync(`/var/run/netns/${gone}`, { force: true }));
  assert.throws(() => TapDevice.open({ name: 'vnt-x', netns: gone, attach: true }), (e: unknown) => e instanceof NetnsNotFoundError && e.netns === gone && e.errno === 22);
  const missing = h.linkName();
  assert.throws(() => TapDevice.open({ name: missing, netns: ns, attach: true }), (e: unknown) => e instanceof TapDeviceNotFoundError && e.code === 'VNET_ERR_TAP_NOT_FOUND' && e.device === missing);
  assert.equal(await h.link(ns, missing), undefined, 'attach never creates a device');
  assert.equal(threadNamespace(), home, 'failures leave the main thread home too');

  // A single-queue device (ip tuntap) is attached as it is while nobody reads it, and refused (EBUSY) while someone does.
  const single = h.linkName();
  await run(['ip', '-n', ns, 'tuntap', 'add', 'dev', single, 'mode', 'tap']);
  const a = TapDevice.open({ name: single, netns: ns, attach: true });
  t.after(() => a.close());
  assert.equal(a.multiQueue, false);
  assert.throws(() => TapDevice.open({ name: single, netns: ns, attach: true }), (e: unknown) => e instanceof TapError && e.errno === 16);
  // Not a TAP device at all.
  const [veth] = await h.vethPair({ ns }, {});
  assert.throws(() => TapDevice.open({ name: veth, netns: ns, attach: true }), (e: unknown) => e instanceof TapError && typeof e.errno === 'number');
});

test('without capabilities: entering the namespace and creating a device are TapPermissionError', async (t) => {
  const h = await useNetns(t);
  const ns = await h.namespace();
  const name = h.linkName();
  const holder = TapDevice.open({ name, netns: ns, multiQueue: true });
  t.after(() => holder.close());
  const module = fileURLToPath(new URL('../../src/dataplane/tap-device.ts', import.meta.url));
  const script = `
    const { TapDevice } = await import(${JSON.stringify(module)});
    const out = [];
    for (const opts of [{ name: ${JSON.stringify(name)}, netns: ${JSON.stringify(ns)}, attach: true }, { name: 'vnt-noperm' }]) {
      try { TapDevice.open(opts).close(); out.push('opened'); } catch (e) { out.push(e.constructor.name + ' ' + e.code + ' ' + e.errno); }
    }
    console.log(JSON.stringify(out));`;
  // Root's uid with an empty capability bounding set: no CAP_SYS_ADMIN (setns), no CAP_NET_ADMIN (TUNSETIFF).
  const r = await run(['setpriv', '--bounding-set=-all', '--inh-caps=-all', process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], { timeoutMs: 30_000 });
  const results = JSON.parse(r.stdout.trim().split('\n').pop()!) as string[];
  assert.equal(results.length, 2);
  for (const line of results) assert.match(line, new RegExp(`^${TapPermissionError.name} VNET_ERR_TAP_PERMISSION (1|13)$`), line);
});
