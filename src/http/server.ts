/** The HTTP listener: /healthz, /readyz, Prometheus /metrics and the API (/api/...). */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface HttpHandlers {
  /** True once the proxy accepts connections. */
  ready(): boolean;
  /** Prometheus exposition text and its content type. */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** API routes, consulted first: true when it handled (or is handling) the request. */
  api?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

export function createHttpServer(h: HttpHandlers): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    // The API checks its own methods (approvals take POST); everything else is read-only.
    if (h.api !== undefined && h.api(req, res)) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { error: 'method not allowed' });
    switch (path) {
      case '/healthz':
        return json(200, { status: 'ok' });
      case '/readyz':
        return h.ready() ? json(200, { status: 'ready' }) : json(503, { status: 'starting' });
      case '/metrics':
        h.metrics().then(
          (m) => {
            res.writeHead(200, { 'content-type': m.contentType });
            res.end(m.body);
          },
          (err: Error) => json(500, { error: `metrics unavailable: ${err.message}` }),
        );
        return;
      default:
        return json(404, { error: 'not found' });
    }
  });
}
