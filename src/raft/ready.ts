/**
 * Ready: what the core hands its driver after a step (etcd-io/raft's Ready), with the driver's
 * obligations. Apart from types.ts because it carries messages (messages.ts builds on types.ts).
 */
import type { Message } from './messages.js';
import type { Entry, HardState, ReadState, Snapshot, SoftState } from './types.js';

/**
 * What the core asks its driver to do. The driver must, in this order:
 *   1. persist `hardState`, `entries` (which may overwrite a suffix starting at entries[0].index)
 *      and `snapshot` durably;
 *   2. send `messages` (never before step 1 is durable: a vote or an ack must never leave for
 *      something not on disk);
 *   3. install `snapshot` into the state machine, then apply `committedEntries` in order;
 *   4. serve `readStates` once applied >= their index;
 *   5. call advance(ready).
 */
export interface Ready {
  readonly softState?: SoftState;
  readonly hardState?: HardState;
  readonly entries: readonly Entry[];
  readonly snapshot?: Snapshot;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
  /** True when something in this Ready must be fsynced before messages leave. */
  readonly mustSync: boolean;
}
