/**
 * Secrets presented as the PostgreSQL password: tokens Gatehouse issued (`ghtk_...`) and JWTs
 * from identity providers. One entry point for the engine; each failure is AuthenticationFailed
 * naming no secret.
 */
import { AuthenticationFailed } from '../errors.js';
import { TOKEN_PREFIX, type TokenStore } from '../store/tokens.js';
import type { Identity } from './identity.js';
import { JwtAuthenticator, looksLikeJwt } from './jwt.js';

export interface Authenticated {
  readonly identity: Identity;
  /** Connections the credential may be used for; null = any. */
  readonly connections: readonly string[] | null;
}

export class CredentialAuthenticator {
  constructor(
    readonly jwt: JwtAuthenticator | null,
    readonly tokens: TokenStore | null,
  ) {}

  get enabled(): boolean {
    return (this.jwt?.enabled ?? false) || this.tokens !== null;
  }

  async authenticate(secret: string, user: string): Promise<Authenticated> {
    if (this.tokens !== null && secret.startsWith(TOKEN_PREFIX)) {
      const check = await this.tokens.verify(secret);
      if (!check.ok) throw new AuthenticationFailed(`token authentication failed for user "${user}"`, { detail: check.reason });
      const t = check.token;
      if (t.name !== user) throw new AuthenticationFailed(`token authentication failed for user "${user}"`, { detail: `the token is for "${t.name}"` });
      return {
        identity: {
          id: `token:${t.id}`,
          kind: t.kind,
          name: t.name,
          groups: [...t.groups],
          attributes: t.model ? { model: t.model } : {},
          authMethod: 'token',
          credentialId: `token:${t.id}`,
          onBehalfOf: t.onBehalfOf ? { id: `user:${t.onBehalfOf}`, name: t.onBehalfOf, kind: 'human' } : undefined,
        },
        connections: t.connections,
      };
    }
    if (this.jwt?.enabled && looksLikeJwt(secret)) return { identity: await this.jwt.authenticate(secret, user), connections: null };
    throw new AuthenticationFailed(`token authentication failed for user "${user}"`, { detail: 'the password is neither a Gatehouse token nor a JWT from a configured provider' });
  }
}
