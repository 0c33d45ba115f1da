/** Build the policy engine from the configuration's policy files (and watch them). */
import { watch, type FSWatcher } from 'node:fs';
import type { LoadedConfig, ResolvedConnection } from '../config/load.js';
import { PolicyEngine } from './engine.js';
import { loadPolicyFile } from './rules.js';

/** Compile the built-in guardrails and every policy file; throws ConfigError naming file and rule. */
export function loadPolicy(loaded: Pick<LoadedConfig, 'policyFiles'>): PolicyEngine {
  return new PolicyEngine(loaded.policyFiles.map((file) => ({ file, policy: loadPolicyFile(file) })));
}

/** Whether the built-in guardrails apply to a connection. */
export function guardrailsFor(connection: ResolvedConnection): boolean {
  return connection.guardrails ?? connection.environment === 'production';
}

/** Call `onChange` (debounced) when any policy file changes. */
export function watchPolicyFiles(files: readonly string[], onChange: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  const watchers: FSWatcher[] = [];
  for (const f of files) {
    try {
      const w = watch(f, () => {
        clearTimeout(timer);
        timer = setTimeout(onChange, 200);
      });
      w.on('error', () => {});
      watchers.push(w);
    } catch {
      // A file that cannot be watched is still reloaded on SIGHUP.
    }
  }
  return () => {
    clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}
