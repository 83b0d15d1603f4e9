#!/usr/bin/env node
// Entry point of the `vnet` binary. Runs the compiled JavaScript in dist/
// (`npm run build`, which `npm ci` and `npm pack` run) when it is at least as
// new as every file under src/; otherwise — a checkout being edited — loads
// the TypeScript sources through tsx, so stale code never runs.
import { readdirSync, statSync } from 'node:fs';

const ROOT = new URL('../', import.meta.url);
const BUILD_STAMP = new URL('dist/.built', ROOT);

/** Newest modification time under `dir` (files and directories), 0 if it does not exist. */
function newestMtimeMs(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  let newest = statSync(dir).mtimeMs;
  for (const entry of entries) {
    const path = new URL(entry.name + (entry.isDirectory() ? '/' : ''), dir);
    newest = Math.max(newest, entry.isDirectory() ? newestMtimeMs(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function compiledIsCurrent() {
  let built;
  try {
    built = statSync(BUILD_STAMP).mtimeMs;
  } catch {
    return false;
  }
  return built >= newestMtimeMs(new URL('src/', ROOT));
}

if (compiledIsCurrent()) {
  await import(new URL('dist/cli/main.js', ROOT).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
