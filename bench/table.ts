/**
 * Plain tables for the report: a Markdown pipe table whose cells are padded, so the same text
 * reads well in a terminal and pastes unchanged into an issue or a closing note.
 */

export interface Column {
  readonly header: string;
  /** Numbers are right-aligned. */
  readonly align?: 'left' | 'right';
}

export interface Table {
  readonly columns: readonly Column[];
  readonly rows: readonly (readonly string[])[];
}

export function renderTable(t: Table): string {
  const widths = t.columns.map((c, i) => Math.max(c.header.length, 3, ...t.rows.map((r) => (r[i] ?? '').length)));
  const pad = (s: string, i: number): string => (t.columns[i]!.align === 'right' ? s.padStart(widths[i]!) : s.padEnd(widths[i]!));
  const line = (cells: readonly string[]): string => `| ${t.columns.map((_, i) => pad(cells[i] ?? '', i)).join(' | ')} |`;
  // Markdown alignment row: "---:" right-aligns the column when rendered.
  const rule = `|${t.columns.map((c, i) => (c.align === 'right' ? `${'-'.repeat(widths[i]! + 1)}:` : `:${'-'.repeat(widths[i]! + 1)}`)).join('|')}|`;
  return [line(t.columns.map((c) => c.header)), rule, ...t.rows.map(line)].join('\n');
}

/** Whole transactions per second with thousands separators ("12,345"). */
export const formatTps = (v: number): string => Math.round(v).toLocaleString('en-US');
/** Milliseconds with microsecond resolution, as pgbench prints them. */
export const formatMs = (v: number): string => v.toFixed(3);
export const formatRatio = (v: number): string => v.toFixed(2);
