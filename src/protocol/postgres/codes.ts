/**
 * PostgreSQL protocol 3.0 message codes.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

/** Messages a client (frontend) sends, by tag byte. */
export const enum FrontendCode {
  Bind = 0x42, // 'B'
  Close = 0x43, // 'C'
  Describe = 0x44, // 'D'
  Execute = 0x45, // 'E'
  FunctionCall = 0x46, // 'F'
  Flush = 0x48, // 'H'
  Parse = 0x50, // 'P'
  Query = 0x51, // 'Q'
  Sync = 0x53, // 'S'
  Terminate = 0x58, // 'X'
  CopyDone = 0x63, // 'c'
  CopyData = 0x64, // 'd'
  CopyFail = 0x66, // 'f'
  /** PasswordMessage, SASLInitialResponse and SASLResponse all use 'p'. */
  Password = 0x70, // 'p'
}

/** Messages a server (backend) sends, by tag byte. */
export const enum BackendCode {
  ParseComplete = 0x31, // '1'
  BindComplete = 0x32, // '2'
  CloseComplete = 0x33, // '3'
  NotificationResponse = 0x41, // 'A'
  CommandComplete = 0x43, // 'C'
  DataRow = 0x44, // 'D'
  ErrorResponse = 0x45, // 'E'
  CopyInResponse = 0x47, // 'G'
  CopyOutResponse = 0x48, // 'H'
  EmptyQueryResponse = 0x49, // 'I'
  BackendKeyData = 0x4b, // 'K'
  NoticeResponse = 0x4e, // 'N'
  Authentication = 0x52, // 'R'
  ParameterStatus = 0x53, // 'S'
  RowDescription = 0x54, // 'T'
  FunctionCallResponse = 0x56, // 'V'
  CopyBothResponse = 0x57, // 'W'
  ReadyForQuery = 0x5a, // 'Z'
  CopyDone = 0x63, // 'c'
  CopyData = 0x64, // 'd'
  NoData = 0x6e, // 'n'
  PortalSuspended = 0x73, // 's'
  ParameterDescription = 0x74, // 't'
  NegotiateProtocolVersion = 0x76, // 'v'
}

/** Codes of untagged first packets: int32 length, int32 code. */
export const enum StartupCode {
  /** Protocol 3.0: (3 << 16) | 0. */
  Protocol3 = 196608,
  CancelRequest = 80877102,
  SSLRequest = 80877103,
  GSSENCRequest = 80877104,
}

/** AuthenticationXXX sub-codes (the int32 after the 'R' header). */
export const enum AuthCode {
  Ok = 0,
  CleartextPassword = 3,
  MD5Password = 5,
  SASL = 10,
  SASLContinue = 11,
  SASLFinal = 12,
}

/** Transaction status byte of ReadyForQuery. */
export const enum TxStatus {
  Idle = 0x49, // 'I'
  InTransaction = 0x54, // 'T'
  Failed = 0x45, // 'E'
}

/** Field type bytes of ErrorResponse / NoticeResponse. */
export const enum ErrorField {
  Severity = 0x53, // 'S' localized
  SeverityV = 0x56, // 'V' never localized
  Code = 0x43, // 'C' SQLSTATE
  Message = 0x4d, // 'M'
  Detail = 0x44, // 'D'
  Hint = 0x48, // 'H'
  Position = 0x50, // 'P'
  Where = 0x57, // 'W'
}
