/**
 * The report's sections, in print order. Add a section by implementing `Section` and listing it
 * here; BENCH_SECTIONS=id1,id2 runs a subset.
 */
import type { Section } from './section.js';
import { throughputSection } from './throughput.js';

export const SECTIONS: readonly Section[] = [throughputSection];
