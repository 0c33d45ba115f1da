/**
 * Rewrites DataRows with a row transform (masking), one frame at a time, for the relay.
 *
 * Written for speed (bench/masking-proxy.ts): value offsets are read without making views; only
 * the columns the transform touches become views, and with a ranged transform not even those.
 * When every masked value keeps its length the frame is written over where it lies and goes out
 * as it is; otherwise the new frame is assembled in an arena shared by the rows that follow each
 * other (one allocation per 64 KB, not per row). Arenas are never reused: socket writes hold on
 * to them.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html (DataRow)
 */
import { copyBytes } from '../../bytes.js';
import { BackendCode, ProtocolError } from '../../protocol/postgres/index.js';
import type { ResultColumn, RowTransform } from '../../session/types.js';

/** Size of the buffers rewritten DataRows are assembled in. */
const ARENA_BYTES = 64 * 1024;

export class RowRewriter {
  /** Where rewritten rows are assembled; `rewrite` returning true put the row at [rowFrom, rowTo). */
  arena: Buffer = Buffer.alloc(0);
  rowFrom = 0;
  rowTo = 0;
  #arenaPos = 0;
  /** A DataRow's values as read, to tell whether the transform replaced any (reused per row). */
  readonly #values: Array<Buffer | null> = [];
  /** A DataRow's value offsets and lengths (-1 = NULL), reused per row. */
  #offsets = new Int32Array(64);
  /** Output lengths of the touched values of the row being rewritten (ranged transforms). */
  #lengths = new Int32Array(16);

  /**
   * Apply `transform` to the DataRow frame[start, end). False: the frame goes out as it is (it
   * may have been masked in place). True: the new row is arena[rowFrom, rowTo).
   * Throws ProtocolError on a malformed row.
   */
  rewrite(transform: RowTransform, columns: readonly ResultColumn[], frame: Buffer, start: number, end: number): boolean {
    let p = start + 5;
    if (p + 2 > end) throw new ProtocolError('message is shorter than its contents require');
    const n = (frame[p]! << 8) | frame[p + 1]!;
    p += 2;
    let offs = this.#offsets;
    if (offs.length < 2 * n) offs = this.#offsets = new Int32Array(2 * n + 16);
    for (let i = 0; i < n; i++) {
      if (p + 4 > end) throw new ProtocolError('message is shorter than its contents require');
      // Inlined big-endian int32 (readInt32BE's checks cost more than the read, per value per row).
      const len = (frame[p]! << 24) | (frame[p + 1]! << 16) | (frame[p + 2]! << 8) | frame[p + 3]!;
      p += 4;
      if (len > end - p) throw new ProtocolError('message is shorter than its contents require');
      offs[2 * i] = p;
      offs[2 * i + 1] = len;
      if (len > 0) p += len;
    }
    const touches = transform.touches;
    const ranged = transform.ranged;
    if (ranged !== undefined && touches !== undefined) {
      let lens = this.#lengths;
      if (lens.length < touches.length) lens = this.#lengths = new Int32Array(touches.length + 8);
      if (ranged.plan(frame, offs, n, lens)) return this.#writeRanged(ranged, touches, lens, frame, start, end, offs, n);
    }
    return this.#rewriteValues(transform, columns, frame, offs, n);
  }

  /** Room for `size` bytes in the arena; returns where they go. */
  #reserve(size: number): number {
    if (this.arena.length - this.#arenaPos < size) {
      this.arena = Buffer.allocUnsafe(Math.max(ARENA_BYTES, size));
      this.#arenaPos = 0;
    }
    return this.#arenaPos;
  }

  #done(from: number, to: number): true {
    this.#arenaPos = to;
    this.rowFrom = from;
    this.rowTo = to;
    return true;
  }

  /** The general path: the transform gets the touched values as Buffers and returns the row's values. */
  #rewriteValues(transform: RowTransform, columns: readonly ResultColumn[], frame: Buffer, offs: Int32Array, n: number): boolean {
    const touches = transform.touches;
    const values: Array<Buffer | null> = new Array(n);
    const before = this.#values;
    const count = touches === undefined ? n : touches.length;
    for (let k = 0; k < count; k++) {
      const i = touches === undefined ? k : touches[k]!;
      if (i >= n) continue;
      const len = offs[2 * i + 1]!;
      values[i] = before[i] = len < 0 ? null : frame.subarray(offs[2 * i]!, offs[2 * i]! + len);
    }
    const out = transform(values, columns);
    let same = out.length === n;
    if (touches === undefined) for (let i = 0; same && i < n; i++) same = out[i] === before[i];
    else for (let k = 0; same && k < touches.length; k++) same = touches[k]! >= n || out[touches[k]!] === before[touches[k]!];
    if (same) return false;
    // Size of the new frame: tag, length, count, then each value's length and bytes. Columns the
    // transform does not touch were never read into `values` (still undefined): copied from the frame.
    let size = 7;
    for (let i = 0; i < out.length; i++) {
      const v = i < n ? out[i] : (out[i] ?? null);
      size += 4 + (v === undefined ? Math.max(0, offs[2 * i + 1]!) : v === null ? 0 : v.length);
    }
    const o0 = this.#reserve(size);
    const arena = this.arena;
    let o = o0;
    arena[o] = BackendCode.DataRow;
    writeInt32(arena, o + 1, size - 1);
    arena[o + 5] = out.length >>> 8;
    arena[o + 6] = out.length;
    o += 7;
    for (let i = 0; i < out.length; i++) {
      const v = i < n ? out[i] : (out[i] ?? null);
      if (v === undefined) {
        const len = offs[2 * i + 1]!;
        writeInt32(arena, o, len);
        o += 4;
        if (len > 0) o += frame.copy(arena, o, offs[2 * i]!, offs[2 * i]! + len);
      } else if (v === null) {
        writeInt32(arena, o, -1);
        o += 4;
      } else {
        writeInt32(arena, o, v.length);
        o += 4;
        o += v.copy(arena, o);
      }
    }
    return this.#done(o0, o);
  }

  /**
   * Write a planned ranged rewrite: over the frame itself when every value keeps its length,
   * else into the arena, copying the untouched stretches between touched values in one piece each.
   */
  #writeRanged(ranged: NonNullable<RowTransform['ranged']>, touches: readonly number[], lens: Int32Array, frame: Buffer, start: number, end: number, offs: Int32Array, n: number): boolean {
    const writers = ranged.writers;
    let delta = 0;
    let same = true;
    for (let k = 0; k < touches.length; k++) {
      const i = touches[k]!;
      if (i >= n) continue;
      const old = offs[2 * i + 1]!;
      const now = lens[k]!;
      if (now !== old) same = false;
      delta += Math.max(now, 0) - Math.max(old, 0);
    }
    if (same) {
      for (let k = 0; k < touches.length; k++) {
        const i = touches[k]!;
        if (i < n && lens[k]! >= 0) writers[k]!(frame, frame, offs[2 * i]!);
      }
      return false;
    }
    const size = end - start + delta;
    const o0 = this.#reserve(size);
    const arena = this.arena;
    arena[o0] = BackendCode.DataRow;
    writeInt32(arena, o0 + 1, size - 1);
    let o = o0 + 5;
    // From the column count on: untouched stretches are copied whole; each touched value gets
    // its new length and its masked bytes.
    let from = start + 5;
    for (let k = 0; k < touches.length; k++) {
      const i = touches[k]!;
      if (i >= n) continue;
      const header = offs[2 * i]! - 4;
      if (header > from) o += copyBytes(frame, from, header, arena, o);
      const len = lens[k]!;
      writeInt32(arena, o, len);
      o += 4;
      if (len > 0) {
        writers[k]!(frame, arena, o);
        o += len;
      }
      from = offs[2 * i]! + Math.max(offs[2 * i + 1]!, 0);
    }
    if (end > from) o += copyBytes(frame, from, end, arena, o);
    return this.#done(o0, o);
  }
}

/** Big-endian int32 at buf[at..] without Buffer#writeInt32BE's range checks (callers sized the buffer). */
function writeInt32(buf: Buffer, at: number, v: number): void {
  buf[at] = v >>> 24;
  buf[at + 1] = v >>> 16;
  buf[at + 2] = v >>> 8;
  buf[at + 3] = v;
}
