/** The one error a codec throws: the peer sent bytes that are not valid protocol. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  /** SQLSTATE a server reports for this: protocol_violation. */
  readonly sqlstate = '08P01';
}
