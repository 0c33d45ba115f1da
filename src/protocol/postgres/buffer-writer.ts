/**
 * One reusable writer per connection for messages the proxy itself builds (handshake, errors,
 * notices). The header is reserved up front and its length backfilled by `flush`; the buffer
 * grows ~1.5x and is reset if an encode throws. The relay path never uses it: relayed bytes
 * are forwarded as views of the chunks they arrived in.
 */
export class BufferWriter {
  #buf: Buffer;
  #pos = 0;
  #start = 0;
  #untagged = false;

  constructor(size = 1024) {
    this.#buf = Buffer.allocUnsafe(size);
  }

  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#pos + n, (this.#buf.length * 1.5) | 0));
    this.#buf.copy(next, 0, 0, this.#pos);
    this.#buf = next;
  }

  /** Begin a tagged message: tag byte and a 4-byte length placeholder. Tag 0 = untagged (startup). */
  begin(tag: number): this {
    this.#start = this.#pos;
    this.#untagged = tag === 0;
    this.#ensure(5);
    if (tag !== 0) this.#buf[this.#pos++] = tag;
    this.#pos += 4;
    return this;
  }

  byte(v: number): this {
    this.#ensure(1);
    this.#buf[this.#pos++] = v;
    return this;
  }

  int16(v: number): this {
    this.#ensure(2);
    this.#buf.writeInt16BE(v, this.#pos);
    this.#pos += 2;
    return this;
  }

  int32(v: number): this {
    this.#ensure(4);
    this.#buf.writeInt32BE(v | 0, this.#pos);
    this.#pos += 4;
    return this;
  }

  cstring(s: string): this {
    const n = Buffer.byteLength(s);
    this.#ensure(n + 1);
    this.#buf.write(s, this.#pos, n, 'utf8');
    this.#pos += n;
    this.#buf[this.#pos++] = 0;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.#ensure(b.length);
    this.#buf.set(b, this.#pos);
    this.#pos += b.length;
    return this;
  }

  /** Close the message begun with `begin`: backfill its length, which excludes the tag byte. */
  close(): this {
    const lenAt = this.#untagged ? this.#start : this.#start + 1;
    this.#buf.writeInt32BE(this.#pos - lenAt, lenAt);
    return this;
  }

  /** Take the bytes written so far (a copy, safe to hand to a socket) and reset. */
  flush(): Buffer {
    const out = Buffer.from(this.#buf.subarray(0, this.#pos));
    this.#pos = 0;
    this.#start = 0;
    return out;
  }

  /** Drop whatever was written since the last flush (after an encode error). */
  reset(): void {
    this.#pos = 0;
    this.#start = 0;
  }
}
