export { FlotillaClient, ClientError, prefixEnd } from './client.js';
export type { ClientOptions, RangeOptions, WatchOptions, WatchEvent, Watcher, Wire } from './client.js';
