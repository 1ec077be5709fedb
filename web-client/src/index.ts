export { ChorusProvider, backoffDelay, readChorusMessage, sanitizePresenceUpdate, isPresenceCursor, tokenTimes, tokenClaims, wsBase, offlineKey, clearOfflineData } from './provider'
export type {
  ChorusProviderOptions, ChorusEvents, ConnectionStatus, StatusEvent, Transport, ChorusError, Holder, BackoffOptions, ChorusMessage
} from './provider'
export { ChorusHttpSocket, httpTransportUrl, httpStreamsHeldBack } from './http-socket'
export type { HttpSocketOptions, FallbackReason } from './http-socket'
export { ChorusHocuspocusHttpSocket, readHocuspocusAuth } from './hocuspocus-http-socket'
export { schema, isSafeUrl } from './schema'
export { createEditor, bindTitle, safeColor } from './editor'
export type { ChorusEditor, EditorOptions } from './editor'
