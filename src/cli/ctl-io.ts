import type { Command } from 'commander';
import { DEFAULT_TOKEN_FILE, readTokenFile } from '../controller/api/token-file.ts';
import { ControllerClient } from './ctl-client.ts';
import { CtlUsageError, exitCodeOf } from './errors.ts';

/**
 * What every `vnet ctl` command shares: where it prints (`CtlIo`), the
 * global options, finding the controller and the token (`connect`), and the
 * `run`/`print` wrappers of an action (errors become a message on stderr and
 * an exit code).
 */

export const DEFAULT_CONTROLLER_URL = 'http://127.0.0.1:7070';

/** Where a ctl command prints, reads its environment and reports its exit code (the process, or a test). */
export interface CtlIo {
  out(text: string): void;
  err(text: string): void;
  env: Readonly<Record<string, string | undefined>>;
  now(): number;
  setExitCode(code: number): void;
  /** End now (command-line syntax errors, --help): the process exits; a test's io throws. */
  exit(code: number): never;
  /** Whether out() goes to a terminal (then `migrations --watch` redraws in place). */
  isTTY?: boolean;
  /** A signal that ends `events --follow` and `migrations --watch` (Ctrl-C for the process); dispose when done. */
  followSignal(): { signal: AbortSignal; dispose(): void };
}

export function processCtlIo(): CtlIo {
  return {
    out: (text) => {
      process.stdout.write(`${text}\n`);
    },
    err: (text) => {
      process.stderr.write(`${text}\n`);
    },
    env: process.env,
    isTTY: process.stdout.isTTY === true,
    now: Date.now,
    setExitCode: (code) => {
      process.exitCode = code;
    },
    exit: (code) => process.exit(code),
    followSignal: () => {
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      return {
        signal: ac.signal,
        dispose: () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        },
      };
    },
  };
}


export interface GlobalOptions {
  controller?: string;
  token?: string;
  tokenFile?: string;
  json?: boolean;
}

export interface CtlActions {
  readonly io: CtlIo;
  /** Run an action with a connected client; errors become a message on stderr and an exit code. */
  run<A extends unknown[]>(action: (client: ControllerClient, g: GlobalOptions, ...args: A) => Promise<void>): (...args: A) => Promise<void>;
  /** JSON with --json, the human text otherwise. */
  print(g: GlobalOptions, json: unknown, human: () => string): void;
}

export function ctlActions(io: CtlIo): CtlActions {
  return {
    io,
    run:
      <A extends unknown[]>(action: (client: ControllerClient, g: GlobalOptions, ...args: A) => Promise<void>) =>
      async (...args: A): Promise<void> => {
        const cmd = args[args.length - 1] as Command;
        const g = cmd.optsWithGlobals<GlobalOptions>();
        try {
          const client = await connect(g, io);
          await action(client, g, ...args);
        } catch (err) {
          io.err(`vnet ctl: ${(err as Error).message}`);
          io.setExitCode(exitCodeOf(err));
        }
      },
    print: (g, json, human) => {
      io.out(g.json === true ? JSON.stringify(json, null, 2) : human());
    },
  };
}

/** The client for the controller and token the options and environment name. */
export async function connect(g: GlobalOptions, io: CtlIo): Promise<ControllerClient> {
  const raw = g.controller ?? io.env.VNET_CONTROLLER ?? DEFAULT_CONTROLLER_URL;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CtlUsageError(`--controller: not a URL: ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CtlUsageError(`--controller: expected an http:// or https:// URL, got ${JSON.stringify(raw)}`);
  const token = g.token ?? nonEmpty(io.env.VNET_TOKEN) ?? (await tokenFromFile(g.tokenFile ?? nonEmpty(io.env.VNET_TOKEN_FILE) ?? DEFAULT_TOKEN_FILE));
  if (token === undefined) {
    throw new CtlUsageError(`no API token: pass --token, set VNET_TOKEN, or use --token-file (the controller writes ${DEFAULT_TOKEN_FILE} in its directory at first start)`);
  }
  return new ControllerClient({ baseUrl: url.origin + url.pathname.replace(/\/+$/, ''), token });
}

async function tokenFromFile(path: string): Promise<string | undefined> {
  try {
    return await readTokenFile(path);
  } catch (err) {
    throw new CtlUsageError(`cannot read the token file ${path}: ${(err as Error).message}`);
  }
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}
