import { Command, InvalidArgumentError } from 'commander';
import { EVENT_TYPES } from '../controller/api-model.ts';
import type { EventPage, EventType, EventView, HostRulesView, HostView, LinkView, MatrixView, MigrationView, PlacementView, TopologyView, VmView, DecisionView, JoinTokenView } from '../controller/api-model.ts';
import { DEFAULT_TOKEN_FILE, readTokenFile } from '../controller/api/token-file.ts';
import { ControllerClient } from './ctl-client.ts';
import { CtlUsageError, exitCodeOf } from './errors.ts';
import {
  decisionsTable,
  eventLine,
  hostsTable,
  linksTable,
  matrixTable,
  migrationLine,
  migrationsTable,
  placementText,
  rulesTable,
  vmsTable,
} from './ctl-format.ts';
import { drawTopology, topologyDot } from './ctl-topology-drawing.ts';
import { STOP_RULES } from '../control/migration-control.ts';

/**
 * `vnet ctl …`: the operator's command line over the controller's API.
 *
 * Where it finds the controller: --controller URL, else $VNET_CONTROLLER, else
 * http://127.0.0.1:7070. The token: --token, else $VNET_TOKEN, else the token
 * file (--token-file, else $VNET_TOKEN_FILE, else ./.vnet/api-token, which the
 * controller writes at first start). Human tables by default, --json for
 * scripts. Exit codes: 0 ok, 1 the controller refused the request, 2 usage or
 * no token, 3 controller unreachable, 4 token refused.
 */

export const DEFAULT_CONTROLLER_URL = 'http://127.0.0.1:7070';

/** Where a ctl command prints, reads its environment and reports its exit code (the process, or a test). */
export interface CtlIo {
  out(text: string): void;
  err(text: string): void;
  env: Readonly<Record<string, string | undefined>>;
  now(): number;
  setExitCode(code: number): void;
  /** End now (command-line syntax errors, --help): the process exits; a test's io throws. */
  exit(code: number): never;
  /** Whether out() goes to a terminal (then `migrations --watch` redraws in place). */
  isTTY?: boolean;
  /** A signal that ends `events --follow` and `migrations --watch` (Ctrl-C for the process); dispose when done. */
  followSignal(): { signal: AbortSignal; dispose(): void };
}

export function processCtlIo(): CtlIo {
  return {
    out: (text) => {
      process.stdout.write(`${text}\n`);
    },
    err: (text) => {
      process.stderr.write(`${text}\n`);
    },
    env: process.env,
    isTTY: process.stdout.isTTY === true,
    now: Date.now,
    setExitCode: (code) => {
      process.exitCode = code;
    },
    exit: (code) => process.exit(code),
    followSignal: () => {
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      return {
        signal: ac.signal,
        dispose: () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        },
      };
    },
  };
}

interface GlobalOptions {
  controller?: string;
  token?: string;
  tokenFile?: string;
  json?: boolean;
}

function parseCount(value: string): number {
  if (!/^\d{1,9}$/.test(value)) throw new InvalidArgumentError('expected a non-negative integer');
  return Number(value);
}

function parseRule(value: string): string {
  if (!(STOP_RULES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${STOP_RULES.join(', ')}`);
  return value;
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0) || n > 86_400) throw new InvalidArgumentError('expected seconds, 0 < S ≤ 86400');
  return n;
}

function parseTypes(value: string): EventType[] {
  const list = value.split(',').filter((t) => t !== '');
  for (const t of list) {
    if (!(EVENT_TYPES as readonly string[]).includes(t)) throw new InvalidArgumentError(`unknown event type "${t}" (known: ${EVENT_TYPES.join(', ')})`);
  }
  return list as EventType[];
}

const enc = encodeURIComponent;

export function ctlCommand(io: CtlIo = processCtlIo()): Command {
  const ctl = new Command('ctl')
    .description('query and steer a running vnet controller over its API')
    .option('--controller <url>', `controller API URL (env VNET_CONTROLLER, default ${DEFAULT_CONTROLLER_URL})`)
    .option('--token <token>', 'API token (env VNET_TOKEN)')
    .option('--token-file <file>', `file holding the API token (env VNET_TOKEN_FILE, default ${DEFAULT_TOKEN_FILE})`)
    .option('--json', 'print JSON instead of tables')
    .showHelpAfterError();

  /** Run an action with a connected client; errors become a message on stderr and an exit code. */
  const run =
    <A extends unknown[]>(action: (client: ControllerClient, g: GlobalOptions, ...args: A) => Promise<void>) =>
    async (...args: A): Promise<void> => {
      const cmd = args[args.length - 1] as Command;
      const g = cmd.optsWithGlobals<GlobalOptions>();
      try {
        const client = await connect(g, io);
        await action(client, g, ...args);
      } catch (err) {
        io.err(`vnet ctl: ${(err as Error).message}`);
        io.setExitCode(exitCodeOf(err));
      }
    };

  const print = (g: GlobalOptions, json: unknown, human: () => string): void => {
    io.out(g.json === true ? JSON.stringify(json, null, 2) : human());
  };

  ctl
    .command('hosts')
    .description('list hosts: site, role, state, last seen')
    .action(
      run(async (c, g) => {
        const { hosts } = await c.get<{ hosts: HostView[] }>('/api/v1/hosts');
        print(g, hosts, () => hostsTable(hosts, io.now()));
      }),
    );

  ctl
    .command('vms')
    .description('list VMs: MAC, name, IP, host, state')
    .action(
      run(async (c, g) => {
        const { vms } = await c.get<{ vms: VmView[] }>('/api/v1/vms');
        print(g, vms, () => vmsTable(vms));
      }),
    );

  ctl
    .command('links')
    .description('list backbone and fast-path links with their rates')
    .action(
      run(async (c, g) => {
        const { links } = await c.get<{ links: LinkView[] }>('/api/v1/links');
        print(g, links, () => linksTable(links));
      }),
    );

  ctl
    .command('rules')
    .argument('<host>', 'host id')
    .description("show the controller's forwarding rules for one host")
    .action(
      run(async (c, g, host: string) => {
        const rules = await c.get<HostRulesView>(`/api/v1/hosts/${enc(host)}/rules`);
        print(g, rules, () => rulesTable(rules));
      }),
    );

  ctl
    .command('matrix')
    .description('show the global VM-to-VM traffic matrix (talking pairs, heaviest first)')
    .action(
      run(async (c, g) => {
        const matrix = await c.get<MatrixView>('/api/v1/matrix');
        print(g, matrix, () => matrixTable(matrix, io.now()));
      }),
    );

  ctl
    .command('topology')
    .description('draw the host/link graph and the inferred application topology')
    .option('--dot', 'print Graphviz DOT')
    .action(
      run(async (c, g, opts: { dot?: boolean }) => {
        const o = await c.get<{ hosts: HostView[]; vms: VmView[]; links: LinkView[]; topology: TopologyView; migrations: MigrationView[] }>('/api/v1/overview');
        const input = { hosts: o.hosts, vms: o.vms, links: o.links, topology: o.topology, migrations: o.migrations };
        if (opts.dot === true) io.out(topologyDot(input));
        else print(g, input, () => drawTopology(input));
      }),
    );

  ctl
    .command('events')
    .description('show recent events; --follow streams new ones')
    .option('-f, --follow', 'keep streaming new events (Ctrl-C to stop)')
    .option('--since <seq>', 'events after this sequence number', parseCount)
    .option('-n, --limit <count>', 'how many recent events to show first', parseCount, 20)
    .option('--type <types>', 'only these event types (comma-separated)', parseTypes)
    .option('--all', 'include the per-period traffic-updated events (hidden by default)')
    .action(
      run(async (c, g, opts: { follow?: boolean; since?: number; limit: number; type?: EventType[]; all?: boolean }) => {
        const types = opts.type ?? (opts.all === true ? undefined : EVENT_TYPES.filter((t) => t !== 'traffic-updated'));
        const show = (e: EventView): void => {
          if (types !== undefined && !types.includes(e.type)) return;
          io.out(g.json === true ? JSON.stringify(e) : eventLine(e));
        };
        const typeQuery = types !== undefined ? `&types=${enc(types.join(','))}` : '';
        let page: EventPage;
        if (opts.since !== undefined) {
          page = await c.get<EventPage>(`/api/v1/events?since=${opts.since}&limit=${Math.max(1, Math.min(1000, opts.limit))}${typeQuery}`);
        } else {
          page = await recentEvents(c, opts.limit, typeQuery);
        }
        for (const e of page.events) show(e);
        if (opts.follow !== true) return;
        const { signal, dispose } = io.followSignal();
        try {
          // Resume after the history already looked at (with --since, after the last event shown; the rest replays).
          const resume = opts.since !== undefined ? Math.max(opts.since, page.events.at(-1)?.seq ?? opts.since) : page.latestSeq;
          await c.followEvents(resume, show, { signal, onNotice: (t) => io.err(`vnet ctl: ${t}`) });
        } finally {
          dispose();
        }
      }),
    );

  const link = ctl.command('link').description('add or remove a fast-path link by hand');
  link
    .command('add')
    .argument('<a>', 'host id')
    .argument('<b>', 'host id')
    .option('--reason <text>', 'why (recorded in the audit log)')
    .description('ask for a fast-path link between two hosts')
    .action(
      run(async (c, g, a: string, b: string, opts: { reason?: string }) => {
        const l = await c.post<LinkView>('/api/v1/links', { a, b, ...(opts.reason !== undefined ? { reason: opts.reason } : {}) });
        print(g, l, () => `added fast-path link ${l.a} ══ ${l.b} (${l.state}): ${l.reason}`);
      }),
    );
  link
    .command('remove')
    .alias('rm')
    .argument('<a>', 'host id')
    .argument('<b>', 'host id')
    .description('remove a fast-path link')
    .action(
      run(async (c, g, a: string, b: string) => {
        const r = await c.delete<{ removed: { a: string; b: string } }>(`/api/v1/links/${enc(a)}/${enc(b)}`);
        print(g, r, () => `removed fast-path link ${a} ══ ${b}`);
      }),
    );

  ctl
    .command('join-token')
    .description('create a join token for a daemon\'s first contact (shown once)')
    .option('--host <id>', 'only this host may use it')
    .option('--ttl <seconds>', 'lifetime in seconds (default: no expiry)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a whole number of seconds, got "${v}"`);
      return n;
    })
    .option('--reusable', 'may be used by more than one join')
    .action(
      run(async (c, g, opts: { host?: string; ttl?: number; reusable?: boolean }) => {
        const t = await c.post<JoinTokenView>('/api/v1/join-tokens', {
          ...(opts.host !== undefined ? { host: opts.host } : {}),
          ...(opts.ttl !== undefined ? { ttlSeconds: opts.ttl } : {}),
          ...(opts.reusable === true ? { singleUse: false } : {}),
        });
        print(g, t, () =>
          `${t.token}\n(join token ${t.id}${t.host ? ` for ${t.host}` : ''}, ${t.singleUse ? 'single use' : 'reusable'}, ${t.expiresAt ? `expires ${new Date(t.expiresAt).toISOString()}` : 'no expiry'}; shown once: give it to the daemon as controller.joinToken)`,
        );
      }),
    );

  ctl
    .command('placement')
    .description('show the proposed VM placement moves and their gain')
    .action(
      run(async (c, g) => {
        const p = await c.get<PlacementView>('/api/v1/placement');
        const { vms } = g.json === true ? { vms: [] } : await c.get<{ vms: VmView[] }>('/api/v1/vms');
        print(g, p, () => placementText(p, vms, io.now()));
      }),
    );

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

  ctl
    .command('decisions')
    .description("show the controller's recent adaptation decisions")
    .option('-n, --limit <count>', 'how many', parseCount, 20)
    .action(
      run(async (c, g, opts: { limit: number }) => {
        const { decisions } = await c.get<{ decisions: DecisionView[] }>(`/api/v1/decisions?limit=${Math.min(1000, opts.limit)}`);
        print(g, decisions, () => decisionsTable(decisions));
      }),
    );

  // Syntax errors exit 2 like the other usage errors (commander would exit 1); --help exits 0.
  const applyExit = (cmd: Command): void => {
    cmd.exitOverride((err) => io.exit(err.exitCode === 0 ? 0 : 2));
    cmd.configureOutput({ writeOut: (t) => io.out(t.trimEnd()), writeErr: (t) => io.err(t.trimEnd()) });
    for (const sub of cmd.commands) applyExit(sub);
  };
  applyExit(ctl);
  return ctl;
}

/**
 * The last `limit` events matching `typeQuery`: look back over a window of seqs that grows
 * fourfold until it holds enough matching events (or reaches the start of the history),
 * paging forward through each window.
 */
async function recentEvents(c: ControllerClient, limit: number, typeQuery: string): Promise<EventPage> {
  const head = await c.get<EventPage>('/api/v1/events?limit=1');
  if (limit === 0) return { ...head, events: [] };
  const latest = head.latestSeq;
  for (let window = Math.max(64, limit * 4); ; window *= 4) {
    const start = Math.max(0, latest - window);
    const found: EventView[] = [];
    let since = start;
    // The seq up to which every matching event has been seen: where a follow resumes.
    let covered = latest;
    for (;;) {
      const page = await c.get<EventPage>(`/api/v1/events?since=${since}&limit=1000${typeQuery}`);
      found.push(...page.events);
      if (found.length > limit) found.splice(0, found.length - limit);
      const last = page.events.at(-1)?.seq;
      if (page.events.length < 1000 || last === undefined) {
        covered = Math.max(latest, page.latestSeq);
        break;
      }
      if (last >= latest) {
        covered = last;
        break;
      }
      since = last;
    }
    if (found.length >= limit || start === 0) return { events: found, oldestSeq: head.oldestSeq, latestSeq: covered };
  }
}

/** The client for the controller and token the options and environment name. */
async function connect(g: GlobalOptions, io: CtlIo): Promise<ControllerClient> {
  const raw = g.controller ?? io.env.VNET_CONTROLLER ?? DEFAULT_CONTROLLER_URL;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CtlUsageError(`--controller: not a URL: ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CtlUsageError(`--controller: expected an http:// or https:// URL, got ${JSON.stringify(raw)}`);
  const token = g.token ?? nonEmpty(io.env.VNET_TOKEN) ?? (await tokenFromFile(g.tokenFile ?? nonEmpty(io.env.VNET_TOKEN_FILE) ?? DEFAULT_TOKEN_FILE));
  if (token === undefined) {
    throw new CtlUsageError(`no API token: pass --token, set VNET_TOKEN, or use --token-file (the controller writes ${DEFAULT_TOKEN_FILE} in its directory at first start)`);
  }
  return new ControllerClient({ baseUrl: url.origin + url.pathname.replace(/\/+$/, ''), token });
}

async function tokenFromFile(path: string): Promise<string | undefined> {
  try {
    return await readTokenFile(path);
  } catch (err) {
    throw new CtlUsageError(`cannot read the token file ${path}: ${(err as Error).message}`);
  }
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}
