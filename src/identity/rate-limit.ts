/**
 * Failed-authentication limiter: after `maxFailures` failures within `windowMs` for one user
 * name, or `maxFailuresPerAddress` for one source address, further attempts for that key are
 * refused until `lockoutMs` has passed. Other users and addresses are not slowed.
 */
export interface RateLimitOptions {
  readonly maxFailures: number;
  readonly maxFailuresPerAddress: number;
  readonly windowMs: number;
  readonly lockoutMs: number;
}

interface Entry {
  failures: number[];
  lockedUntil: number;
}

export class AuthRateLimiter {
  readonly #users = new Map<string, Entry>();
  readonly #addresses = new Map<string, Entry>();
  readonly #o: RateLimitOptions;

  constructor(o: RateLimitOptions) {
    this.#o = o;
  }

  /** Whether attempts for this user or from this address are currently refused. */
  locked(user: string, address: string, now = Date.now()): boolean {
    return (this.#users.get(user)?.lockedUntil ?? 0) > now || (this.#addresses.get(address)?.lockedUntil ?? 0) > now;
  }

  fail(user: string, address: string, now = Date.now()): void {
    this.#record(this.#users, user, this.#o.maxFailures, now);
    this.#record(this.#addresses, address, this.#o.maxFailuresPerAddress, now);
  }

  succeed(user: string): void {
    this.#users.delete(user);
  }

  #record(map: Map<string, Entry>, key: string, max: number, now: number): void {
    let e = map.get(key);
    if (e === undefined) {
      if (map.size > 100_000) map.clear(); // bounded under a spraying attack
      e = { failures: [], lockedUntil: 0 };
      map.set(key, e);
    }
    e.failures = e.failures.filter((t) => now - t < this.#o.windowMs);
    e.failures.push(now);
    if (e.failures.length >= max) {
      e.lockedUntil = now + this.#o.lockoutMs;
      e.failures = [];
    }
  }
}
