import { decision, event, noEffects, type Effects } from './effects.ts';
import type { TopologyStepOutput } from './topology-tracker.ts';

/**
 * The topology step's output as effects: a newly announced topology is
 * stored, sent as a `topology-changed` event and recorded as a decision
 * with the distance that made it a change; reports the pipeline refused
 * (beyond its buffer) are logged. The current weights of every period go
 * out with the period's `traffic-updated` event (control-loop.ts).
 */
export function planTopology(out: TopologyStepOutput, nowMs: number): Effects {
  const effects = noEffects();
  for (const r of out.rejected) {
    effects.logs.push({ level: 'warn', fields: { host: r.host, code: r.code, msg: r.message }, msg: 'traffic report dropped by the topology step' });
  }
  if (out.changed === undefined) return effects;
  const t = out.topology;
  effects.writes.push({ op: 'topology', atMs: nowMs, kind: t.class, body: t });
  effects.events.push(event('topology-changed', { topology: t }));
  effects.events.push(decision('topology-changed', `topology is now ${t.class} (confidence ${t.confidence.toFixed(2)})`, {
    class: t.class, previous: out.changed.previous?.class ?? null, distance: out.changed.distance, periods: out.changed.periods,
  }));
  return effects;
}
