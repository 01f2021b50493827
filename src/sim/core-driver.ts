/**
 * The core driver: a minimal Ready loop over the pure core with an idealised disk (SimDisk)
 * and a simulated fsync delay; a crash before the write completes loses the whole Ready.
 * Faster than the node driver, and it isolates core bugs from the shell's.
 */
import type { RaftConfig } from '../raft/config.js';
import type { Message } from '../raft/messages.js';
import type { Ready } from '../raft/ready.js';
import type { ConfChange, Entry, NodeId } from '../raft/types.js';
import { CATCH_UP_ELECTIONS_MAX } from '../node/node.js';
import type { ClientRequest, SimNode } from './cluster.js';
import type { MemberDriver, SimHost } from './driver.js';
import { decodeCommand, encodeCommand, SimKv, type KvCommand } from './kv.js';
import { InvariantViolation } from './violation.js';

export class CoreDriver implements MemberDriver {
  readonly kind = 'core';
  readonly smCountsEveryEntry = true;

  constructor(private readonly host: SimHost) {}

  settle(): undefined {
    return undefined;
  }

  boot(n: SimNode): void {
    const h = this.host;
    const s = h.setting;
    h.newIncarnation(n);
    n.outstanding = null;
    n.pendingWrites.clear();
    n.pendingAt.clear();
    n.pendingReads.clear();
    n.readsWaiting = [];
    n.appliedSinceSnapshot = 0;
    const initial = n.disk.load();
    n.sm = SimKv.restore(initial.snapshot.data, initial.snapshot.meta.index);
    const config: RaftConfig = {
      id: n.id,
      electionTicks: s.electionTicks,
      heartbeatTicks: s.heartbeatTicks,
      rng: h.coreRng.fork(),
      preVote: s.preVote,
      checkQuorum: s.checkQuorum,
      readOnly: s.readOnly,
      maxMsgBytes: s.maxMsgBytes,
      inflightMsgsMax: s.inflightMsgsMax,
    };
    n.adopt(h.makeCore(config, initial));
    const inc = n.incarnation;
    const tickEvery = s.tickUs * n.drift;
    const tick = (): void => {
      if (n.incarnation !== inc || !n.up) return;
      if (n.paused) n.missedTicks++;
      else {
        this.catchUp(n);
        n.core!.tick();
        this.pump(n);
      }
      // A member's ticks follow its clock (exactly as before for a clock no fault touched).
      if (n.clock.isPristine) h.schedule(tickEvery, '', tick);
      else h.afterClock(n, s.tickUs, tick);
    };
    h.schedule(h.diskRng.int(0, s.tickUs), '', tick);
    this.pump(n);
  }

  /**
   * Lease reads: the ticks a pause swallowed, delivered at once (as the shell does from its
   * clock), capped at two election timeouts — without them a paused leader's lease would
   * outlive the pause.
   */
  private catchUp(n: SimNode): void {
    const s = this.host.setting;
    // Only with lease reads, as the shell (RaftNode) does.
    if (s.readOnly !== 'lease') n.missedTicks = 0;
    const missed = Math.min(n.missedTicks, CATCH_UP_ELECTIONS_MAX * s.electionTicks + 1);
    n.missedTicks = 0;
    for (let i = 0; i < missed; i++) n.core?.tick();
  }

  /** Takes the next Ready, if any, and starts persisting it; the rest happens when the write completes. */
  pump(n: SimNode): void {
    const h = this.host;
    if (!n.up || n.paused || n.outstanding || !n.core!.hasReady()) return;
    const core = n.core!;
    const rd = core.ready();
    n.outstanding = rd;
    h.checker.checkNewEntries(n, rd.entries);
    if (rd.softState) h.note(`n${n.id} is ${rd.softState.role} of term ${core.currentTerm} (leader ${rd.softState.leader})`);
    const inc = n.incarnation;
    const delay = rd.mustSync ? h.diskRng.int(h.setting.fsyncUs[0], h.setting.fsyncUs[1]) : 1;
    h.schedule(delay, '', () => {
      if (n.incarnation !== inc || !n.up) return; // crashed meanwhile: the Ready is lost
      h.onNode(n, () => this.finishReady(n, rd));
    });
  }

  private finishReady(n: SimNode, rd: Ready): void {
    const h = this.host;
    const core = n.core!;
    // 1. persist
    n.disk.persist(rd);
    // 2. send
    for (const m of rd.messages) {
      if (h.opts.checkDurability ?? true) h.checker.checkOutgoing(n, m);
      h.send(m);
    }
    // 3. install the snapshot, apply committed entries
    if (rd.snapshot) {
      n.sm = SimKv.restore(rd.snapshot.data, rd.snapshot.meta.index);
      h.stats.snapshotsInstalled++;
      h.note(`n${n.id} installed snapshot at ${rd.snapshot.meta.index}/${rd.snapshot.meta.term}`);
    }
    for (const e of rd.committedEntries) this.apply(n, e);
    // 4. reads
    for (const rs of rd.readStates) {
      const req = n.pendingReads.get(rs.ctx);
      if (!req) continue;
      n.pendingReads.delete(rs.ctx);
      n.readsWaiting.push({ index: rs.index, req });
    }
    this.serveReads(n);
    // 5. advance
    n.outstanding = null;
    core.advance(rd);
    this.maybeSnapshot(n);
    this.pump(n);
  }

  private apply(n: SimNode, e: Entry): void {
    const h = this.host;
    h.checker.checkApplied(n, e);
    n.appliedSinceSnapshot++;
    let opId: string | undefined;
    if (e.type === 'normal' && e.data.length > 0) {
      const cmd = decodeCommand(e.data);
      opId = cmd.id;
      const swapped = n.sm.apply(e.index, cmd);
      const p = n.pendingWrites.get(cmd.id);
      if (p) {
        n.pendingWrites.delete(cmd.id);
        n.pendingAt.delete(p.index);
        h.reply(p.req, cmd.op === 'cas' ? { ok: true, output: swapped } : { ok: true });
      }
    } else {
      n.sm.appliedIndex = e.index;
    }
    // A different entry at the index where a proposal of ours sat: that proposal can never commit.
    const lost = n.pendingAt.get(e.index);
    if (lost !== undefined && lost !== opId) {
      const p = n.pendingWrites.get(lost)!;
      n.pendingWrites.delete(lost);
      n.pendingAt.delete(e.index);
      h.reply(p.req, { ok: false, hint: n.core!.leader });
    }
  }

  private serveReads(n: SimNode): void {
    if (n.readsWaiting.length === 0) return;
    const still: { index: number; req: ClientRequest }[] = [];
    for (const w of n.readsWaiting) {
      if (n.sm.appliedIndex >= w.index) this.host.reply(w.req, { ok: true, output: n.sm.get(w.req.key) });
      else still.push(w);
    }
    n.readsWaiting = still;
  }

  private maybeSnapshot(n: SimNode): void {
    const h = this.host;
    const core = n.core!;
    if (n.appliedSinceSnapshot < h.setting.snapshotEvery || core.appliedIndex <= n.disk.snapshot.meta.index) return;
    if (n.sm.appliedIndex !== core.appliedIndex) {
      throw new InvariantViolation('state machine safety', `n${n.id} state machine at ${n.sm.appliedIndex} but core applied ${core.appliedIndex}`);
    }
    const snap = core.takeSnapshot(n.sm.snapshot(), h.setting.snapshotRetain);
    if (!snap) return;
    n.disk.saveSnapshot(snap);
    n.appliedSinceSnapshot = 0;
    h.stats.snapshotsTaken++;
    h.note(`n${n.id} took snapshot at ${snap.meta.index}/${snap.meta.term}`);
  }

  deliver(n: SimNode, m: Message): void {
    n.core!.step(m);
    this.pump(n);
  }

  handleRequest(n: SimNode, req: ClientRequest): void {
    const h = this.host;
    const core = n.core!;
    if (req.op === 'read') {
      const ctx = `r${req.reqId}`;
      const r = core.readIndex(ctx);
      if (!r.ok) h.reply(req, { ok: false, hint: r.leaderHint });
      else n.pendingReads.set(ctx, req);
    } else {
      const r = core.propose(encodeCommand(req.cmd!));
      if (!r.ok) h.reply(req, { ok: false, hint: r.leaderHint });
      else {
        n.pendingWrites.set(req.cmd!.id, { req, index: r.index });
        n.pendingAt.set(r.index, req.cmd!.id);
      }
    }
    this.pump(n);
  }

  crash(n: SimNode): void {
    this.host.note(`FAULT crash n${n.id}${n.outstanding ? ' (losing an unpersisted Ready)' : ''}`);
  }

  resumed(n: SimNode): void {
    this.catchUp(n);
  }

  clockJumped(n: SimNode, us: number): void {
    // Like the shell with lease reads, the core driver delivers the ticks the jump skipped.
    if (this.host.setting.readOnly === 'lease') n.missedTicks += Math.floor(us / this.host.setting.tickUs);
  }

  transferLeadership(l: SimNode, to: NodeId): { ok: true } | { ok: false; reason: string } {
    const res = l.core!.transferLeader(to);
    return res.ok ? { ok: true } : { ok: false, reason: res.reason };
  }

  proposeConfChange(l: SimNode, cc: ConfChange, label: string): boolean {
    const res = l.core!.proposeConfChange(cc);
    this.host.note(`${label}: ${res.ok ? `proposed at ${res.index}` : res.reason}`);
    return res.ok;
  }

  propose(l: SimNode, cmd: KvCommand): void {
    l.core!.propose(encodeCommand(cmd));
  }

  compact(n: SimNode): void {
    if (!n.up || n.paused || n.outstanding) return;
    n.appliedSinceSnapshot = this.host.setting.snapshotEvery;
    this.maybeSnapshot(n);
  }

  roleChanged(): void {
    // Noted from the Ready's soft state when it is taken (pump).
  }
}
