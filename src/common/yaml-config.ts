import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, Lexer, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from './errors.ts';
import { deepFreeze } from './deep-freeze.ts';

/**
 * Load a YAML file and validate it against a strict zod schema. Every failure
 * becomes a ConfigError naming the file, the line and the key path
 * (`hosts[2].mac`), and the result is deeply frozen: configuration is
 * validated once, then never changes under the code that reads it.
 *
 * Stages: nesting depth (a lexer pass, before the composer, which recurses)
 * → syntax → aliases expanded (at most MAX_ALIAS_COUNT: no alias bombs) →
 * schema.
 */

/** Deepest nesting of collections (block or flow) a configuration file may have. */
export const MAX_YAML_DEPTH = 64;
/** Most alias expansions in one file. */
export const MAX_ALIAS_COUNT = 100;
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
  const tooDeep = deepestNesting(text);
  if (tooDeep !== undefined) {
    throw new ConfigError(`line ${lineAt(text, tooDeep.offset)}: YAML nesting error: collections nested deeper than ${MAX_YAML_DEPTH} levels`, { file });
  }
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax !== undefined) {
    throw new ConfigError(`line ${lines.linePos(syntax.pos[0]).line}: YAML syntax error: ${syntax.message.split('\n')[0]}`, { file });
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // The yaml library throws ReferenceError for an unresolved alias and for an alias bomb.
    const alias = findAlias(doc, err);
    const line = alias?.range ? lines.linePos(alias.range[0]).line : 1;
    const why = /Excessive alias count/.test((err as Error).message) ? 'too many alias expansions (an alias bomb?)' : (err as Error).message;
    throw new ConfigError(`line ${line}: YAML alias error: ${why}`, { file }, { cause: err });
  }
  const parsed = schema.safeParse(value ?? {});
  if (parsed.success) return deepFreeze(parsed.data) as Readonly<z.output<S>>;
  const issue = parsed.error.issues[0]!;
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  // An unknown key is reported at its own line, and named in the key path.
  const at = issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined ? [...path, issue.keys[0]] : path;
  const key = formatPath(at);
  // An empty document has no node to point at: its first line.
  const line = lineOf(doc, at, lines) ?? 1;
  throw new ConfigError(`line ${line}: ${describeIssue(issue)}`, { file, key: key || '(top level)' });
}

/** Zero-width markers the yaml lexer puts between tokens (document, flow end, scalar): not source text. */
const LEXER_MARKERS = new Set(['\x02', '\x18', '\x1f']);

/**
 * Where the nesting of collections first goes deeper than MAX_YAML_DEPTH,
 * from the lexer's tokens (no recursion): flow brackets, plus block levels
 * from indentation and the "-" / "?" indicators of each line. It errs on the
 * deep side, which at this limit refuses nothing a configuration needs.
 */
function deepestNesting(text: string): { offset: number } | undefined {
  if (!mayNestDeeperThan(text, MAX_YAML_DEPTH)) return undefined;
  const indents: number[] = [];
  let offset = 0;
  let flow = 0;
  let lineStart = true;
  let indent = 0;
  let onLine = 0;
  for (const tok of new Lexer().lex(text)) {
    if (LEXER_MARKERS.has(tok)) continue;
    const at = offset;
    offset += tok.length;
    if (tok === '\n' || tok === '\r\n') {
      lineStart = true;
      indent = 0;
      onLine = 0;
      continue;
    }
    if (/^[ \t]*$/.test(tok)) {
      if (lineStart) indent = tok.length;
      continue;
    }
    if (tok.startsWith('#')) continue;
    if (tok === '---' || tok === '...') {
      indents.length = 0;
      flow = 0;
      continue;
    }
    if (lineStart && flow === 0) {
      while (indents.length > 0 && indents[indents.length - 1]! >= indent) indents.pop();
      indents.push(indent);
    }
    if (tok.endsWith('\n')) {
      // A block scalar's body ends its last line.
      lineStart = true;
      indent = 0;
      onLine = 0;
    } else lineStart = false;
    if (tok === '[' || tok === '{') flow++;
    else if (tok === ']' || tok === '}') flow = Math.max(0, flow - 1);
    else if ((tok === '-' || tok === '?') && flow === 0) onLine++;
    if (indents.length + onLine + flow > MAX_YAML_DEPTH) return { offset: at };
  }
  return undefined;
}

/**
 * A cheap upper bound first (one pass over the characters): block depth is at
 * most the deepest indentation plus one, plus the dashes and question marks
 * of a line; flow depth at most the brackets open at any point, quoted or not.
 */
function mayNestDeeperThan(text: string, max: number): boolean {
  let flow = 0;
  let indent = 0;
  let marks = 0;
  let lineStart = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a) {
      lineStart = true;
      indent = 0;
      marks = 0;
      continue;
    }
    if (lineStart && (c === 0x20 || c === 0x09)) indent++;
    else lineStart = false;
    if (c === 0x5b || c === 0x7b) flow++; // [ {
    else if (c === 0x5d || c === 0x7d) flow = Math.max(0, flow - 1); // ] }
    else if (c === 0x2d || c === 0x3f) marks++; // - ?
    if (indent + 1 + marks + flow > max) return true;
  }
  return false;
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) line++;
  return line;
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
