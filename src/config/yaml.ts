/** YAML parsing shared by every file Gatehouse reads (configuration, policies, fixtures). */
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError } from '../errors.js';

/** Parse YAML text to plain values; a syntax error names the file, line and column. */
export function parseYaml(text: string, file: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, lineCounter });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = lineCounter.linePos(e.pos[0]);
    throw new ConfigError(`${file}: line ${pos.line}, column ${pos.col}: invalid YAML: ${e.message.split('\n')[0]}`);
  }
  return doc.toJS() ?? {};
}
