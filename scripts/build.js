#!/usr/bin/env node
// Compiles src/ to dist/ (tsconfig.build.json), copies the web page's static
// files next to the compiled API server, and stamps the build so bin/vnet.js
// knows dist/ is at least as new as the sources. Run by `npm run build`, and
// by `npm ci` and `npm pack` (the `prepare` script).
//   --out DIR   build somewhere else (tests; DIR must be inside the repository
//               so that the compiled modules find node_modules)
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const outArg = process.argv.indexOf('--out');
const out = outArg >= 0 ? resolve(process.argv[outArg + 1] ?? '') : resolve(root, 'dist');
rmSync(out, { recursive: true, force: true });

const require = createRequire(import.meta.url);
const typescript = require.resolve('typescript/package.json');
const tsc = resolve(typescript, '..', require(typescript).bin.tsc);
const compiled = spawnSync(process.execPath, [tsc, '-p', resolve(root, 'tsconfig.build.json'), '--outDir', out], { stdio: 'inherit' });
if (compiled.status !== 0) {
  console.error(`vnet build: the TypeScript compiler failed (see above); ${out} was not stamped`);
  process.exit(compiled.status ?? 1);
}
cpSync(resolve(root, 'src/controller/web'), resolve(out, 'controller/web'), { recursive: true });
writeFileSync(resolve(out, '.built'), `${new Date().toISOString()}\n`);
