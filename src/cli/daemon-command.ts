import { Command, InvalidArgumentError } from 'commander';
import { hostPortArg } from './cli-options.ts';
import { componentLogger, createRootLogger } from '../common/logger.ts';
import { ConfigError, VnetError } from '../common/errors.ts';
import { applyNice, niceFor } from '../common/process-priority.ts';
import { hostPortOrProblem } from '../common/host-port.ts';
import { loadDaemonConfig, parseDaemonConfig, type DaemonConfig } from '../dataplane/daemon-config.ts';
import { defaultAdminSocket, defaultRunDir } from '../dataplane/admin-access.ts';
import { startDaemonFromConfig, type RunningDaemon } from '../host/daemon-runner.ts';

/**
 * `vnet daemon`: run one host's daemon until SIGINT/SIGTERM; SIGHUP reloads
 * its configuration file. It ends with one
 * line on stderr and a non-zero exit, never a stack trace, when it cannot
 * start (2: bad configuration; 1: an address in use, a missing namespace…)
 * or when the controller refuses this host (1).
 */

/** `id@host:port`: the standby hub's id and address. */
function standbyHubArg(value: string): { id: string; host: string; port: number } {
  const at = value.indexOf('@');
  if (at <= 0) throw new InvalidArgumentError(`expected ID@HOST:PORT, got ${JSON.stringify(value)}`);
  return { id: value.slice(0, at), ...hostPortArg(value.slice(at + 1)) };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `unix:PATH` (a Unix socket) or `HOST:PORT` (HTTP with a bearer token). */
function adminArg(value: string): { socket: string } | { host: string; port: number } {
  if (value.startsWith('unix:') && value.length > 5) return { socket: value.slice(5) };
  const a = hostPortOrProblem(value);
  if (a.endpoint === undefined) throw new InvalidArgumentError(`expected unix:PATH or HOST:PORT, got "${value}": ${a.problem}`);
  return { host: a.endpoint.host, port: a.endpoint.port };
}

/** The configuration: the file (if any), then the flags over it. Throws ConfigError. */
function configFrom(opts: Record<string, unknown>): DaemonConfig {
  const base: Record<string, unknown> = opts.config ? structuredClone(loadDaemonConfig(String(opts.config))) : {};
  const set = (key: string, value: unknown): void => {
    if (value !== undefined) base[key] = value;
  };
  set('host', opts.host);
  set('role', opts.role);
  set('listen', opts.listen);
  set('hub', opts.hub);
  set('hubId', opts.hubId);
  set('standbyHub', opts.standbyHub);
  set('transport', opts.transport);
  if (opts.tlsDir !== undefined) set('tls', { dir: opts.tlsDir });
  set('admin', opts.admin);
  if (opts.adminTokenFile !== undefined) {
    const admin = base.admin as Record<string, unknown> | undefined;
    if (admin === undefined || !('host' in admin)) {
      throw new ConfigError('--admin-token-file is for an HTTP admin interface (--admin HOST:PORT or admin: {host, port})', { file: 'command line', key: 'admin-token-file' });
    }
    base.admin = { ...admin, tokenFile: opts.adminTokenFile };
  }
  set('runDir', opts.runDir);
  set('metrics', opts.metrics);
  set('migration', opts.migration);
  if (opts.controller !== undefined) {
    // --controller replaces the file's address(es): one URL, or the replicas' URLs separated by commas.
    const { url: _url, urls: _urls, ...rest } = (base.controller as Record<string, unknown> | undefined) ?? {};
    const given = String(opts.controller).split(',').map((u) => u.trim());
    set('controller', { ...rest, ...(given.length === 1 ? { url: given[0] } : { urls: given }) });
  }
  const netns = opts.netns as string | undefined;
  const extra = (opts.port as string[]).map((spec) => {
    const [name, type, mac, ip] = spec.split(',');
    return { name, type, mac, ...(ip === undefined ? {} : { ip }), ...(netns !== undefined && type === 'tap' ? { netns } : {}) };
  });
  if (netns !== undefined && !extra.some((p) => p.type === 'tap')) {
    throw new ConfigError('--netns names the namespace of the TAP ports given with --port, and there is none', { file: 'command line', key: 'netns' });
  }
  if (extra.length > 0) base.ports = [...((base.ports as unknown[] | undefined) ?? []), ...extra];
  return parseDaemonConfig(base, opts.config ? String(opts.config) : 'command line');
}

/** `vnet daemon`: run one host's daemon until SIGINT/SIGTERM. */
export function daemonCommand(): Command {
  return new Command('daemon')
    .description('run the per-host vnet daemon (ports, tunnels, forwarding, counters)')
    .option('-c, --config <file>', 'YAML configuration file (flags override it)')
    .option('--host <id>', 'this host\'s id')
    .option('--role <role>', 'hub or spoke')
    .option('--listen <host:port>', 'accept links here', hostPortArg)
    .option('--hub <host:port>', 'the hub\'s address (spokes)', hostPortArg)
    .option('--hub-id <id>', 'the hub\'s host id (checked against its hello)')
    .option('--standby-hub <id@host:port>', 'the standby hub a spoke fails over to', standbyHubArg)
    .option('--transport <kind>', 'tcp or tls')
    .option('--tls-dir <dir>', 'directory made by `vnet certs`')
    .option('--controller <url>', 'the controller\'s control channel, wss://HOST:PORT/control (mutual TLS with --tls-dir); replicas: URL,URL,... (the leader is found)')
    .option('--admin <where>', 'the admin interface: unix:PATH (owner-only socket) or HOST:PORT (HTTP with a bearer token); default unix:RUN_DIR/HOST/admin.sock', adminArg)
    .option('--admin-token-file <file>', 'HTTP admin: the bearer token file (generated at start on loopback; needed, and read, on any other address)')
    .option('--metrics <host:port>', 'also serve Prometheus metrics (GET /metrics, read-only) here for scrapers', hostPortArg)
    .option('--run-dir <dir>', 'run directory (default /run/vnet as root, else $XDG_RUNTIME_DIR/vnet)')
    .option('--migration <host:port>', 'where the live-migration channel listens (needs --tls-dir; default: the listen host, port + 1000)', hostPortArg)
    .option('--port <name,type,mac[,ip]>', 'a VM port (repeatable), e.g. vm1,tap,02:00:00:00:00:01,10.0.0.1/24', collect, [])
    .option('--netns <name>', 'the network namespace (ip netns add NAME) to move the --port TAP devices into')
    .action(async (opts: Record<string, unknown>) => {
      let config: DaemonConfig;
      try {
        config = withDefaults(configFrom(opts));
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        process.stderr.write(`vnet daemon: ${err.message}\n`);
        process.exitCode = 2;
        return;
      }
      if (config.controller === undefined) {
        process.stderr.write('vnet daemon: warning: no controller (--controller URL or controller: in the config): running standalone, with only the configured links and rules\n');
      }
      const file = opts.config === undefined ? undefined : String(opts.config);
      await runDaemon(config, file === undefined ? undefined : { file, read: () => withDefaults(configFrom(opts)) });
    });
}

/** What `vnet daemon` fills in: the admin socket in the run directory. */
function withDefaults(config: DaemonConfig): DaemonConfig {
  return config.admin === undefined ? { ...config, admin: { socket: defaultAdminSocket(config.runDir ?? defaultRunDir(), config.host) } } : config;
}

/** The configuration file and how to read it again (with the flags over it), for SIGHUP. */
interface Reloadable {
  file: string;
  read(): DaemonConfig;
}

/**
 * Start the daemon; stop it on SIGINT/SIGTERM or a refusal by the controller;
 * on SIGHUP read the configuration file again and apply what changed
 * (host/daemon-reload.ts). A file that does not parse or validate is logged
 * (file, line, key) and changes nothing.
 */
async function runDaemon(config: DaemonConfig, reloadable: Reloadable | undefined): Promise<void> {
  const logger = createRootLogger();
  // First: the threads started from here on inherit it.
  applyNice(niceFor(config.nice), componentLogger(logger, 'daemon'));
  let running: RunningDaemon | undefined;
  /** The exit code of a stop asked for (a signal, a refusal), acted on once the daemon has started. */
  let stopWith: number | undefined;
  let stopping = false;
  const stop = (code: number): void => {
    stopWith ??= code;
    if (stopping || running === undefined) return;
    stopping = true;
    void running.close().then(() => process.exit(stopWith));
  };
  // Handled from the start: a Ctrl-C while ports are being set up still closes them in order.
  process.once('SIGINT', () => stop(0));
  process.once('SIGTERM', () => stop(0));
  const log = componentLogger(logger, 'reload');
  process.on('SIGHUP', () => {
    if (reloadable === undefined) {
      log.warn('SIGHUP: this daemon was started from flags alone (no --config): nothing to reload');
      return;
    }
    if (running === undefined || stopping) {
      log.warn({ file: reloadable.file }, 'SIGHUP while the daemon is starting or stopping: not reloaded');
      return;
    }
    let next: DaemonConfig;
    try {
      next = reloadable.read();
    } catch (err) {
      // A file that cannot be read or validated; anything else is a bug, logged the same way: a reload never stops the daemon.
      const code = err instanceof VnetError ? err.code : undefined;
      log.error({ file: reloadable.file, code, err: err instanceof ConfigError ? undefined : err }, `reload refused: ${(err as Error).message}; the running configuration is unchanged`);
      return;
    }
    running.reload(next, reloadable.file).catch((err: unknown) => log.error({ err }, 'reload failed'));
  });
  const onControllerRefused = (r: { code: string; message: string }): void => {
    const hint = r.code === 'VNET_ERR_UNKNOWN_HOST' ? ` (is ${config.host} a host of the controller's deployment file?)` : '';
    process.stderr.write(`vnet daemon: the controller refused host ${config.host}: ${r.code}: ${r.message}${hint}\n`);
    stop(1);
  };
  try {
    running = await startDaemonFromConfig({ logger, onControllerRefused }, config);
  } catch (err) {
    if (!(err instanceof VnetError)) throw err;
    process.stderr.write(`vnet daemon: ${err.message}\n`);
    process.exit(1);
  }
  if (running.admin !== undefined) {
    logger.info({ admin: running.admin.url, tokenFile: running.adminTokenFile }, 'admin interface ready');
  }
  if (stopWith !== undefined) stop(stopWith);
}
