/** `vnet ctl` run in-process with its output captured, for the CLI tests. */
import { after, before } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ctlCommand, type CtlIo } from '../../src/cli/ctl-command.ts';
import { ensureDemoCertificates } from '../../src/cli/demo-runner.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { startControllerProcess, type ControllerProcess } from '../../src/controller/launch.ts';
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


/**
 * A real controller on loopback for a `describe` of `vnet ctl` tests: started
 * in `before` from `deploymentYaml` (certificates, SQLite and the API token in
 * a temporary directory), closed and removed in `after`. `ctl(...args)` runs
 * `vnet ctl` against it with the first API token.
 */
export function ctlAgainstController(name: string, deploymentYaml: string): { readonly dir: string; readonly proc: ControllerProcess; ctl: (...args: string[]) => Promise<Run> } {
  const dir = mkdtempSync(join(tmpdir(), `vnet-${name}-`));
  let proc: ControllerProcess | undefined;
  let base: string[] = [];
  before(async () => {
    await ensureDemoCertificates(join(dir, 'certs'), []);
    proc = await startControllerProcess({ logger: silentLogger() }, {
      deployment: parseDeployment(deploymentYaml, `${name}.yaml`), dbPath: join(dir, 'vnet.db'), tlsDir: join(dir, 'certs'), tokenFile: join(dir, 'api-token'),
    });
    base = ['--controller', proc.api.url, '--token-file', join(dir, 'api-token')];
  });
  after(async () => {
    await proc?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    get proc(): ControllerProcess {
      if (proc === undefined) throw new Error('the controller starts in before()');
      return proc;
    },
    ctl: (...args: string[]) => runCtl([...args, ...base], {}, undefined, Date.now()),
  };
}
