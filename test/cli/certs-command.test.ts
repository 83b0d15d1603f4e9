import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { certsCommand } from '../../src/cli/certs-command.ts';
import { loadHostCredentials } from '../../src/pki/certs.ts';
import { loadLinkKey } from '../../src/dataplane/link-auth.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Run `vnet certs ARGS…` in-process, capturing what it prints and the exit code it sets. */
async function certs(...args: string[]): Promise<{ out: string; err: string; exitCode: number }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  const before = process.exitCode;
  process.exitCode = 0;
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = (...a: unknown[]) => void err.push(a.join(' '));
  try {
    await certsCommand().exitOverride().parseAsync(args, { from: 'user' });
    return { out: out.join('\n'), err: err.join('\n'), exitCode: Number(process.exitCode ?? 0) };
  } finally {
    console.log = log;
    console.error = error;
    process.exitCode = before;
  }
}

describe('vnet certs', () => {
  it('link-key creates DIR/link.key (mode 0600, 32 random bytes), keeps it, replaces it with --force', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vnet-cli-certs-'));
    dirs.push(dir);
    const first = await certs('link-key', '--dir', dir);
    assert.match(first.out, /created link key: .*link\.key \(mode 0600\)/);
    assert.equal(statSync(join(dir, 'link.key')).mode & 0o777, 0o600);
    const key = loadLinkKey(join(dir, 'link.key'));
    assert.equal(key.length, 32);
    assert.match((await certs('link-key', '--dir', dir)).out, /already exists, kept/);
    assert.ok(loadLinkKey(join(dir, 'link.key')).equals(key));
    await certs('link-key', '--dir', dir, '--force');
    assert.ok(!loadLinkKey(join(dir, 'link.key')).equals(key));
  });

  it('init creates a CA, and a second init keeps it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vnet-cli-certs-'));
    dirs.push(dir);
    const first = await certs('init', '--dir', dir);
    assert.match(first.out, /created CA: .*ca\.pem/);
    assert.equal(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600);
    const again = await certs('init', '--dir', dir);
    assert.match(again.out, /already exists, kept.*--force/);
    assert.equal(again.exitCode, 0);
  });

  it('host issues a key and certificate that load for TLS', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vnet-cli-certs-'));
    dirs.push(dir);
    await certs('init', '--dir', dir);
    const r = await certs('host', '--dir', dir, '--host', 'hub', '--ip', '127.0.0.1', '--dns', 'hub.local');
    assert.match(r.out, /issued certificate for hub/);
    const creds = await loadHostCredentials(dir, 'hub');
    assert.match(creds.cert, /BEGIN CERTIFICATE/);
  });

  it('fails with one clear line and exit code 1 when there is no CA', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vnet-cli-certs-'));
    dirs.push(dir);
    const r = await certs('host', '--dir', dir, '--host', 'hub');
    assert.equal(r.exitCode, 1);
    assert.match(r.err, /^vnet certs host: .*ca\.pem: no CA here: run `vnet certs init --dir .*` first$/);
  });
});
