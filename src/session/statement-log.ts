/** The pipeline stage that writes one structured log line per executed statement. */
import type { Logger } from 'pino';
import type { PipelinePlugin } from './pipeline.js';

/** Longest statement text written to the log. */
const MAX_TEXT = 2048;

export function statementLog(logger: Logger): PipelinePlugin {
  const log = logger.child({ event: 'statement' });
  return {
    name: 'statement-log',
    sessionStart: (s) =>
      logger.info(
        {
          event: 'session_start',
          session: s.id,
          user: s.identity.name,
          kind: s.identity.kind,
          connection: s.connection.name,
          environment: s.connection.environment,
          client: s.client.address,
          tls: s.client.tls,
          application_name: s.applicationName,
        },
        'session started',
      ),
    sessionEnd: (s, reason) => logger.info({ event: 'session_end', session: s.id, user: s.identity.name, connection: s.connection.name, reason }, 'session ended'),
    complete: (s, e) => {
      const text = e.statement.text;
      const d = e.statement.decision;
      log.info({
        session: s.id,
        user: s.identity.name,
        connection: s.connection.name,
        statement: text.length > MAX_TEXT ? text.slice(0, MAX_TEXT) + '…' : text,
        duration_ms: Math.round(e.durationMs * 1000) / 1000,
        rows: e.rows,
        command: e.command || undefined,
        sqlstate: e.sqlstate,
        decision: d.action,
        rule: d.ruleId,
        row_cap: d.rowCap?.limit,
      });
    },
  };
}
