/**
 * Cursor over one message body. One reader per connection, rebound to each frame with
 * `setBuffer`; typed reads advance the cursor. Reads past the end throw `ProtocolError`.
 */
import { ProtocolError } from './errors.js';

export class BufferReader {
  #buf: Buffer = Buffer.alloc(0);
  #pos = 0;
  #end = 0;

  /** Rebind to `buf[start, end)`. */
  setBuffer(buf: Buffer, start = 0, end = buf.length): this {
    this.#buf = buf;
    this.#pos = start;
    this.#end = end;
    return this;
  }

  /** Bytes left before the end of the bound range. */
  get remaining(): number {
    return this.#end - this.#pos;
  }

  get position(): number {
    return this.#pos;
  }

  #need(n: number): void {
    if (this.#pos + n > this.#end) throw new ProtocolError('message is shorter than its contents require');
  }

  byte(): number {
    this.#need(1);
    return this.#buf[this.#pos++]!;
  }

  int16(): number {
    this.#need(2);
    const v = this.#buf.readInt16BE(this.#pos);
    this.#pos += 2;
    return v;
  }

  int32(): number {
    this.#need(4);
    const v = this.#buf.readInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  uint32(): number {
    this.#need(4);
    const v = this.#buf.readUInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  /** NUL-terminated string; the terminator must lie inside the bound range. */
  cstring(): string {
    const nul = this.#buf.indexOf(0, this.#pos);
    if (nul < 0 || nul >= this.#end) throw new ProtocolError('string is not NUL-terminated');
    const s = this.#buf.toString('utf8', this.#pos, nul);
    this.#pos = nul + 1;
    return s;
  }

  /** A view (no copy) of the next `n` bytes. */
  bytes(n: number): Buffer {
    if (n < 0) throw new ProtocolError('negative length');
    this.#need(n);
    const v = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return v;
  }

  /** A view of everything left. */
  rest(): Buffer {
    const v = this.#buf.subarray(this.#pos, this.#end);
    this.#pos = this.#end;
    return v;
  }
}
