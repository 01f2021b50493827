/**
 * The real store in the simulator (`store: 'real'`, node driver): each member applies the log
 * with src/kv's KvStateMachine — the MVCC store, its applied index written in the same backend
 * batch as each entry's effects, marker snapshots, full images for lagging members — on a
 * MemoryBackend, whose crash semantics are LMDB's (src/kv/backend.test.ts runs one conformance
 * suite against both): what a backend commit made durable survives a crash, the writes pending
 * in the overlay are lost. The backend lives with the member's file system (it survives its
 * crashes); a restarted member opens the state machine on what was committed and RaftNode
 * replays only the WAL entries after the applied index that commit recorded, as a real member
 * does. Commits happen as on a real member: by count (maybeCommit, the seed's batch limit), on
 * a timer (virtual time, the seed's interval) and when a snapshot is taken (persistTo).
 *
 * The simulator's commands (write, delete, CAS on string registers) are etcd txns: the register
 * `kv/<key>`, and `op/<id>` written in the same txn so that "no acknowledged write lost" is a
 * read of the store itself. A txn refused is a bug (the sim's commands are always valid).
 */
import { prefixEnd } from '../lib/key-range.js';
import type { StateMachine } from '../node/node.js';
import type { ConfChange, Entry, Index } from '../raft/types.js';
import { MemoryBackend, type Backend } from '../kv/backend.js';
import { encodeRequest, type ApplyResult, type Command } from '../kv/commands.js';
import type { Compare, RequestOp } from '../kv/mvcc.js';
import { KvStateMachine } from '../kv/state-machine.js';
import type { KvCommand } from './kv.js';
import { InvariantViolation } from './violation.js';

/** What the checkers read of a member's state machine: the simulator's SimKv, or the real store (RealKv). */
export interface SimState {
  readonly appliedIndex: number;
  /** The register's value, null when it has none. */
  get(key: string): string | null;
  /** Whether the operation with this id was applied (a CAS that failed counts). */
  hasApplied(opId: string): boolean;
  /** A digest of the whole state, equal on members that applied the same log. */
  digest(withIndex?: boolean): string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const REGISTER = 'kv/';
const OP = 'op/';
const registerKey = (key: string): Uint8Array => enc.encode(REGISTER + key);
const opKey = (id: string): Uint8Array => enc.encode(OP + id);

/** A simulator command as the etcd request a real member would put in its log. */
export function realCommand(c: KvCommand): Uint8Array {
  const mark = (v: string): RequestOp => ({ put: { key: opKey(c.id), value: enc.encode(v) } });
  let compare: Compare[] = [];
  let success: RequestOp[];
  let failure: RequestOp[] = [];
  switch (c.op) {
    case 'write':
      success = [{ put: { key: registerKey(c.key), value: enc.encode(c.value) } }, mark('1')];
      break;
    case 'delete':
      success = [{ deleteRange: { key: registerKey(c.key) } }, mark('1')];
      break;
    case 'cas':
      // etcd's CAS: a value compare (false on a missing key), or "does not exist" as version 0.
      compare = [c.expected === null ? { key: registerKey(c.key), target: 'version', result: 'equal', value: 0 } : { key: registerKey(c.key), target: 'value', result: 'equal', value: enc.encode(c.expected) }];
      success = [{ put: { key: registerKey(c.key), value: enc.encode(c.value) } }, mark('1')];
      failure = [mark('0')];
      break;
  }
  const command: Command = { op: 'txn', req: { compare, success, failure } };
  return encodeRequest({ id: 0n, command });
}

/** The CAS outcome of an applied simulator command (true for write and delete). */
function outcome(r: ApplyResult, index: Index): boolean {
  if (!r.ok) throw new Error(`the real store refused the simulator's command at index ${index}: ${r.error.message}`);
  if (r.value.op !== 'txn') throw new Error(`entry ${index} applied as ${r.value.op}, not a txn`);
  return r.value.result.succeeded;
}

export interface RealKvOptions {
  /** The backend's batch limit (maybeCommit commits once this many writes wait). */
  readonly batchOpsMax: number;
  /**
   * Builds each incarnation's backend over the committed image of the last (tests pass
   * deliberately broken backends here); default: MemoryBackend.reopen.
   */
  readonly reopen?: (crashed: MemoryBackend, batchOpsMax: number) => MemoryBackend;
}

/** A member's real store: its backend (committed image and the incarnation's pending writes) and the state machine on it. */
export class RealKv implements SimState {
  private backendNow: MemoryBackend;
  private machine: KvStateMachine;
  private cached: { key: string; digest: string } | null = null;

  constructor(private readonly o: RealKvOptions) {
    this.backendNow = this.open(new MemoryBackend({ durable: true, batchOpsMax: o.batchOpsMax }));
    this.machine = new KvStateMachine({}, this.backendNow);
  }

  private open(crashed: MemoryBackend): MemoryBackend {
    return this.o.reopen ? this.o.reopen(crashed, this.o.batchOpsMax) : crashed.reopen({ batchOpsMax: this.o.batchOpsMax });
  }

  /** The member loses power: the writes since the last backend commit are gone; the state machine opens on what was committed. */
  crash(): void {
    this.backendNow = this.open(this.backendNow);
    this.machine = new KvStateMachine({}, this.backendNow);
    this.cached = null;
  }

  /** The state machine of the current incarnation. */
  get kv(): KvStateMachine {
    return this.machine;
  }

  get backend(): Backend {
    return this.backendNow;
  }

  /** The time-batched commit (LmdbBackend's interval timer). */
  commit(): void {
    this.backendNow.commit();
  }

  get appliedIndex(): number {
    return this.machine.lastAppliedIndex();
  }

  get(key: string): string | null {
    const kv = this.machine.store.range({ key: registerKey(key) }).kvs[0];
    return kv ? dec.decode(kv.value) : null;
  }

  hasApplied(opId: string): boolean {
    return this.machine.store.range({ key: opKey(opId), countOnly: true }).count > 0;
  }

  /** Registers, operations applied, the revision and HashKV: a member that applied an entry twice or lost one differs. */
  digest(withIndex = true): string {
    const s = this.machine.store;
    const key = `${s.revision}/${this.machine.lastAppliedIndex()}/${withIndex}`;
    if (this.cached?.key === key) return this.cached.digest;
    const registers = s.range({ key: enc.encode(REGISTER), rangeEnd: prefixEnd(enc.encode(REGISTER)) }).kvs.map((kv) => [dec.decode(kv.key).slice(REGISTER.length), dec.decode(kv.value)]);
    const ops = s.range({ key: enc.encode(OP), rangeEnd: prefixEnd(enc.encode(OP)), countOnly: true }).count;
    const digest = JSON.stringify([withIndex ? this.machine.lastAppliedIndex() : -1, registers, ops, s.revision, s.hashKv().hash]);
    this.cached = { key, digest };
    return digest;
  }
}

/** What the real store's state machine needs of the node driver: the checks it runs at each apply. */
export interface RealMachineHooks {
  /** Node driver's StateChecker calls, for entries handed to the state machine and those skipped. */
  applying(upTo: number, e?: Entry): void;
  /** A snapshot was installed into the store. */
  restored(index: Index): void;
  /** Runs `f` inside the member's asynchronous work (a failure fails the run). */
  guard<T>(f: () => T): T;
}

/**
 * The StateMachine RaftNode is given for a member on the real store: KvStateMachine itself
 * (lastAppliedIndex and persistTo included, so RaftNode resumes at the backend's applied
 * index and takes marker snapshots), with the simulator's checks; and one more across members:
 * the store's revision after entry i is the same on every member that applies i (`revisionAt`)
 * — an entry applied twice, or one whose effects were lost under a kept applied index, breaks it.
 */
export function realStateMachine(id: number, real: RealKv, hooks: RealMachineHooks, revisionAt: Map<Index, number>): StateMachine<boolean> {
  const kv = real.kv;
  const agree = (index: Index): void => {
    const rev = kv.store.revision;
    const other = revisionAt.get(index);
    if (other === undefined) revisionAt.set(index, rev);
    else if (other !== rev) throw new InvariantViolation('state machine safety', `n${id}'s store is at revision ${rev} after entry ${index}, another member's was at ${other}: an entry applied twice or lost`);
  };
  return {
    apply: (e: Entry) =>
      hooks.guard(() => {
        hooks.applying(e.index - 1, e);
        const swapped = outcome(kv.apply(e), e.index);
        agree(e.index);
        return swapped;
      }),
    applyConfChange: (cc: ConfChange, index: Index) =>
      hooks.guard(() => {
        hooks.applying(index);
        kv.applyConfChange(cc, index);
      }),
    // The whole image: what a lagging member is sent (taken as the message goes out).
    snapshot: () => kv.snapshot(),
    restore: (data: Uint8Array, index: Index) =>
      hooks.guard(() => {
        kv.restore(data, index);
        hooks.restored(index);
      }),
    lastAppliedIndex: () => kv.lastAppliedIndex(),
    persistTo: (index: Index) =>
      hooks.guard(() => {
        hooks.applying(index);
        return kv.persistTo(index);
      }),
  };
}
