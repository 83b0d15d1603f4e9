import { Command, InvalidArgumentError } from 'commander';
import { hostPortArg } from './cli-options.ts';
import { createRootLogger } from '../common/logger.ts';
import { applyNice, DEFAULT_NICE, niceFor } from '../common/process-priority.ts';
import { ConfigError } from '../common/errors.ts';
import { loadDeploymentFile } from '../controller/deployment-file.ts';
import { controlChannelTls, controllerAddresses, startControllerProcess, type ControllerProcess, type ControllerProcessInit } from '../controller/launch.ts';
import { startFollower } from '../controller/follower.ts';
import { formatHostPort } from '../common/host-port.ts';
import { isUnspecifiedAddress } from '../common/ip-address.ts';
import { CONTROL_PATH } from '../control/control-protocol.ts';
import { startReplica } from '../controller/replica.ts';
import { parseEtcdStoreUrl } from '../controller/store/etcd/etcd-url.ts';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { EtcdTls } from '../controller/store/etcd/etcd-client.ts';
import { DEFAULT_TOKEN_FILE } from '../controller/api/token-file.ts';
import { DEFAULT_DB_PATH } from '../controller/store/store.ts';
import { DEFAULT_JOIN_TOKEN_TTL_MS, MAX_JOIN_TOKEN_TTL_MS } from '../controller/join-tokens.ts';
import { DEFAULT_STALL_LIMIT_MS } from '../controller/store/etcd/election-thread.ts';

const DEFAULT_LEASE_TTL_S = 5;

function niceArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < -20 || n > 19) throw new InvalidArgumentError(`expected a whole number -20..19, got ${JSON.stringify(value)}`);
  return n;
}

function leaseTtlArg(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 60) throw new InvalidArgumentError('expected whole seconds, 1 to 60');
  return n;
}

/** The most a leader's event loop may stall before its lease thread resigns, in seconds. */
export const MAX_STALL_LIMIT_S = 3600;

function stallLimitArg(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > MAX_STALL_LIMIT_S) throw new InvalidArgumentError(`expected whole seconds, 1 to ${MAX_STALL_LIMIT_S}`);
  return n;
}

/**
 * The stall limit of a replica's lease thread (docs/ha.md), in ms: --stall-limit,
 * else the default. A ConfigError without --store (only replicas have one), or
 * when it is not longer than the lease (a loop that stalls less than a lease
 * keeps it anyway: a shorter limit would resign leaders the lease thread exists to keep).
 */
export function stallLimitMs(opts: { store?: unknown; stallLimit?: unknown; leaseTtl?: unknown }): number {
  if (opts.stallLimit === undefined) return DEFAULT_STALL_LIMIT_MS;
  const s = Number(opts.stallLimit);
  if (opts.store === undefined) throw new ConfigError('applies only to replicas over etcd (--store etcd://...)', { key: '--stall-limit' });
  const ttl = Number(opts.leaseTtl ?? DEFAULT_LEASE_TTL_S);
  if (s <= ttl) throw new ConfigError(`${s} s must be longer than the lease (--lease-ttl ${ttl})`, { key: '--stall-limit' });
  return s * 1000;
}

/** What a started controller prints: its addresses, and the API token when this start created it. */
function announce(proc: ControllerProcess, tokenFile: string): void {
  console.error(`controller: control channel ${proc.controlUrl}, API ${proc.api.url}`);
  // The token is shown once, at creation, and only to a terminal: a service's stderr is a log.
  const tty = process.stderr.isTTY === true;
  if (proc.newToken !== undefined) {
    console.error(tty
      ? `API token (shown once; also written to ${tokenFile}): ${proc.newToken}\nweb page: ${proc.pageUrl}`
      : `API token created and written to ${tokenFile} (mode 0600); \`vnet ctl web-url\` prints the web page's address with it`);
  }
  if (proc.newToken === undefined || !tty) console.error(`web page: ${proc.api.url}/ (\`vnet ctl web-url\` prints it with a token)`);
}

/** --etcd-ca/--etcd-cert/--etcd-key read; a certificate without its key (or the other way round, or either without a CA) refused. */
function etcdTls(opts: Record<string, unknown>): EtcdTls | undefined {
  const [ca, cert, key] = [opts.etcdCa, opts.etcdCert, opts.etcdKey].map((v) => (v === undefined ? undefined : String(v)));
  if ((cert === undefined) !== (key === undefined)) throw new ConfigError('--etcd-cert and --etcd-key go together', { key: cert === undefined ? 'etcd-key' : 'etcd-cert' });
  if (ca === undefined) {
    if (cert !== undefined) throw new ConfigError('--etcd-cert needs --etcd-ca (the CA that signed etcd\'s certificates)', { key: 'etcd-ca' });
    return undefined;
  }
  const read = (file: string, flag: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`, { key: flag }, { cause: err });
    }
  };
  return { ca: read(ca, 'etcd-ca'), cert: cert === undefined ? undefined : read(cert, 'etcd-cert'), key: key === undefined ? undefined : read(key, 'etcd-key') };
}

function joinTokenTtlArg(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n * 1000 > MAX_JOIN_TOKEN_TTL_MS) {
    throw new InvalidArgumentError(`expected whole seconds, 1 to ${MAX_JOIN_TOKEN_TTL_MS / 1000}`);
  }
  return n;
}

/** `vnet controller`: the controller with its operator API and web page, until SIGINT/SIGTERM. */
export function controllerCommand(): Command {
  return new Command('controller')
    .description('run the vnet controller: SQLite (or etcd, replicated) state, control channel for daemons, operator API and web page')
    .requiredOption('-t, --topology <file>', 'deployment file (hosts, sites, VMs, policy)')
    .option('--db <file>', 'SQLite database', DEFAULT_DB_PATH)
    .option('--tls-dir <dir>', 'deployment CA and certificates (from `vnet certs`)', './certs')
    .option('--control <host:port>', 'control channel address (default: the deployment\'s)', hostPortArg)
    .option('--api <host:port>', 'operator API address (default: the deployment\'s)', hostPortArg)
    .option('--token-file <file>', 'where the first API token is written for `vnet ctl`', process.env.VNET_TOKEN_FILE ?? DEFAULT_TOKEN_FILE)
    .option('--join-token-ttl <seconds>', 'lifetime of a join token created without one', joinTokenTtlArg, DEFAULT_JOIN_TOKEN_TTL_MS / 1000)
    .option('--store <url>', 'etcd instead of SQLite: etcd://HOST:PORT[,HOST:PORT...][/prefix]; replicas elect one leader (docs/ha.md)')
    .option('--replica-name <name>', 'this replica\'s name in the election (default: hostname-pid)')
    .option('--lease-ttl <seconds>', 'the leader\'s lease: a dead leader is replaced within about this long', leaseTtlArg, DEFAULT_LEASE_TTL_S)
    .option('--stall-limit <seconds>', `replicas: a leader whose event loop has not turned for this long resigns (default ${DEFAULT_STALL_LIMIT_MS / 1000})`, stallLimitArg)
    .option('--advertise-host <host>', 'replicas: the address daemons and `vnet ctl` reach this one at, named by the others while it leads (default: the listen address; on a wildcard, the hostname)')
    .option('--etcd-ca <file>', 'TLS to etcd: the CA of its certificates (the endpoints become https://)')
    .option('--etcd-cert <file>', 'TLS to etcd: this controller\'s client certificate (with --etcd-key)')
    .option('--etcd-key <file>', 'TLS to etcd: its key')
    .option('--nice <n>', `scheduling priority, -20..19 (default ${DEFAULT_NICE} as root, so cutovers are not queued behind other work; 0 leaves it alone)`, niceArg)
    .action(async (opts: Record<string, unknown>) => {
      const logger = createRootLogger();
      applyNice(niceFor(opts.nice as number | undefined), logger);
      try {
        const stallLimit = stallLimitMs(opts);
        const deployment = loadDeploymentFile(String(opts.topology));
        const init: ControllerProcessInit = {
          deployment,
          dbPath: String(opts.db),
          tlsDir: String(opts.tlsDir),
          control: opts.control as { host: string; port: number } | undefined,
          api: opts.api as { host: string; port: number } | undefined,
          tokenFile: String(opts.tokenFile),
          joinTokenTtlMs: Number(opts.joinTokenTtl) * 1000,
        };
        let stop: () => Promise<void>;
        if (opts.store === undefined) {
          const proc = await startControllerProcess({ logger }, init);
          announce(proc, String(opts.tokenFile));
          stop = () => proc.close();
        } else {
          const tls = etcdTls(opts);
          const address = parseEtcdStoreUrl(String(opts.store), tls !== undefined);
          const name = opts.replicaName === undefined ? `${hostname()}-${process.pid}` : String(opts.replicaName);
          const listen = controllerAddresses(init);
          const reachAt = (host: string): string => String(opts.advertiseHost ?? (isUnspecifiedAddress(host) ? hostname() : host));
          // A port chosen at start (0) is not known in advance: not advertised.
          const advertise = {
            control: listen.control.port === 0 ? undefined : `wss://${formatHostPort({ host: reachAt(listen.control.host), port: listen.control.port })}${CONTROL_PATH}`,
            api: listen.api.port === 0 ? undefined : `http://${formatHostPort({ host: reachAt(listen.api.host), port: listen.api.port })}`,
          };
          const controlTls = await controlChannelTls(init.tlsDir);
          const replica = await startReplica({ logger }, { ...address, name, ttlSeconds: Number(opts.leaseTtl), stallLimitMs: stallLimit, tls, advertise }, async (store, status) => {
            const proc = await startControllerProcess({ logger }, { ...init, store, status });
            announce(proc, String(opts.tokenFile));
            return proc;
          }, (follower) => startFollower({ logger, ...follower }, { deployment, ...listen, tls: controlTls, replica: name }));
          console.error(`controller replica ${name}: store ${replica.store.path}; following it, campaigning for the leadership`);
          stop = () => replica.close();
        }
        const onSignal = (): void => void stop().then(() => process.exit(0));
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
      } catch (err) {
        console.error(`vnet controller: ${err instanceof ConfigError ? err.message : (err as Error).message}`);
        process.exitCode = 2;
      }
    });
}
