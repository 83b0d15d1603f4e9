import type { Database } from 'better-sqlite3';
import { StoreError } from '../../errors.ts';

/** A table of the model: its primary key columns (in order) and all its columns. */
export interface ModelTable {
  pk: string[];
  columns: Set<string>;
}

/**
 * Temporary AFTER INSERT/UPDATE/DELETE triggers on every table of `db`,
 * calling `onChange(table, primary key as a JSON array)` for each changed
 * row (an update reports the old key and the new). The call runs inside the
 * writing statement: a throw aborts it, so nothing changes. With
 * `recursive_triggers` on, a row that INSERT OR REPLACE displaces is
 * reported too. Returns the tables found.
 */
export function installChangeTriggers(db: Database, onChange: (table: string, pkJson: string) => void): Map<string, ModelTable> {
  db.function('vnet_changed', (table: unknown, pk: unknown) => {
    onChange(String(table), String(pk));
    return null;
  });
  const tables = new Map<string, ModelTable>();
  const names = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).all() as Array<{ name: string }>;
  for (const { name } of names) {
    const info = db.pragma(`table_info("${name}")`) as Array<{ name: string; pk: number }>;
    const pk = info.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name);
    if (pk.length === 0) throw new StoreError(`table ${name} has no primary key: it cannot be kept in etcd`);
    tables.set(name, { pk, columns: new Set(info.map((c) => c.name)) });
    const key = (row: 'NEW' | 'OLD'): string => `vnet_changed('${name}', json_array(${pk.map((c) => `${row}."${c}"`).join(', ')}))`;
    db.exec(`
      CREATE TEMP TRIGGER "vnet_ins_${name}" AFTER INSERT ON main."${name}" BEGIN SELECT ${key('NEW')}; END;
      CREATE TEMP TRIGGER "vnet_upd_${name}" AFTER UPDATE ON main."${name}" BEGIN SELECT ${key('OLD')}; SELECT ${key('NEW')}; END;
      CREATE TEMP TRIGGER "vnet_del_${name}" AFTER DELETE ON main."${name}" BEGIN SELECT ${key('OLD')}; END;
    `);
  }
  return tables;
}
