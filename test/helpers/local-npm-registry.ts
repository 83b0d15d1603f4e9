/**
 * A tiny npm registry on 127.0.0.1 for install tests that must not reach any
 * other address (test/deploy/npm-install.priv.test.ts).
 *
 * It holds exactly the runtime dependency tree of a checkout: every package
 * of its package-lock.json that is not marked `dev`, packed with `npm pack`
 * from its directory in node_modules (one `npm pack` for all of them, scripts
 * ignored). Each package's packument lists the versions the lockfile has
 * (usually one; two when a package is nested at another version) with the
 * packed tarball's integrity, so `npm install --registry URL --cache EMPTY`
 * resolves and fetches everything from here. Anything else is answered 404
 * and recorded in `misses`. With `netns` the registry runs in that network
 * namespace (a child process of this module), for an install that is run
 * there with nothing but loopback, so that nothing can come from outside.
 *
 *   const tree = await packRuntimeTree(ROOT, join(tmp, 'registry'));
 *   const registry = await startLocalNpmRegistry(tree, { netns });   // t.after(() => registry.close())
 *   ip netns exec NETNS npm install --registry registry.url --cache EMPTY …
 */
import { execFile, spawn } from 'node:child_process';
import { createReadStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

/** One packed package of the tree. */
export interface PackedPackage {
  name: string;
  version: string;
  /** The tarball on disk. */
  file: string;
  /** sha512 SRI of the tarball, as `npm pack` reports it. */
  integrity: string;
  shasum: string;
  /** The package's package.json (dependencies, bin, scripts, engines …). */
  manifest: Record<string, unknown>;
}

interface LockEntry {
  version?: string;
  dev?: boolean;
  link?: boolean;
}

/** Lockfile keys (`node_modules/a`, `node_modules/a/node_modules/b`) of the packages a production install needs. */
export function runtimePackageDirs(root: string): string[] {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages?: Record<string, LockEntry> };
  if (lock.packages === undefined) throw new Error(`${root}/package-lock.json has no "packages" (lockfileVersion 2 or later needed)`);
  return Object.entries(lock.packages)
    .filter(([key, entry]) => key.startsWith('node_modules/') && entry.dev !== true && entry.link !== true)
    .map(([key]) => key);
}

/** Packs every runtime package of `root`'s lockfile from its node_modules into `outDir`. */
export async function packRuntimeTree(root: string, outDir: string, timeoutMs = 180_000): Promise<PackedPackage[]> {
  mkdirSync(outDir, { recursive: true });
  const dirs = runtimePackageDirs(root).map((key) => join(root, key));
  const { stdout } = await promisify(execFile)('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', outDir, ...dirs], {
    cwd: outDir,
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  const packed = JSON.parse(stdout) as Array<{ name: string; version: string; filename: string; integrity: string; shasum: string }>;
  if (packed.length !== dirs.length) throw new Error(`npm pack made ${packed.length} tarballs for ${dirs.length} packages`);
  return packed.map((p, i) => ({
    name: p.name,
    version: p.version,
    file: join(outDir, basename(p.filename)),
    integrity: p.integrity,
    shasum: p.shasum,
    manifest: JSON.parse(readFileSync(join(dirs[i]!, 'package.json'), 'utf8')) as Record<string, unknown>,
  }));
}

export interface LocalNpmRegistry {
  /** http://127.0.0.1:PORT/ */
  url: string;
  /** Every request path served, in order. */
  requests: string[];
  /** Requests answered 404 (`GET /name`): something npm wanted that the tree does not hold. */
  misses: string[];
  close(): Promise<void>;
}

/** Serves `packages` (packuments at /NAME, tarballs at /NAME/-/FILE) on 127.0.0.1, an ephemeral port; `onRequest` sees every request. */
async function serve(packages: readonly PackedPackage[], onRequest: (path: string, miss?: string) => void): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

  const packuments = new Map<string, { name: string; 'dist-tags': { latest: string }; versions: Record<string, unknown> }>();
  const tarballs = new Map<string, string>();
  for (const p of packages) {
    const tarballPath = `/${p.name}/-/${basename(p.file)}`;
    tarballs.set(tarballPath, p.file);
    const doc = packuments.get(p.name) ?? { name: p.name, 'dist-tags': { latest: p.version }, versions: {} };
    doc.versions[p.version] = { ...p.manifest, name: p.name, version: p.version, dist: { tarball: new URL(tarballPath.slice(1), url).href, integrity: p.integrity, shasum: p.shasum } };
    packuments.set(p.name, doc);
  }

  server.on('request', (req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    const file = tarballs.get(path);
    const doc = packuments.get(path.slice(1));
    if (req.method === 'GET' && file !== undefined) {
      onRequest(path);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      createReadStream(file).pipe(res);
    } else if (req.method === 'GET' && doc !== undefined) {
      onRequest(path);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(doc));
    } else {
      onRequest(path, `${req.method ?? '?'} ${path}`);
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'not found' }));
    }
  });
  return {
    url,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/**
 * Starts the registry on 127.0.0.1 — of this process's network namespace, or
 * with `netns` (root) of that namespace, in a child process that reports each
 * request on a line of its stdout — so that an install run in a namespace
 * with nothing but loopback can reach this registry and nothing else.
 */
export async function startLocalNpmRegistry(packages: readonly PackedPackage[], options: { netns?: string; timeoutMs?: number } = {}): Promise<LocalNpmRegistry> {
  const requests: string[] = [];
  const misses: string[] = [];
  const record = (path: string, miss?: string) => {
    requests.push(path);
    if (miss !== undefined) misses.push(miss);
  };
  if (options.netns === undefined) return { ...(await serve(packages, record)), requests, misses };

  const list = join(dirname(packages[0]?.file ?? tmpdir()), 'registry-packages.json');
  writeFileSync(list, JSON.stringify(packages));
  const child = spawn('ip', ['netns', 'exec', options.netns, process.execPath, '--import', 'tsx', fileURLToPath(import.meta.url), list], {
    cwd: dirname(fileURLToPath(import.meta.url)),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the registry in namespace ${options.netns} did not start`)), options.timeoutMs ?? 30_000);
    child.once('exit', (code) => reject(new Error(`the registry in namespace ${options.netns} exited ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^(listening|hit|miss) (.*)$/.exec(line);
      if (m?.[1] === 'listening') {
        clearTimeout(timer);
        resolve(m[2]!);
      } else if (m !== null) {
        record(m[1] === 'miss' ? m[2]!.replace(/^\S+ /, '') : m[2]!, m[1] === 'miss' ? m[2]! : undefined);
      }
    });
  });
  return {
    url,
    requests,
    misses,
    close: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

// As a program (the child above): serve the packages listed in argv[2].
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const packages = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as PackedPackage[];
  const { url } = await serve(packages, (path, miss) => console.log(miss === undefined ? `hit ${path}` : `miss ${miss}`));
  console.log(`listening ${url}`);
  process.on('SIGTERM', () => process.exit(0));
}
