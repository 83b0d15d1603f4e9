import type { Registry } from 'prom-client';

/**
 * The series names a prom-client registry exports, with the labels each may
 * carry, as Prometheus sees them: a counter or gauge under its own name; a
 * histogram as NAME_bucket (with `le`), NAME_sum and NAME_count; a summary as
 * NAME (with `quantile`), NAME_sum and NAME_count. A metric's labels are its
 * declared label names plus the registry's default labels — found as the
 * labels that every series the registry exposes now carries.
 */
export type MetricCatalogue = Map<string, { type: string; labels: ReadonlySet<string> }>;

function seriesLabels(exposition: string): string[][] {
  return exposition.split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => [.../\{([^}]*)\}/.exec(l)?.[1]?.matchAll(/([A-Za-z_]\w*)="/g) ?? []].map((m) => m[1]!));
}

export async function metricCatalogue(registries: readonly Registry[]): Promise<MetricCatalogue> {
  const out: MetricCatalogue = new Map();
  for (const registry of registries) {
    const series = seriesLabels(await registry.metrics());
    const defaults = series.length === 0 ? [] : series.reduce((common, labels) => common.filter((l) => labels.includes(l)));
    for (const metric of registry.getMetricsAsArray()) {
      const m = metric as unknown as { name: string; type: string; labelNames?: readonly string[] };
      const labels = [...(m.labelNames ?? []), ...defaults];
      const put = (name: string, extra: string[] = []): void => { out.set(name, { type: m.type, labels: new Set([...labels, ...extra]) }); };
      if (m.type === 'histogram') {
        put(`${m.name}_bucket`, ['le']);
        put(`${m.name}_sum`);
        put(`${m.name}_count`);
      } else if (m.type === 'summary') {
        put(m.name, ['quantile']);
        put(`${m.name}_sum`);
        put(`${m.name}_count`);
      } else {
        put(m.name);
      }
    }
  }
  return out;
}
