import { Command, InvalidArgumentError } from 'commander';
import { hostPortArg } from './cli-options.ts';
import { createRootLogger } from '../common/logger.ts';
import { ConfigError } from '../common/errors.ts';
import { loadDeploymentFile } from '../controller/deployment-file.ts';
import { startControllerProcess } from '../controller/launch.ts';
import { DEFAULT_TOKEN_FILE } from '../controller/api/token-file.ts';
import { DEFAULT_DB_PATH } from '../controller/store/store.ts';
import { DEFAULT_JOIN_TOKEN_TTL_MS, MAX_JOIN_TOKEN_TTL_MS } from '../controller/join-tokens.ts';

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
    .description('run the vnet controller: SQLite state, control channel for daemons, operator API and web page')
    .requiredOption('-t, --topology <file>', 'deployment file (hosts, sites, VMs, policy)')
    .option('--db <file>', 'SQLite database', DEFAULT_DB_PATH)
    .option('--tls-dir <dir>', 'deployment CA and certificates (from `vnet certs`)', './certs')
    .option('--control <host:port>', 'control channel address (default: the deployment\'s)', hostPortArg)
    .option('--api <host:port>', 'operator API address (default: the deployment\'s)', hostPortArg)
    .option('--token-file <file>', 'where the first API token is written for `vnet ctl`', process.env.VNET_TOKEN_FILE ?? DEFAULT_TOKEN_FILE)
    .option('--join-token-ttl <seconds>', 'lifetime of a join token created without one', joinTokenTtlArg, DEFAULT_JOIN_TOKEN_TTL_MS / 1000)
    .action(async (opts: Record<string, unknown>) => {
      const logger = createRootLogger();
      try {
        const deployment = loadDeploymentFile(String(opts.topology));
        const proc = await startControllerProcess(
          { logger },
          {
            deployment,
            dbPath: String(opts.db),
            tlsDir: String(opts.tlsDir),
            control: opts.control as { host: string; port: number } | undefined,
            api: opts.api as { host: string; port: number } | undefined,
            tokenFile: String(opts.tokenFile),
            joinTokenTtlMs: Number(opts.joinTokenTtl) * 1000,
          },
        );
        console.error(`controller: control channel ${proc.controlUrl}, API ${proc.api.url}`);
        // The token is shown once, at creation, and only to a terminal: a service's stderr is a log.
        const tty = process.stderr.isTTY === true;
        if (proc.newToken !== undefined) {
          console.error(tty
            ? `API token (shown once; also written to ${String(opts.tokenFile)}): ${proc.newToken}\nweb page: ${proc.pageUrl}`
            : `API token created and written to ${String(opts.tokenFile)} (mode 0600); \`vnet ctl web-url\` prints the web page's address with it`);
        }
        if (proc.newToken === undefined || !tty) console.error(`web page: ${proc.api.url}/ (\`vnet ctl web-url\` prints it with a token)`);
        const stop = (): void => void proc.close().then(() => process.exit(0));
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      } catch (err) {
        console.error(`vnet controller: ${err instanceof ConfigError ? err.message : (err as Error).message}`);
        process.exitCode = 2;
      }
    });
}
