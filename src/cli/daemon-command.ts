import { Command, InvalidArgumentError } from 'commander';
import { hostPortArg } from './cli-options.ts';
import { createRootLogger } from '../common/logger.ts';
import { ConfigError } from '../common/errors.ts';
import { loadDaemonConfig, parseDaemonConfig, type DaemonConfig } from '../dataplane/daemon-config.ts';
import { startDaemonFromConfig } from '../host/daemon-runner.ts';

/** `id@host:port`: the standby hub's id and address. */
function standbyHubArg(value: string): { id: string; host: string; port: number } {
  const at = value.indexOf('@');
  if (at <= 0) throw new InvalidArgumentError(`expected ID@HOST:PORT, got ${JSON.stringify(value)}`);
  return { id: value.slice(0, at), ...hostPortArg(value.slice(at + 1)) };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
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
    .option('--admin <host:port>', 'loopback admin HTTP interface', hostPortArg)
    .option('--migration <host:port>', 'where the live-migration channel listens (needs --tls-dir; default: the listen host, port + 1000)', hostPortArg)
    .option('--port <name,type,mac[,ip]>', 'a VM port (repeatable), e.g. vm1,tap,02:00:00:00:00:01,10.0.0.1/24', collect, [])
    .action(async (opts: Record<string, unknown>) => {
      const logger = createRootLogger();
      let config: DaemonConfig;
      try {
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
        set('migration', opts.migration);
        const extra = (opts.port as string[]).map((spec) => {
          const [name, type, mac, ip] = spec.split(',');
          return ip === undefined ? { name, type, mac } : { name, type, mac, ip };
        });
        if (extra.length > 0) base.ports = [...((base.ports as unknown[] | undefined) ?? []), ...extra];
        config = parseDaemonConfig(base, opts.config ? String(opts.config) : 'command line');
      } catch (err) {
        if (err instanceof ConfigError) {
          console.error(`vnet daemon: ${err.message}`);
          process.exitCode = 2;
          return;
        }
        throw err;
      }
      const running = await startDaemonFromConfig({ logger }, config);
      const stop = (): void => {
        void running.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
