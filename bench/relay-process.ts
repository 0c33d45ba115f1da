/**
 * The node-relay reference target's program: a byte relay between each client and its own
 * PostgreSQL connection, with Gatehouse's socket I/O (src/engine/postgres/socket-io.ts: reads
 * into a buffer of ours, writes straight to the handle) and nothing else: no protocol parsing, no
 * authentication, no pipeline, no log. It is the floor of a Node.js proxy built the way Gatehouse
 * is, on this machine: Gatehouse / node-relay is what Gatehouse's own work costs, node-relay /
 * pgbouncer what Node.js costs.
 *
 * Usage: node relay-process.js <listen port> <upstream host: socket directory or address> <upstream port>
 */
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { readInto, SocketWriter } from '../src/engine/postgres/socket-io.js';

const [listenPort, upstreamHost, upstreamPort] = [Number(process.argv[2]), process.argv[3] ?? '', Number(process.argv[4])];
if (!Number.isInteger(listenPort) || upstreamHost === '' || !Number.isInteger(upstreamPort)) {
  process.stderr.write('usage: relay-process <listen port> <upstream host> <upstream port>\n');
  process.exit(2);
}

function upstream(): Socket {
  if (upstreamHost.startsWith('/')) return connect(join(upstreamHost, `.s.PGSQL.${upstreamPort}`));
  const s = connect(upstreamPort, upstreamHost);
  s.setNoDelay(true);
  return s;
}

/** Relay both ways, with backpressure: a side whose peer cannot take more is paused until it drains. */
function relay(client: Socket, server: Socket): void {
  // The writers are made once both sockets are switched to readInto; reads arrive after that.
  let toClient: SocketWriter;
  let toServer: SocketWriter;
  const c = readInto(
    client,
    (chunk) => {
      if (!toServer.write(chunk)) c.pause();
    },
    () => toServer.busy,
  );
  const s = readInto(
    server,
    (chunk) => {
      if (!toClient.write(chunk)) s.pause();
    },
    () => toClient.busy,
  );
  toClient = new SocketWriter(c, () => s.resume());
  toServer = new SocketWriter(s, () => c.resume());
  const close = (): void => {
    c.destroy();
    s.destroy();
  };
  for (const x of [c, s]) {
    x.on('error', close);
    x.on('close', close);
    x.on('end', close);
  }
  c.resume();
}

const listener = createServer({ noDelay: true, pauseOnConnect: true }, (client) => {
  const server = upstream();
  const fail = (): void => {
    client.destroy();
    server.destroy();
  };
  client.on('error', fail);
  server.once('error', fail);
  server.once('connect', () => {
    server.off('error', fail);
    client.off('error', fail);
    relay(client, server);
  });
});
listener.listen(listenPort, '127.0.0.1', () => process.stdout.write(`listening on 127.0.0.1:${listenPort}\n`));
process.on('SIGTERM', () => process.exit(0));
