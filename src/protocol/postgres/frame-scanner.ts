/**
 * Zero-copy framing for the relay path, one instance per direction of a connection.
 *
 * Every message is `tag(1) | length(4, includes itself, excludes the tag) | body`.
 * The scanner walks the headers of each chunk as it arrives. Frames whose tag is not marked
 * "held" are only counted and stay inside one contiguous slice of the chunk that is forwarded
 * with a single write, however many messages it holds. Held frames are handed whole to the
 * handler (a view when the frame lies inside one chunk; a copy only when it spans chunks),
 * which answers FORWARD (unchanged; still no extra write), DROP, a replacement buffer, or
 * PAUSE (an asynchronous decision: the rest of the stream waits until `resume`).
 * https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
 */
import { ProtocolError } from './errors.js';

/** Forward the held frame unchanged. */
export const FORWARD = undefined;
/** Drop the held frame. */
export const DROP = null;
/** Stop here; the handler calls `resume(output)` later. */
export const PAUSE: unique symbol = Symbol('pause');

export type FrameVerdict = typeof FORWARD | typeof DROP | typeof PAUSE | Buffer;

export interface FrameHandler {
  /**
   * A held frame, whole: `frame[start, end)` covers tag, length and body.
   * The view is valid only during the call unless forwarded.
   */
  onFrame(tag: number, frame: Buffer, start: number, end: number): FrameVerdict;
  /** A frame that is not held, seen at its header (for counting). */
  onPassed(tag: number): void;
  /** Output, in order. The buffer is never reused by the scanner, so it may be queued. */
  emit(chunk: Buffer): void;
}

export interface FrameScannerOptions {
  /** Largest frame accepted at all (bytes after the tag). */
  maxFrame: number;
  /** Largest held frame: those are buffered whole. */
  maxHeld: number;
}

export class FrameScanner {
  /** held[tag] = 1 marks tags whose frames go to `onFrame`; may be changed between chunks. */
  readonly held = new Uint8Array(256);
  readonly #h: FrameHandler;
  readonly #maxFrame: number;
  readonly #maxHeld: number;

  /** Body bytes of a passed frame still to come. */
  #skip = 0;
  /** A partial header carried over from the previous chunk. */
  readonly #header = Buffer.alloc(5);
  #headerLen = 0;
  /** A held frame that spans chunks, being collected. */
  #pending: Buffer | null = null;
  #pendingLen = 0;
  /** While paused: chunks not yet scanned, the first from `#stashPos`. */
  #paused = false;
  #stash: Buffer[] = [];
  #stashPos = 0;
  #failed = false;

  constructor(handler: FrameHandler, opts: FrameScannerOptions) {
    this.#h = handler;
    this.#maxFrame = opts.maxFrame;
    this.#maxHeld = opts.maxHeld;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** True when no frame is partly received. */
  get atBoundary(): boolean {
    return this.#skip === 0 && this.#headerLen === 0 && this.#pending === null;
  }

  /** Scan one chunk. Throws ProtocolError on a malformed frame; the scanner is unusable after. */
  push(chunk: Buffer): void {
    if (this.#failed) return;
    if (this.#paused) {
      this.#stash.push(chunk);
      return;
    }
    try {
      this.#scan(chunk, 0);
    } catch (err) {
      this.#failed = true;
      throw err;
    }
  }

  /** Continue after PAUSE: emit `output` in place of the held frame, then scan what waited. */
  resume(output: Buffer | null): void {
    if (!this.#paused || this.#failed) return;
    this.#paused = false;
    if (output) this.#h.emit(output);
    try {
      while (!this.#paused && this.#stash.length > 0) {
        const chunk = this.#stash.shift()!;
        const pos = this.#stashPos;
        this.#stashPos = 0;
        this.#scan(chunk, pos);
      }
    } catch (err) {
      this.#failed = true;
      throw err;
    }
  }

  #checkLength(tag: number, length: number): void {
    if (length < 4) throw new ProtocolError(`invalid message length ${length} for message type 0x${tag.toString(16)}`);
    if (length > this.#maxFrame) throw new ProtocolError(`message of ${length} bytes exceeds the limit (${this.#maxFrame} bytes)`);
    if (this.held[tag] === 1 && length > this.#maxHeld) {
      throw new ProtocolError(`message of ${length} bytes exceeds the limit (${this.#maxHeld} bytes)`);
    }
  }

  /** Apply the handler's verdict on a frame found inside `chunk`; returns false on PAUSE. */
  #scan(chunk: Buffer, pos: number): void {
    const h = this.#h;
    const len = chunk.length;
    let flushFrom = pos;

    while (pos < len) {
      // 1. Body of a passed frame that began in an earlier chunk.
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, len - pos);
        this.#skip -= n;
        pos += n;
        continue;
      }

      // 2. A held frame that spans chunks: copy until whole.
      if (this.#pending !== null) {
        const p = this.#pending;
        const n = Math.min(p.length - this.#pendingLen, len - pos);
        chunk.copy(p, this.#pendingLen, pos, pos + n);
        this.#pendingLen += n;
        pos += n;
        flushFrom = pos;
        if (this.#pendingLen < p.length) continue;
        this.#pending = null;
        this.#pendingLen = 0;
        const v = h.onFrame(p[0]!, p, 0, p.length);
        if (v === PAUSE) return this.#pause(chunk, pos);
        if (v === FORWARD) h.emit(p);
        else if (v !== DROP) h.emit(v);
        continue;
      }

      // 3. A header split across chunks (rare): collect its five bytes by copy.
      if (this.#headerLen > 0 || len - pos < 5) {
        if (this.#headerLen === 0 && flushFrom < pos) h.emit(chunk.subarray(flushFrom, pos));
        const n = Math.min(5 - this.#headerLen, len - pos);
        chunk.copy(this.#header, this.#headerLen, pos, pos + n);
        this.#headerLen += n;
        pos += n;
        flushFrom = pos;
        if (this.#headerLen < 5) continue;
        this.#headerLen = 0;
        const tag = this.#header[0]!;
        const length = this.#header.readInt32BE(1);
        this.#checkLength(tag, length);
        if (this.held[tag] === 1) {
          this.#pending = Buffer.allocUnsafe(1 + length);
          this.#header.copy(this.#pending, 0, 0, 5);
          this.#pendingLen = 5;
          if (length === 4) {
            // Body-less frame: already whole.
            const p = this.#pending;
            this.#pending = null;
            this.#pendingLen = 0;
            const v = h.onFrame(tag, p, 0, 5);
            if (v === PAUSE) return this.#pause(chunk, pos);
            if (v === FORWARD) h.emit(p);
            else if (v !== DROP) h.emit(v);
          }
        } else {
          h.onPassed(tag);
          h.emit(Buffer.from(this.#header));
          this.#skip = length - 4;
        }
        continue;
      }

      // 4. The common case: a whole header inside this chunk.
      const tag = chunk[pos]!;
      const length = chunk.readInt32BE(pos + 1);
      this.#checkLength(tag, length);
      const end = pos + 1 + length;
      if (this.held[tag] !== 1) {
        h.onPassed(tag);
        if (end <= len) pos = end;
        else {
          this.#skip = end - len;
          pos = len;
        }
        continue;
      }
      if (end > len) {
        // Held frame spanning chunks: flush what precedes it, then collect a copy.
        if (flushFrom < pos) h.emit(chunk.subarray(flushFrom, pos));
        this.#pending = Buffer.allocUnsafe(1 + length);
        chunk.copy(this.#pending, 0, pos, len);
        this.#pendingLen = len - pos;
        pos = len;
        flushFrom = len;
        continue;
      }
      const v = h.onFrame(tag, chunk, pos, end);
      if (v === FORWARD) {
        // Unchanged: stays inside the contiguous slice, no extra write.
        pos = end;
        continue;
      }
      if (flushFrom < pos) h.emit(chunk.subarray(flushFrom, pos));
      pos = end;
      flushFrom = end;
      if (v === PAUSE) return this.#pause(chunk, pos);
      if (v !== DROP) h.emit(v);
    }

    if (flushFrom < len) h.emit(flushFrom === 0 ? chunk : chunk.subarray(flushFrom, len));
  }

  #pause(chunk: Buffer, pos: number): void {
    this.#paused = true;
    if (pos < chunk.length) {
      this.#stash.unshift(chunk);
      this.#stashPos = pos;
    }
  }
}
