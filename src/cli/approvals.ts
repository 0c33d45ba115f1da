/**
 * `gatehouse approvals list|show|approve|deny`: a thin shell over the approvals API of a running
 * Gatehouse (docs/approvals.md).
 *
 * Where and as whom: `--url` or GATEHOUSE_URL (default http://127.0.0.1:8080); GATEHOUSE_TOKEN
 * (a token or JWT, sent as `Authorization: Bearer`), or GATEHOUSE_USER (or `--user`) with
 * GATEHOUSE_PASSWORD (HTTP Basic). A token with a user name goes as the Basic password.
 *
 * Exit codes: 0 on success; 1 when the API refuses (`gatehouse approvals: <message> (HTTP <status>)`)
 * or cannot be reached (the URL and why); 2 when credentials or the URL are missing or malformed.
 * Errors are one line on stderr, never a stack trace.
 *
 * Everything printed for people is terminal-safe: control characters and bidirectional overrides
 * in statements and names (which requesters choose) are shown escaped, so a statement cannot
 * repaint the screen or hide part of itself from the approver.
 */
import { Option, type Command } from 'commander';
import { APPROVAL_STATUSES, effectiveStatus, type ApprovalRequest, type ApprovalVote } from '../approvals/request.js';

export const DEFAULT_GATEHOUSE_URL = 'http://127.0.0.1:8080';
/** Longest wait for one API answer. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Characters of the statement's first line in `list`. */
const LIST_STATEMENT_CHARS = 60;

/** Where the CLI writes and what it reads (the process's, unless a test passes its own). */
export interface ApprovalsCliIo {
  readonly env: NodeJS.ProcessEnv;
  readonly out: (s: string) => void;
}

/** The API to call and the Authorization header to send. */
export interface ApiConnection {
  /** Base URL without a trailing slash. */
  readonly base: string;
  readonly authorization: string;
}

/** A failure the CLI reports in one line with its exit code. */
class CliProblem extends Error {
  constructor(
    readonly exitCode: 1 | 2,
    message: string,
  ) {
    super(message);
    this.name = 'CliProblem';
  }
}

// ---- connection -----------------------------------------------------------------------------

const set = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);

/** The URL and credentials from flags and environment; throws (exit 2) naming what is missing. */
export function resolveConnection(o: { url?: string; user?: string }, env: NodeJS.ProcessEnv): ApiConnection {
  const from = o.url !== undefined ? '--url' : set(env.GATEHOUSE_URL) !== undefined ? 'GATEHOUSE_URL' : null;
  const raw = o.url ?? set(env.GATEHOUSE_URL) ?? DEFAULT_GATEHOUSE_URL;
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {
    // Reported below.
  }
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new CliProblem(2, `${from}: expected an http:// or https:// URL such as ${DEFAULT_GATEHOUSE_URL}, got "${raw}"`);
  if (url.username !== '' || url.password !== '') throw new CliProblem(2, `${from}: put credentials in GATEHOUSE_TOKEN, or GATEHOUSE_USER and GATEHOUSE_PASSWORD, not in the URL`);
  const base = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;

  const user = set(o.user) ?? set(env.GATEHOUSE_USER);
  const password = set(env.GATEHOUSE_PASSWORD);
  const token = set(env.GATEHOUSE_TOKEN);
  const basic = (name: string, secret: string): string => {
    if (name.includes(':')) throw new CliProblem(2, `${o.user !== undefined ? '--user' : 'GATEHOUSE_USER'}: a user name cannot contain ":"`);
    return `Basic ${Buffer.from(`${name}:${secret}`, 'utf8').toString('base64')}`;
  };
  if (user !== undefined && password !== undefined) return { base, authorization: basic(user, password) };
  if (token !== undefined) return { base, authorization: user !== undefined ? basic(user, token) : `Bearer ${token}` };
  if (user !== undefined) throw new CliProblem(2, `no password for "${user}": set GATEHOUSE_PASSWORD (or GATEHOUSE_TOKEN to use a token or JWT)`);
  throw new CliProblem(2, 'no credentials: set GATEHOUSE_TOKEN (a token or JWT), or GATEHOUSE_USER (or --user) and GATEHOUSE_PASSWORD');
}

/** Call the API: the parsed JSON of a 2xx answer, or a CliProblem saying what went wrong. */
async function call(conn: ApiConnection, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const url = `${conn.base}${path}`;
  let status: number;
  let statusText: string;
  let text: string;
  try {
    const res = await fetch(url, {
      method,
      headers: { authorization: conn.authorization, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    status = res.status;
    statusText = res.statusText;
    text = await res.text();
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` : (e.cause?.message ?? e.cause?.code ?? e.message);
    throw new CliProblem(1, `cannot reach Gatehouse at ${conn.base}: ${why}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (status < 200 || status > 299) {
    const message = typeof json === 'object' && json !== null && typeof (json as { error?: unknown }).error === 'string' ? (json as { error: string }).error : `${method} ${url}: ${statusText || 'error'}`;
    throw new CliProblem(1, `${message} (HTTP ${status})`);
  }
  if (json === undefined) throw new CliProblem(1, `${method} ${url}: the answer is not JSON (is ${conn.base} a Gatehouse HTTP listener?)`);
  return json;
}

/** Check the shape the formatters rely on, so a foreign answer is an error rather than a crash. */
function asRequest(x: unknown, url: string): ApprovalRequest {
  const r = x as Partial<ApprovalRequest> | null;
  const ok =
    typeof r === 'object' &&
    r !== null &&
    typeof r.id === 'string' &&
    typeof r.status === 'string' &&
    typeof r.statement === 'string' &&
    typeof r.requester === 'object' &&
    r.requester !== null &&
    typeof r.requester.name === 'string' &&
    Array.isArray(r.votes) &&
    Array.isArray(r.groups) &&
    typeof r.createdAt === 'number' &&
    typeof r.expiresAt === 'number';
  if (!ok) throw new CliProblem(1, `${url}: the answer is not an approval request`);
  return r as ApprovalRequest;
}

// ---- formatting (pure) ----------------------------------------------------------------------

/** C0/C1 controls, and the bidirectional controls that can reorder what a terminal shows ("Trojan Source"). */
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const UNSAFE_ONE_LINE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const escapeChar = (c: string): string => {
  const n = c.charCodeAt(0);
  return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
};

/** Text safe to print: newlines and tabs kept, other control characters shown as \xNN / \uNNNN. */
export function terminalSafe(s: string): string {
  return s.replace(UNSAFE, escapeChar);
}

/** One line, terminal-safe: whitespace runs become one space. */
function oneLine(s: string): string {
  return s.replace(/[\t\n\r ]+/g, ' ').trim().replace(UNSAFE_ONE_LINE, escapeChar);
}

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** A duration for people: 45s, 7m, 3h 5m, 2d 4h. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 === 0 ? `${h}h` : `${h}h ${m % 60}m`;
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? `${d}d` : `${d}d ${h % 24}h`;
}

const approvalsOf = (r: ApprovalRequest): number => r.votes.filter((v) => v.verdict === 'approve').length;

function requesterText(r: ApprovalRequest): string {
  return r.requester.onBehalfOf !== undefined ? `${r.requester.name} (for ${r.requester.onBehalfOf})` : r.requester.name;
}

/** The statement's first non-empty line, cut to `max` characters; "…" when anything was left out. */
export function statementPreview(text: string, max = LIST_STATEMENT_CHARS): string {
  const lines = text.split(/\r\n|\r|\n/);
  const at = lines.findIndex((l) => l.trim() !== '');
  if (at < 0) return '';
  const first = oneLine(lines[at]!);
  const more = lines.slice(at + 1).some((l) => l.trim() !== '');
  const chars = Array.from(first);
  if (chars.length > max) return `${chars.slice(0, max - 1).join('')}…`;
  return more ? `${first} …` : first;
}

/** The `list` table: one request per line under a header, aligned; statuses as of `now`. */
export function formatList(requests: readonly ApprovalRequest[], now: number): string {
  const header = ['ID', 'STATUS', 'REQUESTER', 'CONNECTION', 'RULE', 'AGE', 'EXPIRES', 'STATEMENT'];
  const rows = requests.map((r) => {
    const status = effectiveStatus(r, now);
    const pendingNote = status === 'pending' ? ` (${approvalsOf(r)}/${r.quorum})` : '';
    return [
      oneLine(r.id),
      status + pendingNote,
      oneLine(requesterText(r)),
      oneLine(`${r.connection}/${r.environment}`),
      oneLine(r.rule),
      formatDuration(now - r.createdAt),
      status === 'pending' ? `in ${formatDuration(r.expiresAt - now)}` : '-',
      statementPreview(r.statement),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

function voteLine(v: ApprovalVote): string {
  const who = v.rule !== undefined ? `${v.name} (rule ${v.rule})` : v.name;
  return `${iso(v.at)}  ${v.verdict === 'approve' ? 'approved' : 'denied'} by ${oneLine(who)}${v.reason !== undefined ? `: ${oneLine(v.reason)}` : ''}`;
}

/** `show`: every field of a request, the statement in full and the votes; status as of `now`. */
export function formatRequest(r: ApprovalRequest, now: number): string {
  const status = effectiveStatus(r, now);
  const approvals = approvalsOf(r);
  const rows: Array<[string, string]> = [];
  const add = (k: string, v: string): void => void rows.push([k, v]);
  add('id', oneLine(r.id));
  add('status', status === 'pending' ? `pending: ${approvals} of ${r.quorum} approval${r.quorum === 1 ? '' : 's'}, expires in ${formatDuration(r.expiresAt - now)}` : status);
  add('mode', r.mode === 'retry' ? 'retry (the statement runs once when sent again after approval)' : `${r.mode} (the session waits for the decision)`);
  const rq = r.requester;
  add('requester', oneLine(`${rq.name} (${rq.kind})${rq.onBehalfOf !== undefined ? ` on behalf of ${rq.onBehalfOf}` : ''}${rq.groups.length > 0 ? `; groups: ${rq.groups.join(', ')}` : ''}`));
  add('connection', oneLine(`${r.connection} (${r.environment})`));
  add('rule', oneLine(`${r.rule}: ${r.message}`));
  if (r.facts !== undefined) add('statement kind', oneLine(`${r.facts.kind}${r.facts.tables.length > 0 ? `; tables: ${r.facts.tables.join(', ')}` : ''}`));
  add('approvers', oneLine(`${r.quorum} from ${r.groups.length > 0 ? r.groups.join(', ') : '(no group)'}`));
  add('created', `${iso(r.createdAt)} (${formatDuration(now - r.createdAt)} ago)`);
  add('expires', `${iso(r.expiresAt)}${status === 'pending' ? ` (in ${formatDuration(r.expiresAt - now)})` : ''}`);
  if (r.decidedAt !== undefined) add('decided', iso(r.decidedAt));
  if (r.runUntil !== undefined) add('may run until', `${iso(r.runUntil)}${status === 'approved' && r.runUntil > now ? ` (in ${formatDuration(r.runUntil - now)})` : ''}`);
  if (r.executedAt !== undefined) add('executed', iso(r.executedAt));
  if (r.reason !== undefined) add('reason', oneLine(r.reason));
  if (r.session !== undefined) add('session', oneLine(`${r.session}${r.node !== undefined ? ` on ${r.node}` : ''}`));
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  const out = rows.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}`);
  out.push('votes:');
  if (r.votes.length === 0) out.push('  (none yet)');
  for (const v of r.votes) out.push(`  ${voteLine(v)}`);
  out.push('statement:');
  for (const l of terminalSafe(r.statement).split(/\r\n|\n/)) out.push(`  ${l}`);
  return out.join('\n') + '\n';
}

/** What `approve` and `deny` print about the request the API returned. */
export function formatDecision(verdict: 'approve' | 'deny', r: ApprovalRequest, now: number): string {
  const id = oneLine(r.id);
  const status = effectiveStatus(r, now);
  const n = approvalsOf(r);
  if (verdict === 'deny') {
    const reason = r.votes.find((v) => v.verdict === 'deny')?.reason;
    return status === 'denied' ? `denied ${id}${reason !== undefined ? `: ${oneLine(reason)}` : ''}; the statement will not run\n` : `${id} is ${status}\n`;
  }
  if (status === 'approved') {
    const when = r.mode === 'retry' && r.runUntil !== undefined ? ` once, when sent again before ${iso(r.runUntil)}` : '';
    return `approved ${id} (${n} of ${r.quorum} approvals): the statement may run${when}\n`;
  }
  if (status === 'pending') return `recorded your approval of ${id} (${n} of ${r.quorum}); ${r.quorum - n} more needed from ${oneLine(r.groups.join(', '))}\n`;
  return `${id} is ${status}\n`;
}

// ---- commands -------------------------------------------------------------------------------

interface ConnectionOptions {
  url?: string;
  user?: string;
}

/** The connection flags every subcommand takes. */
function connectionOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', `Gatehouse HTTP listener (default: GATEHOUSE_URL or ${DEFAULT_GATEHOUSE_URL})`)
    .option('--user <name>', 'user name for HTTP Basic (default: GATEHOUSE_USER); the password comes from GATEHOUSE_PASSWORD');
}

export function registerApprovalCommands(program: Command, io: Partial<ApprovalsCliIo> = {}): void {
  const env = (): NodeJS.ProcessEnv => io.env ?? process.env;
  const out = (s: string): void => (io.out ? io.out(s) : void process.stdout.write(s));

  /** Run an action; a CliProblem becomes one `gatehouse approvals: ...` line and its exit code. */
  const run = async (cmd: Command, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      if (err instanceof CliProblem) cmd.error(`gatehouse approvals: ${err.message}`, { exitCode: err.exitCode, code: 'gatehouse.approvals' });
      throw err;
    }
  };
  const path = (id: string, action = ''): string => `/api/approvals/${encodeURIComponent(id)}${action}`;

  const approvals = program
    .command('approvals')
    .description('list, show, approve and deny approval requests through the HTTP API of a running Gatehouse (GATEHOUSE_URL; GATEHOUSE_TOKEN, or GATEHOUSE_USER and GATEHOUSE_PASSWORD)');

  const list = connectionOptions(approvals.command('list').description('list approval requests you may see, newest first (pending ones by default)'))
    .addOption(new Option('--status <status>', 'only requests with this status').choices(APPROVAL_STATUSES))
    .addOption(new Option('--all', 'requests in every status').conflicts('status'))
    .option('--limit <n>', 'at most this many (the API allows 1 to 1000; default 100)')
    .option('--json', 'print the JSON array the API returns')
    .option('-q, --quiet', 'print only the ids, one per line (for scripts)');
  list.action((o: ConnectionOptions & { status?: string; all?: boolean; limit?: string; json?: boolean; quiet?: boolean }) =>
    run(list, async () => {
      const conn = resolveConnection(o, env());
      const q = new URLSearchParams();
      if (!o.all) q.set('status', o.status ?? 'pending');
      if (o.limit !== undefined) q.set('limit', o.limit);
      const query = q.toString();
      const url = `/api/approvals${query === '' ? '' : `?${query}`}`;
      const body = await call(conn, 'GET', url);
      if (!Array.isArray(body)) throw new CliProblem(1, `${conn.base}${url}: the answer is not a list of approval requests`);
      const rows = body.map((x) => asRequest(x, `${conn.base}${url}`));
      if (o.json) return out(`${JSON.stringify(rows, null, 2)}\n`);
      if (o.quiet) return out(rows.map((r) => `${r.id}\n`).join(''));
      if (rows.length === 0) return out(o.all ? 'no approval requests\n' : `no ${o.status ?? 'pending'} approval requests\n`);
      out(formatList(rows, Date.now()));
    }),
  );

  const show = connectionOptions(approvals.command('show <id>').description('show one request: every field, the full statement and the votes')).option('--json', 'print the JSON the API returns');
  show.action((id: string, o: ConnectionOptions & { json?: boolean }) =>
    run(show, async () => {
      const conn = resolveConnection(o, env());
      const r = asRequest(await call(conn, 'GET', path(id)), `${conn.base}${path(id)}`);
      out(o.json ? `${JSON.stringify(r, null, 2)}\n` : formatRequest(r, Date.now()));
    }),
  );

  for (const verdict of ['approve', 'deny'] as const) {
    const cmd = connectionOptions(
      approvals.command(`${verdict} <id>`).description(verdict === 'approve' ? 'approve a pending request (it runs once enough approvers agree)' : 'deny a pending request (one denial ends it)'),
    ).option('--reason <text>', verdict === 'approve' ? 'why (recorded with your vote)' : 'why (told to the requester)');
    cmd.action((id: string, o: ConnectionOptions & { reason?: string }) =>
      run(cmd, async () => {
        const conn = resolveConnection(o, env());
        const r = asRequest(await call(conn, 'POST', path(id, `/${verdict}`), o.reason !== undefined ? { reason: o.reason } : {}), `${conn.base}${path(id, `/${verdict}`)}`);
        out(formatDecision(verdict, r, Date.now()));
      }),
    );
  }
}
