import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { DEFAULT_NICE, niceFor } from '../../src/common/process-priority.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { ConfigError } from '../../src/common/errors.ts';

/**
 * Runs applyNice(nice) in a child process (the test runner's own priority
 * stays) and returns what it logged and the priority after; `unprivileged`
 * runs it as nobody when the runner is root, so a raise is refused there too.
 */
function inChild(nice: number | 'none', unprivileged = false): { after: number; logged: string } {
  const module = resolve(import.meta.dirname, '../../src/common/process-priority.ts');
  const script = `
    import { applyNice } from ${JSON.stringify(module)};
    const lines = [];
    const log = { info: (f, m) => lines.push('info ' + m + ' ' + JSON.stringify(f)), warn: (f, m) => lines.push('warn ' + m + ' ' + JSON.stringify(f)) };
    const after = applyNice(${nice === 'none' ? 'undefined' : nice}, log);
    process.stdout.write(JSON.stringify({ after, logged: lines.join('\\n') }));
  `;
  const asNobody = unprivileged && process.geteuid?.() === 0 ? { uid: 65534, gid: 65534, env: { ...process.env, TSX_DISABLE_CACHE: '1' } } : {};
  return JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', ...asNobody })) as { after: number; logged: string };
}

describe('process priority', () => {
  it('the configured nice value wins; unset, -10 as root and nothing otherwise', () => {
    assert.equal(niceFor(5, 0), 5);
    assert.equal(niceFor(0, 1000), 0);
    assert.equal(niceFor(undefined, 0), DEFAULT_NICE);
    assert.equal(DEFAULT_NICE, -10);
    assert.equal(niceFor(undefined, 1000), undefined);
  });

  it('applyNice sets the thread\'s priority and says so; nothing to set, nothing said', () => {
    const lowered = inChild(7);
    assert.equal(lowered.after, 7);
    assert.match(lowered.logged, /^info scheduling priority set \{"nice":7,"before":0\}$/);
    const untouched = inChild('none');
    assert.deepEqual(untouched, { after: 0, logged: '' });
  });

  it('a raise the process may not make is a warning, and it runs on at its priority', () => {
    const refused = inChild(-5, true);
    assert.equal(refused.after, 0);
    assert.match(refused.logged, /^warn cannot set the scheduling priority/);
  });

  it('the daemon configuration takes nice -20..19 and names the key otherwise', () => {
    const base = { host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 7000 } };
    assert.equal(parseDaemonConfig({ ...base, nice: -10 }, 'test.yaml').nice, -10);
    assert.equal(parseDaemonConfig(base, 'test.yaml').nice, undefined);
    for (const bad of [-21, 20, 1.5, 'high']) {
      assert.throws(() => parseDaemonConfig({ ...base, nice: bad }, 'test.yaml'), (err: unknown) => err instanceof ConfigError && /nice/.test(err.message), `nice: ${String(bad)}`);
    }
  });
});
