// Patterns on loopback: per-round times of every pattern on N workers in one
// process (real TCP sockets, tree barrier), best of `--trials` runs by median.
//   node --import tsx bench/patterns/run.ts [--vms 8] [--size 65536] [--rounds 50] [--trials 3]
import { silentLogger } from '../../src/common/logger.ts';
import { runLocalPatterns } from '../../src/patterns/local-run.ts';
import type { PatternsReport } from '../../src/patterns/report.ts';
import { PATTERN_KINDS, patternEdges } from '../../src/topology/patterns.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const vms = arg('vms', 8);
const size = arg('size', 65_536);
const rounds = arg('rounds', 50);
const trials = arg('trials', 3);

console.log(`Patterns on loopback: ${vms} workers, ${size} B messages, ${rounds} rounds, best of ${trials} by median round time`);
console.log('pattern      edges  mean ms  median ms  p95 ms  total ms  aggregate Mbit/s');
for (const kind of PATTERN_KINDS) {
  let edges: number;
  try {
    edges = patternEdges(kind, vms).length;
  } catch {
    console.log(`${kind.padEnd(12)} (undefined on ${vms} workers)`);
    continue;
  }
  let best: PatternsReport | undefined;
  for (let t = 0; t < trials; t++) {
    const { coordinator } = await runLocalPatterns({ logger: silentLogger() }, { pattern: kind, workers: vms, messageBytes: size, rounds });
    if (best === undefined || coordinator.summary.medianMs < best.summary.medianMs) best = coordinator;
  }
  const s = best!.summary;
  console.log(
    `${kind.padEnd(12)} ${String(edges).padStart(5)}  ${s.meanMs.toFixed(3).padStart(7)}  ${s.medianMs.toFixed(3).padStart(9)}  ${s.p95Ms.toFixed(3).padStart(6)}  ${s.totalMs.toFixed(1).padStart(8)}  ${((best!.throughput.aggregateBytesPerSecond * 8) / 1e6).toFixed(0).padStart(16)}`,
  );
}
