/** `vnet ctl` run in-process with its output captured, for the CLI tests. */
import { ctlCommand, type CtlIo } from '../../src/cli/ctl-command.ts';
import { FIXTURE_NOW } from '../controller/api/api-fixture.ts';

class ExitCalled extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

export interface Run {
  out: string[];
  err: string[];
  code: number;
}

/** Run `vnet ctl ARGS` in-process with captured output; `during` runs while a --follow is streaming. */
export async function runCtl(args: string[], env: Record<string, string | undefined> = {}, during?: (r: Run) => Promise<void>, now = FIXTURE_NOW + 5000): Promise<Run> {
  const r: Run = { out: [], err: [], code: 0 };
  const ac = new AbortController();
  let following: () => void = () => {};
  const followed = new Promise<void>((resolve) => {
    following = resolve;
  });
  const io: CtlIo = {
    out: (t) => r.out.push(t),
    err: (t) => r.err.push(t),
    env,
    now: () => now,
    setExitCode: (c) => {
      r.code = c;
    },
    exit: (c) => {
      throw new ExitCalled(c);
    },
    followSignal: () => {
      following();
      return { signal: ac.signal, dispose: () => {} };
    },
  };
  const run = ctlCommand(io).parseAsync(args, { from: 'user' });
  if (during !== undefined) {
    await Promise.race([followed, run]);
    try {
      await during(r);
    } finally {
      ac.abort();
    }
  }
  try {
    await run;
  } catch (err) {
    if (!(err instanceof ExitCalled)) throw err;
    r.code = err.code;
  }
  return r;
}

