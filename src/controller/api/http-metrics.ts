import { Counter, Gauge, Histogram } from 'prom-client';
import type { Metric, Registry } from 'prom-client';

/**
 * The API's own Prometheus metrics, registered in the controller's registry
 * (which the controller also fills with link and reconcile metrics). Route labels
 * are route patterns, never raw paths, so cardinality stays bounded.
 */

export interface ApiMetrics {
  requests: Counter<'method' | 'route' | 'status'>;
  duration: Histogram<'method' | 'route'>;
  authFailures: Counter<'transport'>;
  wsClients: Gauge;
  wsEventsSent: Counter;
  pendingDropped: Counter<'reason'>;
}

/** Reuse a metric already in the registry (a second server on the same registry), else register it. */
function metric<M extends Metric>(registry: Registry, name: string, make: () => M): M {
  return (registry.getSingleMetric(name) as M | undefined) ?? make();
}

export function createApiMetrics(registry: Registry): ApiMetrics {
  const registers = [registry];
  return {
    requests: metric(
      registry,
      'vnet_api_http_requests_total',
      () => new Counter({ name: 'vnet_api_http_requests_total', help: 'Operator API HTTP requests, by method, route pattern and status', labelNames: ['method', 'route', 'status'], registers }),
    ),
    duration: metric(
      registry,
      'vnet_api_http_request_duration_seconds',
      () =>
        new Histogram({
          name: 'vnet_api_http_request_duration_seconds',
          help: 'Operator API HTTP request latency',
          labelNames: ['method', 'route'],
          buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
          registers,
        }),
    ),
    authFailures: metric(
      registry,
      'vnet_api_auth_failures_total',
      () => new Counter({ name: 'vnet_api_auth_failures_total', help: 'Requests refused for a missing or unknown token', labelNames: ['transport'], registers }),
    ),
    wsClients: metric(registry, 'vnet_api_ws_clients', () => new Gauge({ name: 'vnet_api_ws_clients', help: 'Open event-stream WebSocket connections', registers })),
    wsEventsSent: metric(
      registry,
      'vnet_api_ws_events_sent_total',
      () => new Counter({ name: 'vnet_api_ws_events_sent_total', help: 'Events sent over event-stream WebSockets', registers }),
    ),
    pendingDropped: metric(
      registry,
      'vnet_api_pending_dropped_total',
      () => new Counter({ name: 'vnet_api_pending_dropped_total', help: 'API connections closed before their first request (deadline passed, or evicted by a newcomer when too many were pending), by reason', labelNames: ['reason'], registers }),
    ),
  };
}
