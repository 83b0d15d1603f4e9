import type { TunnelPort } from './bridge-ports.ts';

/**
 * Which VXLAN tunnel ports an OVS host should have, the pure part: one to
 * the hub (its backbone) and one to each fast-path peer the controller's
 * links name, to the peer's `vtep` from the deployment file. A port whose
 * remote address is no longer the peer's is replaced. Ports are removed only
 * once the controller has said which links it wants (`linksKnown`): a
 * restarted controller keeps the fast paths it finds until then, so the
 * data plane is not touched while it catches up.
 */

export interface TunnelPlan {
  add: Array<{ peer: string; remoteIp: string }>;
  /** Port names to remove. */
  remove: string[];
  /** Wanted peers without a vtep in the deployment. */
  missingVtep: string[];
}

export function planTunnels(
  present: readonly TunnelPort[],
  wanted: readonly string[],
  vteps: ReadonlyMap<string, string>,
  linksKnown: boolean,
): TunnelPlan {
  const plan: TunnelPlan = { add: [], remove: [], missingVtep: [] };
  const byPeer = new Map(present.map((t) => [t.peer, t] as const));
  const want = new Set(wanted);
  for (const peer of [...want].sort()) {
    const remoteIp = vteps.get(peer);
    if (remoteIp === undefined) {
      plan.missingVtep.push(peer);
      continue;
    }
    const have = byPeer.get(peer);
    if (have !== undefined && have.remoteIp === remoteIp) continue;
    if (have !== undefined) plan.remove.push(have.name);
    plan.add.push({ peer, remoteIp });
  }
  if (linksKnown) {
    for (const t of present) if (!want.has(t.peer) || !vteps.has(t.peer)) plan.remove.push(t.name);
  }
  return plan;
}
