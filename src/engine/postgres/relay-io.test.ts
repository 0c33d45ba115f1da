/**
 * The relay's reads under backpressure, with real Unix sockets on both sides: the buffer a
 * chunk was read into is not read into again while a write of that chunk is still queued.
 * The peers here only send and receive CopyData frames, which the relay passes through as they
 * are, so each side can stop reading at will and every byte can be compared.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { createPipeline } from '../../session/pipeline.js';
import { testSession } from '../../session/session.test-helper.js';
import { PgRelay } from './relay.js';

const dir = mkdtempSync(join(tmpdir(), 'gh-relay-io-'));
const open: Array<Server | Socket> = [];
after(() => {
  for (const o of open) {
    if ('destroy' in o) o.destroy();
    else o.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Both ends of a Unix-socket connection: [the side the relay gets, the test's peer]. */
let sockets = 0;
async function unixPair(): Promise<[Socket, Socket]> {
  const path = join(dir, `s${++sockets}.sock`);
  const server = createServer().listen(path);
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const peer = connect(path);
  await once(peer, 'connect');
  const [relaySide] = await accepted;
  open.push(server, peer, relaySide);
  return [relaySide, peer];
}

/** A CopyData frame whose payload says which frame it is (so a byte overwritten shows). */
function copyData(i: number): Buffer {
  const payload = Buffer.from(`frame ${i} `.padEnd(200 + (i % 700), String.fromCharCode(97 + (i % 26))));
  const f = Buffer.allocUnsafe(5 + payload.length);
  f[0] = 0x64; // 'd'
  f.writeInt32BE(4 + payload.length, 1);
  payload.copy(f, 5);
  return f;
}

/** Everything a socket receives, concatenated on demand. */
function collect(s: Socket): { bytes(): Buffer; length(): number } {
  const got: Buffer[] = [];
  let n = 0;
  s.on('data', (c: Buffer) => {
    got.push(c);
    n += c.length;
  });
  return { bytes: () => Buffer.concat(got), length: () => n };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

/** Sends `frames` from `from` one small write per turn of the event loop (so the relay reads them one by one). */
async function trickle(from: Socket, frames: Buffer[]): Promise<void> {
  for (const f of frames) {
    from.write(f);
    await tick();
  }
}

describe('relay reads under backpressure', () => {
  const frames = Array.from({ length: 3000 }, (_, i) => copyData(i));
  const sent = Buffer.concat(frames);

  async function relayPair(): Promise<{ client: Socket; server: Socket }> {
    const [clientSide, client] = await unixPair();
    const [upstreamSide, server] = await unixPair();
    const relay = new PgRelay({ session: testSession(), pipeline: createPipeline([]), client: clientSide, upstream: upstreamSide, maxMessageBytes: 1 << 20, logger: pino({ level: 'silent' }), onClose: () => {} });
    relay.start(Buffer.alloc(0), Buffer.alloc(0));
    return { client, server };
  }

  for (const direction of ['client to server', 'server to client'] as const) {
    it(`${direction}: every byte arrives while the receiver is not reading and after it reads again`, async () => {
      const { client, server } = await relayPair();
      const [from, to] = direction === 'client to server' ? [client, server] : [server, client];
      to.pause();
      const got = collect(to);
      await trickle(from, frames);
      to.resume();
      await until(() => got.length() >= sent.length, 'every byte');
      assert.ok(got.bytes().equals(sent), 'received exactly what was sent');
      client.destroy();
      server.destroy();
    });
  }
});
