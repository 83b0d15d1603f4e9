/**
 * A reader without ptrace access to the process (root may read anyone; here
 * the reader runs as nobody, through setpriv, and the child belongs to root):
 * each reader's refusal is a QemuRamDigestError naming the pid, the address
 * and the errno (native: process_vm_readv's EPERM; proc-mem: opening
 * /proc/PID/mem, EACCES), never an uncaught throw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startMemoryChild } from '../helpers/memory-child.ts';
import { requireTools, run } from '../helpers/netns.ts';

const DIGEST_MODULE = new URL('../../src/host/qemu-ram-digest.ts', import.meta.url).pathname;

test('a reader without ptrace access to QEMU gets a typed error naming EPERM (native) or EACCES (proc-mem)', { timeout: 300_000 }, async (t) => {
  requireTools(['setpriv', 'python3']);
  const child = await startMemoryChild(1024 * 1024, 3);
  t.after(() => child.close());
  for (const [reader, errno, pattern] of [
    ['native', 1, new RegExp(`^cannot read QEMU ${child.pid}'s RAM at 0x${child.mapping.start.toString(16)}: process_vm_readv failed with EPERM \\(errno 1\\): no ptrace access`)],
    ['proc-mem', 13, new RegExp(`^cannot open QEMU ${child.pid}'s memory: EACCES`)],
  ] as const) {
    const script = `
      const { digestProcessRange } = await import(${JSON.stringify(DIGEST_MODULE)});
      try {
        await digestProcessRange(${child.pid}, ${JSON.stringify(child.mapping)}, { reader: ${JSON.stringify(reader)} });
        console.log(JSON.stringify({ ok: true }));
      } catch (e) {
        console.log(JSON.stringify({ type: e.constructor.name, code: e.code, pid: e.pid, address: e.address, errno: e.errno, message: e.message }));
      }`;
    const r = await run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], { timeoutMs: 240_000 });
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
    assert.equal(out.type, 'QemuRamDigestError', `${reader}: ${r.stdout}${r.stderr}`);
    assert.equal(out.code, 'VNET_ERR_HOST_QEMU_RAM_DIGEST');
    assert.equal(out.pid, child.pid);
    assert.equal(out.errno, errno, `${reader}: ${String(out.message)}`);
    assert.match(String(out.message), pattern);
    if (reader === 'native') assert.equal(out.address, child.mapping.start);
  }
});
