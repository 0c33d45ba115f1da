/**
 * Accumulating reader for the few messages of the connection handshake (startup packet,
 * authentication exchange). It copies, which is fine off the hot path; after the handshake the
 * leftover bytes are handed to the relay's FrameScanner.
 */
import { ProtocolError } from './errors.js';

/** Limit of the startup packet, as the server enforces (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET = 10000;
/** Limit of one handshake message (password, SASL, auth requests, parameter status). */
export const MAX_HANDSHAKE_MESSAGE = 65536;

export interface TaggedMessage {
  tag: number;
  /** The body, without tag and length. */
  body: Buffer;
}

export class HandshakeReader {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
  }

  get buffered(): number {
    return this.#buf.length;
  }

  /** An untagged packet (startup, SSLRequest, CancelRequest): the body after the length, or null if incomplete. */
  nextUntagged(): Buffer | null {
    if (this.#buf.length < 4) return null;
    const length = this.#buf.readInt32BE(0);
    if (length < 8 || length > MAX_STARTUP_PACKET) throw new ProtocolError(`invalid startup packet length ${length}`);
    if (this.#buf.length < length) return null;
    const body = this.#buf.subarray(4, length);
    this.#buf = this.#buf.subarray(length);
    return body;
  }

  /** A tagged message, or null if incomplete. */
  next(max = MAX_HANDSHAKE_MESSAGE): TaggedMessage | null {
    if (this.#buf.length < 5) return null;
    const tag = this.#buf[0]!;
    const length = this.#buf.readInt32BE(1);
    if (length < 4 || length > max) throw new ProtocolError(`invalid message length ${length} during the handshake`);
    if (this.#buf.length < 1 + length) return null;
    const body = this.#buf.subarray(5, 1 + length);
    this.#buf = this.#buf.subarray(1 + length);
    return { tag, body };
  }

  /** Whatever arrived after the handshake; the reader is empty afterwards. */
  takeRest(): Buffer {
    const rest = this.#buf;
    this.#buf = Buffer.alloc(0);
    return rest;
  }
}
