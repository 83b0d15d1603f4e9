import { test } from 'node:test';
import assert from 'node:assert/strict';
import { INITIAL_LINK_RATES, linkRates, nextLinkRates, withoutHost } from '../../src/controller/link-rates.ts';
import { pairKey } from '../../src/controller/views.ts';

const tx = (peer: string, txBytes: number, txFrames: number) => ({ peer, txBytes, txFrames });

test('rates from the counters between two reports, both directions of a pair summed', () => {
  let s = nextLinkRates(INITIAL_LINK_RATES, 'h1', [tx('hub', 1000, 10)], 1000);
  assert.equal(linkRates(s).size, 0, 'one sample has no rate');
  s = nextLinkRates(s, 'h1', [tx('hub', 3000, 30)], 2000);
  s = nextLinkRates(s, 'hub', [tx('h1', 0, 0)], 1000);
  s = nextLinkRates(s, 'hub', [tx('h1', 500, 5)], 1500);
  assert.deepEqual(linkRates(s).get(pairKey('hub', 'h1')), { bytesPerSec: 2000 + 1000, framesPerSec: 20 + 10 });
});

test('a counter that went back (the daemon restarted) gives no rate; a disconnected host takes its directions along', () => {
  let s = nextLinkRates(INITIAL_LINK_RATES, 'h1', [tx('hub', 5000, 50)], 1000);
  s = nextLinkRates(s, 'h1', [tx('hub', 6000, 60)], 2000);
  const restarted = nextLinkRates(s, 'h1', [tx('hub', 100, 1)], 3000);
  assert.deepEqual(linkRates(restarted).get(pairKey('h1', 'hub')), { bytesPerSec: 1000, framesPerSec: 10 }, 'the last rate stands');
  assert.equal(linkRates(withoutHost(s, 'h1')).size, 0);
  // The input state is not modified.
  assert.deepEqual(linkRates(s).get(pairKey('h1', 'hub')), { bytesPerSec: 1000, framesPerSec: 10 });
});
