import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Logger } from '../../common/logger.ts';
import type { QmpClient } from './qmp-client.ts';
import { GuestBootTimeoutError, QemuProcessError } from '../errors.ts';

const SETPRIV = '/usr/bin/setpriv';

/**
 * The QEMU child of a trace recording: the console (serial on stdout) and
 * stderr kept as a bounded tail, waits for console markers and for the exit,
 * and a stop that always ends the process: QMP quit, then SIGKILL. QEMU runs
 * under `setpriv --pdeathsig KILL` when util-linux has it, and an exit hook
 * kills it if this process exits first.
 */
export class QemuProcess {
  readonly #bin: string;
  readonly #args: string[];
  readonly #log: Logger;
  #child: ChildProcess | undefined;
  #output = '';
  #exited: { code: number | null; signal: string | null; error?: Error } | undefined;
  readonly #waiters = new Set<() => void>();
  readonly #onProcessExit = (): void => this.kill();

  constructor(bin: string, args: string[], log: Logger) {
    this.#bin = bin;
    this.#args = args;
    this.#log = log;
  }

  start(): void {
    this.#log.debug({ bin: this.#bin, args: this.#args }, 'starting QEMU');
    // Through setpriv (util-linux) when it is there, so the kernel kills QEMU
    // if this process dies without running its exit handlers (SIGKILL, crash).
    const [cmd, args] = existsSync(SETPRIV) ? [SETPRIV, ['--pdeathsig', 'KILL', '--', this.#bin, ...this.#args]] : [this.#bin, this.#args];
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child = child;
    process.once('exit', this.#onProcessExit);
    const take = (d: Buffer): void => {
      this.#output = (this.#output + d.toString('latin1')).slice(-16_384);
      this.#notify();
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    child.on('error', (error) => {
      this.#exited ??= { code: null, signal: null, error };
      this.#notify();
    });
    child.on('exit', (code, signal) => {
      this.#exited ??= { code, signal };
      process.removeListener('exit', this.#onProcessExit);
      this.#notify();
    });
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  outputTail(lines = 30): string {
    return this.#output.replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, '').split('\n').slice(-lines).join('\n').trim();
  }

  /** Throws QemuProcessError if QEMU has exited (or never started). */
  checkAlive(): void {
    const e = this.#exited;
    if (e === undefined) return;
    const how = e.error ? `could not be started: ${e.error.message}` : `exited (code ${e.code}, signal ${e.signal})`;
    throw new QemuProcessError(`${this.#bin} ${how}`, this.outputTail(), e.error ? { cause: e.error } : undefined);
  }

  /** Wait for `marker` on the console; the guest's own error line (VNET_GUEST_ERROR) ends the wait at once. */
  async waitForConsole(marker: string, remainingMs: number, bootTimeoutMs: number): Promise<void> {
    await this.#waitUntil(() => this.#output.includes(marker) || this.#output.includes('VNET_GUEST_ERROR'), remainingMs, () => new GuestBootTimeoutError(bootTimeoutMs, this.outputTail()));
    if (this.#output.includes('VNET_GUEST_ERROR')) throw new QemuProcessError('the guest reported an error', this.outputTail());
  }

  /** Resolves when QEMU exits or after `ms`. */
  async waitExit(ms: number): Promise<boolean> {
    try {
      await this.#waitUntil(() => this.#exited !== undefined, ms, () => new Error('timeout'), true);
      return true;
    } catch {
      return false;
    }
  }

  kill(): void {
    if (this.#child && this.#exited === undefined) this.#child.kill('SIGKILL');
  }

  /** Kill and wait for the exit (bounded). */
  async killAndWait(): Promise<void> {
    this.kill();
    await this.waitExit(5000);
  }

  /** quit over QMP if possible, then SIGKILL after 5 s. */
  async stop(qmp: QmpClient | undefined): Promise<void> {
    if (this.#child === undefined || this.#exited !== undefined) return;
    if (qmp && !qmp.closed) await qmp.execute('quit', undefined, { timeoutMs: 3000 }).catch(() => {});
    if (!(await this.waitExit(5000))) {
      this.#log.warn('QEMU did not quit; killing it');
      this.kill();
      await this.waitExit(5000);
    }
    this.#child.stdin?.destroy();
  }

  /** Call `fn` on every output or exit of QEMU; returns the function that stops it. */
  onChange(fn: () => void): () => void {
    this.#waiters.add(fn);
    return () => this.#waiters.delete(fn);
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  #waitUntil(cond: () => boolean, ms: number, onTimeout: () => Error, exitOk = false): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (cond()) return finish(undefined);
        if (!exitOk && this.#exited !== undefined) {
          try {
            this.checkAlive();
          } catch (err) {
            finish(err as Error);
          }
        }
      };
      const finish = (err: Error | undefined): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => finish(onTimeout()), Math.max(0, ms));
      this.#waiters.add(check);
      check();
    });
  }
}
