import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatAge, formatBytes, formatRate, hostsTable, progressBar, table } from '../../src/cli/ctl-format.ts';
import { drawApplicationTopology, drawTopology, topologyDot } from '../../src/cli/ctl-topology-drawing.ts';
import type { HostView, LinkView, TopologyView, VmView } from '../../src/controller/api-views.ts';

const host = (id: string, site: string | null = null, role: HostView['role'] = 'spoke'): HostView => ({ id, site, addresses: [], role, state: 'up', lastSeen: null, hub: null, hubState: role === 'hub' ? 'active' : null });
const link = (a: string, b: string, kind: LinkView['kind'] = 'backbone', bytesPerSec = 0): LinkView => ({
  a,
  b,
  kind,
  state: 'up',
  requestedBy: kind === 'backbone' ? 'config' : 'operator',
  actor: null,
  reason: 'r',
  bytes: 0,
  frames: 0,
  bytesPerSec,
  framesPerSec: 0,
});
const topo = (cls: TopologyView['class'], pairs: Array<[string, string]>, centre: string | null = null): TopologyView => ({
  class: cls,
  centre,
  confidence: 0.5,
  edges: pairs.map(([a, b]) => ({ a, b, weight: 1, bytesPerSec: 1000 })),
  detectedAt: null,
  weightsAt: null,
});

describe('ctl formatting', () => {
  it('aligns table columns, right-aligning the numeric ones', () => {
    const t = table(['NAME', 'N'], [['a', '1'], ['long-name', '100']], new Set([1]));
    assert.equal(t, 'NAME         N\na            1\nlong-name  100');
  });

  it('formats rates as bits per second, sizes in binary units, ages and progress', () => {
    assert.equal(formatRate(0), '-');
    assert.equal(formatRate(125), '1.0 kbit/s');
    assert.equal(formatRate(1_200_000), '9.6 Mbit/s');
    assert.equal(formatRate(125_000_000), '1.0 Gbit/s');
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatAge(null, 0), 'never');
    assert.equal(formatAge(0, 90_000), '1m ago');
    assert.equal(progressBar(0.5, 10), '[█████·····]  50%');
    assert.equal(progressBar(2, 4), '[████] 100%');
    assert.equal(progressBar(Number.NaN, 4), '[····]   0%');
  });

  it('draws a ring as a cycle, a star from its centre, and anything else as an edge list', () => {
    const vms = new Map<string, VmView>();
    const ring = drawApplicationTopology(topo('ring', [['a', 'b'], ['c', 'd'], ['b', 'c'], ['d', 'a']]), vms);
    assert.equal(ring[1], '  ┌─ a ── b ── c ── d ─┐');
    const star = drawApplicationTopology(topo('star', [['h', 'x'], ['h', 'y']], 'h'), vms);
    assert.deepEqual(star.slice(1), ['  h (centre)', '  ├── x  8.0 kbit/s', '  └── y  8.0 kbit/s']);
    // Labelled a ring but not one cycle: falls back to the edge list.
    const broken = drawApplicationTopology(topo('ring', [['a', 'b'], ['b', 'c'], ['c', 'a'], ['d', 'e'], ['e', 'f'], ['f', 'd']]), vms);
    assert.equal(broken.length, 7);
    assert.deepEqual(drawApplicationTopology(topo('none', []), vms), ['Application topology: none', '  (no traffic edges)']);
  });

  it('heads the application topology with when it was announced and when its rates are from', () => {
    const t = { ...topo('star', [['h', 'x']], 'h'), detectedAt: 1000, weightsAt: 61_000 };
    const head = drawApplicationTopology(t, new Map())[0]!;
    assert.equal(head, 'Application topology: star (confidence 50%, since 1970-01-01 00:00:01Z; rates at 1970-01-01 00:01:01Z)');
    // Just announced: one time is enough.
    assert.doesNotMatch(drawApplicationTopology({ ...t, weightsAt: 1000 }, new Map())[0]!, /rates at/);
  });

  it('draws the backbone as a tree from the hub, hosts off the tree as their own roots', () => {
    const text = drawTopology({
      hosts: [host('hub', 'lan', 'hub'), host('a', 's1'), host('b', 's2'), host('lonely')],
      vms: [],
      links: [link('a', 'hub', 'backbone', 125), link('b', 'hub'), link('a', 'b', 'fast-path', 1000)],
      topology: topo('none', []),
      migrations: [],
    });
    const lines = text.split('\n');
    assert.equal(lines[1], '  hub (lan, hub)');
    assert.match(lines[2]!, /^ {2}├── a \(s1\)\s+1\.0 kbit\/s$/);
    assert.match(lines[3]!, /^ {2}└── b \(s2\)\s+-$/);
    assert.equal(lines[4], '  lonely (no site)');
    assert.match(text, /a ══════ b {2}up {2}8\.0 kbit\/s/);
  });

  it('quotes names in DOT output', () => {
    const dot = topologyDot({ hosts: [host('we"ird', 's')], vms: [], links: [], topology: topo('none', []), migrations: [] });
    assert.match(dot, /"host:we\\"ird"/);
  });
});

describe('vnet ctl hosts', () => {
  it('writes IPv6 listen addresses in brackets, IPv4 ones as they are', () => {
    const h = (id: string, address: string): HostView => ({ ...host(id), addresses: [{ transport: 'tls', host: address, port: 7502 }] });
    const out = hostsTable([h('a', 'fd00:9::2'), h('b', '10.0.0.2')], 0);
    assert.match(out, /^a .* tls:\/\/\[fd00:9::2\]:7502$/m);
    assert.match(out, /^b .* tls:\/\/10\.0\.0\.2:7502$/m);
  });
});
