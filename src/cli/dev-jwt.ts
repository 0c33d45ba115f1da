/**
 * `gatehouse dev-jwt`: mint a JWT with the TEST-ONLY key shipped in examples/, for trying the
 * OIDC/JWT path locally (examples/local.yaml trusts that key as issuer https://dev.gatehouse.local).
 * Never use this key or these tokens for anything real.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { importJWK, SignJWT, type JWK } from 'jose';

export const DEV_ISSUER = 'https://dev.gatehouse.local';
export const DEV_AUDIENCE = 'gatehouse';
const DEFAULT_KEY = join(dirname(fileURLToPath(import.meta.url)), '../../../examples/dev-jwt-key.TEST-ONLY.json');

export interface DevJwtOptions {
  sub: string;
  name?: string;
  groups?: string;
  act?: string;
  model?: string;
  repository?: string;
  workflow?: string;
  actor?: string;
  ttl: string;
  key: string;
}

export async function mintDevJwt(o: DevJwtOptions): Promise<string> {
  const jwk = JSON.parse(readFileSync(o.key, 'utf8')) as JWK & { comment?: string };
  delete jwk.comment;
  const key = await importJWK(jwk, 'ES256');
  const claims: Record<string, unknown> = {};
  if (o.name) claims.preferred_username = o.name;
  if (o.groups) claims.groups = o.groups.split(',').map((g) => g.trim()).filter(Boolean);
  if (o.act) claims.act = { sub: o.act, ...(o.model ? { model: o.model } : {}) };
  else if (o.model) claims.model = o.model;
  if (o.repository) Object.assign(claims, { repository: o.repository, workflow: o.workflow ?? '', ref: 'refs/heads/main', actor: o.actor ?? o.sub });
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: jwk.kid! })
    .setIssuer(DEV_ISSUER)
    .setAudience(DEV_AUDIENCE)
    .setSubject(o.sub)
    .setIssuedAt()
    .setExpirationTime(o.ttl)
    .sign(key);
}

export function registerDevJwt(program: Command): void {
  program
    .command('dev-jwt')
    .description('print a TEST-ONLY JWT signed with the example key (issuer https://dev.gatehouse.local) for local tries')
    .requiredOption('--sub <subject>', 'the token subject (the person, for --act and CI tokens)')
    .option('--name <name>', 'preferred_username claim (the identity name; default: the subject)')
    .option('--groups <list>', 'comma-separated groups')
    .option('--act <agent>', 'delegation: the agent acting for the subject (RFC 8693 act.sub)')
    .option('--model <model>', 'the model or agent software (act.model, or model)')
    .option('--repository <repo>', 'CI workload: repository claim (makes a service identity)')
    .option('--workflow <name>', 'CI workload: workflow claim')
    .option('--actor <person>', 'CI workload: the person who triggered it (default: the subject)')
    .option('--ttl <duration>', 'lifetime, e.g. 30m, 8h', '1h')
    .option('--key <file>', 'private JWK (default: examples/dev-jwt-key.TEST-ONLY.json)', DEFAULT_KEY)
    .action(async (o: DevJwtOptions) => {
      console.log(await mintDevJwt(o));
    });
}
