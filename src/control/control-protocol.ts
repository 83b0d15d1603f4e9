import { z } from 'zod';
import { linkCounters, PACKET_PORT_COUNTERS, type DaemonEvent, type DaemonFacts, type DesiredLink, type LinkCounters, type LinkFacts, type PacketPortCounters, type PortFacts, type PortLimit, type PortSecurityFacts, type TrafficSnapshot } from './daemon-control.ts';
import { hostIdSchema, ruleSpecSchema } from './rule-spec.ts';
import { patchRulesSchema } from './rule-patch.ts';
import { migrationControllerMessages, migrationReportSchema } from './migration-control.ts';
import { imageAnnounceSchema, imageBootTraceSchema, imageHoldSchema, imageProgressSchema, imageUsesSchema } from './image-control.ts';
import { formatMac, isMacString, parseMac } from '../common/mac.ts';
import { CONTROL_FEATURES, featureListSchema, withFeatures, type ControlFeature } from './control-features.ts';
import { ControlMessageError, ControlMessageTooLargeError, ControlProtocolVersionError } from './errors.ts';

/**
 * The control channel between a daemon and the controller: JSON text
 * messages over one WebSocket (over TLS), one message per WebSocket message.
 * Both sides decode what they receive with `decodeDaemonMessage` /
 * `decodeControllerMessage`, total functions: any input — garbage bytes,
 * binary frames, JSON of the wrong shape, oversize — becomes a typed error,
 * never a throw. docs/control-protocol.md describes the exchange.
 *
 *   daemon                                   controller
 *     hello {protocol, hostId, auth, facts, part?, features?} →   (facts in parts: the rest follow as facts {seq: 0, part})
 *                                          ← welcome {protocol, hostId, updatePeriodMs, credential?, features?}
 *     (features: the optional fields each side understands; a side sends a
 *      field only when both listed its feature: control-features.ts)
 *                                          ← set-links {version, links, members, part?}   (when desired ≠ actual)
 *                                          ← set-rules {version, rules, part?}
 *                                          ← patch-rules {from, version, digest, remove, upsert}
 *                                            (feature rule-patches: rule-patch.ts)
 *     ack {kind, version, ok}              →
 *     traffic {seq, snapshot, part?}       →  (every update period)
 *     facts {facts, seq?, part?} / event   →  (when something changes)
 *                                          ← image-hold {manifest, origin, replicas}  (a daemon whose hello has `images`; image-control.ts)
 *     image-progress {imageId, version, held, total, state} →
 *     image-boot-trace {imageId, version, vm, accessOrder} →
 *     image-uses {vms} →                     (feature image-keep)
 *
 * A message longer than the limit is sent in parts (control-parts.ts), each
 * under the limit, reassembled by the receiver (part-assembler.ts) and used
 * only once whole.
 *                                          ← error {code, message, fatal}  (bad message; fatal closes)
 *
 * A controller replica that does not lead (docs/ha.md) answers the hello with
 * error {code: NOT_LEADER_CODE, fatal: true, leader?: the leader's control URL};
 * the daemon dials that one next, else the next address in its list.
 */

/** The refusal of a replica that does not lead (the daemon tries another replica). */
export const NOT_LEADER_CODE = 'VNET_ERR_NOT_LEADER';
/**
 * Close codes of connections the controller cut before their welcome
 * although nothing was wrong with the daemon: its hello did not arrive in
 * time (4008), or a newer connection took its pending slot (4029) — a
 * controller busy with a mass connect. The daemon dials again (with its
 * backoff); any other refusal before the welcome stops it.
 */
export const CLOSE_HELLO_TIMEOUT = 4008;
export const CLOSE_PENDING_DROPPED = 4029;
export const RETRY_CLOSE_CODES: ReadonlySet<number> = new Set([CLOSE_HELLO_TIMEOUT, CLOSE_PENDING_DROPPED]);

/** A control channel URL: wss://HOST:PORT/PATH. */
export const CONTROL_URL_PATTERN = /^wss:\/\/[^\s/]+(\/\S*)?$/;

/**
 * 2: migration commands and reports (migrate-prepare/start/commit/abort/query, migration).
 * 3: messages larger than the limit go in parts (hello, facts, traffic, set-links, set-rules: `part`).
 */
export const CONTROL_PROTOCOL_VERSION = 3;
/** The most parts one split message may have on the wire (a receiver's own limit is usually lower). */
export const MAX_WIRE_PARTS = 4096;
/** Default limit of one control message (the WebSocket layer closes at 4× this). */
export const DEFAULT_MAX_CONTROL_MESSAGE_BYTES = 1 << 20;
export const CONTROL_PATH = '/control';

/** The most entries or rules in one message (a split message's parts each obey it). */
export const MAX_ITEMS = 65_536;
/** The most ports or links in one message's facts, or links in one set-links. */
export const MAX_FACT_ITEMS = 4096;
const hostId = hostIdSchema;
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const wallMs = z.number().int().min(0).max(8.64e15);
const macString = z.string().max(17).refine(isMacString, 'not a MAC address').transform((s) => formatMac(parseMac(s)));
const listenAddress = z.strictObject({
  transport: z.enum(['tcp', 'tls', 'memory']),
  host: z.string().min(1).max(255),
  port: z.number().int().min(0).max(65535),
});

const portFacts = z.strictObject({
  name: z.string().min(1).max(64),
  kind: z.enum(['tap', 'memory', 'stream', 'packet']),
  mac: macString,
  ip: z.string().max(64).optional(),
  mtu: z.number().int().min(0).max(65535),
  rxFrames: count, rxBytes: count, txFrames: count, txBytes: count, txDropped: count,
  security: z.strictObject({
    locked: z.boolean(), learnedMacs: count, 'spoofed-source': count, 'mac-limit': count, 'mac-rate': count, 'flood-rate': count,
  } satisfies Record<keyof PortSecurityFacts, z.ZodType>).optional(),
  /** Feature `port-packet-counters` (control-features.ts): a packet port's own drops. */
  packet: z.strictObject(Object.fromEntries(PACKET_PORT_COUNTERS.map((k) => [k, count])) as Record<keyof PacketPortCounters, typeof count>).optional(),
});

const linkKind = z.enum(['backbone', 'fast-path']);
const linkCounterShape = { txFrames: count, txBytes: count, rxFrames: count, rxBytes: count, txDropped: count, decodeErrors: count } satisfies Record<keyof LinkCounters, typeof count>;
const linkFacts = z.strictObject({
  peer: hostId,
  kind: linkKind,
  state: z.enum(['up', 'connecting', 'down']),
  direction: z.enum(['outbound', 'inbound']),
  ...linkCounterShape,
  reconnects: count,
});

const daemonFacts = z.strictObject({
  hostId,
  role: z.enum(['hub', 'spoke']),
  site: z.string().min(1).max(64).optional(),
  listen: listenAddress.optional(),
  ports: z.array(portFacts).max(MAX_FACT_ITEMS),
  links: z.array(linkFacts).max(MAX_FACT_ITEMS),
  rulesVersion: count,
  linksVersion: count,
  macConflicts: count.optional(),
});

const trafficSnapshot = z.strictObject({
  startMs: wallMs,
  endMs: wallMs,
  entries: z.array(z.strictObject({ src: macString, dst: macString, frames: count, bytes: count })).max(MAX_ITEMS),
});

const daemonEvent = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('port-added'), port: portFacts }),
  z.strictObject({ type: z.literal('port-removed'), name: z.string().min(1).max(64), reason: z.string().max(1024) }),
  z.strictObject({ type: z.literal('link-up'), peer: hostId, kind: linkKind }),
  z.strictObject({ type: z.literal('link-down'), peer: hostId, kind: linkKind, reason: z.string().max(1024) }),
  z.strictObject({ type: z.literal('mac-conflict'), mac: macString, seenAt: z.string().max(128), home: z.string().max(128), by: z.enum(['port', 'controller']), frames: count }),
  z.strictObject({ type: z.literal('port-limit'), port: z.string().min(1).max(64), limit: z.enum(['spoofed-source', 'mac-limit', 'mac-rate', 'flood-rate'] satisfies PortLimit[]), frames: count }),
]);

const errorBody = z.strictObject({ code: z.string().max(128), message: z.string().max(4096) });

const secret = z.string().min(16).max(256);

/** Part `index` (from 0) of `count` of a message sent in parts (control-parts.ts). */
const partHeader = z.strictObject({ index: z.number().int().min(0), count: z.number().int().min(2).max(MAX_WIRE_PARTS) })
  .refine((p) => p.index < p.count, 'a part index is below the part count');

export const helloSchema = z.strictObject({
  type: z.literal('hello'),
  protocol: z.literal(CONTROL_PROTOCOL_VERSION),
  hostId,
  /** Absent when the TLS client certificate proves who we are. */
  auth: z.union([z.strictObject({ joinToken: secret }), z.strictObject({ credential: secret })]).optional(),
  facts: daemonFacts,
  /** The facts are part 1 of `count`; the rest follow at once as `facts` of seq 0. */
  part: partHeader.refine((p) => p.index === 0, 'a hello is part 1 of its facts').optional(),
  /** This daemon keeps its site's image chunk store and serves it here (image-control.ts); absent: it holds no images. */
  images: imageAnnounceSchema.optional(),  /** The features this daemon understands (control-features.ts); absent: an older daemon, sent core fields only. */
  features: featureListSchema.optional(),
});

export const daemonMessageSchema = z.discriminatedUnion('type', [
  helloSchema,
  z.strictObject({ type: z.literal('facts'), facts: daemonFacts, seq: count.optional(), part: partHeader.optional() })
    .refine((f) => f.part === undefined || f.seq !== undefined, 'facts in parts carry a seq'),
  z.strictObject({ type: z.literal('traffic'), seq: count, snapshot: trafficSnapshot, part: partHeader.optional() }),
  z.strictObject({ type: z.literal('ack'), kind: z.enum(['links', 'rules']), version: count, ok: z.boolean(), error: errorBody.optional() })
    .refine((a) => a.ok === (a.error === undefined), 'an ack has error exactly when ok is false'),
  z.strictObject({ type: z.literal('event'), event: daemonEvent }),
  migrationReportSchema,
  imageProgressSchema,
  imageBootTraceSchema,
  imageUsesSchema,
]);

const desiredLink = z.strictObject({
  peer: hostId,
  address: listenAddress,
  reason: z.string().max(1024),
  dial: z.boolean().optional(),
});

export const controllerMessageSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('welcome'),
    protocol: z.literal(CONTROL_PROTOCOL_VERSION),
    hostId,
    updatePeriodMs: z.number().int().min(10).max(600_000),
    /** Issued after a join-token hello: present it (auth.credential) on every later hello. */
    credential: secret.optional(),
    /** The features this controller understands (control-features.ts); only in answer to a hello that listed its own. */
    features: featureListSchema.optional(),
  }),
  z.strictObject({
    type: z.literal('set-links'),
    version: count,
    links: z.array(desiredLink).max(MAX_FACT_ITEMS),
    /** The deployment's host ids: the daemon refuses tunnel links from any other host (absent: no change). */
    members: z.array(hostId).max(MAX_ITEMS).optional(),
    part: partHeader.optional(),
  }),
  z.strictObject({ type: z.literal('set-rules'), version: count, rules: z.array(ruleSpecSchema).max(MAX_ITEMS), part: partHeader.optional() }),
  /** Feature `rule-patches` (rule-patch.ts): the changes from version `from` of the set to `version`. */
  patchRulesSchema,
  z.strictObject({
    type: z.literal('error'), code: z.string().max(128), message: z.string().max(4096), fatal: z.boolean(), inReplyTo: z.string().max(32).optional(),
    /** With NOT_LEADER_CODE: the leading replica's control channel, when the refusing replica knows it. */
    leader: z.string().regex(CONTROL_URL_PATTERN).max(2048).optional(),
  }),
  ...migrationControllerMessages,
  imageHoldSchema,
]);

/** The schemas of a port's and a daemon's facts (tests build older peers' strict schemas from them). */
export const portFactsSchema = portFacts;
export const daemonFactsSchema = daemonFacts;

export type HelloMessage = z.output<typeof helloSchema>;
export type DaemonMessage = z.output<typeof daemonMessageSchema>;
export type ControllerMessage = z.input<typeof controllerMessageSchema>;
export type WireFacts = z.output<typeof daemonFacts>;
export type WireSnapshot = z.output<typeof trafficSnapshot>;

export type DecodeResult<T> = { ok: true; message: T } | { ok: false; error: ControlMessageError | ControlMessageTooLargeError | ControlProtocolVersionError };

/** Decode one message a daemon sent. Never throws. */
export function decodeDaemonMessage(data: unknown, maxBytes = DEFAULT_MAX_CONTROL_MESSAGE_BYTES): DecodeResult<DaemonMessage> {
  return decodeWith(data, maxBytes, daemonMessageSchema, true);
}

/** Decode one message the controller sent. Never throws. */
export function decodeControllerMessage(data: unknown, maxBytes = DEFAULT_MAX_CONTROL_MESSAGE_BYTES): DecodeResult<z.output<typeof controllerMessageSchema>> {
  return decodeWith(data, maxBytes, controllerMessageSchema, false);
}

export function encodeControlMessage(message: ControllerMessage | DaemonMessage): string {
  return JSON.stringify(message);
}

function decodeWith<S extends z.ZodType>(data: unknown, maxBytes: number, schema: S, checkHello: boolean): DecodeResult<z.output<S>> {
  let text: string;
  if (typeof data === 'string') text = data;
  else if (data instanceof Uint8Array) {
    if (data.byteLength > maxBytes) return { ok: false, error: new ControlMessageTooLargeError(data.byteLength, maxBytes) };
    return { ok: false, error: new ControlMessageError('binary message: the control channel carries JSON text messages') };
  } else return { ok: false, error: new ControlMessageError('message is not text') };
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) return { ok: false, error: new ControlMessageTooLargeError(bytes, maxBytes) };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: new ControlMessageError(`not JSON: ${(err as Error).message}`, { cause: err }) };
  }
  if (checkHello && isObject(json) && json['type'] === 'hello' && json['protocol'] !== CONTROL_PROTOCOL_VERSION) {
    const v = json['protocol'];
    return { ok: false, error: new ControlProtocolVersionError(typeof v === 'number' ? v : -1, CONTROL_PROTOCOL_VERSION) };
  }
  let parsed: z.ZodSafeParseResult<z.output<S>>;
  try {
    parsed = schema.safeParse(json) as z.ZodSafeParseResult<z.output<S>>;
  } catch (err) {
    // A schema bug must not take the channel down with it: report it as an invalid message.
    return { ok: false, error: new ControlMessageError(`message could not be validated: ${(err as Error).message}`, { cause: err }) };
  }
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const type = isObject(json) && typeof json['type'] === 'string' ? json['type'].slice(0, 32) : undefined;
    const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    const what = issue.code === 'unrecognized_keys' ? `unknown key(s) ${issue.keys.join(', ')}` : issue.message;
    return { ok: false, error: new ControlMessageError(`invalid ${type ?? 'message'}${path ? ` at ${path.replace(/^\./, '')}` : ''}: ${what}`) };
  }
  return { ok: true, message: parsed.data };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---- conversions between the daemon's types and the wire --------------------

/** Every feature: the wire form of a peer that speaks this build's protocol. */
const ALL_FEATURES: ReadonlySet<ControlFeature> = new Set(CONTROL_FEATURES);

/**
 * The wire form of a daemon's facts; fields are picked one by one so the wire
 * stays what the schema says, and a feature's fields only when `features`
 * (negotiated with the controller) holds it.
 */
export function factsToWire(f: DaemonFacts, features: ReadonlySet<ControlFeature> = ALL_FEATURES): WireFacts {
  return {
    hostId: f.hostId,
    role: f.role,
    ...(f.site !== undefined ? { site: f.site } : {}),
    ...(f.listen !== undefined ? { listen: { transport: f.listen.transport, host: f.listen.host, port: f.listen.port } } : {}),
    ports: f.ports.map((p) => portToWire(p, features)),
    links: f.links.map((l) => ({ peer: l.peer, kind: l.kind, state: l.state, direction: l.direction, ...linkCounters(l), reconnects: l.reconnects })),
    rulesVersion: f.rulesVersion,
    linksVersion: f.linksVersion,
    ...(f.macConflicts !== undefined ? { macConflicts: f.macConflicts } : {}),
  };
}

function portToWire(p: PortFacts, features: ReadonlySet<ControlFeature>): WireFacts['ports'][number] {
  return withFeatures({
    name: p.name, kind: p.kind, mac: p.mac, ...(p.ip !== undefined ? { ip: p.ip } : {}), mtu: p.mtu,
    rxFrames: p.rxFrames, rxBytes: p.rxBytes, txFrames: p.txFrames, txBytes: p.txBytes, txDropped: p.txDropped,
    ...(p.security !== undefined ? { security: { ...p.security } } : {}),
    ...(p.packet !== undefined ? { packet: { ...p.packet } } : {}),
  }, features, 'port-packet-counters', 'packet');
}

export function factsFromWire(w: WireFacts): DaemonFacts {
  return {
    hostId: w.hostId,
    role: w.role,
    site: w.site,
    listen: w.listen,
    ports: w.ports.map(({ security, packet, ...p }): PortFacts => ({ ...p, ip: p.ip, ...(security !== undefined ? { security } : {}), ...(packet !== undefined ? { packet } : {}) })),
    links: w.links.map((l): LinkFacts => ({ ...l })),
    rulesVersion: w.rulesVersion,
    linksVersion: w.linksVersion,
    ...(w.macConflicts !== undefined ? { macConflicts: w.macConflicts } : {}),
  };
}

export function snapshotToWire(s: TrafficSnapshot): WireSnapshot {
  return {
    startMs: Math.max(0, Math.floor(s.startMs)),
    endMs: Math.max(0, Math.floor(s.endMs)),
    entries: s.entries.map((e) => ({ src: formatMac(e.src), dst: formatMac(e.dst), frames: e.frames, bytes: e.bytes })),
  };
}

export function snapshotFromWire(host: string, w: WireSnapshot): TrafficSnapshot {
  return { host, startMs: w.startMs, endMs: w.endMs, entries: w.entries.map((e) => ({ src: parseMac(e.src), dst: parseMac(e.dst), frames: e.frames, bytes: e.bytes })) };
}

export function eventToWire(e: DaemonEvent, features: ReadonlySet<ControlFeature> = ALL_FEATURES): z.output<typeof daemonEvent> {
  if (e.type === 'port-added') return { type: 'port-added', port: portToWire(e.port, features) };
  if (e.type === 'port-removed') return { type: 'port-removed', name: e.name, reason: e.reason };
  if (e.type === 'link-up') return { type: 'link-up', peer: e.peer, kind: e.kind };
  if (e.type === 'mac-conflict') return { type: 'mac-conflict', mac: e.mac, seenAt: e.seenAt, home: e.home, by: e.by, frames: e.frames };
  if (e.type === 'port-limit') return { type: 'port-limit', port: e.port, limit: e.limit, frames: e.frames };
  return { type: 'link-down', peer: e.peer, kind: e.kind, reason: e.reason };
}


export function desiredLinkFromWire(l: z.output<typeof desiredLink>): DesiredLink {
  return { peer: l.peer, address: l.address, reason: l.reason, ...(l.dial !== undefined ? { dial: l.dial } : {}) };
}
