/**
 * OIDC / JWT authentication: a token presented as the password is verified offline against the
 * provider's JWKS (a file, or a URL fetched and cached by jose, refetched on an unknown key id):
 * signature, allowed algorithms, issuer, audience, expiry and not-before. Claims map to the
 * Identity; RFC 8693 `act` marks delegation (an agent acting for the token's subject), and CI
 * workload claims (repository, workflow, ref, actor) make a service identity acting for the actor.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { JwtProviderConfig } from '../config/schema.js';
import { AuthenticationFailed, ConfigError } from '../errors.js';
import type { Identity, IdentityKind } from './identity.js';

interface Provider {
  readonly config: JwtProviderConfig;
  readonly keys: JWTVerifyGetKey;
}

const KINDS = new Set<IdentityKind>(['human', 'agent', 'service']);

/** Whether a password looks like a compact JWS (three base64url parts). */
export function looksLikeJwt(password: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(password);
}

function claim(payload: JWTPayload, path: string): unknown {
  let v: unknown = payload;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export class JwtAuthenticator {
  readonly #providers: Provider[];

  constructor(providers: readonly JwtProviderConfig[], resolvePath: (p: string) => string, file = 'configuration') {
    this.#providers = providers.map((config, i) => {
      let keys: JWTVerifyGetKey;
      if (config.jwks_file !== undefined) {
        try {
          keys = createLocalJWKSet(JSON.parse(readFileSync(resolvePath(config.jwks_file), 'utf8')));
        } catch (err) {
          throw new ConfigError(`${file}: auth.jwt[${i}].jwks_file: cannot load a JWKS from "${config.jwks_file}": ${(err as Error).message}`);
        }
      } else {
        keys = createRemoteJWKSet(new URL(config.jwks_url!), { cacheMaxAge: config.jwks_cache, cooldownDuration: 1000 });
      }
      return { config, keys };
    });
  }

  get enabled(): boolean {
    return this.#providers.length > 0;
  }

  /**
   * Verify a token and map it to an Identity; `user` is the startup user name, which must not
   * contradict the token. Every failure is AuthenticationFailed with a message naming no secret.
   */
  async authenticate(token: string, user: string): Promise<Identity> {
    const fail = (why: string): never => {
      throw new AuthenticationFailed(`token authentication failed for user "${user}"`, { detail: why });
    };
    let issuer: string | undefined;
    try {
      issuer = decodeJwt(token).iss;
    } catch {
      return fail('the password is not a valid JWT');
    }
    const provider = this.#providers.find((p) => p.config.issuer === issuer);
    if (!provider) return fail('the token was not issued by a configured identity provider');
    const c = provider.config;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, provider.keys, {
        issuer: c.issuer,
        audience: c.audience,
        algorithms: c.algorithms,
        clockTolerance: Math.round(c.clock_tolerance / 1000),
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'ERR_JWT_INVALID';
      return fail(`the token was rejected (${code})`);
    }
    const identity = this.#identity(c, payload, token);
    const acceptable = new Set([identity.name, str(payload.sub), str(claim(payload, 'act.sub'))].filter((x): x is string => x !== undefined));
    if (!acceptable.has(user)) return fail(`the user name does not match the token's identity`);
    return identity;
  }

  #identity(c: JwtProviderConfig, p: JWTPayload, token: string): Identity {
    const subject = str(p.sub) ?? 'unknown';
    const name = str(claim(p, c.claims.name)) ?? subject;
    const rawGroups = claim(p, c.claims.groups);
    const groups = Array.isArray(rawGroups) ? rawGroups.filter((g): g is string => typeof g === 'string') : typeof rawGroups === 'string' ? rawGroups.split(/[ ,]+/).filter(Boolean) : [];
    const claimedKind = str(claim(p, c.claims.kind)) as IdentityKind | undefined;
    const credentialId = `jwt:${c.name}:${str(p.jti) ?? createHash('sha256').update(token).digest('hex').slice(0, 16)}`;
    const attributes: Record<string, string> = { issuer: c.issuer, subject };
    const model = str(claim(p, c.claims.model));
    if (model) attributes.model = model;

    // CI workload: a service identity acting for the person who triggered it.
    const w = c.workload;
    if (w !== undefined && str(claim(p, w.repository)) !== undefined) {
      const repository = str(claim(p, w.repository))!;
      const workflow = str(claim(p, w.workflow)) ?? '';
      const actor = str(claim(p, w.actor));
      Object.assign(attributes, { repository, workflow, ref: str(claim(p, w.ref)) ?? '' });
      if (actor) attributes.actor = actor;
      return {
        id: `jwt:${c.name}:${subject}`,
        kind: 'service',
        name: str(claim(p, c.claims.name)) ?? (workflow ? `${repository}:${workflow}` : repository),
        groups,
        attributes,
        authMethod: 'jwt',
        credentialId,
        onBehalfOf: actor ? { id: `jwt:${c.name}:${actor}`, name: actor, kind: 'human' } : undefined,
      };
    }
    // RFC 8693 delegation: `act.sub` acts for the token's subject.
    const actor = str(claim(p, 'act.sub'));
    if (actor !== undefined) {
      const actModel = str(claim(p, 'act.model'));
      if (actModel) attributes.model = actModel;
      return {
        id: `jwt:${c.name}:${actor}`,
        kind: claimedKind === 'service' ? 'service' : 'agent',
        name: actor,
        groups,
        attributes,
        authMethod: 'jwt',
        credentialId,
        onBehalfOf: { id: `jwt:${c.name}:${subject}`, name, kind: 'human' },
      };
    }
    return {
      id: `jwt:${c.name}:${subject}`,
      kind: claimedKind !== undefined && KINDS.has(claimedKind) ? claimedKind : c.kind,
      name,
      groups,
      attributes,
      authMethod: 'jwt',
      credentialId,
    };
  }
}
