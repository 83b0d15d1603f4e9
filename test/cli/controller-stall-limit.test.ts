import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stallLimitMs } from '../../src/cli/controller-command.ts';
import { DEFAULT_STALL_LIMIT_MS } from '../../src/controller/store/etcd/election-thread.ts';

/** `vnet controller --stall-limit S`: the lease thread's stall limit (docs/ha.md), validated like the other flags. */

const VNET = fileURLToPath(new URL('../../bin/vnet.js', import.meta.url));

function controller(dir: string, ...args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [VNET, 'controller', '-t', join(dir, 'missing-topology.yaml'), ...args],
      { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '', VNET_LOG_LEVEL: 'silent' } }, (err, _stdout, stderr) => {
        const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
        resolve({ code, stderr });
      });
  });
}

test('the stall limit is the flag in ms for a replica, the default without it', () => {
  assert.equal(stallLimitMs({ store: 'etcd://127.0.0.1:2379', stallLimit: 30, leaseTtl: 5 }), 30_000);
  assert.equal(stallLimitMs({ store: 'etcd://127.0.0.1:2379', leaseTtl: 5 }), DEFAULT_STALL_LIMIT_MS);
  assert.equal(stallLimitMs({}), DEFAULT_STALL_LIMIT_MS);
});

test('a stall limit not longer than the lease, or without --store, is refused naming the flag', () => {
  assert.throws(() => stallLimitMs({ store: 'etcd://127.0.0.1:2379', stallLimit: 5, leaseTtl: 5 }), { code: 'VNET_ERR_CONFIG', message: /--stall-limit: 5 s must be longer than the lease \(--lease-ttl 5\)/ });
  assert.throws(() => stallLimitMs({ stallLimit: 30, leaseTtl: 5 }), { code: 'VNET_ERR_CONFIG', message: /--stall-limit: applies only to replicas over etcd/ });
});

test('vnet controller exits 2 on a bad --stall-limit, naming what is wrong, before it reads anything', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-stall-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = ['--store', 'etcd://127.0.0.1:1'];
  for (const [value, message] of [
    ['0', /--stall-limit <seconds>' argument '0' is invalid\. expected whole seconds, 1 to 3600/],
    ['1.5', /argument '1\.5' is invalid\. expected whole seconds/],
    ['soon', /argument 'soon' is invalid/],
    ['3601', /argument '3601' is invalid/],
  ] as const) {
    const r = await controller(dir, ...store, '--stall-limit', value);
    assert.equal(r.code, 2, `${value}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  const short = await controller(dir, ...store, '--lease-ttl', '10', '--stall-limit', '10');
  assert.equal(short.code, 2, short.stderr);
  assert.match(short.stderr, /vnet controller: --stall-limit: 10 s must be longer than the lease \(--lease-ttl 10\)/);
  const noStore = await controller(dir, '--stall-limit', '30');
  assert.equal(noStore.code, 2, noStore.stderr);
  assert.match(noStore.stderr, /--stall-limit: applies only to replicas over etcd/);
});
