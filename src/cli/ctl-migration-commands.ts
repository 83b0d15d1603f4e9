import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { EventPage } from '../controller/api-events.ts';
import type { MigrationView, VmView } from '../controller/api-views.ts';
import { STOP_RULES } from '../control/migration-control.ts';
import { CtlUsageError } from './errors.ts';
import { migrationLine, migrationsTable } from './ctl-format.ts';
import type { CtlActions } from './ctl-io.ts';

/** `vnet ctl migrations` and `vnet ctl migrate`: live migrations, listed, started, followed, cancelled. */

function parseRule(value: string): string {
  if (!(STOP_RULES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${STOP_RULES.join(', ')}`);
  return value;
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0) || n > 86_400) throw new InvalidArgumentError('expected seconds, 0 < S ≤ 86400');
  return n;
}

const enc = encodeURIComponent;

export function addMigrationCommands(ctl: Command, { io, run, print }: CtlActions): void {
  ctl
    .command('migrations')
    .description('list live migrations with their progress')
    .option('-w, --watch', 'keep the table up to date as migrations progress (Ctrl-C to stop)')
    .action(
      run(async (c, g, opts: { watch?: boolean }) => {
        const overview = await c.get<{ latestSeq: number; migrations: MigrationView[]; vms: VmView[] }>('/api/v1/overview');
        const { migrations, vms } = overview;
        print(g, migrations, () => migrationsTable(migrations, vms));
        if (opts.watch !== true) return;
        // Follow migration-changed events: JSON prints each new view; a terminal redraws the table in place.
        const byId = new Map(migrations.map((m) => [m.id, m]));
        let drawn = g.json === true ? 0 : migrationsTable(migrations, vms).split('\n').length;
        const { signal, dispose } = io.followSignal();
        try {
          await c.followEvents(
            overview.latestSeq,
            (e) => {
              if (e.type !== 'migration-changed') return;
              byId.set(e.payload.migration.id, e.payload.migration);
              if (g.json === true) {
                io.out(JSON.stringify(e.payload.migration));
                return;
              }
              const text = migrationsTable([...byId.values()].sort((x, y) => x.startedAt - y.startedAt), vms);
              io.out(io.isTTY === true ? `\x1b[${drawn}A\x1b[J${text}` : `\n${text}`);
              drawn = text.split('\n').length;
            },
            { signal, onNotice: (t) => io.err(`vnet ctl: ${t}`) },
          );
        } finally {
          dispose();
        }
      }),
    );

  ctl
    .command('migrate')
    .argument('[vm]', 'VM name or MAC address')
    .argument('[host]', 'destination host id (or --to)')
    .option('--to <host>', 'destination host id')
    .option('--rule <rule>', `stop rule of the memory phase: ${STOP_RULES.join(', ')} (default smart-stop)`, parseRule)
    .option('--deadline <seconds>', 'for time-bound: the bound on the memory phase', parseSeconds)
    .option('-w, --watch', 'follow the migration until it ends (Ctrl-C stops watching, not the migration)')
    .option('--cancel <id>', 'abort a migration before its commit point')
    .description('start a live migration of a VM to another host, or cancel one')
    .action(
      run(async (c, g, vmArg: string | undefined, hostArg: string | undefined, opts: { to?: string; rule?: string; deadline?: number; watch?: boolean; cancel?: string }) => {
        if (opts.cancel !== undefined) {
          if (vmArg !== undefined) throw new CtlUsageError('--cancel takes a migration id, not a VM');
          const m = await c.post<MigrationView>(`/api/v1/migrations/${enc(opts.cancel)}/cancel`, {});
          print(g, m, () => `migration ${m.id} cancelled before its commit point: the VM stays on ${m.from} (${m.step})`);
          return;
        }
        const to = opts.to ?? hostArg;
        if (vmArg === undefined || to === undefined) throw new CtlUsageError('name a VM and its destination: vnet ctl migrate VM --to HOST');
        if (opts.to !== undefined && hostArg !== undefined && hostArg !== opts.to) throw new CtlUsageError(`two destinations: ${hostArg} and --to ${opts.to}`);
        const body = { vm: vmArg, to, ...(opts.rule !== undefined ? { rule: opts.rule } : {}), ...(opts.deadline !== undefined ? { deadlineS: opts.deadline } : {}) };
        const since = opts.watch === true ? (await c.get<EventPage>('/api/v1/events?limit=1')).latestSeq : 0;
        const m = await c.post<MigrationView>('/api/v1/migrations', body);
        print(g, m, () => `migration ${m.id} started: ${m.vm} ${m.from} → ${m.to} (${m.rule ?? 'smart-stop'})`);
        if (opts.watch !== true) return;
        const { signal, dispose } = io.followSignal();
        const ended = new AbortController();
        const stop = AbortSignal.any([signal, ended.signal]);
        try {
          await c.followEvents(since, (e) => {
            if (e.type !== 'migration-changed' || e.payload.migration.id !== m.id) return;
            const v = e.payload.migration;
            io.out(g.json === true ? JSON.stringify(v) : migrationLine(v));
            if (v.state !== 'running' && v.step !== 'aborting') {
              if (v.state === 'failed') io.setExitCode(1);
              ended.abort();
            }
          }, { signal: stop, onNotice: (t) => io.err(`vnet ctl: ${t}`) });
        } finally {
          dispose();
        }
      }),
    );

}
