import { parseHostPort } from '../common/host-port.ts';
import { canonicalAddress, ipVersion, isUnspecifiedAddress } from '../common/ip-address.ts';
import type { DaemonFacts } from '../control/daemon-control.ts';

/**
 * The listen address a daemon reports is what its peers dial (fast-path
 * links, the backbone). A daemon listening on a wildcard (`0.0.0.0`, `::`:
 * every address, IPv4 and IPv6 alike) cannot say which of its addresses
 * peers reach it at; the controller then takes the address the daemon's own
 * control connection came from (an IPv4-mapped one as IPv4). A host whose
 * peers reach it elsewhere (NAT, a separate underlay) names its address in
 * `listen.host` instead.
 */
export function dialableFacts(facts: DaemonFacts, controlRemote: string): DaemonFacts {
  const listen = facts.listen;
  if (listen === undefined || !isUnspecifiedAddress(listen.host)) return facts;
  const source = parseHostPort(controlRemote)?.host;
  if (source === undefined || ipVersion(source) === 0 || isUnspecifiedAddress(source)) return facts;
  return { ...facts, listen: { ...listen, host: canonicalAddress(source) } };
}
