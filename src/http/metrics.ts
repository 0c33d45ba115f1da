/**
 * Prometheus metrics of the proxy (prom-client). Children with labels are bound once per
 * connection name, so the per-statement cost is an increment and an observation.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PipelinePlugin } from '../session/pipeline.js';
import type { Execution, SessionInfo } from '../session/types.js';

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly connectionsTotal = new Counter({
    name: 'gatehouse_client_connections_total',
    help: 'Client connections accepted, by outcome of the handshake',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly connectionsActive = new Gauge({
    name: 'gatehouse_client_connections_active',
    help: 'Client sessions currently open',
    labelNames: ['connection'] as const,
    registers: [this.registry],
  });
  readonly statementsTotal = new Counter({
    name: 'gatehouse_statements_total',
    help: 'Statements executed (each Query and each Execute), by connection and outcome (ok, error, denied)',
    labelNames: ['connection', 'outcome'] as const,
    registers: [this.registry],
  });
  /** Relayed bytes, kept as plain numbers on the hot path and published at scrape time. */
  #bytesIn = 0;
  #bytesOut = 0;
  readonly bytesTotal: Counter<'direction'>;
  readonly errorsTotal = new Counter({
    name: 'gatehouse_errors_total',
    help: 'Errors by kind (protocol, auth, upstream_connect, upstream_lost, internal)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly statementSeconds = new Histogram({
    name: 'gatehouse_upstream_statement_seconds',
    help: 'Time from forwarding a statement upstream to its completion, by connection',
    labelNames: ['connection'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly upstreamConnectSeconds = new Histogram({
    name: 'gatehouse_upstream_connect_seconds',
    help: 'Time to open and authenticate an upstream session, by connection',
    labelNames: ['connection'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const self = this;
    this.bytesTotal = new Counter({
      name: 'gatehouse_bytes_total',
      help: 'Bytes relayed, by direction (client_to_upstream, upstream_to_client)',
      labelNames: ['direction'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc({ direction: 'client_to_upstream' }, self.#bytesIn);
        this.inc({ direction: 'upstream_to_client' }, self.#bytesOut);
      },
    });
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'gatehouse_' });
  }

  /** Count relayed bytes (called per chunk). */
  readonly onBytes = (fromClient: number, fromUpstream: number): void => {
    this.#bytesIn += fromClient;
    this.#bytesOut += fromUpstream;
  };

  /** The pipeline stage that counts statements and observes their latency. */
  plugin(): PipelinePlugin {
    const bound = new Map<string, { ok: Counter.Internal; error: Counter.Internal; denied: Counter.Internal; seconds: Histogram.Internal<string> }>();
    const forConnection = (name: string) => {
      let b = bound.get(name);
      if (!b) {
        b = {
          ok: this.statementsTotal.labels(name, 'ok'),
          error: this.statementsTotal.labels(name, 'error'),
          denied: this.statementsTotal.labels(name, 'denied'),
          seconds: this.statementSeconds.labels(name),
        };
        bound.set(name, b);
      }
      return b;
    };
    return {
      name: 'metrics',
      sessionStart: (s: SessionInfo) => this.connectionsActive.labels(s.connection.name).inc(),
      sessionEnd: (s: SessionInfo) => this.connectionsActive.labels(s.connection.name).dec(),
      complete: (s: SessionInfo, e: Execution) => {
        const b = forConnection(s.connection.name);
        if (e.statement.decision.action === 'deny') b.denied.inc();
        else if (e.sqlstate !== undefined) b.error.inc();
        else b.ok.inc();
        b.seconds.observe(e.durationMs / 1000);
      },
    };
  }
}
