import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { copyFileSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startFixtureServer, type FixtureServer } from '../controller/api/api-fixture.ts';

/**
 * The compiled CLI (`npm run build`, run by `npm ci`): the build emits
 * runnable JavaScript with the web page beside it, `vnet ctl` from it answers
 * like the TypeScript one, and bin/vnet.js runs the compiled code only while
 * it is at least as new as every source file.
 */

const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** Scratch space inside the repository (ignored by git) so compiled modules find node_modules. */
const SCRATCH = join(REPO, '.vnet', `compiled-cli-${randomBytes(4).toString('hex')}`);

/** Runs node without blocking this process's event loop (the fixture API server lives here). */
async function runAsync(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, args, { cwd: REPO, encoding: 'utf8', timeout: 120_000, env: { PATH: process.env.PATH ?? '', VNET_LOG_LEVEL: 'silent', ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
  }
}

function run(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, { cwd: REPO, encoding: 'utf8', timeout: 120_000, env: { PATH: process.env.PATH ?? '', VNET_LOG_LEVEL: 'silent', ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('compiled CLI', () => {
  let fixture: FixtureServer;
  const out = join(SCRATCH, 'dist');

  before(async () => {
    fixture = await startFixtureServer();
    const built = run(['scripts/build.js', '--out', out]);
    assert.equal(built.code, 0, built.stderr + built.stdout);
  });
  after(async () => {
    await fixture.server.close();
    rmSync(SCRATCH, { recursive: true, force: true });
  });

  it('`vnet ctl hosts` from the compiled JavaScript prints the same table as from the sources', async () => {
    const env = { VNET_CONTROLLER: fixture.server.url, VNET_TOKEN: fixture.token };
    const compiled = await runAsync([join(out, 'cli/main.js'), 'ctl', 'hosts'], env);
    assert.equal(compiled.code, 0, compiled.stderr);
    assert.match(compiled.stdout, /^HOST\s+SITE/);
    const source = await runAsync(['--import', 'tsx', 'src/cli/main.ts', 'ctl', 'hosts'], env);
    assert.equal(source.code, 0, source.stderr);
    assert.equal(compiled.stdout, source.stdout);
  });

  it('the compiled API server finds the web page it serves', async () => {
    const mod = (await import(pathToFileURL(join(out, 'controller/api/static-files.js')).href)) as typeof import('../../src/controller/api/static-files.ts');
    const files = await mod.StaticFiles.load();
    assert.ok(files.has('/') && files.has('/app.js') && files.has('/vendor/cytoscape.min.js'));
  });

  it('bin/vnet.js runs dist/ only while its build stamp is at least as new as every source file', () => {
    // A miniature package: bin/vnet.js itself, a "source" and a "compiled" main that say which they are.
    const pkg = join(SCRATCH, 'pkg');
    mkdirSync(join(pkg, 'bin'), { recursive: true });
    mkdirSync(join(pkg, 'src/cli'), { recursive: true });
    mkdirSync(join(pkg, 'dist/cli'), { recursive: true });
    copyFileSync(join(REPO, 'bin/vnet.js'), join(pkg, 'bin/vnet.js'));
    writeFileSync(join(pkg, 'src/cli/main.ts'), "const from: string = 'source';\nconsole.log(from);\n");
    writeFileSync(join(pkg, 'dist/cli/main.js'), "console.log('compiled');\n");
    const which = (): string => {
      const r = run([join(pkg, 'bin/vnet.js')]);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.trim();
    };
    const at = (path: string, seconds: number): void => utimesSync(path, seconds, seconds);
    const t0 = 1_800_000_000;
    for (const p of ['src', 'src/cli', 'src/cli/main.ts']) at(join(pkg, p), t0);

    assert.equal(which(), 'source', 'no build stamp: the sources run');
    writeFileSync(join(pkg, 'dist/.built'), 'stamp\n');
    at(join(pkg, 'dist/.built'), t0);
    assert.equal(which(), 'compiled', 'stamp as new as the sources (as npm pack leaves them): the build runs');
    at(join(pkg, 'src/cli/main.ts'), t0 + 10);
    assert.equal(which(), 'source', 'a source file edited after the build: the sources run');
    at(join(pkg, 'dist/.built'), t0 + 20);
    writeFileSync(join(pkg, 'src/cli/new-file.ts'), 'export {};\n');
    at(join(pkg, 'src/cli/new-file.ts'), t0);
    at(join(pkg, 'src/cli'), t0 + 30);
    assert.equal(which(), 'source', 'a file added after the build (its directory changed): the sources run');
  });
});
