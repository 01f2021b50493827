/**
 * The node driver: each member is the server's shell (RaftNode) with the real storage code
 * (DiskStorage: WAL and snapshot files) on an in-memory file system whose syncs take virtual
 * time and whose crashes lose unsynced writes and may tear the first of them. The simulation
 * gives it a virtual Clock and Transport and drains promise continuations after every event
 * (`settle`), so runs stay deterministic.
 */
import type { InitialState } from '../raft/config.js';
import type { Message } from '../raft/messages.js';
import type { ConfChange, NodeId, Snapshot } from '../raft/types.js';
import { NotLeaderError, ProposalDroppedError, ProposalOutcomeUnknownError, ProposalRefusedError, RaftNode, ReadTimeoutError, type Clock, type StateMachine, type Transport } from '../node/node.js';
import { DiskStorage, type Storage } from '../storage/storage.js';
import type { ClientRequest, SimNode } from './cluster.js';
import type { MemberDriver, SimHost } from './driver.js';
import { decodeCommand, encodeCommand, SimKv, type KvCommand } from './kv.js';
import { MS } from './settings.js';
import { checkRecovered } from './storage-checker.js';
import { RealKv, realCommand, realStateMachine } from './store.js';

export class NodeDriver implements MemberDriver {
  readonly kind = 'node';
  readonly smCountsEveryEntry = false;
  /** An error raised inside a member's asynchronous work, rethrown after the event. */
  private asyncFailure: unknown = null;
  /** Real store: the store's revision after each entry, as the first member to apply it had it. */
  private readonly revisionAt = new Map<number, number>();

  constructor(private readonly host: SimHost) {}

  /** A command as this run's members log it (the real store: an etcd txn). */
  private encode(cmd: KvCommand): Uint8Array {
    return this.host.setting.store === 'real' ? realCommand(cmd) : encodeCommand(cmd);
  }

  /**
   * Lets every member's asynchronous work that the event started run to completion before the
   * next event. No real I/O happens (the file system is in memory and its syncs wait for
   * virtual-time events), so this drains promise continuations only, in a deterministic order.
   *
   * A nextTick callback queued from a microtask runs once the microtask queue is empty,
   * continuations queued by other continuations included, so resolving from one resumes this
   * after all of them — as an immediate would, but without a turn of the event loop (with its
   * poll for I/O) per event. (Queued outside a microtask — the first event of a run started
   * from an event handler, as in a sweep's worker thread — it would run before the microtasks:
   * Node runs ticks first. Hence the microtask that queues it.) That holds because members
   * queue only promise continuations: no nextTick, timer or immediate (their clock and disk
   * are the simulation's events).
   */
  settle(): Promise<void> {
    return new Promise<void>((resolve, reject) =>
      queueMicrotask(() =>
        process.nextTick(() => {
          if (this.asyncFailure !== null) reject(this.asyncFailure);
          else {
            for (const n of this.host.nodes.values()) {
              if (n.up && n.node?.failure) {
                reject(n.node.failure);
                return;
              }
            }
            resolve();
          }
        }),
      ),
    );
  }

  /** Runs `f` inside a member's asynchronous work; a failure there fails the run. */
  private guard<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      this.asyncFailure ??= e;
      throw e;
    }
  }

  boot(n: SimNode): void {
    this.bootNode(n).catch((e: unknown) => (this.asyncFailure ??= e));
  }

  private async bootNode(n: SimNode): Promise<void> {
    const h = this.host;
    const s = h.setting;
    h.newIncarnation(n);
    n.node = null;
    n.core = null;
    n.receive = null;
    const inc = n.incarnation;
    const alive = (): boolean => n.incarnation === inc && n.up;
    n.fs.syncDelay = () =>
      new Promise<void>((resolve) => {
        h.schedule(h.diskRng.int(s.fsyncUs[0], s.fsyncUs[1]), '', () => {
          if (alive()) h.onNode(n, resolve);
        });
      });
    const disk = await DiskStorage.open('/data', h.bootstrap, { fs: n.fs, segmentBytes: s.segmentBytes });
    if (!alive()) return;
    checkRecovered(n, await disk.load());
    const transport: Transport = {
      send: (messages) =>
        this.guard(() => {
          if (!alive()) return;
          for (const m of messages) {
            if (h.opts.checkDurability ?? true) h.checker.checkOutgoing(n, m);
            h.send(m);
          }
        }),
      listen: (receive) => {
        n.receive = receive;
      },
      close: async () => {},
    };
    // The member's own clock runs at its drift, and a timer never fires before its time on
    // that clock (rounded up to the next virtual microsecond).
    const clock: Clock = {
      // (The pristine form keeps the exact arithmetic runs without clock faults always had.)
      now: () => (n.clock.isPristine ? h.now / MS / n.drift : n.clock.read(h.now) / MS),
      setTimer: (ms, fn) => {
        let armed = true;
        h.afterClock(n, ms * MS, () => {
          if (armed && alive()) h.onNode(n, () => armed && alive() && fn());
        });
        return { cancel: () => (armed = false) };
      },
    };
    const simMachine: StateMachine<boolean> = {
      apply: (e) =>
        this.guard(() => {
          h.checker.checkSkipped(n, e.index - 1, e.index);
          h.checker.checkCommittedAt(n, e);
          n.appliedSeen = e.index;
          return n.sm.apply(e.index, decodeCommand(e.data));
        }),
      snapshot: () => {
        this.guard(() => h.checker.checkSkipped(n, n.core!.appliedIndex, n.core!.appliedIndex));
        n.sm.appliedIndex = n.core!.appliedIndex;
        return n.sm.snapshot();
      },
      restore: (data, index) => {
        n.sm = SimKv.restore(data, index);
        n.appliedSeen = index;
        if (n.core) {
          h.stats.snapshotsInstalled++;
          h.note(`n${n.id} installed snapshot at ${index}`);
        }
      },
    };
    const stateMachine = s.store === 'real' ? this.realMachine(n, alive) : simMachine;
    const node = await RaftNode.start<boolean>({
      id: n.id,
      storage: this.checkedStorage(n, h.opts.wrapStorage?.(disk) ?? disk, alive),
      transport,
      stateMachine,
      clock,
      tickMs: s.tickUs / MS,
      electionTicks: s.electionTicks,
      heartbeatTicks: s.heartbeatTicks,
      snapshotEntries: s.snapshotEvery,
      snapshotRetain: s.snapshotRetain,
      readTimeoutMs: s.clientTimeoutUs / MS,
      seed: h.coreRng.int(0, 2 ** 31),
      raft: { preVote: s.preVote, checkQuorum: s.checkQuorum, readOnly: s.readOnly, maxMsgBytes: s.maxMsgBytes, inflightMsgsMax: s.inflightMsgsMax },
      makeCore: (config, initial: InitialState) => n.adopt(h.makeCore(config, initial)),
    });
    n.node = node;
  }

  /**
   * The real store's state machine for this incarnation (store.ts), opened on what the
   * member's backend committed before it crashed, with the time-batched commits of its backend.
   */
  private realMachine(n: SimNode, alive: () => boolean): StateMachine<boolean> {
    const h = this.host;
    const s = h.setting;
    n.real ??= new RealKv({ batchOpsMax: s.storeBatchOps, ...(h.opts.reopenBackend ? { reopen: h.opts.reopenBackend } : {}) });
    const real = n.real;
    n.appliedSeen = real.kv.lastAppliedIndex();
    if (s.storeCommitMs > 0) {
      const every = (): void =>
        h.afterClock(n, s.storeCommitMs * MS, () => {
          if (!alive()) return;
          h.onNode(n, () => {
            if (!alive()) return;
            this.guard(() => real.commit());
            every();
          });
        });
      every();
    }
    return realStateMachine(
      n.id,
      real,
      {
        applying: (upTo, e) => {
          h.checker.checkSkipped(n, upTo, e?.index ?? upTo);
          if (e) {
            h.checker.checkCommittedAt(n, e);
            n.appliedSeen = e.index;
          }
        },
        restored: (index) => {
          n.appliedSeen = index;
          if (n.core) {
            h.stats.snapshotsInstalled++;
            h.note(`n${n.id} installed snapshot at ${index}`);
          }
        },
        guard: (f) => this.guard(f),
      },
      this.revisionAt,
    );
  }

  /** DiskStorage, with the simulator's checks: log matching before a write, a record of what each completed write made durable. */
  private checkedStorage(n: SimNode, inner: Storage, alive: () => boolean): Storage {
    const h = this.host;
    return {
      load: () => inner.load(),
      save: async (rd, sync) => {
        this.guard(() => h.checker.checkNewEntries(n, rd.entries));
        n.unsynced.push(rd);
        await inner.save(rd, sync);
        if (!alive()) return;
        n.unsynced = [];
        this.guard(() => n.disk.persist(rd));
      },
      saveSnapshot: async (snap: Snapshot) => {
        await inner.saveSnapshot(snap);
        if (!alive()) return;
        n.disk.saveSnapshot(snap);
        h.stats.snapshotsTaken++;
        h.note(`n${n.id} took snapshot at ${snap.meta.index}/${snap.meta.term}`);
      },
      close: () => inner.close(),
    };
  }

  deliver(n: SimNode, m: Message): void {
    n.receive?.(m);
  }

  handleRequest(n: SimNode, req: ClientRequest): void {
    const h = this.host;
    const node = n.node;
    if (!node) {
      h.reply(req, { ok: false }); // still starting
      return;
    }
    const inc = n.incarnation;
    const failed = (e: unknown): void => {
      if (n.incarnation !== inc) return;
      if (e instanceof NotLeaderError || e instanceof ProposalRefusedError) h.reply(req, { ok: false, hint: e.leaderHint });
      else if (e instanceof ProposalDroppedError || e instanceof ReadTimeoutError) h.reply(req, { ok: false, hint: node.leader });
      else if (!(e instanceof ProposalOutcomeUnknownError)) this.asyncFailure ??= e;
      // An unknown outcome gets no answer: the client times out, as it would in a real system.
    };
    if (req.op === 'read') {
      node.linearizableRead().then(() => {
        if (n.incarnation === inc) h.reply(req, { ok: true, output: n.state.get(req.key) });
      }, failed);
    } else {
      node.propose(this.encode(req.cmd!)).then((swapped) => {
        if (n.incarnation === inc) h.reply(req, req.cmd!.op === 'cas' ? { ok: true, output: swapped } : { ok: true });
      }, failed);
    }
  }

  pump(): void {
    // The shell runs its own Ready loop.
  }

  crash(n: SimNode): void {
    const h = this.host;
    // The machine loses power: unsynced writes are lost, and the first may be torn.
    const tear = h.diskRng.chance(h.setting.tearChance);
    h.note(`FAULT crash n${n.id}${tear ? ' (tearing its first unsynced write)' : ''}`);
    n.fs.crash(tear ? (len) => h.diskRng.int(0, len) : undefined);
    // The store's backend keeps its last commit; the writes pending in its overlay are lost.
    n.real?.crash();
    n.node = null;
    n.receive = null;
  }

  resumed(): void {
    // The shell catches up on the ticks it missed from its clock.
  }

  clockJumped(): void {
    // The shell's ticks follow its clock.
  }

  transferLeadership(l: SimNode, to: NodeId): { ok: true } | { ok: false; reason: string } | undefined {
    if (!l.node) return undefined;
    try {
      l.node.transferLeadership(to);
      return { ok: true };
    } catch (e) {
      if (!(e instanceof ProposalRefusedError)) throw e;
      return { ok: false, reason: e.reason };
    }
  }

  proposeConfChange(l: SimNode, cc: ConfChange, label: string): boolean | undefined {
    if (!l.node) return undefined;
    this.host.note(`${label}: proposed`);
    l.node.proposeConfChange(cc).catch(() => {}); // refusals and leader changes are normal here
    return true;
  }

  propose(l: SimNode, cmd: KvCommand): void {
    l.node?.propose(this.encode(cmd)).catch(() => {});
  }

  compact(n: SimNode): void {
    n.node?.requestSnapshot();
  }

  roleChanged(n: SimNode, role: string): void {
    this.host.note(`n${n.id} is ${role} of term ${n.core!.currentTerm} (leader ${n.core!.leader})`);
  }
}
