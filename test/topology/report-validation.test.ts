import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateReport, MAX_REPORT_ENTRIES } from '../../src/topology/report-validation.ts';
import { TrafficReportError } from '../../src/topology/errors.ts';

const good = { host: 'hostA', startMs: 1000, endMs: 2000, entries: [{ src: 0x020000000001, dst: 0x020000000002, frames: 10, bytes: 15_000 }] };

function rejects(input: unknown, code: string, path: string): void {
  const v = validateReport(input);
  assert.equal(v.ok, false, `expected rejection of ${JSON.stringify(input)}`);
  if (v.ok) return;
  assert.ok(v.error instanceof TrafficReportError);
  assert.equal(v.error.code, code);
  assert.equal(v.error.path, path);
}

function withEntry(patch: Record<string, unknown>): unknown {
  return { ...good, entries: [{ ...good.entries[0], ...patch }] };
}

describe('validateReport', () => {
  it('accepts a well-formed report and returns a frozen copy holding only known fields', () => {
    const v = validateReport({ ...good, extra: 1 });
    assert.ok(v.ok);
    if (!v.ok) return;
    assert.deepEqual(v.report, good);
    assert.ok(Object.isFrozen(v.report));
    assert.ok(Object.isFrozen(v.report.entries));
  });

  it('accepts an empty entry list (a host whose VMs were silent)', () => {
    assert.ok(validateReport({ ...good, entries: [] }).ok);
  });

  it('rejects non-objects and a missing or bad host', () => {
    rejects(null, 'VNET_ERR_REPORT_SHAPE', '(report)');
    rejects('garbage', 'VNET_ERR_REPORT_SHAPE', '(report)');
    rejects([good], 'VNET_ERR_REPORT_SHAPE', '(report)');
    rejects({ ...good, host: '' }, 'VNET_ERR_REPORT_SHAPE', 'host');
    rejects({ ...good, host: 7 }, 'VNET_ERR_REPORT_SHAPE', 'host');
    rejects({ ...good, host: 'x'.repeat(300) }, 'VNET_ERR_REPORT_SHAPE', 'host');
  });

  it('rejects bad intervals: endMs <= startMs, NaN, negative, fractional, too long', () => {
    rejects({ ...good, endMs: 1000 }, 'VNET_ERR_REPORT_INTERVAL', 'endMs');
    rejects({ ...good, endMs: 500 }, 'VNET_ERR_REPORT_INTERVAL', 'endMs');
    rejects({ ...good, startMs: Number.NaN }, 'VNET_ERR_REPORT_INTERVAL', 'startMs');
    rejects({ ...good, startMs: -1 }, 'VNET_ERR_REPORT_INTERVAL', 'startMs');
    rejects({ ...good, endMs: 2000.5 }, 'VNET_ERR_REPORT_INTERVAL', 'endMs');
    rejects({ ...good, endMs: Number.POSITIVE_INFINITY }, 'VNET_ERR_REPORT_INTERVAL', 'endMs');
    rejects({ ...good, endMs: 1000 + 3_600_001 }, 'VNET_ERR_REPORT_INTERVAL', 'endMs');
  });

  it('rejects NaN, negative, non-finite, non-integer and non-number frame and byte counts', () => {
    rejects(withEntry({ frames: Number.NaN }), 'VNET_ERR_REPORT_COUNT', 'entries[0].frames');
    rejects(withEntry({ frames: -1 }), 'VNET_ERR_REPORT_COUNT', 'entries[0].frames');
    rejects(withEntry({ frames: Number.POSITIVE_INFINITY }), 'VNET_ERR_REPORT_COUNT', 'entries[0].frames');
    rejects(withEntry({ frames: 1.5 }), 'VNET_ERR_REPORT_COUNT', 'entries[0].frames');
    rejects(withEntry({ frames: '10' }), 'VNET_ERR_REPORT_COUNT', 'entries[0].frames');
    rejects(withEntry({ bytes: -5 }), 'VNET_ERR_REPORT_COUNT', 'entries[0].bytes');
    rejects(withEntry({ bytes: 2 ** 60 }), 'VNET_ERR_REPORT_COUNT', 'entries[0].bytes');
  });

  it('rejects byte counts that cannot be that many Ethernet frames', () => {
    rejects(withEntry({ frames: 10, bytes: 50 }), 'VNET_ERR_REPORT_COUNT', 'entries[0].bytes');
    rejects(withEntry({ frames: 0, bytes: 100 }), 'VNET_ERR_REPORT_COUNT', 'entries[0].bytes');
    rejects(withEntry({ frames: 1, bytes: 100_000 }), 'VNET_ERR_REPORT_COUNT', 'entries[0].bytes');
  });

  it('rejects absurd values: more than any link could carry in the interval', () => {
    rejects(withEntry({ frames: 1e11, bytes: 1e11 * 64 }), 'VNET_ERR_REPORT_ABSURD', 'entries[0].frames');
    rejects(withEntry({ frames: 1e9, bytes: 2e12 }), 'VNET_ERR_REPORT_ABSURD', 'entries[0].bytes');
  });

  it('rejects bad MACs: out of range, fractional, strings, multicast source, src = dst', () => {
    rejects(withEntry({ src: -1 }), 'VNET_ERR_REPORT_MAC', 'entries[0].src');
    rejects(withEntry({ dst: 2 ** 48 }), 'VNET_ERR_REPORT_MAC', 'entries[0].dst');
    rejects(withEntry({ src: 1.5 }), 'VNET_ERR_REPORT_MAC', 'entries[0].src');
    rejects(withEntry({ src: '02:00:00:00:00:01' }), 'VNET_ERR_REPORT_MAC', 'entries[0].src');
    rejects(withEntry({ src: 0x010000000001 }), 'VNET_ERR_REPORT_MAC', 'entries[0].src');
    rejects(withEntry({ dst: good.entries[0]!.src }), 'VNET_ERR_REPORT_MAC', 'entries[0].dst');
  });

  it('rejects a pair reported twice, naming the second entry', () => {
    const e = good.entries[0]!;
    rejects({ ...good, entries: [e, { ...e, frames: 1, bytes: 64 }] }, 'VNET_ERR_REPORT_DUPLICATE_PAIR', 'entries[1]');
  });

  it('rejects a non-array or oversized entry list and non-object entries', () => {
    rejects({ ...good, entries: {} }, 'VNET_ERR_REPORT_SHAPE', 'entries');
    rejects({ ...good, entries: new Array(MAX_REPORT_ENTRIES + 1) }, 'VNET_ERR_REPORT_SHAPE', 'entries');
    rejects({ ...good, entries: [null] }, 'VNET_ERR_REPORT_SHAPE', 'entries[0]');
  });

  it('never throws on random garbage', () => {
    let seed = 1;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const values: unknown[] = [null, undefined, -1, 0, 1.5, Number.NaN, 'x', {}, [], true, 2 ** 53, -0];
    for (let i = 0; i < 500; i++) {
      const pick = (): unknown => values[Math.floor(rnd() * values.length)];
      const input = { host: rnd() < 0.8 ? 'h' : pick(), startMs: pick(), endMs: pick(), entries: [{ src: pick(), dst: pick(), frames: pick(), bytes: pick() }] };
      const v = validateReport(input);
      assert.equal(typeof v.ok, 'boolean');
    }
  });
});
