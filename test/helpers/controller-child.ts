/**
 * `vnet controller` as a child process for privileged tests: the real CLI,
 * its SQLite database and token file on disk, the control channel and the
 * operator API on fixed loopback ports, so that it can be killed with
 * SIGKILL and started again on the same ports and the same database.
 *
 *   const ctl = await startControllerChild(t, { deploymentFile, dbPath, tlsDir, tokenFile, control, api });
 *   await ctl.client.get('/api/v1/vms');
 *   await ctl.kill();      // SIGKILL: no shutdown code runs
 *   await ctl.restart();   // same arguments; resolves once its API answers
 *
 * The process is stopped (SIGINT) when the test ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { resolve } from 'node:path';
import { ControllerClient } from '../../src/cli/ctl-client.ts';
import { readTokenFile } from '../../src/controller/api/token-file.ts';
import { CONTROL_PATH } from '../../src/control/control-protocol.ts';
import { waitFor } from './wait.ts';

/** The level of the overlays' daemons and controller process: their logs are files the tests read, whatever level the test runner set for itself. */
export const OVERLAY_LOG_LEVEL = process.env.VNET_OVERLAY_LOG_LEVEL ?? 'info';

const VNET = resolve(import.meta.dirname, '../../bin/vnet.js');

export interface ControllerChildInit {
  deploymentFile: string;
  /** The SQLite file (`--db`); or `store`: the arguments of another store (`--store etcd://… --replica-name …`). */
  dbPath: string;
  store?: readonly string[] | undefined;
  tlsDir: string;
  tokenFile: string;
  control: { host: string; port: number };
  api: { host: string; port: number };
  /** Append the controller's output here (else it is dropped). */
  logFile?: string | undefined;
}

export interface ControllerChild {
  /** The operator API, with the token the first start wrote. */
  readonly client: ControllerClient;
  /** wss://HOST:PORT/control, for daemons. */
  readonly controlUrl: string;
  /** The running process (undefined between kill and restart). */
  process(): ChildProcess | undefined;
  /** SIGKILL; resolves once the process is gone. */
  kill(): Promise<void>;
  /** Starts it again with the same arguments (ports, database, token file); resolves once its API answers. */
  restart(): Promise<void>;
  /** Times the process was started. */
  readonly starts: number;
}

interface AfterHook {
  after(fn: () => Promise<void> | void): void;
}

const exited = (p: ChildProcess): Promise<void> =>
  p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise((r) => p.once('exit', () => r()));

export async function startControllerChild(t: AfterHook, init: ControllerChildInit): Promise<ControllerChild> {
  const argv = [
    VNET, 'controller', '--topology', init.deploymentFile, ...(init.store ?? ['--db', init.dbPath]), '--tls-dir', init.tlsDir,
    '--control', `${init.control.host}:${init.control.port}`, '--api', `${init.api.host}:${init.api.port}`, '--token-file', init.tokenFile,
  ];
  let child: ChildProcess | undefined;
  let starts = 0;
  let client: ControllerClient | undefined;
  const baseUrl = `http://${init.api.host}:${init.api.port}`;

  const launch = async (): Promise<void> => {
    const out = init.logFile === undefined ? 'ignore' : openSync(init.logFile, 'a');
    const p = spawn('node', argv, { stdio: ['ignore', out, out], env: { ...process.env, VNET_LOG_LEVEL: OVERLAY_LOG_LEVEL } });
    child = p;
    starts++;
    const token = await waitFor(async () => {
      if (p.exitCode !== null) throw new Error(`vnet controller exited with ${p.exitCode} (start ${starts})`);
      return readTokenFile(init.tokenFile);
    }, 'the controller\'s token file', 60_000);
    client ??= new ControllerClient({ baseUrl, token, timeoutMs: 5_000 });
    const c = client;
    await waitFor(async () => {
      if (p.exitCode !== null) throw new Error(`vnet controller exited with ${p.exitCode} (start ${starts})`);
      return c.get('/api/v1/overview').then(() => true, () => false);
    }, 'the controller\'s API answering', 60_000);
  };

  t.after(async () => {
    const p = child;
    if (p === undefined) return;
    const gone = exited(p);
    p.kill('SIGINT');
    await gone;
  });
  await launch();

  return {
    get client() { return client!; },
    controlUrl: `wss://${init.control.host}:${init.control.port}${CONTROL_PATH}`,
    get starts() { return starts; },
    process: () => child,
    async kill() {
      const p = child;
      if (p === undefined) return;
      const gone = exited(p);
      p.kill('SIGKILL');
      await gone;
      child = undefined;
    },
    async restart() {
      if (child !== undefined) throw new Error('the controller is still running: kill it first');
      await launch();
    },
  };
}
