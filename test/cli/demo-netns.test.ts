import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commonPrefix } from '../../src/cli/demo-netns.ts';

test('the demo VMs\' shared prefix: IPv4 at most /24, IPv6 at most /64, each family on its own', () => {
  assert.equal(commonPrefix('10.0.0.1', ['10.0.0.1', '10.0.0.2']), 24);
  assert.equal(commonPrefix('10.0.0.1', ['10.0.0.1', '10.0.1.1']), 23);
  assert.equal(commonPrefix('10.0.0.1', ['10.0.0.1', '11.0.0.1']), 8);
  assert.equal(commonPrefix('fd00:98::a', ['fd00:98::a', 'fd00:98::b']), 64);
  assert.equal(commonPrefix('fd00:98::1', ['fd00:98::1', 'fd00:99::1']), 31);
  assert.equal(commonPrefix('10.0.0.1', ['10.0.0.1', 'fd00::1', 'fd01::1']), 24, 'IPv6 addresses do not widen an IPv4 prefix');
  assert.equal(commonPrefix('fd00::1', ['10.0.0.1', '200.0.0.1', 'fd00::1', 'fd00::2']), 64);
});
