/**
 * Flotilla as a library: embed a Raft member with your own state machine.
 *
 *   import { RaftNode, DiskStorage, TcpTransport } from 'flotilla';
 *
 * See examples/counter for a complete program.
 */
export { RaftNode, NotLeaderError, ProposalRefusedError, ProposalDroppedError, ProposalOutcomeUnknownError, StoppedError, ReadTimeoutError, realClock } from './node/node.js';
export type { Clock, RaftNodeOptions, StateMachine, Transport } from './node/node.js';
export { DiskStorage, MemoryStorage } from './storage/storage.js';
export type { Storage, DiskStorageOptions } from './storage/storage.js';
export { WalCorruptionError } from './storage/wal.js';
export { SnapshotCorruptionError } from './storage/snapshots.js';
export { StorageIoError } from './storage/fs.js';
export { TcpTransport, PEER_HANDSHAKE_TIMEOUT_MS, PEER_IDLE_TIMEOUT_MS, PEER_UNAUTHENTICATED_CONNECTIONS_MAX, PEER_UNAUTHENTICATED_PER_ADDRESS_MAX } from './transport/tcp.js';
export type { MemberChannel, PeerAddress, TcpTransportOptions, TransportStats } from './transport/tcp.js';
export { MemoryNetwork } from './transport/memory.js';
export { RaftCore } from './raft/raft.js';
export type { Status } from './raft/raft.js';
export type { RaftConfig, Logger } from './raft/config.js';
export type { ConfChange, ConfState, Entry, HardState, NodeId, Snapshot } from './raft/types.js';
export { checkLinearizable, parseHistory, formatHistory } from './check/index.js';
export type { HistoryOp } from './check/index.js';
export { FlotillaClient, ClientError, Cmp, Op, FencingGuard, StaleTokenError } from './client/index.js';
export type { ClientOptions, GetOptions, Lock, LeaderKey, WatchEvent, WatchOptions } from './client/index.js';
