import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Bad usage exits 2 in every subcommand (README: 0 ok, 1 refused, 2 usage); help and version exit 0. */

const VNET = fileURLToPath(new URL('../../bin/vnet.js', import.meta.url));

function vnet(...args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [VNET, ...args], { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '', VNET_LOG_LEVEL: 'silent' } }, (err, _stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ code, stderr });
    });
  });
}

describe('vnet usage errors', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['an option value its parser refuses', ['controller', '--lease-ttl', '0'], /--lease-ttl .*'0' is invalid/],
    ['an unknown option', ['daemon', '--no-such-option'], /unknown option '--no-such-option'/],
    ['an unknown subcommand two levels down', ['ctl', 'no-such-command'], /unknown command 'no-such-command'/],
    ['an unknown top-level command', ['no-such-role'], /unknown command 'no-such-role'/],
  ];
  for (const [what, args, message] of cases) {
    it(`exits 2 on ${what}, naming it`, async () => {
      const r = await vnet(...args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
    });
  }

  it('exits 0 for help and version', async () => {
    assert.equal((await vnet('ctl', 'hosts', '--help')).code, 0);
    assert.equal((await vnet('--version')).code, 0);
  });
});
