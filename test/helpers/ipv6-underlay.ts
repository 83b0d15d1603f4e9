/**
 * An IPv6-only underlay for privileged tests (root): one network namespace
 * per host, every one joined to a bridge in an underlay namespace by a veth
 * pair that has an IPv6 unique-local address (a random fdXX:… /64, so
 * parallel runs never collide) and no IPv4 address at all; this process's
 * own namespace (where an in-process controller listens) joins the bridge
 * the same way. Made with the test's NetnsHarness, removed with it.
 *
 *   const u = await ipv6Underlay(harness, ['hub', 'c1']);
 *   u.address('hub')          // fdxx:xxxx:xxxx:1::1
 *   u.namespace('c1')         // where c1's daemon runs
 *   u.controllerAddress       // this process's address on the underlay
 */
import { randomBytes } from 'node:crypto';
import type { NetnsHarness } from './netns.ts';

export interface Ipv6Underlay {
  /** The /64 every underlay address is in, e.g. `fd12:3456:789a:1::`. */
  readonly prefix: string;
  /** This process's namespace's address on the underlay. */
  readonly controllerAddress: string;
  /** Host `id`'s underlay address. */
  address(id: string): string;
  /** The namespace host `id` runs in. */
  namespace(id: string): string;
}

export async function ipv6Underlay(harness: NetnsHarness, hosts: readonly string[]): Promise<Ipv6Underlay> {
  const g = randomBytes(5).toString('hex');
  const prefix = `fd${g.slice(0, 2)}:${g.slice(2, 6)}:${g.slice(6, 10)}:1::`;
  const ul = await harness.namespace();
  await harness.exec(ul, ['ip', 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0']);
  await harness.linkUp(ul, 'br0');
  const join = async (ns: string | undefined, address: string): Promise<void> => {
    const [inside, bridgePort] = await harness.vethPair({ ...(ns === undefined ? {} : { ns }) }, { ns: ul });
    await harness.exec(ul, ['ip', 'link', 'set', 'dev', bridgePort, 'master', 'br0']);
    await harness.addAddress(ns, inside, `${address}/64`);
  };
  const namespaces = new Map<string, string>();
  const addresses = new Map<string, string>();
  for (const [i, id] of hosts.entries()) {
    const ns = await harness.namespace();
    namespaces.set(id, ns);
    addresses.set(id, `${prefix}${(i + 1).toString(16)}`);
    await join(ns, addresses.get(id)!);
  }
  const controllerAddress = `${prefix}fe`;
  await join(undefined, controllerAddress);
  return {
    prefix,
    controllerAddress,
    address: (id) => addresses.get(id)!,
    namespace: (id) => namespaces.get(id)!,
  };
}
