/** Small helpers for the handshake phase: await data, errors and close on a socket. */
import type { Socket } from 'node:net';
import { HandshakeReader } from '../../protocol/postgres/index.js';

/** Reads handshake messages from a socket; resolves when enough bytes arrived. */
export class SocketReader {
  readonly reader = new HandshakeReader();
  readonly #socket: Socket;
  #waiter: (() => void) | null = null;
  #error: Error | null = null;
  #closed = false;

  readonly #onData = (chunk: Buffer): void => {
    this.reader.push(chunk);
    this.#wake();
  };
  readonly #onError = (err: Error): void => {
    this.#error = err;
    this.#wake();
  };
  readonly #onClose = (): void => {
    this.#closed = true;
    this.#wake();
  };

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', this.#onData);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  /** Wait until `take` returns non-null; rejects on socket error or close. */
  async next<T>(take: (r: HandshakeReader) => T | null): Promise<T> {
    for (;;) {
      const v = take(this.reader);
      if (v !== null) return v;
      if (this.#error) throw this.#error;
      if (this.#closed) throw new Error('connection closed during the handshake');
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  /** Stop listening (before the socket is handed to TLS or to the relay). */
  detach(): void {
    this.#socket.off('data', this.#onData);
    this.#socket.off('error', this.#onError);
    this.#socket.off('close', this.#onClose);
  }
}
