import type { Clock } from '../../common/clock.ts';
import { formatHostPort } from '../../common/host-port.ts';
import type { Logger } from '../../common/logger.ts';
import { SwitchListener, dpidText } from '../../openflow/switch-listener.ts';
import type { ControlHandler } from '../control-server.ts';
import type { Deployment } from '../deployment-file.ts';
import { hubOf } from '../deployment-file.ts';
import { datapathIdOf, OvsdbBridgeDb, type BridgeDb } from './bridge-db.ts';
import { OpenflowListenError, UnknownSwitchError } from './errors.ts';
import { DEFAULT_OPENFLOW_PORT, parseOvsdbTarget, type OvsBridgeConfig } from './ovs-deployment.ts';
import { OvsHost } from './ovs-host.ts';

/**
 * The controller's Open vSwitch southbound: one OpenFlow listener (TLS with
 * the deployment's CA by default, `controller.openflow` in the deployment
 * file) and one agent per OVS host (ovs-host.ts). A switch that finishes
 * its handshake is matched to its host by datapath id (the controller sets
 * each bridge's, `datapathIdOf(host)`); a switch of no host is closed with
 * an UnknownSwitchError logged. A connection that sends garbage or fails its
 * handshake is logged with the decoder's or the handshake's code and closed
 * by the listener; the controller and every other switch carry on.
 */

export interface OvsSouthboundComponents {
  handler: ControlHandler;
  logger: Logger;
  clock: Clock;
  wallClock: () => number;
  vmMacs: () => readonly string[];
  portRemoved: (mac: string, host: string, why: string) => void;
  vmsOn: (host: string) => readonly string[];
  /** The switch database of a bridge (default: OVSDB at its `ovsdb:`). */
  connectDb?: (bridge: OvsBridgeConfig) => Promise<BridgeDb>;
}

export interface OvsSouthboundInit {
  deployment: Readonly<Deployment>;
  /** The deployment CA and the controller's certificate (the control channel's). */
  tls: { ca: string | Buffer; cert: string | Buffer; key: string | Buffer };
  /** Switch connection timers (tests shorten them). */
  echoIntervalMs?: number;
  livenessTimeoutMs?: number;
  retryMs?: number;
}

export interface OvsSouthbound {
  /** The OpenFlow listener's bound port. */
  readonly port: number;
  readonly hosts: ReadonlyMap<string, OvsHost>;
  close(): Promise<void>;
}

/** Start the southbound when the deployment has OVS hosts; undefined otherwise. */
export async function startOvsSouthbound(c: OvsSouthboundComponents, init: OvsSouthboundInit): Promise<OvsSouthbound | undefined> {
  const d = init.deployment;
  const ovsHosts = d.hosts.filter((h) => h.ovs !== undefined);
  if (ovsHosts.length === 0) return undefined;
  const log = c.logger.child({ component: 'ovs-southbound' });
  const listen = d.controller.openflow ?? { host: '127.0.0.1', port: DEFAULT_OPENFLOW_PORT, transport: 'tls' as const };
  const listener = new SwitchListener({
    host: listen.host,
    port: listen.port,
    ...(listen.transport === 'tls' ? { tls: init.tls } : {}),
    ...(init.echoIntervalMs !== undefined ? { echoIntervalMs: init.echoIntervalMs } : {}),
    ...(init.livenessTimeoutMs !== undefined ? { livenessTimeoutMs: init.livenessTimeoutMs } : {}),
  });
  const bound = await listener.listen().catch((err: unknown) => {
    throw new OpenflowListenError(formatHostPort({ host: listen.host, port: listen.port }), { cause: err });
  });
  const target = `${listen.transport === 'tls' ? 'ssl' : 'tcp'}:${formatHostPort({ host: listen.host, port: bound.port })}`;
  const hub = hubOf(d).id;
  const vteps = new Map(d.hosts.filter((h) => h.vtep !== undefined).map((h) => [h.id, h.vtep!] as const));
  const hosts = new Map<string, OvsHost>();
  const byDatapath = new Map<bigint, OvsHost>();
  const connectDb = c.connectDb ?? ((b: OvsBridgeConfig): Promise<BridgeDb> => OvsdbBridgeDb.connect(parseOvsdbTarget(b.ovsdb)!, init.tls));
  for (const h of ovsHosts) {
    const bridge = h.ovs!;
    const agent = new OvsHost(
      { handler: c.handler, logger: c.logger, clock: c.clock, wallClock: c.wallClock, vmMacs: c.vmMacs, portRemoved: c.portRemoved, vmsOn: c.vmsOn, connectDb: () => connectDb(bridge) },
      {
        host: h.id, site: h.site, bridge, datapathId: datapathIdOf(h.id), hub, vteps, vxlan: d.vxlan!, controllerTarget: target,
        updatePeriodMs: d.policy.updatePeriodMs, ...(init.retryMs !== undefined ? { retryMs: init.retryMs } : {}),
      },
    );
    hosts.set(h.id, agent);
    byDatapath.set(agent.datapathId, agent);
  }
  listener.on('switch', (conn) => {
    const agent = byDatapath.get(conn.datapathId);
    if (agent === undefined) {
      log.warn({ err: new UnknownSwitchError(dpidText(conn.datapathId), conn.remote) }, 'unknown switch refused');
      conn.close();
      return;
    }
    agent.attach(conn);
  });
  listener.on('connection-error', (err, remote) => {
    log.warn({ code: err.code, remote, detail: err.message }, 'switch connection failed (closed; the controller carries on)');
  });
  for (const agent of hosts.values()) agent.start();
  log.info({ target, hosts: [...hosts.keys()] }, 'OpenFlow listener up for the OVS hosts');
  return {
    port: bound.port,
    hosts,
    async close(): Promise<void> {
      for (const agent of hosts.values()) await agent.close();
      await listener.close();
    },
  };
}
