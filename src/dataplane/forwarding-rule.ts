import type { RuleSpec } from '../control/daemon-control.ts';
import { RuleError } from './errors.ts';
import { HOST_ID_PATTERN } from '../common/host-id.ts';
import { formatMac, isMacString, parseMac, type Mac } from '../common/mac.ts';

/**
 * Forwarding rules: what the controller, the config file or the operator
 * says a daemon does with a frame, matched on source and destination MAC.
 *
 *   { "id": "r1", "priority": 100, "src": "any", "dst": "02:00:00:00:00:02", "action": { "link": "hostB" } }
 *
 * `src` and `dst` are "any", a MAC (equal) or "!MAC" (not equal). The action
 * sends to a local port by name, to a link by peer host id, floods along the
 * backbone, or drops. Higher priority wins; equal priorities are ordered by
 * id (code-unit order), so the choice never depends on insertion order.
 *
 * Rules arrive as untrusted JSON; `parseRule` and `parseRules` are total:
 * any input either yields frozen rules or throws a RuleError naming the field.
 */

/** Who set a rule: the controller, the config file, the admin interface, or the daemon itself for its own ports (port-pins). */
export type RuleOrigin = 'controller' | 'config' | 'admin' | 'ports';

export type MacMatch =
  | { readonly kind: 'any' }
  | { readonly kind: 'eq'; readonly mac: Mac }
  | { readonly kind: 'ne'; readonly mac: Mac };

export type RuleAction =
  | { readonly kind: 'port'; readonly port: string }
  | { readonly kind: 'link'; readonly link: string }
  | { readonly kind: 'flood' }
  | { readonly kind: 'drop' };

export interface ForwardingRule {
  readonly id: string;
  readonly priority: number;
  readonly src: MacMatch;
  readonly dst: MacMatch;
  readonly action: RuleAction;
  readonly origin: RuleOrigin;
}

export const MIN_RULE_PRIORITY = 0;
export const MAX_RULE_PRIORITY = 65_535;
/** The most rules one set may carry (a controller push of many VMs arrives in parts, control-parts.ts); a larger set is rejected whole. */
export const MAX_RULES = 1 << 18;

const ID_RE = /^[^\x00-\x1f\x7f]{1,128}$/u;
const PORT_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const MATCH_ANY: MacMatch = Object.freeze({ kind: 'any' });
const ACTION_FLOOD: RuleAction = Object.freeze({ kind: 'flood' });
const ACTION_DROP: RuleAction = Object.freeze({ kind: 'drop' });
const RULE_KEYS = new Set(['id', 'priority', 'src', 'dst', 'action']);

/** Parse "any", "02:..", or "!02:.."; `field` names the input in the error. */
export function parseMacMatch(text: unknown, field: string): MacMatch {
  if (typeof text !== 'string') throw new RuleError(`${field}: expected "any", a MAC or "!MAC", got ${describe(text)}`);
  if (text === 'any') return MATCH_ANY;
  const ne = text.startsWith('!');
  const body = ne ? text.slice(1) : text;
  if (body.length > 17 || !isMacString(body)) throw new RuleError(`${field}: expected "any", a MAC or "!MAC", got ${JSON.stringify(text.slice(0, 40))}`);
  return Object.freeze({ kind: ne ? 'ne' : 'eq', mac: parseMac(body) });
}

export function formatMacMatch(m: MacMatch): string {
  switch (m.kind) {
    case 'any':
      return 'any';
    case 'eq':
      return formatMac(m.mac);
    case 'ne':
      return `!${formatMac(m.mac)}`;
  }
}

/** Whether `mac` satisfies the match. */
export function macMatches(m: MacMatch, mac: Mac): boolean {
  return m.kind === 'any' || (m.kind === 'eq' ? m.mac === mac : m.mac !== mac);
}

/** Whether a rule matches a frame's source and destination. */
export function ruleMatches(rule: ForwardingRule, src: Mac, dst: Mac): boolean {
  return macMatches(rule.src, src) && macMatches(rule.dst, dst);
}

/** Rule order: priority descending, then id ascending (code units, not locale). */
export function compareRules(a: ForwardingRule, b: ForwardingRule): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Same match, priority, action and origin. */
export function sameRule(a: ForwardingRule, b: ForwardingRule): boolean {
  return (
    a.id === b.id &&
    a.priority === b.priority &&
    a.origin === b.origin &&
    sameMatch(a.src, b.src) &&
    sameMatch(a.dst, b.dst) &&
    sameAction(a.action, b.action)
  );
}

function sameMatch(a: MacMatch, b: MacMatch): boolean {
  if (a.kind === 'any' || b.kind === 'any') return a.kind === b.kind;
  return a.kind === b.kind && a.mac === b.mac;
}

function sameAction(a: RuleAction, b: RuleAction): boolean {
  if (a.kind === 'port' && b.kind === 'port') return a.port === b.port;
  if (a.kind === 'link' && b.kind === 'link') return a.link === b.link;
  return a.kind === b.kind;
}

function parseAction(value: unknown, field: string): RuleAction {
  if (value === 'flood') return ACTION_FLOOD;
  if (value === 'drop') return ACTION_DROP;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RuleError(`${field}: expected "flood", "drop", {"port": NAME} or {"link": HOST}, got ${describe(value)}`);
  }
  const keys = Object.keys(value);
  const obj = value as Record<string, unknown>;
  if (keys.length === 1 && keys[0] === 'port') {
    const port = obj.port;
    if (typeof port !== 'string' || !PORT_RE.test(port)) throw new RuleError(`${field}.port: a port name is 1-15 letters, digits, ".", "_" or "-", got ${describe(port)}`);
    return Object.freeze({ kind: 'port', port });
  }
  if (keys.length === 1 && keys[0] === 'link') {
    const link = obj.link;
    if (typeof link !== 'string' || !HOST_ID_PATTERN.test(link)) throw new RuleError(`${field}.link: a host id is 1-63 letters, digits, ".", "_" or "-", got ${describe(link)}`);
    return Object.freeze({ kind: 'link', link });
  }
  throw new RuleError(`${field}: expected exactly one key, "port" or "link", got keys ${JSON.stringify(keys.slice(0, 5))}`);
}

/** Parse one rule from JSON (a RuleSpec, unknown keys rejected). `where` prefixes error messages. */
export function parseRule(json: unknown, origin: RuleOrigin, where = 'rule'): ForwardingRule {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new RuleError(`${where}: expected an object, got ${describe(json)}`);
  const obj = json as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!RULE_KEYS.has(key)) throw new RuleError(`${where}: unknown key ${JSON.stringify(key.slice(0, 40))}`);
  }
  const id = obj.id;
  if (typeof id !== 'string' || !ID_RE.test(id)) throw new RuleError(`${where}.id: expected 1-128 characters, no control characters, got ${describe(id)}`);
  const at = `${where} ${JSON.stringify(id)}`;
  const priority = obj.priority;
  if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < MIN_RULE_PRIORITY || priority > MAX_RULE_PRIORITY) {
    throw new RuleError(`${at}.priority: expected an integer ${MIN_RULE_PRIORITY}-${MAX_RULE_PRIORITY}, got ${describe(priority)}`);
  }
  return Object.freeze({
    id,
    priority,
    src: parseMacMatch(obj.src, `${at}.src`),
    dst: parseMacMatch(obj.dst, `${at}.dst`),
    action: parseAction(obj.action, `${at}.action`),
    origin,
  });
}

/** Parse a whole rule set (an array); duplicate ids and oversize sets are rejected. */
export function parseRules(json: unknown, origin: RuleOrigin, where = 'rules'): ForwardingRule[] {
  if (!Array.isArray(json)) throw new RuleError(`${where}: expected an array, got ${describe(json)}`);
  if (json.length > MAX_RULES) throw new RuleError(`${where}: ${json.length} rules exceed the maximum of ${MAX_RULES}`);
  const out: ForwardingRule[] = [];
  const ids = new Set<string>();
  for (let i = 0; i < json.length; i++) {
    const rule = parseRule(json[i], origin, `${where}[${i}]`);
    if (ids.has(rule.id)) throw new RuleError(`${where}[${i}]: duplicate rule id ${JSON.stringify(rule.id)}`);
    ids.add(rule.id);
    out.push(rule);
  }
  return out;
}

/** The JSON form of a rule (inverse of parseRule, without the origin). */
export function ruleToSpec(rule: ForwardingRule): RuleSpec {
  const a = rule.action;
  const action: RuleSpec['action'] = a.kind === 'port' ? { port: a.port } : a.kind === 'link' ? { link: a.link } : a.kind;
  return { id: rule.id, priority: rule.priority, src: formatMacMatch(rule.src), dst: formatMacMatch(rule.dst), action };
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return `a ${typeof value}`;
}
