import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../../src/controller/store/store.ts';
import { storeCompliance } from './store-compliance.ts';

// The store compliance suite on the embedded default: a SQLite file, reopened from the same path.
storeCompliance('sqlite', {
  async fresh(t) {
    const dir = mkdtempSync(join(tmpdir(), 'vnet-store-'));
    const path = join(dir, 'vnet.db');
    let current = openStore({ path });
    t.after(async () => {
      await current.close();
      rmSync(dir, { recursive: true, force: true });
    });
    return {
      store: current,
      async reopen() {
        await current.close();
        current = openStore({ path });
        return current;
      },
    };
  },
});
