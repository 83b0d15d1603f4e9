import { Command, InvalidArgumentError } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { VnetError } from '../common/errors.ts';
import { realClock, type Clock } from '../common/clock.ts';
import { ModelGuest } from '../migration/guests/memory-guest.ts';
import { PROFILE_NAMES, scaledProfile, type ProfileName } from '../migration/guests/workload-profiles.ts';
import { STOP_RULE_NAMES, type StopRule, type StopRuleName } from '../migration/stop-rules/stop-rule.ts';
import { XenStop } from '../migration/stop-rules/xen-stop.ts';
import { QemuStop } from '../migration/stop-rules/qemu-stop.ts';
import { SmartStop } from '../migration/stop-rules/smart-stop.ts';
import { TimeBound } from '../migration/stop-rules/time-bound.ts';
import { connectMigration, listenMigration } from '../migration/drivers/socket-channel.ts';
import { receiveMigration, sendMigration } from '../migration/drivers/socket-migration.ts';
import { createContentKeyer, diskDigest, memoryDigest } from '../migration/engine/content-key.ts';
import { formatProgressBar } from '../migration/engine/progress.ts';

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number, got "${value}"`);
  return n;
}

function ruleName(value: string): StopRuleName {
  if (!(STOP_RULE_NAMES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${STOP_RULE_NAMES.join(', ')}`);
  return value as StopRuleName;
}

function profileName(value: string): ProfileName {
  if (!(PROFILE_NAMES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${PROFILE_NAMES.join(', ')}`);
  return value as ProfileName;
}

function makeRule(name: StopRuleName, deadlineMs: number): StopRule {
  switch (name) {
    case 'xen': return new XenStop();
    case 'qemu': return new QemuStop();
    case 'smart-stop': return new SmartStop();
    case 'time-bound': return new TimeBound({ deadlineMs });
  }
}

/** TLS options from a `vnet certs` directory: this host's certificate, trusting the deployment CA. */
function tlsFrom(dir: string | undefined, host: string | undefined): { ca: string; cert: string; key: string } | undefined {
  if (dir === undefined) return undefined;
  if (host === undefined) throw new InvalidArgumentError('--tls-dir needs --host-id');
  return {
    ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    cert: readFileSync(join(dir, 'hosts', `${host}.pem`), 'utf8'),
    key: readFileSync(join(dir, 'hosts', `${host}.key`), 'utf8'),
  };
}

function clockFromNow(): Clock {
  const t0 = realClock.now();
  return { ...realClock, now: () => realClock.now() - t0 };
}

async function run(name: string, action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (err) {
    if (err instanceof VnetError) {
      console.error(`vnet migrate ${name}: ${err.message}`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}

interface SendOpts { host: string; port: number; rule: StopRuleName; profile: ProfileName; pages: number; blocks: number; deadline: number; pace?: number; seed: number; tlsDir?: string; hostId?: string; progress: boolean; json: boolean; checkpoint: boolean }
interface ReceiveOpts { listen: string; port: number; channels: number; timeout: number; tlsDir?: string; hostId?: string; json: boolean }

/**
 * `vnet migrate`: the migration engine from the command line.
 *
 *   vnet migrate receive --listen ADDR --port N [--channels 1|2] [--tls-dir DIR --host-id ID]
 *   vnet migrate send --host ADDR --port N [--rule R] [--profile P] [--pages N] [--blocks N]
 *                     [--deadline MS] [--pace BPS] [--checkpoint] [--tls-dir DIR --host-id ID]
 *   vnet migrate bench [--quick]
 * `send` migrates a model guest running a workload profile (scaled to --pages)
 * to a `receive` on another host; both print one JSON line with the result
 * and the image's digests when --json is given.
 */
export function migrateCommand(): Command {
  const cmd = new Command('migrate').description('live-migrate a model guest between hosts, or run the migration benchmark');

  cmd.command('receive')
    .description('wait for one migration and verify it')
    .option('--listen <addr>', 'address to listen on', '0.0.0.0')
    .requiredOption('--port <n>', 'TCP port', positive)
    .option('--channels <n>', 'connections per migration (2 for time-bound)', positive, 1)
    .option('--timeout <ms>', 'give up after this long', positive, 120_000)
    .option('--tls-dir <dir>', 'certificates from `vnet certs` (mutual TLS)')
    .option('--host-id <id>', 'this host\'s id in the certificate directory')
    .option('--json', 'print the result as one JSON line', false)
    .action((o: ReceiveOpts) => run('receive', async () => {
      const tls = tlsFrom(o.tlsDir, o.hostId);
      const listener = await listenMigration({ host: o.listen, port: o.port, ...(tls !== undefined ? { tls: { ...tls, requestCert: true, rejectUnauthorized: true } } : {}) });
      try {
        const channels = await listener.accept(o.channels);
        const r = await receiveMigration({ channels, clock: clockFromNow(), timeoutMs: o.timeout });
        const keyer = await createContentKeyer();
        const out = {
          ok: r.ok,
          error: r.error?.code,
          message: r.error?.message,
          memDigest: r.guest !== undefined ? memoryDigest(r.guest.memory, keyer) : undefined,
          diskDigest: r.guest !== undefined ? diskDigest(r.guest.disk, keyer) : undefined,
          records: r.recordsApplied,
          kept: r.guest?.runState === 'paused',
        };
        for (const c of channels) c.end();
        console.log(o.json ? JSON.stringify(out) : `${r.ok ? 'received and verified' : `failed: ${r.error?.message}`} (${r.recordsApplied} records)`);
        if (!r.ok) process.exitCode = 1;
      } finally {
        await listener.close();
      }
    }));

  cmd.command('send')
    .description('migrate a model guest to a receiving host')
    .requiredOption('--host <addr>', 'the receiving host')
    .requiredOption('--port <n>', 'its port', positive)
    .option('--rule <name>', `stop rule: ${STOP_RULE_NAMES.join(', ')}`, ruleName, 'smart-stop' as StopRuleName)
    .option('--profile <name>', `workload: ${PROFILE_NAMES.join(', ')}`, profileName, 'tpc-w' as ProfileName)
    .option('--pages <n>', 'guest RAM in 4 KiB pages', positive, 4096)
    .option('--blocks <n>', 'guest disk in 4 KiB blocks (0: none)', (v) => Number(v), 256)
    .option('--deadline <ms>', 'time bound for the time-bound rule', positive, 10_000)
    .option('--pace <bps>', 'pace the sender to this many bits per second', positive)
    .option('--seed <n>', 'workload seed', positive, 1)
    .option('--tls-dir <dir>', 'certificates from `vnet certs` (mutual TLS)')
    .option('--host-id <id>', 'this host\'s id in the certificate directory')
    .option('--checkpoint', 'a live checkpoint: the receiver keeps the image paused, this guest runs on', false)
    .option('--progress', 'print a progress bar on stderr', false)
    .option('--json', 'print the result as one JSON line', false)
    .action((o: SendOpts) => run('send', async () => {
      const tls = tlsFrom(o.tlsDir, o.hostId);
      const rule = makeRule(o.rule, o.deadline);
      const { profile } = scaledProfile(o.profile, o.pages);
      const guest = new ModelGuest({ name: `${o.profile}-${o.pages}`, pageCount: o.pages, blockCount: o.blocks, representation: 'bytes', memoryWorkload: profile.memory, diskWorkload: profile.disk, seed: o.seed });
      const channels = await connectMigration({ host: o.host, port: o.port, channels: rule.kind === 'time-bound' ? 2 : 1, ...(tls !== undefined ? { tls: { ...tls, checkServerIdentity: () => undefined } } : {}) });
      const r = await sendMigration({
        guest, rule, channels, clock: clockFromNow(), timeoutMs: 120_000, keep: o.checkpoint,
        ...(o.pace !== undefined ? { paceBps: o.pace } : {}),
        ...(o.progress ? { onProgress: (e) => process.stderr.write(`\r${formatProgressBar(e, Math.min(100, process.stderr.columns ?? 100))}`), progressEveryMs: 250 } : {}),
      });
      if (o.progress) process.stderr.write('\n');
      for (const c of channels) c.end();
      const out = {
        ok: r.ok, error: r.error?.code, message: r.error?.message, rule: r.rule, totalMs: r.totalMs, memoryMs: r.memoryMs, downtimeMs: r.downtimeMs,
        iterations: r.iterations, bytes: r.bytes, records: r.sender.records, memDigest: r.sender.memDigest, diskDigest: r.sender.diskDigest,
        sourceRunning: guest.runState === 'running',
      };
      console.log(o.json ? JSON.stringify(out) : `${r.ok ? 'migrated' : `failed: ${r.error?.message}`}: ${(r.bytes.total / 1e6).toFixed(1)} MB in ${(r.totalMs / 1000).toFixed(2)} s, downtime ${r.downtimeMs.toFixed(0)} ms, ${r.iterations} iterations`);
      if (!r.ok) process.exitCode = 1;
    }));

  cmd.command('bench')
    .description('run the migration benchmark (bench/migration/run.ts) in this process tree')
    .option('--quick', 'a smaller run', false)
    .action((o: { quick: boolean }) => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/migration/run.ts', ...(o.quick ? ['--quick'] : [])], { stdio: 'inherit' });
      process.exitCode = r.status ?? 1;
    });

  return cmd;
}
