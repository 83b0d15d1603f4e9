import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCtl as ctl } from './ctl-runner.ts';
import { writeTokenFile } from '../../src/controller/api/token-file.ts';
import { FIXTURE_NOW, startFixtureServer } from '../controller/api/api-fixture.ts';
import type { FixtureServer } from '../controller/api/api-fixture.ts';
import { waitFor } from '../helpers/wait.ts';

describe('vnet ctl', () => {
  let f: FixtureServer;
  let base: string[];

  before(async () => {
    f = await startFixtureServer();
    base = ['--controller', f.server.url, '--token', f.token];
  });
  after(async () => {
    await f.server.close();
  });

  it('lists hosts, VMs and links as tables, and as JSON with --json', async () => {
    const hosts = await ctl(['hosts', ...base]);
    assert.equal(hosts.code, 0, hosts.err.join('\n'));
    const lines = hosts.out.join('\n').split('\n');
    assert.match(lines[0]!, /^HOST\s+SITE\s+ROLE\s+STATE\s+HUB\s+LAST SEEN\s+ADDRESSES$/);
    assert.equal(lines.length, 6);
    assert.match(lines.find((l) => l.startsWith('gcp-2'))!, /gcp-2\s+gcp\s+spoke\s+down\s+-\s+1m ago/);
    // The HUB column: a spoke's hub, a hub's state as the spokes see it.
    assert.match(lines.find((l) => l.startsWith('aws-1'))!, /aws-1\s+aws\s+spoke\s+up\s+hub\s/);
    assert.match(lines.find((l) => l.startsWith('hub'))!, /hub\s+lan\s+hub\s+up\s+active\s/);
    const json = await ctl(['hosts', '--json', ...base]);
    assert.equal(JSON.parse(json.out.join('\n')).length, 5);
    const vms = await ctl(['vms', ...base]);
    assert.match(vms.out.join('\n'), /02:00:00:00:00:05\s+vm5\s+10\.10\.0\.5\s+gcp-1\s+running/);
    const links = await ctl(['links', ...base]);
    assert.match(links.out.join('\n'), /aws-1\s+gcp-1\s+fast-path\s+up\s+9\.6 Mbit\/s/);
  });

  it('shows rules, the matrix, placement, migrations with a progress bar, and decisions', async () => {
    assert.match((await ctl(['rules', 'aws-1', ...base])).out.join('\n'), /fp-vm5\s+100\s+any\s+02:00:00:00:00:05\s+link gcp-1/);
    assert.match((await ctl(['matrix', ...base])).out.join('\n'), /vm1 → vm5\s+aws-1 → gcp-1\s+8\.0 Mbit\/s/);
    assert.match((await ctl(['placement', ...base])).out.join('\n'), /vm7\s+gcp-2\s+gcp-1\s+0\.130/);
    assert.match((await ctl(['migrations', ...base])).out.join('\n'), /m1\s+vm8\s+gcp-1\s+aws-2\s+running\s+memory\s+\[████████············\]\s+42%/);
    assert.match((await ctl(['decisions', ...base])).out.join('\n'), /fast-path-added/);
  });

  it('draws the topology in the terminal, and prints it as DOT and JSON', async () => {
    const t = (await ctl(['topology', ...base])).out.join('\n');
    assert.match(t, /^ {2}hub \(lan, hub\)$/m);
    assert.match(t, /├── aws-1 \(aws\)\s+20\.0 Mbit\/s\s+\[vm1 vm2\]/);
    assert.match(t, /└── gcp-2 \(gcp\) ✗ DOWN\s+link down\s+\[vm7\]/);
    assert.match(t, /vm8→aws-2 42%/);
    assert.match(t, /aws-1 ══════ gcp-1/);
    assert.match(t, /Application topology: ring \(confidence 91%/);
    assert.match(t, /┌─ vm1 ── vm3 ── vm5 ── vm7 ─┐/);
    const dot = (await ctl(['topology', '--dot', ...base])).out.join('\n');
    assert.match(dot, /^graph vnet \{/);
    assert.match(dot, /"host:aws-1" -- "host:gcp-1" \[color="#ea580c"/);
    const json = JSON.parse((await ctl(['topology', '--json', ...base])).out.join('\n'));
    assert.equal(json.topology.class, 'ring');
    assert.equal(json.hosts.length, 5);
  });

  it('adds and removes a fast-path link, audited as the token owner', async () => {
    const add = await ctl(['link', 'add', 'aws-2', 'gcp-1', '--reason', 'ctl test', ...base]);
    assert.equal(add.code, 0, add.err.join('\n'));
    assert.match(add.out.join('\n'), /added fast-path link aws-2 ══ gcp-1 \(pending\): ctl test/);
    assert.equal(f.model.getLink('gcp-1', 'aws-2')?.actor, 'operator:admin');
    const dup = await ctl(['link', 'add', 'gcp-1', 'aws-2', ...base]);
    assert.equal(dup.code, 1);
    assert.match(dup.err.join('\n'), /409 VNET_ERR_CONFLICT/);
    const rm = await ctl(['link', 'remove', 'gcp-1', 'aws-2', ...base]);
    assert.equal(rm.code, 0, rm.err.join('\n'));
    assert.equal(f.model.getLink('gcp-1', 'aws-2'), undefined);
    const again = await ctl(['link', 'rm', 'gcp-1', 'aws-2', ...base]);
    assert.equal(again.code, 1);
    assert.match(again.err.join('\n'), /404 VNET_ERR_NOT_FOUND/);
  });

  it('prints recent events, and follows new ones over the WebSocket until stopped', async () => {
    const recent = await ctl(['events', '-n', '3', ...base]);
    assert.equal(recent.out.length, 3);
    assert.match(recent.out[2]!, new RegExp(`^#${f.model.latestSeq()} `));
    const json = await ctl(['events', '-n', '2', '--json', ...base]);
    assert.deepEqual(json.out.map((l) => JSON.parse(l).seq), [f.model.latestSeq() - 1, f.model.latestSeq()]);

    // traffic-updated events are hidden unless asked for.
    f.model.setTraffic(FIXTURE_NOW, []);
    const quiet = await ctl(['events', '-n', '1', ...base]);
    assert.doesNotMatch(quiet.out.join('\n'), /traffic-updated/);
    const all = await ctl(['events', '-n', '1', '--all', ...base]);
    assert.match(all.out.join('\n'), /traffic-updated\s+traffic on 0 links/);
    const onlyHosts = await ctl(['events', '-n', '50', '--type', 'host-changed', ...base]);
    assert.equal(onlyHosts.out.length, 5);

    const followed = await ctl(['events', '--follow', '-n', '0', ...base], {}, async (r) => {
      // The stream resumes after the last seq printed, so this event arrives whether or not the socket is open yet.
      f.model.emit('rules-changed', { host: 'hub', version: 77 });
      await waitFor(() => r.out.some((l) => l.includes('rules on hub now version 77')), 'the followed event');
    });
    assert.equal(followed.code, 0, followed.err.join('\n'));
    assert.ok(followed.out.some((l) => /rules-changed\s+rules on hub now version 77/.test(l)));
  });

  it('watches migrations: the table is printed again as a migration progresses', async () => {
    const watched = await ctl(['migrations', '--watch', ...base], {}, async (r) => {
      f.model.putMigration({ ...f.model.getMigration('m1')!, phase: 'cutover', progress: 0.97, etaMs: 300 });
      await waitFor(() => r.out.some((l) => /m1\s+vm8\s+gcp-1\s+aws-2\s+running\s+cutover\s+\[███████████████████·\]\s+97%/.test(l)), 'the redrawn table');
    });
    assert.equal(watched.code, 0, watched.err.join('\n'));
    assert.match(watched.out[0]!, /memory\s+\[████████············\]\s+42%/);
  });

  it('finds the token in VNET_TOKEN, or in the token file', async () => {
    const env = await ctl(['hosts', '--controller', f.server.url], { VNET_TOKEN: f.token });
    assert.equal(env.code, 0, env.err.join('\n'));
    const dir = await mkdtemp(join(tmpdir(), 'vnet-ctl-'));
    try {
      const file = join(dir, 'api-token');
      await writeTokenFile(file, f.token);
      const viaFile = await ctl(['vms', '--controller', f.server.url], { VNET_TOKEN_FILE: file });
      assert.equal(viaFile.code, 0, viaFile.err.join('\n'));
      const viaFlag = await ctl(['vms', '--controller', f.server.url, '--token-file', file]);
      assert.equal(viaFlag.code, 0, viaFlag.err.join('\n'));
      const url = await ctl(['vms'], { VNET_CONTROLLER: f.server.url, VNET_TOKEN: f.token });
      assert.equal(url.code, 0, url.err.join('\n'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails clearly: no token (2), wrong token (4), syntax error (2)', async () => {
    const none = await ctl(['hosts', '--controller', f.server.url, '--token-file', '/nonexistent/vnet-token']);
    assert.equal(none.code, 2);
    assert.match(none.err.join('\n'), /no API token/);
    const wrong = await ctl(['hosts', '--controller', f.server.url, '--token', 'vnet_wrong']);
    assert.equal(wrong.code, 4);
    assert.match(wrong.err.join('\n'), /controller refused the token \(401\)/);
    const wrongFollow = await ctl(['events', '--follow', '--since', '0', '--controller', f.server.url, '--token', 'vnet_wrong']);
    assert.equal(wrongFollow.code, 4);
    const syntax = await ctl(['events', '--since', 'abc', ...base]);
    assert.equal(syntax.code, 2);
    assert.match(syntax.err.join('\n'), /--since/);
    const badUrl = await ctl(['hosts', '--controller', 'ftp://x', '--token', 't']);
    assert.equal(badUrl.code, 2);
  });

  it('migrates a VM named by name with --to, --rule and --deadline, and cancels it with --cancel', async () => {
    const started = await ctl(['migrate', 'vm1', '--to', 'gcp-1', '--rule', 'time-bound', '--deadline', '30', ...base]);
    assert.equal(started.code, 0, started.err.join('\n'));
    const id = /^migration (\S+) started: 02:00:00:00:00:01 aws-1 → gcp-1 \(time-bound\)$/.exec(started.out[0] ?? '')?.[1];
    assert.ok(id !== undefined, started.out.join('\n'));
    assert.equal(f.model.getMigration(id)?.rule, 'time-bound');
    const twice = await ctl(['migrate', 'vm1', 'gcp-1', ...base]);
    assert.equal(twice.code, 1);
    assert.match(twice.err.join('\n'), /already migrating/);
    const table = (await ctl(['migrations', ...base])).out.join('\n');
    assert.match(table, /STEP\s+ITER\s+PAGES LEFT\s+DIRTY\/S\s+CUTOVER/);
    assert.match(table, /m1\s+vm8.*transfer\s+3\s+61000\s+1200\s+-/);
    const cancelled = await ctl(['migrate', '--cancel', id, ...base]);
    assert.equal(cancelled.code, 0, cancelled.err.join('\n'));
    assert.match(cancelled.out[0]!, /cancelled before its commit point: the VM stays on aws-1/);
    assert.equal(f.model.getMigration(id)?.state, 'cancelled');
    const again = await ctl(['migrate', '--cancel', id, ...base]);
    assert.equal(again.code, 1);
    for (const bad of [['migrate', 'vm1', ...base], ['migrate', 'vm1', '--to', 'gcp-1', '--rule', 'fast', ...base], ['migrate', 'vm1', '--to', 'gcp-1', '--deadline', 'soon', ...base]]) {
      assert.equal((await ctl(bad)).code, 2, bad.join(' '));
    }
  });

  it('watches its migration to the end with --watch: progress lines, then the cutover figures', async () => {
    const watched = await ctl(['migrate', 'vm2', '--to', 'gcp-1', '--watch', ...base], {}, async (r) => {
      const m = await waitFor(() => f.model.listMigrations().find((x) => x.vm === '02:00:00:00:00:02' && x.state === 'running'), 'the migration');
      f.model.putMigration({ ...m, step: 'transfer', phase: 'memory', enginePhase: 'memory', progress: 0.5, iteration: 2, pagesLeft: 300, dirtyRate: 80, etaMs: 1500 });
      await waitFor(() => r.out.some((l) => /memory round 2, 300 pages left, 80 pages\/s dirtied, eta 2s/.test(l)), 'a progress line');
      f.model.putMigration({
        ...m, step: 'done', phase: 'done', state: 'succeeded', progress: 1, finishedAt: FIXTURE_NOW,
        cutover: { timeMs: 42, pausedAt: FIXTURE_NOW, acknowledgedAt: FIXTURE_NOW + 42, held: 15, flushed: 15, relayed: 5, lost: 0, announced: 2, spans: null },
      });
      await waitFor(() => r.out.some((l) => /succeeded, done, cutover 42 ms: held 15, flushed 15, relayed 5, lost 0, announced 2/.test(l)), 'the final line');
    });
    assert.equal(watched.code, 0, watched.err.join('\n'));
  });
});

describe('vnet ctl without a controller', () => {
  it('says it cannot reach the controller (ECONNREFUSED) and exits 3', async () => {
    // A port that was just free on loopback: nothing listens there now.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const r = await ctl(['hosts', '--controller', `http://127.0.0.1:${port}`, '--token', 'vnet_x']);
    assert.equal(r.code, 3);
    assert.equal(r.err.join('\n'), `vnet ctl: cannot reach controller at http://127.0.0.1:${port}: ECONNREFUSED`);
    const follow = await ctl(['events', '--follow', '--since', '0', '--controller', `http://127.0.0.1:${port}`, '--token', 'vnet_x']);
    assert.equal(follow.code, 3);
  });
});
