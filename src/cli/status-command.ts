import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { adminRequest, type AdminTarget } from './admin-client.ts';
import { AdminUnreachableError, CtlUsageError } from './errors.ts';
import { formatStatus, type StatusSample } from './status-format.ts';
import { defaultAdminSocket, defaultAdminTokenFile, defaultRunDir } from '../dataplane/admin-access.ts';

/**
 * `vnet status`: this host's daemon as its admin interface sees it (like
 * `tinc info` or `zerotier-cli peers`). It finds the daemon's owner-only
 * socket in the run directory (the only host there, or `--host`), or takes
 * `--admin URL` with the token file. Two readings `--interval` apart give the
 * rates. Exit codes: 0, 2 usage, 3 the admin interface cannot be reached.
 */

/** Which daemon to ask, and how. */
export function statusTarget(opts: { admin?: string | undefined; host?: string | undefined; runDir?: string | undefined; tokenFile?: string | undefined }): AdminTarget {
  const runDir = opts.runDir ?? defaultRunDir();
  if (opts.admin !== undefined) {
    if (opts.admin.startsWith('unix:')) return { url: opts.admin };
    if (!/^https?:\/\//.test(opts.admin)) throw new CtlUsageError(`--admin: expected unix:PATH or http://HOST:PORT, got "${opts.admin}"`);
    const tokenFile = opts.tokenFile ?? (opts.host !== undefined ? defaultAdminTokenFile(runDir, opts.host) : undefined);
    const token = process.env.VNET_ADMIN_TOKEN ?? (tokenFile === undefined ? undefined : readToken(tokenFile));
    if (token === undefined) throw new CtlUsageError('an HTTP admin interface needs its token: --token-file FILE, --host ID (for RUN_DIR/ID/admin-token) or $VNET_ADMIN_TOKEN');
    return { url: opts.admin.replace(/\/+$/, ''), token };
  }
  const host = opts.host ?? onlyHost(runDir);
  const socket = defaultAdminSocket(runDir, host);
  if (!existsSync(socket)) throw new AdminUnreachableError(`unix:${socket}`, 'no admin socket there: is the daemon running, with its admin interface on the default socket? (else --admin)');
  return { url: `unix:${socket}` };
}

function readToken(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new CtlUsageError(`cannot read the admin token file ${file}: ${(err as Error).message}`);
  }
}

/** The one host with an admin socket under the run directory. */
function onlyHost(runDir: string): string {
  let hosts: string[];
  try {
    hosts = readdirSync(runDir).filter((h) => existsSync(defaultAdminSocket(runDir, h)));
  } catch (err) {
    throw new AdminUnreachableError(`unix:${join(runDir, '*', 'admin.sock')}`, `cannot read the run directory: ${(err as Error).message}`);
  }
  if (hosts.length === 1) return hosts[0]!;
  if (hosts.length === 0) throw new AdminUnreachableError(`unix:${join(runDir, '*', 'admin.sock')}`, 'no daemon\'s admin socket in the run directory (--run-dir, --admin)');
  throw new CtlUsageError(`several daemons run here (${hosts.sort().join(', ')}): choose one with --host`);
}

async function getJson(target: AdminTarget, path: string): Promise<unknown> {
  const r = await adminRequest(target, 'GET', path);
  if (r.status === 401) throw new AdminUnreachableError(target.url, 'the admin interface refused the token (401)');
  if (r.status !== 200) throw new AdminUnreachableError(target.url, `GET ${path} answered ${r.status}: ${JSON.stringify(r.json)}`);
  return r.json;
}

/** One reading of the daemon. */
export async function readStatus(target: AdminTarget): Promise<StatusSample> {
  const [status, links, fdb] = await Promise.all([getJson(target, '/status'), getJson(target, '/links'), getJson(target, '/fdb')]);
  return { atMs: performance.now(), status, links, fdb } as StatusSample;
}

export function statusCommand(): Command {
  return new Command('status')
    .description('this host\'s daemon: links (direct or through the hub, state, rates, last error), ports and VMs')
    .option('--host <id>', 'the daemon\'s host id (default: the only one in the run directory)')
    .option('--run-dir <dir>', 'the daemon\'s run directory (default /run/vnet as root, else $XDG_RUNTIME_DIR/vnet)')
    .option('--admin <url>', 'the admin interface: unix:PATH or http://HOST:PORT')
    .option('--token-file <file>', 'the HTTP admin interface\'s token file (default RUN_DIR/HOST/admin-token; or $VNET_ADMIN_TOKEN)')
    .option('--interval <ms>', 'time between the two readings that give the rates (0: no rates)', '1000')
    .option('--json', 'print the admin interface\'s answers as JSON')
    .action(async (opts: { host?: string; runDir?: string; admin?: string; tokenFile?: string; interval: string; json?: boolean }) => {
      try {
        const interval = Number(opts.interval);
        if (!Number.isInteger(interval) || interval < 0 || interval > 60_000) throw new CtlUsageError(`--interval: expected 0-60000 ms, got "${opts.interval}"`);
        const target = statusTarget(opts);
        const first = await readStatus(target);
        if (opts.json === true) {
          process.stdout.write(JSON.stringify({ status: first.status, links: first.links, fdb: first.fdb }, null, 2) + '\n');
          return;
        }
        let before: StatusSample | undefined;
        let now = first;
        if (interval > 0) {
          await new Promise((r) => setTimeout(r, interval));
          before = first;
          now = await readStatus(target);
        }
        process.stdout.write(formatStatus(now, before, Date.now()) + '\n');
      } catch (err) {
        if (err instanceof CtlUsageError || err instanceof AdminUnreachableError) {
          process.stderr.write(`vnet status: ${err.message}\n`);
          process.exitCode = err.exitCode;
          return;
        }
        throw err;
      }
    });
}
