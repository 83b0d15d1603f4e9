import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from './errors.ts';

/**
 * Load a YAML file and validate it against a strict zod schema. Every failure
 * becomes a ConfigError naming the file, the line and the key path
 * (`hosts[2].mac`), and the result is deeply frozen: configuration is
 * validated once, then never changes under the code that reads it.
 */
export function loadYamlConfig<S extends z.ZodType>(file: string, schema: S): Readonly<z.output<S>> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read file: ${(err as Error).message}`, { file }, { cause: err });
  }
  return parseYamlConfig(text, file, schema);
}

export function parseYamlConfig<S extends z.ZodType>(text: string, file: string, schema: S): Readonly<z.output<S>> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax !== undefined) {
    const pos = syntax.linePos?.[0];
    throw new ConfigError(`YAML syntax error${pos ? ` at line ${pos.line}` : ''}: ${syntax.message.split('\n')[0]}`, { file });
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // The yaml library throws ReferenceError for an unresolved alias and for an alias bomb.
    const alias = findAlias(doc, err);
    const line = alias?.range ? ` at line ${lines.linePos(alias.range[0]).line}` : '';
    const why = /Excessive alias count/.test((err as Error).message) ? 'too many alias expansions (an alias bomb?)' : (err as Error).message;
    throw new ConfigError(`YAML alias error${line}: ${why}`, { file }, { cause: err });
  }
  const parsed = schema.safeParse(value ?? {});
  if (parsed.success) return deepFreeze(parsed.data) as Readonly<z.output<S>>;
  const issue = parsed.error.issues[0]!;
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  // An unknown key is reported at its own line, and named in the key path.
  const at = issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined ? [...path, issue.keys[0]] : path;
  const key = formatPath(at);
  const line = lineOf(doc, at, lines);
  const where = line !== undefined ? `line ${line}: ` : '';
  throw new ConfigError(`${where}${describeIssue(issue)}`, { file, key: key || '(top level)' });
}

/** The alias the yaml library complained about (the unresolved one, or the first alias for a bomb). */
function findAlias(doc: Document, err: unknown): Node | undefined {
  const name = /alias[^:]*: (\S+)$/i.exec((err as Error).message)?.[1];
  let found: Node | undefined;
  visit(doc, {
    Alias(_key, node) {
      if (found === undefined && (name === undefined || node.source === name)) {
        found = node;
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return found;
}

export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  return issue.message;
}

/** The line of the deepest node along `path` that exists in the document. */
function lineOf(doc: Document, path: readonly (string | number)[], lines: LineCounter): number | undefined {
  let node: unknown = doc.contents;
  let best: number | undefined = rangeLine(node, lines);
  for (const p of path) {
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === String(p));
      if (pair === undefined) break;
      best = rangeLine(pair.key, lines) ?? best;
      next = pair.value;
    } else if (isSeq(node) && typeof p === 'number') {
      next = node.items[p];
    } else break;
    if (next === undefined || next === null) break;
    node = next;
    best = rangeLine(node, lines) ?? best;
  }
  return best;
}

function rangeLine(node: unknown, lines: LineCounter): number | undefined {
  const range = (node as Node | undefined)?.range;
  return range ? lines.linePos(range[0]).line : undefined;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}
