/**
 * The HMAC key of the `hash` masking function. Pseudonyms are stable for a key, so every node
 * that must give the same pseudonyms needs the same key: `masking.hash_key_env` or
 * `masking.hash_key_file`; otherwise `<state.dir>/masking.key` is created on first use.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { placeFile } from '../files.js';

/** Shortest key accepted, in bytes. */
const MIN_KEY = 16;

export function loadMaskingKey(loaded: LoadedConfig, env: NodeJS.ProcessEnv = process.env): Buffer {
  const m = loaded.config.masking;
  if (m.hash_key_env !== undefined && m.hash_key_file !== undefined) throw new ConfigError(`${loaded.file}: masking: give at most one of hash_key_env and hash_key_file`);
  let text: string;
  let where: string;
  if (m.hash_key_env !== undefined) {
    const v = env[m.hash_key_env];
    if (v === undefined || v === '') throw new ConfigError(`${loaded.file}: masking.hash_key_env: the environment variable ${m.hash_key_env} is not set`);
    text = v;
    where = `masking.hash_key_env (${m.hash_key_env})`;
  } else {
    const file = m.hash_key_file !== undefined ? resolve(dirname(loaded.file), m.hash_key_file) : join(loaded.stateDir, 'masking.key');
    where = m.hash_key_file !== undefined ? `masking.hash_key_file (${file})` : file;
    if (m.hash_key_file === undefined && !existsSync(file)) {
      // Appears whole or not at all (placeFile), so a process that starts alongside (a cluster
      // worker) never reads it half written; if another process created it first, that one is used.
      try {
        placeFile(file, `${randomBytes(32).toString('hex')}\n`, { replace: false, mode: 0o600 });
      } catch (err) {
        throw new ConfigError(`${loaded.file}: ${where}: cannot create the masking key: ${(err as NodeJS.ErrnoException).code}`);
      }
    }
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(`${loaded.file}: ${where}: cannot read the masking key: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const key = Buffer.from(text, 'utf8');
  if (key.length < MIN_KEY) throw new ConfigError(`${loaded.file}: ${where}: the masking key must have at least ${MIN_KEY} bytes`);
  return key;
}
