export * from './codes.js';
export * from './errors.js';
export * from './buffer-reader.js';
export * from './buffer-writer.js';
export * from './frame-scanner.js';
export * from './handshake-reader.js';
export * from './fields.js';
export * as messages from './messages.js';
