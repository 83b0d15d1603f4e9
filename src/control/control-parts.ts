import {
  encodeControlMessage, MAX_FACT_ITEMS, MAX_ITEMS, type ControllerMessage, type DaemonMessage, type WireFacts,
} from './control-protocol.ts';
import { ControlMessageTooLargeError, ControlPartError } from './errors.ts';
import type { PartHeader, PartResult } from './part-assembler.ts';

/**
 * Messages whose size grows with the deployment, split into parts that each
 * fit the per-message limit, and joined again once whole (part-assembler.ts
 * checks the sequence; this file cuts and joins the lists).
 *
 *   traffic   snapshot.entries       group: seq
 *   facts     facts.ports, .links    group: seq (a hello's facts: seq 0)
 *   hello     facts.ports, .links    part 1 in the hello, the rest as facts of seq 0
 *   set-rules rules                  group: version
 *   set-links links, members         group: version
 *
 * Every part repeats the message's other fields; the receiver checks they
 * agree (a part that disagrees is a forged or broken sequence). The lists are
 * cut in order, so joining the parts in index order gives the message back.
 */

type Traffic = Extract<DaemonMessage, { type: 'traffic' }>;
type SetRules = Extract<ControllerMessage, { type: 'set-rules' }>;
type SetLinks = Extract<ControllerMessage, { type: 'set-links' }>;

/** The facts of a hello split in parts are group 0 of the session's facts. */
export const HELLO_FACTS_SEQ = 0;

/** A daemon message as it goes on the wire: itself if it fits in `maxBytes`, else its parts. Throws ControlMessageTooLargeError if it cannot be split to fit. */
export function splitDaemonMessage(m: DaemonMessage, maxBytes: number, factsSeq: () => number): DaemonMessage[] {
  switch (m.type) {
    case 'traffic':
      return splitLists(m, [m.snapshot.entries], [MAX_ITEMS], maxBytes,
        ([entries], part) => ({ ...m, snapshot: { ...m.snapshot, entries: entries as Traffic['snapshot']['entries'] }, part }));
    case 'facts': {
      if (fits(m, [m.facts.ports, m.facts.links], [MAX_FACT_ITEMS, MAX_FACT_ITEMS], maxBytes)) return [m];
      const seq = factsSeq();
      return splitLists(m, [m.facts.ports, m.facts.links], [MAX_FACT_ITEMS, MAX_FACT_ITEMS], maxBytes,
        (slices, part) => ({ type: 'facts', facts: withLists(m.facts, slices), seq, part }));
    }
    case 'hello':
      return splitLists(m, [m.facts.ports, m.facts.links], [MAX_FACT_ITEMS, MAX_FACT_ITEMS], maxBytes, (slices, part): DaemonMessage => {
        const facts = withLists(m.facts, slices);
        return part.index === 0 ? { ...m, facts, part } : { type: 'facts', facts, seq: HELLO_FACTS_SEQ, part };
      });
    default:
      if (fits(m, [], [], maxBytes)) return [m];
      throw new ControlMessageTooLargeError(wireBytes(m), maxBytes);
  }
}

/** A controller message as it goes on the wire: itself if it fits, else its parts. Throws ControlMessageTooLargeError if it cannot be split to fit. */
export function splitControllerMessage(m: ControllerMessage, maxBytes: number): ControllerMessage[] {
  const { lists, maxItems } = controllerLists(m);
  if (m.type === 'set-rules') return splitLists(m, lists, maxItems, maxBytes, ([rules], part) => ({ ...m, rules: rules as SetRules['rules'], part }));
  if (m.type === 'set-links') {
    const members = m.members;
    return splitLists(m, lists, maxItems, maxBytes, ([links, slice], part) =>
      members === undefined ? { ...m, links: links as SetLinks['links'], part } : { ...m, links: links as SetLinks['links'], members: slice as string[], part });
  }
  if (fits(m, [], [], maxBytes)) return [m];
  throw new ControlMessageTooLargeError(wireBytes(m), maxBytes);
}

/**
 * A controller message's wire texts: its own encoding when it goes whole
 * (encoded once: a deployment's rule set is the largest message, sent to
 * every daemon that connects), else its parts' encodings.
 */
export function encodeControllerMessage(m: ControllerMessage, maxBytes: number): string[] {
  const whole = encodeControlMessage(m);
  const { lists, maxItems } = controllerLists(m);
  if (lists.every((l, i) => l.length <= maxItems[i]!) && Buffer.byteLength(whole, 'utf8') <= maxBytes) return [whole];
  return splitControllerMessage(m, maxBytes).map(encodeControlMessage);
}

/** The lists a controller message is cut along, and how many items of each one part may carry. */
function controllerLists(m: ControllerMessage): { lists: ReadonlyArray<readonly unknown[]>; maxItems: readonly number[] } {
  if (m.type === 'set-rules') return { lists: [m.rules], maxItems: [MAX_ITEMS] };
  if (m.type === 'set-links') return { lists: [m.links, m.members ?? []], maxItems: [MAX_FACT_ITEMS, MAX_ITEMS] };
  return { lists: [], maxItems: [] };
}

/** The report the parts of one traffic sequence (in order) make. */
export function joinTraffic(parts: readonly Traffic[]): Traffic {
  const first = parts[0]!;
  agree(parts, (p) => [p.seq, p.snapshot.startMs, p.snapshot.endMs], 'traffic report');
  return { type: 'traffic', seq: first.seq, snapshot: { ...first.snapshot, entries: parts.flatMap((p) => p.snapshot.entries) } };
}

/** The facts the parts of one facts sequence make: `first` is the hello's or the first facts message's. */
export function joinFacts(parts: readonly WireFacts[]): WireFacts {
  agree(parts, ({ ports: _p, links: _l, ...rest }) => rest, 'facts');
  return { ...parts[0]!, ports: parts.flatMap((p) => p.ports), links: parts.flatMap((p) => p.links) };
}

export function joinRules(parts: readonly SetRules[]): SetRules {
  agree(parts, (p) => p.version, 'rule set');
  return { type: 'set-rules', version: parts[0]!.version, rules: parts.flatMap((p) => p.rules) };
}

export function joinLinks(parts: readonly SetLinks[]): SetLinks {
  agree(parts, (p) => [p.version, p.members !== undefined], 'link set');
  const links: SetLinks = { type: 'set-links', version: parts[0]!.version, links: parts.flatMap((p) => p.links) };
  return parts[0]!.members === undefined ? links : { ...links, members: parts.flatMap((p) => p.members ?? []) };
}

/** A message whole (joined from its parts, or sent whole), still waiting for parts, or refused with nothing of it used. */
export type Assembled<W> =
  | { readonly state: 'whole'; readonly message: W }
  | { readonly state: 'waiting' }
  | { readonly state: 'refused'; readonly error: ControlPartError };

/** What one part made of its sequence: the joined message once the last is in (parts that disagree are refused). */
export function assembled<P, W>(r: PartResult<P>, join: (parts: P[]) => W): Assembled<W> {
  if (r.state !== 'complete') return r.state === 'incomplete' ? { state: 'waiting' } : r;
  try {
    return { state: 'whole', message: join(r.parts) };
  } catch (err) {
    if (err instanceof ControlPartError) return { state: 'refused', error: err };
    throw err;
  }
}

function withLists(facts: WireFacts, [ports, links]: unknown[][]): WireFacts {
  return { ...facts, ports: ports as WireFacts['ports'], links: links as WireFacts['links'] };
}

/** The number of bytes a message takes on the wire. */
export function wireBytes(m: ControllerMessage | DaemonMessage): number {
  return Buffer.byteLength(encodeControlMessage(m), 'utf8');
}

/** Whether a message goes whole: its lists within their bounds, its encoding within the limit. */
function fits(m: ControllerMessage | DaemonMessage, lists: readonly (readonly unknown[])[], maxItems: readonly number[], maxBytes: number): boolean {
  return lists.every((l, i) => l.length <= maxItems[i]!) && wireBytes(m) <= maxBytes;
}

/** Throws ControlPartError if the parts' fields other than their lists differ. */
function agree<T>(parts: readonly T[], header: (p: T) => unknown, what: string): void {
  const first = JSON.stringify(header(parts[0]!));
  for (let i = 1; i < parts.length; i++) {
    if (JSON.stringify(header(parts[i]!)) !== first) throw new ControlPartError('mismatch', `${what} part ${i + 1} of ${parts.length} disagrees with part 1 outside its lists`);
  }
}

/**
 * `whole` itself if it fits; else cut `lists` (in order, one after the other)
 * into runs whose message, built by `build`, fits `maxBytes`, with at most
 * `maxItems[i]` items of list i per part. `build` gets one slice per list
 * (possibly empty) and the part header.
 */
function splitLists<M extends ControllerMessage | DaemonMessage>(
  whole: M, lists: readonly (readonly unknown[])[], maxItems: readonly number[], maxBytes: number,
  build: (slices: unknown[][], part: PartHeader) => M,
): M[] {
  if (fits(whole, lists, maxItems, maxBytes)) return [whole];
  const empty = (): unknown[][] => lists.map(() => []);
  // The widest a part header gets: four-digit index and count; the first part may differ in shape (a hello).
  const overhead = Math.max(wireBytes(build(empty(), { index: 0, count: 9999 })), wireBytes(build(empty(), { index: 9998, count: 9999 })));
  const budget = maxBytes - overhead;
  const runs: unknown[][][] = [];
  let run = empty();
  let runBytes = 0;
  let runItems = lists.map(() => 0);
  for (let li = 0; li < lists.length; li++) {
    for (const item of lists[li]!) {
      const size = Buffer.byteLength(JSON.stringify(item), 'utf8') + 1;
      if (size > budget) throw new ControlMessageTooLargeError(size + overhead, maxBytes);
      if (runBytes + size > budget || runItems[li]! >= maxItems[li]!) {
        runs.push(run);
        run = empty();
        runBytes = 0;
        runItems = lists.map(() => 0);
      }
      run[li]!.push(item);
      runBytes += size;
      runItems[li]!++;
    }
  }
  runs.push(run);
  // Only the fields outside the lists are too large: no cut helps.
  if (runs.length < 2) throw new ControlMessageTooLargeError(overhead + runBytes, maxBytes);
  return runs.map((slices, index) => build(slices, { index, count: runs.length }));
}
