import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LinkFacts } from '../../src/control/daemon-control.ts';
import { LinkReports } from '../../src/controller/link-reports.ts';
import { pairKey } from '../../src/controller/views.ts';

const link = (peer: string, txBytes: number, txFrames: number, state: LinkFacts['state'] = 'up'): LinkFacts => ({
  peer, kind: 'backbone', state, direction: 'outbound', txBytes, txFrames, rxBytes: 0, rxFrames: 0, txDropped: 0, decodeErrors: 0, reconnects: 0,
});

test('rates from the counters between two reports, both directions of a pair summed', () => {
  const r = new LinkReports();
  r.report('h1', [link('hub', 1000, 10)], 1000);
  assert.equal(r.rates().size, 0, 'one sample has no rate');
  r.report('h1', [link('hub', 3000, 30)], 2000);
  r.report('hub', [link('h1', 0, 0)], 1000);
  r.report('hub', [link('h1', 500, 5)], 1500);
  assert.deepEqual(r.rates().get(pairKey('hub', 'h1')), { bytesPerSec: 2000 + 1000, framesPerSec: 20 + 10 });
});

test('a counter that went back (the daemon restarted) gives no new rate; a disconnected host takes its directions along, not its last report', () => {
  const r = new LinkReports();
  r.report('h1', [link('hub', 5000, 50)], 1000);
  r.report('h1', [link('hub', 6000, 60)], 2000);
  r.report('h1', [link('hub', 100, 1)], 3000);
  assert.deepEqual(r.rates().get(pairKey('h1', 'hub')), { bytesPerSec: 1000, framesPerSec: 10 }, 'the last rate stands');
  r.report('h1', [link('hub', 1100, 11)], 4000);
  assert.deepEqual(r.rates().get(pairKey('h1', 'hub')), { bytesPerSec: 1000, framesPerSec: 10 }, 'counting again from the restart');
  r.hostGone('h1');
  assert.equal(r.rates().size, 0);
  assert.deepEqual(r.ends('hub', 'h1').map((e) => [e.host, e.peer, e.state, e.txBytes, e.updatedMs]), [['h1', 'hub', 'up', 1100, 4000]]);
});

test('a report replaces the host\'s links: a link it no longer reports is gone; ends, up and list read the last reports', () => {
  const r = new LinkReports();
  r.report('s2', [link('hub', 1, 1), link('s1', 1, 1, 'connecting')], 1000);
  r.report('s1', [link('s2', 1, 1, 'down')], 1000);
  assert.equal(r.up('s1', 's2'), false);
  assert.equal(r.up('hub', 's2'), true, 'either end saying up');
  assert.deepEqual(r.list().map((e) => `${e.host}>${e.peer}`), ['s1>s2', 's2>hub', 's2>s1']);
  r.report('s2', [link('hub', 2, 2)], 2000);
  assert.deepEqual(r.ends('s1', 's2').map((e) => e.host), ['s1']);
  assert.deepEqual(r.list().map((e) => `${e.host}>${e.peer}`), ['s1>s2', 's2>hub']);
});
