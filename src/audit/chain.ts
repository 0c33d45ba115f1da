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
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from '../errors.js';
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

/**
 * The writer thread's chaining: each body is encoded to UTF-8 once, right after its predecessor's
 * hash, so hashing reads those bytes and the store writes the same bytes (as text) without
 * another encoding; measured with bench/audit.ts, converting every body twice (for the hash and
 * for SQLite) was a fifth of the thread's time. The hashes equal chainHash's.
 */
export class ChainEncoder {
  #chunk = Buffer.allocUnsafe(0);
  #pos = 0;

  /** hash(n) of `body` after `prev`; `bodies[i]` receives the body's UTF-8 bytes (chunks are never reused). */
  next(prev: string, body: string, bodies: Buffer[], i: number): string {
    // A JS string needs at most 3 UTF-8 bytes per UTF-16 unit.
    const need = 64 + body.length * 3;
    if (this.#chunk.length - this.#pos < need) {
      this.#chunk = Buffer.allocUnsafe(Math.max(ENCODER_CHUNK, need));
      this.#pos = 0;
    }
    const chunk = this.#chunk;
    const start = this.#pos;
    chunk.write(prev, start, 64, 'latin1');
    const n = chunk.write(body, start + 64, 'utf8');
    this.#pos = start + 64 + n;
    bodies[i] = chunk.subarray(start + 64, start + 64 + n);
    return hash('sha256', chunk.subarray(start, start + 64 + n), 'hex');
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

/** Create an Ed25519 key pair: the private key (mode 0600) and its public key beside it. */
export function generateSigningKey(privatePath: string, opts: { force?: boolean } = {}): SigningKey {
  if (existsSync(privatePath) && !opts.force) throw new ConfigError(`${privatePath}: a signing key already exists (remove it first, or pass --force to replace it; events signed with the old key then need its public key to verify)`);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  mkdirSync(dirname(privatePath), { recursive: true });
  writeFileSync(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  chmodSync(privatePath, 0o600);
  writeFileSync(publicKeyPath(privatePath), publicKey.export({ type: 'spki', format: 'pem' }));
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
