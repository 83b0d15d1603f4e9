/**
 * Failures that explain themselves. A test that fails once in CI, on a
 * machine slower or busier than the author's, must say from its message
 * alone which step failed and what was seen there: `withContext` runs a
 * test's body and, when it throws, rethrows the error with `context()`
 * appended (the state the test can read, the log tail); `LogTail` keeps the
 * last lines a logger wrote, for that context.
 *
 *   const logs = new LogTail(300);
 *   await withContext(() => body(logs.logger), () => `state: …\n${logs.tail(40)}`);
 */
import { readFileSync } from 'node:fs';
import { pino, type Logger } from 'pino';

/** Runs `body`; when it throws, the same error, its message followed by `context()` (bounded: a context that throws or hangs adds its own failure, not a second one). */
export async function withContext<T>(body: () => Promise<T>, context: () => string | Promise<string>, contextTimeoutMs = 10_000): Promise<T> {
  try {
    return await body();
  } catch (err) {
    let extra: string;
    let timer: NodeJS.Timeout | undefined;
    try {
      extra = await Promise.race([
        Promise.resolve().then(context),
        new Promise<string>((resolve) => { timer = setTimeout(() => resolve(`(context not read within ${contextTimeoutMs} ms)`), contextTimeoutMs); }),
      ]);
    } catch (cause) {
      extra = `(context not read: ${(cause as Error).message})`;
    } finally {
      clearTimeout(timer);
    }
    if (err instanceof Error) {
      err.message = `${err.message}\n--- seen when it failed:\n${extra}`;
      throw err;
    }
    throw new Error(`${String(err)}\n--- seen when it failed:\n${extra}`, { cause: err });
  }
}

/** A logger whose last `limit` lines (at `level` and up) are kept, newest last. */
export class LogTail {
  readonly logger: Logger;
  readonly #lines: string[] = [];
  readonly #limit: number;

  constructor(limit = 200, level = 'info') {
    this.#limit = limit;
    this.logger = pino({ level }, {
      write: (line: string) => {
        this.#lines.push(line.trimEnd());
        if (this.#lines.length > this.#limit) this.#lines.shift();
      },
    });
  }

  /** The last `n` lines, each shortened to its time (ms), component, message and other fields. */
  tail(n = 40): string {
    return this.#lines.slice(-n).map(brief).join('\n');
  }
}

/** One pino line without the fields every line has. */
function brief(line: string): string {
  try {
    const { level: _l, time, pid: _p, hostname: _h, msg, component, ...rest } = JSON.parse(line) as Record<string, unknown>;
    const fields = Object.keys(rest).length === 0 ? '' : ` ${JSON.stringify(rest)}`;
    const at = typeof time === 'number' ? new Date(time).toISOString().slice(11, 23) : '';
    return `${at} ${String(component ?? '-')}: ${String(msg ?? '')}${fields}`;
  } catch {
    return line;
  }
}

/** The last `n` lines of a log file (a daemon's or a controller's), or why it could not be read. */
export function fileTail(path: string, n = 30): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch (err) {
    return `(not read: ${(err as Error).message})`;
  }
}
