/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it, both sides:
 * the proxy is the server for its clients and the client of its upstreams.
 * PostgreSQL ignores the SCRAM user name (the startup packet names the user) and Gatehouse does
 * not offer channel binding (SCRAM-SHA-256-PLUS). Only salted verifiers are ever stored:
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, the format of pg_authid.
 * https://www.postgresql.org/docs/current/sasl-authentication.html
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { saslprep } from './saslprep.js';

export const SCRAM_MECHANISM = 'SCRAM-SHA-256';
export const DEFAULT_ITERATIONS = 4096;

export interface ScramVerifier {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** Raised for any malformed or failed SCRAM exchange; the message never names a secret. */
export class ScramError extends Error {
  override readonly name = 'ScramError';
}

const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

function saltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(saslprep(password), salt, iterations, 32, 'sha256');
}

/** Build a verifier for a password (what `gatehouse user add` stores). */
export function createVerifier(password: string, iterations = DEFAULT_ITERATIONS, salt = randomBytes(16)): string {
  const salted = saltedPassword(password, salt, iterations);
  const storedKey = sha256(hmac(salted, 'Client Key'));
  const serverKey = hmac(salted, 'Server Key');
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** Parse a stored verifier; returns null when the text is not one. */
export function parseVerifier(text: string): ScramVerifier | null {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(text);
  if (!m) return null;
  const iterations = Number(m[1]);
  const storedKey = Buffer.from(m[3]!, 'base64');
  const serverKey = Buffer.from(m[4]!, 'base64');
  if (!(iterations >= 1) || storedKey.length !== 32 || serverKey.length !== 32) return null;
  return { iterations, salt: Buffer.from(m[2]!, 'base64'), storedKey, serverKey };
}

/** A deterministic decoy verifier for unknown users, so the exchange does not reveal whether a user exists. */
export function decoyVerifier(user: string, secret: Buffer): ScramVerifier {
  const salt = hmac(secret, `salt:${user}`).subarray(0, 16);
  return { iterations: DEFAULT_ITERATIONS, salt, storedKey: hmac(secret, `stored:${user}`), serverKey: hmac(secret, `server:${user}`) };
}

function attributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq !== 1) throw new ScramError('malformed SCRAM attribute');
    out.set(part[0]!, part.slice(2));
  }
  return out;
}

/** Server side of one exchange. */
export class ScramServer {
  readonly #verifier: ScramVerifier;
  #clientFirstBare = '';
  #serverFirst = '';
  #nonce = '';
  #gs2 = '';

  constructor(verifier: ScramVerifier) {
    this.#verifier = verifier;
  }

  /** Handle client-first-message; returns server-first-message. */
  first(clientFirst: string): string {
    // gs2-header: "n,," (no binding) or "y,," (client could bind, thinks we can't). "p=" is refused.
    const m = /^([ny]),(?:a=[^,]*)?,(.*)$/.exec(clientFirst);
    if (!m) throw new ScramError('unsupported SCRAM channel binding or malformed client-first-message');
    this.#gs2 = clientFirst.slice(0, clientFirst.length - m[2]!.length);
    this.#clientFirstBare = m[2]!;
    const attrs = attributes(this.#clientFirstBare);
    const clientNonce = attrs.get('r');
    if (!clientNonce || !attrs.has('n')) throw new ScramError('malformed client-first-message');
    this.#nonce = clientNonce + randomBytes(18).toString('base64');
    const v = this.#verifier;
    this.#serverFirst = `r=${this.#nonce},s=${v.salt.toString('base64')},i=${v.iterations}`;
    return this.#serverFirst;
  }

  /** Handle client-final-message; returns server-final-message, or throws ScramError if the proof is wrong. */
  final(clientFinal: string): string {
    const proofAt = clientFinal.lastIndexOf(',p=');
    if (proofAt < 0) throw new ScramError('malformed client-final-message');
    const withoutProof = clientFinal.slice(0, proofAt);
    const attrs = attributes(withoutProof);
    if (attrs.get('c') !== Buffer.from(this.#gs2).toString('base64')) throw new ScramError('SCRAM channel binding mismatch');
    if (attrs.get('r') !== this.#nonce) throw new ScramError('SCRAM nonce mismatch');
    const proof = Buffer.from(clientFinal.slice(proofAt + 3), 'base64');
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    const v = this.#verifier;
    const clientSignature = hmac(v.storedKey, authMessage);
    if (proof.length !== clientSignature.length) throw new ScramError('password authentication failed');
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = proof[i]! ^ clientSignature[i]!;
    if (!timingSafeEqual(sha256(clientKey), v.storedKey)) throw new ScramError('password authentication failed');
    return `v=${hmac(v.serverKey, authMessage).toString('base64')}`;
  }
}

/** Client side of one exchange (upstream authentication). */
export class ScramClient {
  readonly #password: string;
  readonly #clientNonce = randomBytes(18).toString('base64');
  #clientFirstBare = '';
  #expectedServerSignature: Buffer | null = null;

  constructor(password: string) {
    this.#password = password;
  }

  first(): string {
    this.#clientFirstBare = `n=,r=${this.#clientNonce}`;
    return `n,,${this.#clientFirstBare}`;
  }

  /** Handle server-first-message; returns client-final-message. */
  final(serverFirst: string): string {
    const attrs = attributes(serverFirst);
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (!nonce || !nonce.startsWith(this.#clientNonce) || !salt || !(iterations >= 1)) {
      throw new ScramError('malformed server-first-message');
    }
    const salted = saltedPassword(this.#password, Buffer.from(salt, 'base64'), iterations);
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = sha256(clientKey);
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const clientSignature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!;
    this.#expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Check server-final-message: the server proves it knows the verifier too. */
  verify(serverFinal: string): void {
    const attrs = attributes(serverFinal);
    if (attrs.has('e')) throw new ScramError(`server rejected SCRAM authentication: ${attrs.get('e')}`);
    const sig = Buffer.from(attrs.get('v') ?? '', 'base64');
    const expected = this.#expectedServerSignature;
    if (!expected || sig.length !== expected.length || !timingSafeEqual(sig, expected)) {
      throw new ScramError('server signature mismatch');
    }
  }
}

/** The md5 password response: "md5" + md5(md5(password + user) + salt). */
export function md5Response(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password + user).digest('hex');
  return 'md5' + createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex');
}
