/**
 * What a PromQL expression reads, for checking dashboards and alert rules
 * against the metrics the project exports: every metric selector (its name
 * and the labels its matchers name) and every aggregation's grouping labels
 * with the selectors under it. A small recursive-descent parser of the
 * PromQL that dashboards use (selectors, ranges, offsets, functions,
 * aggregations with by/without, binary operators with bool); anything else
 * — on/ignoring/group_left, @ modifiers — is refused with an error naming
 * it, so a dashboard cannot slip past the check.
 */

export interface Selector {
  metric: string;
  /** Labels named by the selector's matchers. */
  labels: string[];
}

export interface Grouping {
  op: string;
  labels: string[];
  /** The selectors under the aggregation. */
  selectors: Selector[];
}

export interface PromqlReads {
  selectors: Selector[];
  groupings: Grouping[];
}

const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'count', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'group']);
const SET_OPERATORS = new Set(['and', 'or', 'unless']);
const UNSUPPORTED = new Set(['on', 'ignoring', 'group_left', 'group_right', 'atan2']);

type Token = { kind: 'ident' | 'number' | 'duration' | 'string' | 'op' | 'range'; text: string };

/** Token patterns, tried in order. */
const TOKENS: readonly [Token['kind'], RegExp][] = [
  ['range', /^\[[^\]]*\]/],
  ['string', /^(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')/],
  ['duration', /^(?:\d+(?:ms|[smhdwy]))+(?![\w:])/],
  ['number', /^(?:0x[0-9a-f]+|\d+(?:\.\d*)?(?:e[+-]?\d+)?|\.\d+|Inf|NaN)(?![\w:])/i],
  ['ident', /^[A-Za-z_:][\w:]*/],
  ['op', /^(?:==|!=|<=|>=|=~|!~|[-+*/%^<>=(){},@])/],
];

function tokenize(expr: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const rest = expr.slice(i);
    const ws = /^\s+/.exec(rest);
    if (ws) { i += ws[0].length; continue; }
    const found = TOKENS.map(([kind, re]) => ({ kind, m: re.exec(rest) })).find((x) => x.m !== null);
    if (found === undefined) throw new Error(`unexpected ${JSON.stringify(rest.slice(0, 10))} at ${i}`);
    const text = found.m![0];
    out.push({ kind: found.kind, text });
    i += text.length;
  }
  return out;
}

/** Parse one expression; throws an Error naming what it does not understand. */
export function promqlReads(expr: string): PromqlReads {
  const tokens = tokenize(expr);
  let pos = 0;
  const reads: PromqlReads = { selectors: [], groupings: [] };
  const peek = (): Token | undefined => tokens[pos];
  const next = (): Token => {
    const t = tokens[pos++];
    if (t === undefined) throw new Error(`unexpected end of ${JSON.stringify(expr)}`);
    return t;
  };
  const expect = (text: string): void => {
    const t = next();
    if (t.text !== text) throw new Error(`expected ${text}, got ${t.text} in ${JSON.stringify(expr)}`);
  };
  const isOp = (text: string): boolean => peek()?.kind === 'op' && peek()?.text === text;

  function labelList(): string[] {
    expect('(');
    const labels: string[] = [];
    while (!isOp(')')) {
      const t = next();
      if (t.kind !== 'ident') throw new Error(`expected a label name, got ${t.text}`);
      labels.push(t.text);
      if (isOp(',')) next();
    }
    expect(')');
    return labels;
  }

  function selector(metric: string): void {
    const labels: string[] = [];
    if (isOp('{')) {
      next();
      while (!isOp('}')) {
        const name = next();
        if (name.kind !== 'ident') throw new Error(`expected a label name in ${metric}{…}, got ${name.text}`);
        const op = next();
        if (!['=', '!=', '=~', '!~'].includes(op.text)) throw new Error(`expected a matcher after ${name.text}, got ${op.text}`);
        if (next().kind !== 'string') throw new Error(`expected a string value for ${name.text}`);
        labels.push(name.text);
        if (isOp(',')) next();
      }
      next();
    }
    reads.selectors.push({ metric, labels });
  }

  function postfix(): void {
    for (;;) {
      if (peek()?.kind === 'range') { next(); continue; }
      if (peek()?.kind === 'ident' && peek()?.text === 'offset') {
        next();
        if (next().kind !== 'duration') throw new Error('expected a duration after offset');
        continue;
      }
      if (isOp('@')) throw new Error('the @ modifier is not supported by this checker');
      return;
    }
  }

  function args(): void {
    expect('(');
    while (!isOp(')')) {
      expression();
      if (isOp(',')) next();
    }
    expect(')');
  }

  function term(): void {
    const t = next();
    if (t.kind === 'number' || t.kind === 'string' || t.kind === 'duration') return;
    if (t.kind === 'op' && (t.text === '-' || t.text === '+')) return term();
    if (t.kind === 'op' && t.text === '(') {
      expression();
      expect(')');
      return postfix();
    }
    if (t.kind !== 'ident') throw new Error(`unexpected ${t.text} in ${JSON.stringify(expr)}`);
    if (UNSUPPORTED.has(t.text)) throw new Error(`${t.text} is not supported by this checker`);
    if (AGGREGATIONS.has(t.text)) {
      const before = reads.selectors.length;
      let labels: string[] = [];
      let grouped = false;
      if (peek()?.text === 'by' || peek()?.text === 'without') { grouped = true; next(); labels = labelList(); }
      args();
      if (peek()?.text === 'by' || peek()?.text === 'without') { grouped = true; next(); labels = labelList(); }
      if (grouped) reads.groupings.push({ op: t.text, labels, selectors: reads.selectors.slice(before) });
      return postfix();
    }
    if (isOp('(')) {
      args();
      return postfix();
    }
    selector(t.text);
    postfix();
  }

  function expression(): void {
    term();
    for (;;) {
      const t = peek();
      if (t === undefined) return;
      const binary = (t.kind === 'op' && ['+', '-', '*', '/', '%', '^', '==', '!=', '<', '>', '<=', '>='].includes(t.text)) || (t.kind === 'ident' && SET_OPERATORS.has(t.text));
      if (!binary) return;
      next();
      if (peek()?.text === 'bool') next();
      if (peek()?.kind === 'ident' && UNSUPPORTED.has(peek()!.text)) throw new Error(`${peek()!.text} is not supported by this checker`);
      term();
    }
  }

  expression();
  if (pos !== tokens.length) throw new Error(`unexpected ${tokens[pos]!.text} in ${JSON.stringify(expr)}`);
  return reads;
}
