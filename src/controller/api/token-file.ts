import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * The token file: where the controller writes the token it created at first
 * start, so that `vnet ctl` on the same machine finds it without copying.
 * Default `./.vnet/api-token` (relative to the controller's working
 * directory), mode 0600 in a 0700 directory; overridden by VNET_TOKEN_FILE.
 */

export const DEFAULT_TOKEN_FILE = '.vnet/api-token';

export function tokenFilePath(env: NodeJS.ProcessEnv = process.env): string {
  const p = env.VNET_TOKEN_FILE;
  return p !== undefined && p !== '' ? p : DEFAULT_TOKEN_FILE;
}

export async function writeTokenFile(path: string, token: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFile(path, `${token}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
}

/** The token in the file, or undefined if there is no such file or it is empty. */
export async function readTokenFile(path: string): Promise<string | undefined> {
  try {
    const text = (await readFile(path, 'utf8')).trim();
    return text === '' ? undefined : text;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
