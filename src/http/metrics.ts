/**
 * Prometheus metrics of the proxy (prom-client). Per-statement and per-chunk figures are kept as
 * plain numbers on the hot path and published when /metrics is scraped: prom-client hashes the
 * label set on every inc/observe, which cost ~2 µs per statement (profiled under pgbench).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PipelinePlugin } from '../session/pipeline.js';
import type { Execution, SessionInfo } from '../session/types.js';

interface ScrapedValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/**
 * A metric whose values are computed when /metrics is scraped (prom-client accepts any object
 * with name, help, type and get(); `aggregator` sums it across cluster workers).
 */
function scrapedMetric(name: string, help: string, type: 'counter' | 'histogram', values: () => ScrapedValue[]) {
  const descriptor = { name, help, type, aggregator: 'sum' as const };
  return { ...descriptor, get: async () => ({ ...descriptor, values: values() }) };
}

/** Upper bounds (seconds) of the statement latency histogram. */
const STATEMENT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

interface StatementStats {
  ok: number;
  error: number;
  denied: number;
  /** Non-cumulative counts per bucket of STATEMENT_BUCKETS. */
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

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
  /** Relayed bytes, kept as plain numbers on the hot path and published at scrape time. */
  #bytesIn = 0;
  #bytesOut = 0;
  readonly bytesTotal: Counter<'direction'>;
  /** Approval steps (request, approve, deny, expire, cancel, execute), counted where they happen. */
  readonly approvalEvents = new Counter({
    name: 'gatehouse_approval_events_total',
    help: 'Approval request steps recorded by this process, by step (request, approve, deny, expire, cancel, execute)',
    labelNames: ['step'] as const,
    registers: [this.registry],
  });
  /** How many statements are held waiting for an approval (the node sets it to its approvals stage). */
  approvalsWaiting: () => number = () => 0;
  readonly approvalsWaitingGauge: Gauge = new Gauge({
    name: 'gatehouse_approvals_waiting',
    help: 'Statements held by this process until their approval request is decided',
    registers: [this.registry],
    collect: () => this.approvalsWaitingGauge.set(this.approvalsWaiting()),
  });
  readonly errorsTotal = new Counter({
    name: 'gatehouse_errors_total',
    help: 'Errors by kind (protocol, auth, upstream_connect)',
    labelNames: ['kind'] as const,
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
    this.registry.registerMetric(this.statementsTotal as never);
    this.registry.registerMetric(this.statementSeconds as never);
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

  /** Per-connection statement counts and latency buckets (published at scrape time). */
  readonly #statements = new Map<string, StatementStats>();

  #statsFor(connection: string): StatementStats {
    let st = this.#statements.get(connection);
    if (st === undefined) {
      st = { ok: 0, error: 0, denied: 0, buckets: new Float64Array(STATEMENT_BUCKETS.length), sum: 0, count: 0 };
      this.#statements.set(connection, st);
    }
    return st;
  }

  /** Statements executed (each Query and each Execute), by connection and outcome. */
  readonly statementsTotal = scrapedMetric(
    'gatehouse_statements_total',
    'Statements executed (each Query and each Execute), by connection and outcome (ok, error, denied)',
    'counter',
    () =>
      [...this.#statements].flatMap(([connection, st]) =>
        (['ok', 'error', 'denied'] as const).map((outcome) => ({ labels: { connection, outcome }, value: st[outcome] })),
      ),
  );

  /** Time from forwarding a statement upstream to its completion, by connection. */
  readonly statementSeconds = scrapedMetric('gatehouse_upstream_statement_seconds', 'Time from forwarding a statement upstream to its completion, by connection', 'histogram', () =>
    [...this.#statements].flatMap(([connection, st]) => {
      const out: ScrapedValue[] = [];
      let cumulative = 0;
      STATEMENT_BUCKETS.forEach((le, i) => {
        cumulative += st.buckets[i]!;
        out.push({ labels: { le, connection }, value: cumulative, metricName: 'gatehouse_upstream_statement_seconds_bucket' });
      });
      out.push({ labels: { le: '+Inf', connection }, value: st.count, metricName: 'gatehouse_upstream_statement_seconds_bucket' });
      out.push({ labels: { connection }, value: st.sum, metricName: 'gatehouse_upstream_statement_seconds_sum' });
      out.push({ labels: { connection }, value: st.count, metricName: 'gatehouse_upstream_statement_seconds_count' });
      return out;
    }),
  );

  /** The pipeline stage that counts statements and observes their latency. */
  plugin(): PipelinePlugin {
    return {
      name: 'metrics',
      sessionStart: (s: SessionInfo) => this.connectionsActive.labels(s.connection.name).inc(),
      sessionEnd: (s: SessionInfo) => this.connectionsActive.labels(s.connection.name).dec(),
      complete: (s: SessionInfo, e: Execution) => {
        const st = this.#statsFor(s.connection.name);
        if (e.refusedBy !== undefined) st.denied++;
        else if (e.sqlstate !== undefined) st.error++;
        else st.ok++;
        const seconds = e.durationMs / 1000;
        let i = 0;
        while (i < STATEMENT_BUCKETS.length && seconds > STATEMENT_BUCKETS[i]!) i++;
        if (i < STATEMENT_BUCKETS.length) st.buckets[i]!++;
        st.sum += seconds;
        st.count++;
      },
    };
  }
}
