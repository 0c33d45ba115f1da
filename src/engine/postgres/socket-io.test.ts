import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { readInto, SocketWriter } from './socket-io.js';

/** A TCP server on a free port and a client connected to it; resolves with both ends. */
async function pair(): Promise<{ server: Server; accepted: Socket; client: Socket }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect(port, '127.0.0.1');
  await once(client, 'connect');
  const socket = (await accepted)[0];
  open.push(server, client, socket);
  return { server, accepted: socket, client };
}

/** Everything a test opened, closed at the end whatever happened. */
const open: Array<Server | Socket> = [];
after(() => {
  for (const o of open) {
    if ('destroy' in o) o.destroy();
    else o.close();
  }
});

const until = async (cond: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), `timed out waiting for ${what}`);
};

describe('readInto', () => {
  it('moves the connection to a reading wrapper: bytes in order, writes, pause and resume, close and the server count', async () => {
    const { server, accepted, client } = await pair();
    let oldClosed = false;
    accepted.on('close', () => (oldClosed = true));
    const got: Buffer[] = [];
    const fast = readInto(accepted, (c) => got.push(Buffer.from(c)), () => false, 1024);
    open.push(fast);
    assert.notEqual(fast, accepted, 'a new wrapper');
    await until(() => oldClosed, 'the old wrapper to close');
    const count = (): Promise<number> => new Promise((res, rej) => server.getConnections((e, n) => (e ? rej(e) : res(n))));
    assert.equal(await count(), 1, 'the server still counts the connection');

    // Far more than the 1 KB read buffer, in many writes: every byte arrives, in order.
    const sent = Buffer.alloc(200_000);
    for (let i = 0; i < sent.length; i++) sent[i] = (i * 7 + (i >> 8)) & 0xff;
    for (let o = 0; o < sent.length; o += 3000) client.write(sent.subarray(o, o + 3000));
    await until(() => got.reduce((n, b) => n + b.length, 0) === sent.length, 'all bytes');
    assert.ok(got.every((b) => b.length <= 1024));
    assert.ok(Buffer.concat(got).equals(sent));

    // Paused, nothing is delivered; resumed, what waited arrives.
    got.length = 0;
    fast.pause();
    client.write('while paused');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(got.length, 0, 'nothing read while paused');
    fast.resume();
    await until(() => Buffer.concat(got).toString() === 'while paused', 'the bytes sent while paused');

    // The new wrapper writes and closes the connection.
    const echoed = once(client, 'data');
    fast.write('pong');
    assert.equal(String((await echoed)[0]), 'pong');
    const closed = new Promise<void>((res) => server.close(() => res()));
    let serverClosed = false;
    void closed.then(() => (serverClosed = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(serverClosed, false, 'server.close waits for the moved connection');
    client.end();
    await once(fast, 'close');
    await closed;
  });

  it('reads into the same buffer while nothing holds the last chunk, and into a new one when something does', async () => {
    const { server, accepted, client } = await pair();
    const chunks: Buffer[] = [];
    let hold = false;
    open.push(readInto(accepted, (c) => chunks.push(c), () => hold, 4096));
    const send = async (text: string): Promise<void> => {
      const n = chunks.length;
      client.write(text);
      await until(() => chunks.length > n, `"${text}"`);
    };
    await send('first');
    await send('second');
    assert.equal(chunks[0]!.buffer, chunks[1]!.buffer, 'not held: the buffer is read into again');
    assert.equal(chunks[0]!.toString(), 'secon', 'so the first view (5 bytes) now shows the second read');
    hold = true;
    await send('third');
    await send('fourth');
    assert.notEqual(chunks[2]!.buffer, chunks[3]!.buffer, 'held: the next read goes to a new buffer');
    assert.equal(chunks[2]!.toString(), 'third', 'and the held chunk is left as it was');
    assert.equal(chunks[3]!.toString(), 'fourth');
  });

  it('keeps data events for a socket that is still writing', async () => {
    const { server, accepted, client } = await pair();
    client.pause(); // lets the accepted socket's big write queue up
    accepted.write(Buffer.alloc(16 * 1024 * 1024));
    assert.ok(accepted.writableLength > 0);
    const got: string[] = [];
    const same = readInto(accepted, (c) => got.push(c.toString()), () => false);
    assert.equal(same, accepted, 'not moved while a write is queued');
    client.write('hello');
    await until(() => got.join('') === 'hello', 'data events');
  });
});

describe('SocketWriter', () => {
  /** A moved server-side socket, a writer on it that counts drains, and what the client received. */
  async function writerPair(): Promise<{ fast: Socket; client: Socket; writer: SocketWriter; drains: () => number; received: () => Buffer; streamWrites: () => number }> {
    const { accepted, client } = await pair();
    const fast = readInto(accepted, () => {}, () => false);
    open.push(fast);
    let drains = 0;
    const writer = new SocketWriter(fast, () => drains++);
    // Count the writes that go through the socket's stream instead of straight to its handle.
    let streamWrites = 0;
    const write = fast.write.bind(fast);
    fast.write = ((...args: Parameters<Socket['write']>) => {
      streamWrites++;
      return write(...args);
    }) as Socket['write'];
    const got: Buffer[] = [];
    client.on('data', (c: Buffer) => got.push(c));
    return { fast, client, writer, drains: () => drains, received: () => Buffer.concat(got), streamWrites: () => streamWrites };
  }

  it('writes straight to the handle, in order, with write and writev', async () => {
    const { writer, received, streamWrites } = await writerPair();
    assert.equal(writer.write(Buffer.from('one,')), true);
    assert.equal(writer.writev([Buffer.from('two,'), Buffer.from('three,')]), true);
    assert.equal(writer.write(Buffer.from('four')), true);
    assert.equal(writer.busy, false, 'the kernel took everything at once');
    await until(() => received().toString() === 'one,two,three,four', 'every write');
    assert.equal(streamWrites(), 0, 'none through the Writable stream');
  });

  it('queues what the kernel cannot take: false, busy, every byte in order, then one drain', async () => {
    const { client, writer, drains, received } = await writerPair();
    client.pause();
    const block = (i: number): Buffer => Buffer.alloc(256 * 1024, i);
    let i = 0;
    let queued = false;
    while (!queued && i < 200) queued = !writer.write(block(i++));
    assert.ok(queued, 'the kernel buffer fills up: a write says false');
    assert.equal(writer.busy, true);
    // More writes while queued keep their place, as a writev.
    writer.writev([block(i++), block(i++)]);
    assert.equal(drains(), 0);
    client.resume();
    const total = i * 256 * 1024;
    await until(() => received().length === total, 'all queued bytes');
    await until(() => drains() === 1, 'the drain');
    assert.equal(writer.busy, false);
    const all = received();
    for (let b = 0; b < i; b++) assert.equal(all[b * 256 * 1024 + 1000], b & 0xff, `block ${b} in its place`);
  });

  it('writes through the stream a socket whose stream already holds data, keeping the order', async () => {
    const { accepted, client } = await pair();
    client.pause();
    const big = Buffer.alloc(8 * 1024 * 1024, 1);
    accepted.write(big);
    assert.ok(accepted.writableLength > 0, 'the stream holds data');
    let streamWrites = 0;
    const write = accepted.write.bind(accepted);
    accepted.write = ((...args: Parameters<Socket['write']>) => (streamWrites++, write(...args))) as Socket['write'];
    const writer = new SocketWriter(accepted, () => {});
    writer.write(Buffer.from('after'));
    assert.equal(streamWrites, 1, 'through the stream');
    let got = 0;
    let tail = '';
    client.on('data', (c: Buffer) => {
      got += c.length;
      tail = (tail + c.toString('latin1')).slice(-5);
    });
    client.resume();
    await until(() => got === big.length + 5, 'every byte');
    assert.equal(tail, 'after', 'after what the stream held');
  });

  it('ends the socket after every direct write', async () => {
    const { client, writer, received } = await writerPair();
    const ended = once(client, 'end');
    writer.write(Buffer.from('last words'));
    writer.end(Buffer.from('.'));
    await ended;
    assert.equal(received().toString(), 'last words.');
  });

  it('destroys the socket with the error of a failed write', async () => {
    const { fast, client, writer } = await writerPair();
    fast.pause(); // not reading: only the writes see the reset
    client.resetAndDestroy();
    await new Promise((r) => setTimeout(r, 50));
    const failed = once(fast, 'error') as Promise<[NodeJS.ErrnoException]>;
    for (let k = 0; k < 10 && !fast.destroyed; k++) writer.write(Buffer.alloc(1024));
    const [err] = await failed;
    assert.match(String(err.code), /^(EPIPE|ECONNRESET)$/);
    assert.match(err.message, /^write (EPIPE|ECONNRESET)$/);
    assert.equal(fast.destroyed, true);
  });
});
