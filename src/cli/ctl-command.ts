import { Command, InvalidArgumentError } from 'commander';
import { EVENT_TYPES, type EventPage, type EventType, type EventView } from '../controller/api-events.ts';
import type { HostRulesView, HostView, LinkView, MatrixView, MigrationView, PlacementView, TopologyView, VmView, DecisionView } from '../controller/api-views.ts';
import { DEFAULT_TOKEN_FILE } from '../controller/api/token-file.ts';
import type { ControllerClient } from './ctl-client.ts';
import { decisionsTable, eventLine, hostsTable, linksTable, matrixTable, placementText, rulesTable, statusText, vmsTable } from './ctl-format.ts';
import type { ReplicaStatusView } from '../controller/replica-status.ts';
import { addAccessCommands } from './ctl-access-commands.ts';
import { addImageCommands } from './ctl-image-commands.ts';
import { ctlActions, DEFAULT_CONTROLLER_URL, processCtlIo, type CtlIo } from './ctl-io.ts';
import { addMigrationCommands } from './ctl-migration-commands.ts';
import { drawTopology, topologyDot } from './ctl-topology-drawing.ts';

export type { CtlIo } from './ctl-io.ts';

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

function parseCount(value: string): number {
  if (!/^\d{1,9}$/.test(value)) throw new InvalidArgumentError('expected a non-negative integer');
  return Number(value);
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

  const actions = ctlActions(io);
  const { run, print } = actions;

  ctl
    .command('status')
    .description('the controller replicas: which one leads, the store and its health (etcd members, the leader\'s lease)')
    .action(
      run(async (c, g) => {
        const s = await c.get<ReplicaStatusView>('/api/v1/status');
        print(g, s, () => statusText(s));
      }),
    );

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
    .command('placement')
    .description('show the proposed VM placement moves and their gain')
    .action(
      run(async (c, g) => {
        const p = await c.get<PlacementView>('/api/v1/placement');
        const { vms } = g.json === true ? { vms: [] } : await c.get<{ vms: VmView[] }>('/api/v1/vms');
        print(g, p, () => placementText(p, vms, io.now()));
      }),
    );

  addMigrationCommands(ctl, actions);
  addAccessCommands(ctl, actions);
  addImageCommands(ctl, actions);

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
