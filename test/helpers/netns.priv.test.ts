import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NetnsHarness, requireTools, run, uniqueName, useNetns } from './netns.ts';

test('requireTools names a missing tool and its package, and throws rather than skipping', () => {
  assert.throws(() => requireTools(['ip', 'vnet-no-such-tool']), /missing tools: vnet-no-such-tool/);
  requireTools(['ip', 'ping', 'tc']);
});

test('names are unique, prefixed and valid interface names', () => {
  const names = new Set(Array.from({ length: 200 }, () => uniqueName()));
  assert.equal(names.size, 200);
  for (const n of names) {
    assert.match(n, /^vnt-[0-9a-f]{8}$/);
    assert.ok(n.length <= 15);
  }
});

test('two namespaces joined by a veth pair ping each other; cleanup removes everything', async () => {
  requireTools(['ip', 'ping', 'tc']);
  const h = new NetnsHarness();
  let a = '';
  let b = '';
  let va = '';
  try {
    a = await h.namespace();
    b = await h.namespace();
    const [x, y] = await h.vethPair({ ns: a }, { ns: b });
    va = x;
    await h.addAddress(a, x, '10.77.0.1/24');
    await h.addAddress(b, y, '10.77.0.2/24');
    // netem is not built into every kernel (not this CI's): tbf is.
    await h.qdisc(a, x, ['tbf', 'rate', '100mbit', 'burst', '32kb', 'latency', '50ms']);
    const r = await h.exec(a, ['ping', '-c', '2', '-i', '0.2', '-W', '2', '10.77.0.2'], { timeoutMs: 8000 });
    assert.equal(r.code, 0);
    const qd = await h.exec(a, ['tc', 'qdisc', 'show', 'dev', x]);
    assert.match(qd.stdout, /tbf/);
    const timedOut = await h.exec(a, ['sleep', '5'], { timeoutMs: 200, allowFailure: true });
    assert.equal(timedOut.timedOut, true);
    const child = h.spawn(b, ['sleep', '30']);
    assert.ok(child.pid !== undefined);
  } finally {
    await h.cleanup();
  }
  const left = await run(['ip', 'netns', 'list']);
  assert.ok(!left.stdout.includes(a) && !left.stdout.includes(b), 'namespaces removed');
  assert.equal(await h.link(undefined, va), undefined);
});

test('useNetns registers cleanup with the test context', async (t) => {
  requireTools(['ip']);
  let made = '';
  await t.test('inner', async (t2) => {
    const h = await useNetns(t2);
    made = await h.namespace();
  });
  const left = await run(['ip', 'netns', 'list']);
  assert.ok(made !== '' && !left.stdout.includes(made));
});
