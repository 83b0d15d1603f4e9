/**
 * Who may use a daemon's admin interface. The interface can replace the
 * daemon's rules and make it dial any address, so it is the owner's only:
 *
 *   { socket: PATH }              a Unix socket, mode 0600, its directory created 0700
 *                                 when missing: the kernel refuses every other user
 *                                 (the default of `vnet daemon`: RUN_DIR/HOST/admin.sock)
 *   { host, port }                HTTP on a loopback address with a bearer token that the
 *                                 daemon generates at every start into a 0600 file
 *                                 (tokenFile, default RUN_DIR/HOST/admin-token)
 *   { host, port, tokenFile }     HTTP on any other address only with a token the operator
 *                                 provisioned in tokenFile (not readable by group or others)
 *
 * A non-loopback address without tokenFile is refused (AdminAccessError), as
 * is a token file others can read or a run directory owned by another user.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { isLoopbackAddress } from '../common/ip-address.ts';
import { AdminAccessError } from './errors.ts';

/** The admin interface as configured (`admin:` in the daemon's config). */
export type AdminConfig = { socket: string } | { host: string; port: number; tokenFile?: string | undefined };

/** Where and how the admin server listens, with the token HTTP requests must carry. */
export type AdminListen = { socket: string } | { host: string; port: number; token: string };

/** Shortest token accepted from an operator's token file. */
export const MIN_ADMIN_TOKEN_CHARS = 32;

/**
 * The daemon's run directory when none is configured: $RUNTIME_DIRECTORY
 * (what systemd's RuntimeDirectory=vnet gives the unit: /run/vnet), else
 * /run/vnet for root, else $XDG_RUNTIME_DIR/vnet, else TMPDIR/vnet-UID.
 */
export function defaultRunDir(env: NodeJS.ProcessEnv = process.env): string {
  const systemd = env.RUNTIME_DIRECTORY?.split(':')[0];
  if (systemd !== undefined && systemd !== '') return systemd;
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return '/run/vnet';
  if (env.XDG_RUNTIME_DIR !== undefined && env.XDG_RUNTIME_DIR !== '') return join(env.XDG_RUNTIME_DIR, 'vnet');
  return join(tmpdir(), `vnet-${uid}`);
}

/** This host's private directory under the run directory (made 0700 by `hostRunDir`). */
export function hostRunPath(runDir: string, hostId: string): string {
  return join(runDir, hostId);
}

/** The default admin socket of host `hostId`. */
export function defaultAdminSocket(runDir: string, hostId: string): string {
  return join(hostRunPath(runDir, hostId), 'admin.sock');
}

/** The default token file of an HTTP admin interface. */
export function defaultAdminTokenFile(runDir: string, hostId: string): string {
  return join(hostRunPath(runDir, hostId), 'admin-token');
}

/** Whether `host` is a loopback address (127.0.0.0/8, ::1, IPv4 loopback mapped into IPv6, localhost). */
export function isLoopbackHost(host: string): boolean {
  return isLoopbackAddress(host);
}

/**
 * Make `dir` (and its parents) if missing; the last component is created
 * 0700. With `private`, an existing directory must be ours and is set to
 * 0700. Throws AdminAccessError.
 */
export function ensurePrivateDir(dir: string, opts: { private: boolean }): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!opts.private) return;
    const st = lstatSync(dir);
    if (!st.isDirectory()) throw new AdminAccessError(`${dir} is not a directory`);
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) throw new AdminAccessError(`${dir} belongs to uid ${st.uid}, not to this daemon's user (uid ${uid})`);
    if ((st.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
  } catch (err) {
    if (err instanceof AdminAccessError) throw err;
    throw new AdminAccessError(`cannot prepare the directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
}

/** A fresh admin token: 256 random bits, base64url. */
export function generateAdminToken(): string {
  return `vadm_${randomBytes(32).toString('base64url')}`;
}

/** Write `token` to `file`, mode 0600, replacing any earlier file whole (never a half-written or wider-open one). */
export function writeTokenFile(file: string, token: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, token + '\n', { mode: 0o600, flag: 'w' });
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
  } catch (err) {
    throw new AdminAccessError(`cannot write the admin token file ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** Read an operator-provisioned token: the file must not be readable by group or others, the token at least 32 characters. */
export function readTokenFile(file: string): string {
  let text: string;
  try {
    const st = lstatSync(file);
    if ((st.mode & 0o077) !== 0) throw new AdminAccessError(`the admin token file ${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`);
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    if (err instanceof AdminAccessError) throw err;
    throw new AdminAccessError(`cannot read the admin token file ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (text.length < MIN_ADMIN_TOKEN_CHARS || /\s/.test(text)) {
    throw new AdminAccessError(`the admin token in ${file} must be one word of at least ${MIN_ADMIN_TOKEN_CHARS} characters`);
  }
  return text;
}

/**
 * Turn the configured admin interface into where to listen and which token
 * to require, creating the private directory, the socket's directory or the
 * token file on the way. `runDir` and `hostId` place the default token file.
 */
export function prepareAdminAccess(admin: AdminConfig, at: { runDir: string; hostId: string }): { listen: AdminListen; tokenFile: string | undefined } {
  if ('socket' in admin) {
    const dir = dirname(admin.socket);
    ensurePrivateDir(dir, { private: dir === hostRunPath(at.runDir, at.hostId) });
    return { listen: { socket: admin.socket }, tokenFile: undefined };
  }
  if (!isLoopbackHost(admin.host)) {
    if (admin.tokenFile === undefined) {
      throw new AdminAccessError(
        `refusing to serve the admin interface on ${admin.host}, which is not a loopback address, without a token: ` +
        'set admin.tokenFile to a file (mode 0600) holding one, or use a loopback address or a Unix socket',
      );
    }
    return { listen: { host: admin.host, port: admin.port, token: readTokenFile(admin.tokenFile) }, tokenFile: admin.tokenFile };
  }
  const tokenFile = admin.tokenFile ?? defaultAdminTokenFile(at.runDir, at.hostId);
  const dir = dirname(tokenFile);
  ensurePrivateDir(dir, { private: dir === hostRunPath(at.runDir, at.hostId) });
  const token = generateAdminToken();
  writeTokenFile(tokenFile, token);
  return { listen: { host: admin.host, port: admin.port, token }, tokenFile };
}
