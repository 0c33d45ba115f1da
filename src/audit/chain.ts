/**
 * Tamper evidence: the per-writer SHA-256 hash chain and Ed25519-signed checkpoints.
 *
 *   hash(1) = SHA-256(GENESIS || body(1))
 *   hash(n) = SHA-256(hash(n-1) || body(n))
 *
 * where hashes are lower-case hex (64 ASCII characters), GENESIS is 64 zeros, and body(n) is the
 * canonical JSON of event n (UTF-8). A checkpoint signs the canonical JSON
 * of {hash, key_id, node, seq, ts}: whoever holds the public key can check that the chain up to
 * `seq` is the one the writer produced, so changing, removing, inserting or reordering any event
 * up to a checkpoint, or cutting events a checkpoint covers, is detected.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, hash, sign, verify, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { placeFile } from '../files.js';
import { canonicalJson } from './event.js';

/** The `prev` of a writer's first event. */
export const GENESIS = '0'.repeat(64);

/**
 * hash(n), hex, from hash(n-1) (hex) and the canonical body of event n. Written for speed: the
 * one-shot crypto.hash is 0.8 µs per 600-byte event against 2.3 µs for createHash().update()
 * (measured here), and hex in and out avoids two conversions per event.
 */
export function chainHash(prev: string, body: string): string {
  return hash('sha256', prev + body, 'hex');
}

/** Bytes per chunk of ChainEncoder output (a body never spans chunks; a larger one gets its own). */
const ENCODER_CHUNK = 1 << 20;
const POW10 = [1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000];

/** How many digits `n` < 10^8 has. */
function width(n: number): number {
  let count = 1;
  while (count < 8 && n >= POW10[count]!) count++;
  return count;
}

/**
 * The writer thread's chaining, in bytes. Bodies are written as UTF-8 into a chunk, each followed
 * by its hash in hex, so the bytes hashed for event n (hash(n-1) || body(n)) already lie side by
 * side and the store writes the same body bytes as text without another encoding. A body is
 * either a string (`text`) or assembled piece by piece (`begin`, `bytes`, `ascii`, `utf8`, `int`,
 * `end`) from fragments encoded once, as compact statement events are (src/audit/compact.ts):
 * measured with bench/audit.ts, building each body as a string and then encoding it was a fifth
 * of the thread's time. The hashes equal chainHash's.
 */
export class ChainEncoder {
  #chunk: Buffer;
  /** Where the body being built starts; the previous hash is the 64 bytes before it. */
  #start = 64;
  #pos = 64;

  /** Start after the chain's head `prev` (hex). */
  constructor(prev: string) {
    this.#chunk = Buffer.allocUnsafe(ENCODER_CHUNK);
    this.#chunk.write(prev, 0, 64, 'latin1');
  }

  /** Begin a body of at most `max` bytes. */
  begin(max: number): void {
    const pos = this.#pos;
    if (this.#chunk.length - pos < max + 64) {
      // A new chunk, starting with the previous hash; earlier bodies keep the old one.
      const chunk = Buffer.allocUnsafe(Math.max(ENCODER_CHUNK, max + 128));
      this.#chunk.copy(chunk, 0, pos - 64, pos);
      this.#chunk = chunk;
      this.#pos = 64;
    }
    this.#start = this.#pos;
  }

  /** Bytes of the body begun so far. */
  get written(): number {
    return this.#pos - this.#start;
  }

  bytes(b: Uint8Array): void {
    this.#chunk.set(b, this.#pos);
    this.#pos += b.length;
  }

  /** A string known to be ASCII (keys, command tags, numbers). */
  ascii(s: string): void {
    const c = this.#chunk;
    let p = this.#pos;
    for (let i = 0; i < s.length; i++) c[p++] = s.charCodeAt(i);
    this.#pos = p;
  }

  utf8(s: string): void {
    this.#pos += this.#chunk.write(s, this.#pos, 'utf8');
  }

  /** A non-negative integer, as JSON writes it. */
  int(n: number): void {
    if (!(n >= 0 && n <= Number.MAX_SAFE_INTEGER && Math.floor(n) === n)) {
      this.ascii(JSON.stringify(n));
      return;
    }
    // In two parts below 10^8, so the digits come from 32-bit integer arithmetic.
    if (n < 1e8) {
      this.#digits(n, width(n));
    } else {
      const high = Math.floor(n / 1e8);
      this.#digits(high, width(high));
      this.#digits(n - high * 1e8, 8);
    }
  }

  /**
   * A number as JSON writes it. Durations, rounded to microseconds, take a short path: a value
   * that is exactly k/1000 is written as its integer part and up to three decimals, which is
   * the shortest decimal that reads back as the same double, as JSON's is.
   */
  decimal(x: number): void {
    const k = Math.round(x * 1000);
    if (!(x >= 0 && k / 1000 === x && k <= Number.MAX_SAFE_INTEGER)) {
      this.ascii(JSON.stringify(x));
      return;
    }
    const whole = Math.floor(k / 1000);
    this.int(whole);
    let frac = k - whole * 1000;
    if (frac === 0) return;
    this.#chunk[this.#pos++] = 46; // '.'
    let digits = 3;
    while (frac % 10 === 0) {
      frac /= 10;
      digits--;
    }
    // Leading zeros of the fraction included (0.05 -> "05").
    this.#digits(frac, digits);
  }

  /** `v` < 10^8 as `count` digits, zero-padded on the left. */
  #digits(v: number, count: number): void {
    const c = this.#chunk;
    let n = v | 0;
    let p = this.#pos + count;
    this.#pos = p;
    for (let k = 0; k < count; k++) {
      const q = (n / 10) | 0;
      c[--p] = 48 + n - q * 10;
      n = q;
    }
  }

  /** End the body begun: `bodies[i]` receives its bytes; returns its chain hash (hex). */
  end(bodies: Buffer[], i: number): string {
    const c = this.#chunk;
    const start = this.#start;
    const end = this.#pos;
    bodies[i] = c.subarray(start, end);
    const hex = hash('sha256', c.subarray(start - 64, end), 'hex');
    c.write(hex, end, 64, 'latin1');
    this.#pos = end + 64;
    return hex;
  }

  /** A whole body given as text. */
  text(body: string, bodies: Buffer[], i: number): string {
    // A JS string needs at most 3 UTF-8 bytes per UTF-16 unit.
    this.begin(body.length * 3);
    this.utf8(body);
    return this.end(bodies, i);
  }
}

/** A signed statement that a writer's chain reached `seq` with `hash`. */
export interface Checkpoint {
  readonly node: string;
  readonly seq: number;
  /** hash(seq), hex. */
  readonly hash: string;
  /** UTC epoch milliseconds when signed. */
  readonly ts: number;
  /** Identifies the signing key: first 16 hex digits of SHA-256 of its SPKI DER encoding. */
  readonly key_id: string;
  /** Ed25519 signature of the canonical payload, base64. */
  readonly signature: string;
}

/** The bytes a checkpoint's signature covers. */
export function checkpointPayload(c: Omit<Checkpoint, 'signature'>): Buffer {
  return Buffer.from(canonicalJson({ hash: c.hash, key_id: c.key_id, node: c.node, seq: c.seq, ts: c.ts }), 'utf8');
}

export function keyId(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

/** A loaded signing key. */
export interface SigningKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly keyId: string;
}

export function signCheckpoint(key: SigningKey, node: string, seq: number, hash: string, ts: number): Checkpoint {
  const unsigned = { node, seq, hash, ts, key_id: key.keyId };
  return { ...unsigned, signature: sign(null, checkpointPayload(unsigned), key.privateKey).toString('base64') };
}

/** Whether the checkpoint's signature is valid under `publicKey`. */
export function checkCheckpoint(c: Checkpoint, publicKey: KeyObject): boolean {
  try {
    return verify(null, checkpointPayload(c), publicKey, Buffer.from(c.signature, 'base64'));
  } catch {
    return false;
  }
}

/** Path of the public key beside a private key file. */
export function publicKeyPath(privatePath: string): string {
  return privatePath.endsWith('.key') ? `${privatePath.slice(0, -4)}.pub` : `${privatePath}.pub`;
}

/** Thrown by `generateSigningKey` when the private key file exists and `force` is not set. */
export class SigningKeyExists extends ConfigError {}

/**
 * Create an Ed25519 key pair: the private key (mode 0600) and its public key beside it, each
 * appearing whole (placeFile). Without `force` the private key is created only if there is none:
 * of two processes that start together on a fresh state directory one creates it and the other
 * gets `SigningKeyExists` (and loads the winner's key) instead of both signing with their own.
 */
export function generateSigningKey(privatePath: string, opts: { force?: boolean } = {}): SigningKey {
  const exists = (): SigningKeyExists =>
    new SigningKeyExists(`${privatePath}: a signing key already exists (remove it first, or pass --force to replace it; events signed with the old key then need its public key to verify)`);
  if (existsSync(privatePath) && !opts.force) throw exists();
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  let placed: boolean;
  try {
    placed = placeFile(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { replace: opts.force === true, mode: 0o600 });
    if (placed) placeFile(publicKeyPath(privatePath), publicKey.export({ type: 'spki', format: 'pem' }), { replace: true });
  } catch (err) {
    throw new ConfigError(`${privatePath}: cannot create the audit signing key: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (check state.dir, or audit.signing_key)`);
  }
  if (!placed) throw exists();
  return { privateKey, publicKey, keyId: keyId(publicKey) };
}

/** Load the signing key; `key` names the config key in errors. */
export function loadSigningKey(privatePath: string, key = 'audit.signing_key'): SigningKey {
  let pem: string;
  try {
    pem = readFileSync(privatePath, 'utf8');
  } catch (err) {
    throw new ConfigError(`${key}: cannot read the audit signing key "${privatePath}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (create one with \`gatehouse keys generate\`)`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new ConfigError(`${key}: "${privatePath}" is not a PEM private key`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new ConfigError(`${key}: "${privatePath}" is a ${privateKey.asymmetricKeyType} key; expected an Ed25519 key`);
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyId(publicKey) };
}

/** Load a public key (PEM, SPKI) given to an auditor. */
export function loadPublicKey(path: string): { key: KeyObject; keyId: string } {
  let key: KeyObject;
  try {
    key = createPublicKey(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`--public-key: cannot read an Ed25519 public key from "${path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new ConfigError(`--public-key: "${path}" is a ${key.asymmetricKeyType} key; expected Ed25519`);
  return { key, keyId: keyId(key) };
}

export function publicKeyFromPem(pem: string): KeyObject {
  return createPublicKey(pem);
}
