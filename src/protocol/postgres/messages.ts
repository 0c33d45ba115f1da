/**
 * Builders for the messages Gatehouse itself originates, on either side of the proxy.
 * Relayed messages are never rebuilt: they pass through as views of the bytes received.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { BufferWriter } from './buffer-writer.js';
import { AuthCode, BackendCode, FrontendCode, StartupCode, TxStatus } from './codes.js';

/** Fields of an ErrorResponse or NoticeResponse Gatehouse originates. */
export interface ErrorFields {
  /** ERROR, FATAL, WARNING, NOTICE, ... (sent both localized 'S' and as 'V'). */
  severity: 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'INFO' | 'LOG' | 'DEBUG';
  /** SQLSTATE, five characters. */
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

const writer = new BufferWriter(256);

/** Constant frames, built once. */
export const SSL_ACCEPT = Buffer.from('S');
export const SSL_REFUSE = Buffer.from('N');
export const AUTH_OK = build((w) => w.begin(BackendCode.Authentication).int32(AuthCode.Ok).close());
export const AUTH_CLEARTEXT = build((w) =>
  w.begin(BackendCode.Authentication).int32(AuthCode.CleartextPassword).close(),
);
export const AUTH_SASL_SCRAM = build((w) =>
  w.begin(BackendCode.Authentication).int32(AuthCode.SASL).cstring('SCRAM-SHA-256').byte(0).close(),
);
export const SYNC = build((w) => w.begin(FrontendCode.Sync).close());
export const TERMINATE = build((w) => w.begin(FrontendCode.Terminate).close());
export const SSL_REQUEST = build((w) => w.begin(0).int32(StartupCode.SSLRequest).close());

const READY: Record<number, Buffer> = {
  [TxStatus.Idle]: build((w) => w.begin(BackendCode.ReadyForQuery).byte(TxStatus.Idle).close()),
  [TxStatus.InTransaction]: build((w) => w.begin(BackendCode.ReadyForQuery).byte(TxStatus.InTransaction).close()),
  [TxStatus.Failed]: build((w) => w.begin(BackendCode.ReadyForQuery).byte(TxStatus.Failed).close()),
};

function build(fn: (w: BufferWriter) => unknown): Buffer {
  try {
    fn(writer);
    return writer.flush();
  } catch (err) {
    writer.reset();
    throw err;
  }
}

export function readyForQuery(status: TxStatus): Buffer {
  return READY[status] ?? READY[TxStatus.Idle]!;
}

function fields(w: BufferWriter, f: ErrorFields): void {
  w.byte(0x53).cstring(f.severity); // 'S' severity (localized)
  w.byte(0x56).cstring(f.severity); // 'V' severity (never localized)
  w.byte(0x43).cstring(f.code); // 'C' SQLSTATE
  w.byte(0x4d).cstring(f.message); // 'M' message
  if (f.detail) w.byte(0x44).cstring(f.detail); // 'D' detail
  if (f.hint) w.byte(0x48).cstring(f.hint); // 'H' hint
  w.byte(0); // terminator
}

export function errorResponse(f: ErrorFields): Buffer {
  return build((w) => {
    w.begin(BackendCode.ErrorResponse);
    fields(w, f);
    w.close();
  });
}

export function noticeResponse(f: ErrorFields): Buffer {
  return build((w) => {
    w.begin(BackendCode.NoticeResponse);
    fields(w, f);
    w.close();
  });
}

export function parameterStatus(name: string, value: string): Buffer {
  return build((w) => w.begin(BackendCode.ParameterStatus).cstring(name).cstring(value).close());
}

export function backendKeyData(pid: number, secret: number): Buffer {
  return build((w) => w.begin(BackendCode.BackendKeyData).int32(pid).int32(secret).close());
}

export function authSaslContinue(data: string): Buffer {
  return build((w) => w.begin(BackendCode.Authentication).int32(AuthCode.SASLContinue).bytes(Buffer.from(data)).close());
}

export function authSaslFinal(data: string): Buffer {
  return build((w) => w.begin(BackendCode.Authentication).int32(AuthCode.SASLFinal).bytes(Buffer.from(data)).close());
}

/** NegotiateProtocolVersion: the newest minor version we speak and the options we ignored. */
export function negotiateProtocolVersion(minor: number, unsupported: string[]): Buffer {
  return build((w) => {
    w.begin(BackendCode.NegotiateProtocolVersion).int32(minor).int32(unsupported.length);
    for (const o of unsupported) w.cstring(o);
    w.close();
  });
}

/** StartupMessage (protocol 3.0) with the given parameters. */
export function startupMessage(params: Record<string, string>): Buffer {
  return build((w) => {
    w.begin(0).int32(StartupCode.Protocol3);
    for (const [k, v] of Object.entries(params)) w.cstring(k).cstring(v);
    w.byte(0).close();
  });
}

export function cancelRequest(pid: number, secret: number): Buffer {
  return build((w) => w.begin(0).int32(StartupCode.CancelRequest).int32(pid).int32(secret).close());
}

/** PasswordMessage: cleartext or md5 response. */
export function passwordMessage(password: string): Buffer {
  return build((w) => w.begin(FrontendCode.Password).cstring(password).close());
}

export function saslInitialResponse(mechanism: string, data: string): Buffer {
  const bytes = Buffer.from(data);
  return build((w) => w.begin(FrontendCode.Password).cstring(mechanism).int32(bytes.length).bytes(bytes).close());
}

export function saslResponse(data: string): Buffer {
  return build((w) => w.begin(FrontendCode.Password).bytes(Buffer.from(data)).close());
}

export function query(text: string): Buffer {
  return build((w) => w.begin(FrontendCode.Query).cstring(text).close());
}

/** Parse with no parameter types. */
export function parse(name: string, text: string): Buffer {
  return build((w) => w.begin(FrontendCode.Parse).cstring(name).cstring(text).int16(0).close());
}

/**
 * A DataRow of text or binary values (null = SQL NULL). Gatehouse relays the server's rows and
 * never builds one on the wire; tests and benchmarks use this to make rows as the server sends them.
 */
export function dataRow(values: ReadonlyArray<string | Uint8Array | null>): Buffer {
  return build((w) => {
    w.begin(BackendCode.DataRow).int16(values.length);
    for (const v of values) {
      if (v === null) w.int32(-1);
      else {
        const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
        w.int32(b.length).bytes(b);
      }
    }
    w.close();
  });
}
