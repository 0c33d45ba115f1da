/** A SessionInfo for unit tests: a human on a development connection over loopback, overridable. */
import type { ResolvedConnection } from '../config/load.js';
import type { Identity } from '../identity/identity.js';
import type { SessionInfo } from './types.js';

export function testSession(o: { id?: string; identity?: Partial<Identity>; connection?: { name: string; environment: string }; applicationName?: string } = {}): SessionInfo {
  return {
    id: o.id ?? 'test-1',
    identity: { id: 'user:t', kind: 'human', name: 't', groups: [], attributes: {}, authMethod: 'scram-sha-256', credentialId: 'local:t', ...o.identity },
    connection: (o.connection ?? { name: 'c', environment: 'development' }) as ResolvedConnection,
    client: { address: '127.0.0.1', port: 5000, tls: false },
    applicationName: o.applicationName ?? '',
    txState: 'idle',
    serverParams: new Map(),
    startedAt: 0,
  };
}
