/**
 * The report's sections, in print order. Add a section by implementing `Section` and listing it
 * here; BENCH_SECTIONS=id1,id2 runs a subset. The micro-benchmarks run first, while no server is
 * up yet (targets start on the first section that asks for them).
 */
import { auditSection } from './audit.js';
import { maskingSection } from './masking-proxy.js';
import { microSection } from './micro.js';
import type { Section } from './section.js';
import { throughputSection } from './throughput.js';

export const SECTIONS: readonly Section[] = [microSection, auditSection, maskingSection, throughputSection];
