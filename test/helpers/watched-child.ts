/**
 * A child process a test drives step by step, so that a failing step says
 * which step it was and what the process had printed.
 *
 *   const demo = WatchedChild.spawn(process.execPath, [VNET, 'demo', …], { env });
 *   const url = await demo.step('the page URL printed', () => demo.waitForOutput(/web page:\s+(\S+)\n/, 30_000));
 *
 * `step` runs one step and, if it throws, rethrows an error naming the step,
 * the original message (what was awaited, what was seen) and the tail of the
 * child's output (stdout and stderr interleaved as they arrived). Waits on
 * output end early, with the exit code, if the child exits first. Nothing
 * here sleeps: every wait is a bounded wait for a condition.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { waitFor } from './wait.ts';

export class WatchedChild {
  readonly #child: ChildProcess;
  #out = '';
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly #exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.stdout?.on('data', (d: Buffer) => (this.#out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.#out += d.toString()));
    this.#exited = new Promise((resolve) => {
      // 'close', not 'exit': by then every byte the child wrote has been read.
      child.once('close', (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
      child.once('error', (err) => {
        this.#out += `\n[spawn error: ${err.message}]\n`;
        this.#exit = { code: null, signal: null };
        resolve(this.#exit);
      });
    });
  }

  static spawn(command: string, args: readonly string[], options: Omit<SpawnOptions, 'stdio'> = {}): WatchedChild {
    return new WatchedChild(spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  /** Everything printed so far. */
  get output(): string {
    return this.#out;
  }

  /** The last `lines` lines printed. */
  tail(lines = 40): string {
    return this.#out.split('\n').slice(-lines - 1).join('\n');
  }

  /** Run one step of the test; a failure names the step and shows the output's tail. */
  async step<T>(name: string, run: () => T | Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      const e = err as Error;
      const exit = this.#exit === undefined ? 'still running' : `exited (code ${this.#exit.code}, signal ${this.#exit.signal})`;
      throw new Error(`step "${name}" failed: ${e.message}\n--- the process ${exit}; its last output lines ---\n${this.tail()}\n---`, { cause: err });
    }
  }

  /**
   * Wait until the output matches `pattern` and return the match. Match whole
   * lines (end the pattern with `\n`): output arrives in chunks. Fails naming
   * the pattern if the time runs out or the child exits first.
   */
  async waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    return waitFor(() => {
      const m = pattern.exec(this.#out);
      if (m !== null) return m;
      if (this.#exit !== undefined) throw new Error(`the process exited before printing ${pattern}`);
      return undefined;
    }, `output matching ${pattern}`, timeoutMs);
  }

  /** The last complete line matching `pattern`, or undefined. */
  lastLine(pattern: RegExp): string | undefined {
    return this.#out.split('\n').slice(0, -1).reverse().find((l) => pattern.test(l));
  }

  kill(signal: NodeJS.Signals): void {
    if (this.#exit === undefined) this.#child.kill(signal);
  }

  /** Wait for the child to exit, at most `timeoutMs`; its exit code and signal. */
  async exit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    await waitFor(() => this.#exit !== undefined, `the process to exit`, timeoutMs);
    return this.#exited;
  }
}
