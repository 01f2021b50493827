/**
 * The simulator's clients (TigerBeetle's workload): each issues reads (ReadIndex or lease),
 * writes, deletes and compare-and-swaps one at a time to the member it believes leads, follows
 * leader hints, times out, and records every operation (call, return, outcome) in the history
 * that the linearizability checker reads. With lease reads, hunts: while a partition is up,
 * some clients read from the member that led when it began and the others write where a new
 * leader is elected, so a deposed leader answering from an expired lease shows as a stale read.
 */
import type { HistoryOp, OpKind } from '../check/history.js';
import type { Rng } from '../lib/prng.js';
import type { NodeId } from '../raft/types.js';
import { SimClient, type ClientRequest, type Reply, type SimNode, type SimWorld } from './cluster.js';
import { MS } from './settings.js';
import { InvariantViolation } from './violation.js';

/** Liveness phase: a client that cannot complete a write in this many attempts fails the run. */
export const FINAL_ATTEMPTS_MAX = 200;

/**
 * The same bound without pre-vote. Raft promises only that an election succeeds with
 * probability 1 (randomized timeouts), not within a fixed time, and without pre-vote the
 * expected time can be many election timeouts: when the faults end just after a new leader was
 * cut off, its log may be the only one able to win a vote, while every member with a staler log
 * still campaigns at a higher term and wipes out each round it starts first (a member that missed
 * a joint change does not even send its vote requests to the new voters, whose terms then lag
 * behind and lose each tie). etcd-raft behaves the same. Seed 128000651 (4 members) needed
 * between 200 and 400 attempts, seed 141001076 between 400 and 800 (the clients think up to
 * 20 ms between attempts: 40 to 80 election timeouts). A livelock, or a member that must win
 * and never can, still fails the run, only later.
 */
export const FINAL_ATTEMPTS_MAX_NO_PREVOTE = 1000;

export interface WorkloadHost extends SimWorld {
  /** Runs `f` on member `n` now, or when it resumes if paused. */
  onNode(n: SimNode, f: () => void): void;
  /** A request reaches member `n` (its driver answers through Workload.reply). */
  handleRequest(n: SimNode, req: ClientRequest): void;
}

export interface WorkloadStreams {
  /** Keys, operations, think times, retries. */
  readonly client: Rng;
  /** Lease reads: which requests go to a random member. */
  readonly lease: Rng;
  /** Hunts: where the hunting clients go, how fast they think. */
  readonly hunt: Rng;
}

export class Workload {
  readonly clients: SimClient[] = [];
  readonly history: HistoryOp[] = [];
  /** Operations acknowledged to a client as done. */
  readonly acked: { opId: string; op: OpKind }[] = [];
  /** Readers hunting a member that led when a partition began (lease reads), until `until`. */
  private hunt: { target: NodeId; until: number } | null = null;
  private nextReqId = 1;

  constructor(
    private readonly host: WorkloadHost,
    private readonly rng: WorkloadStreams,
  ) {}

  /** The clients, each following one of `voters` at first and starting within 50 ms. */
  start(voters: readonly NodeId[]): void {
    const h = this.host;
    for (let c = 1; c <= h.setting.clients; c++) {
      const client = new SimClient(c, this.rng.client.pick(voters));
      this.clients.push(client);
      h.schedule(this.rng.client.int(0, 50 * MS), '', () => this.issue(client));
    }
    this.addRacers();
  }

  /** The liveness phase: every idle client turns to writes until one succeeds. */
  finish(): void {
    for (const c of this.clients) {
      if (!c.waiting) {
        c.final = true;
        this.host.schedule(0, '', () => this.issue(c));
      }
    }
  }

  /** Every client has completed a write in the liveness phase. */
  allDone(): boolean {
    return this.clients.every((c) => c.done);
  }

  private issue(c: SimClient): void {
    const h = this.host;
    if (c.done || c.waiting) return;
    if (h.phase === 'settle') return;
    if (c.racer && !c.final && !this.hunting()) return; // racers wait for the next hunt
    const r = this.rng.client;
    const key = `k${r.int(0, h.setting.keys)}`;
    const opId = `c${c.id}-${++c.seq}`;
    const value = `v${c.id}.${c.seq}`;
    let req: ClientRequest;
    let expected: string | null | undefined;
    const pick = c.final ? 0.5 : r.next();
    const reqId = this.nextReqId++;
    if (pick < 0.4) {
      req = { client: c, reqId, op: 'read', key };
    } else if (pick < 0.75) {
      req = { client: c, reqId, op: 'write', key, cmd: { id: opId, op: 'write', key, value } };
    } else if (pick < 0.8) {
      req = { client: c, reqId, op: 'delete', key, cmd: { id: opId, op: 'delete', key } };
    } else {
      // Expect a value this client may have seen: its own last write or a recent one.
      expected = r.chance(0.2) ? null : `v${r.int(1, h.setting.clients + 1)}.${Math.max(1, c.seq - r.int(1, 4))}`;
      req = { client: c, reqId, op: 'cas', key, cmd: { id: opId, op: 'cas', key, expected, value } };
    }
    // A hunting reader only reads (from the member that led when the partition began): a write
    // there would keep it waiting for its outcome through the window where stale reads show.
    if (this.isHunter(c) && req.op !== 'read') req = { client: c, reqId, op: 'read', key };
    if (c.racer === 'writer' && !c.final && req.op !== 'write') req = { client: c, reqId, op: 'write', key, cmd: { id: opId, op: 'write', key, value } };
    // (Fields assigned one by one, not spread in conditionally: V8 copies such spreads slowly.)
    const waiting: NonNullable<SimClient['waiting']> = { req, call: h.now };
    if (req.op === 'write' || req.op === 'cas') waiting.value = value;
    if (req.op === 'cas') waiting.expected = expected ?? null;
    c.waiting = waiting;
    // With lease reads, half the requests go to any member, not the one the client follows: a
    // deposed leader that still answers from its lease meets readers while writers find the
    // new leader (so stale reads show).
    const stray = h.setting.readOnly === 'lease' && this.rng.lease.chance(0.5);
    let target = h.nodes.get(stray ? this.rng.lease.int(1, h.setting.nodes + 1) : c.target)!;
    if (this.isHunter(c)) target = h.nodes.get(this.hunt!.target)!;
    else if (this.hunting()) {
      // The other clients write where a new leader has just been elected (they know at once),
      // or, until there is one, anywhere but at the hunted member.
      const hunted = this.hunt!.target;
      let l: SimNode | undefined;
      for (const n of h.nodes.values()) if (n.id !== hunted && n.up && n.core?.currentRole === 'leader' && (!l || n.core.currentTerm > l.core!.currentTerm)) l = n;
      if (l) target = l;
      else if (target.id === hunted) target = h.nodes.get(this.rng.hunt.pick([...h.nodes.keys()].filter((x) => x !== hunted)))!;
    }
    h.stats.ops++;
    const process = c.process;
    h.schedule(h.net.delayUs(), () => `client ${process} -> n${target.id}: ${req.op} ${key}${req.cmd ? ` (${opId})` : ''}`, () => {
      h.onNode(target, () => h.handleRequest(target, req));
    });
    h.schedule(h.setting.clientTimeoutUs, '', () => {
      if (c.waiting?.req.reqId === reqId) this.complete(c, null, undefined);
    });
  }

  /** A member answers a request (the answer may be lost on a faulty network). */
  reply(req: ClientRequest, rep: Reply): void {
    const h = this.host;
    const c = req.client;
    const lost = h.net.faulty && this.rng.client.chance(h.net.profile.loss / 2);
    if (lost) return;
    h.schedule(h.net.delayUs(), '', () => {
      if (c.waiting?.req.reqId !== req.reqId) return;
      // Follow the leader hint; with none, try another member.
      if (!rep.ok) c.target = rep.hint || this.rng.client.int(1, h.setting.nodes + 1);
      this.complete(c, rep.ok, rep.output);
    });
  }

  private complete(c: SimClient, ok: boolean | null, output: string | boolean | null | undefined): void {
    const h = this.host;
    const w = c.waiting!;
    c.waiting = null;
    const req = w.req;
    // (Fields assigned one by one, in the order HistoryOp lists them, not spread in conditionally.)
    const op: { -readonly [K in keyof HistoryOp]: HistoryOp[K] } = { process: c.process, op: req.op, key: req.key } as HistoryOp;
    if (w.value !== undefined) op.value = w.value;
    if (req.op === 'cas') op.expected = w.expected ?? null;
    op.ok = ok;
    if (ok === true && (req.op === 'read' || req.op === 'cas')) op.output = output ?? null;
    op.call = w.call * 1000;
    op.return = ok === null ? null : h.now * 1000;
    this.history.push(op);
    const process = c.process;
    h.note(
      () => `client ${process} ${req.op} ${req.key}${w.value !== undefined ? ` ${w.value}` : ''} -> ${ok === null ? 'unknown (timeout)' : ok ? `ok${op.output !== undefined ? ` ${JSON.stringify(op.output)}` : ''}` : 'refused'}`,
    );
    if (ok === true) {
      h.stats.opsOk++;
      if (req.cmd) this.acked.push({ opId: req.cmd.id, op: req.op });
    } else if (ok === false) h.stats.opsFailed++;
    else {
      h.stats.opsUnknown++;
      // A client whose op has an unknown outcome is a new process from now on (the old one may
      // still be "in" that op), and it looks for the leader elsewhere.
      c.process += this.clients.length;
      c.target = this.rng.client.int(1, h.setting.nodes + 1);
    }
    if (c.final) {
      c.finalAttempts++;
      if (ok === true && req.op === 'write') {
        c.done = true;
        return;
      }
      if (c.finalAttempts > (h.setting.preVote ? FINAL_ATTEMPTS_MAX : FINAL_ATTEMPTS_MAX_NO_PREVOTE)) {
        throw new InvariantViolation('liveness', `client ${c.id} could not complete a write in ${c.finalAttempts} attempts after the faults stopped`);
      }
    } else if (h.phase !== 'faults') {
      c.final = true;
    }
    // During a hunt every client hurries: stale reads show only in a short window.
    h.schedule(this.hunting() ? this.rng.hunt.int(0, 2 * MS) : this.rng.client.int(0, 20 * MS), '', () => this.issue(c));
  }

  /** Lease reads: for a while, odd-numbered clients read from the member that led when a partition began. */
  startHunt(target: NodeId, holdUs: number): void {
    const h = this.host;
    if (h.setting.readOnly !== 'lease' || h.phase !== 'faults') return;
    h.stats.hunts++;
    this.hunt = { target, until: h.now + holdUs + 2 * h.setting.electionTicks * h.setting.tickUs };
    h.note(`HUNT: odd clients read from n${target}, the others write elsewhere`);
    for (const c of this.clients) {
      if (c.racer && !c.waiting && !c.final) h.schedule(0, '', () => this.issue(c));
      else if (c.id % 2 === 0 && c.target === target) c.target = this.rng.hunt.pick([...h.nodes.keys()].filter((x) => x !== target));
    }
  }

  /**
   * Lease reads: two more clients that act only while a hunt is on — one reads from the hunted
   * member, one writes at whoever leads elsewhere — so neither is stuck in an earlier request
   * when the window for a stale read opens.
   */
  private addRacers(): void {
    const h = this.host;
    if (h.setting.readOnly !== 'lease') return;
    for (const racer of ['reader', 'writer'] as const) {
      const c = new SimClient(this.clients.length + 1, this.rng.hunt.pick([...h.nodes.keys()]));
      c.racer = racer;
      this.clients.push(c);
    }
  }

  private hunting(): boolean {
    return this.hunt !== null && this.host.now < this.hunt.until && this.host.phase === 'faults';
  }

  private isHunter(c: SimClient): boolean {
    return (c.racer === 'reader' || (c.racer === null && c.id % 2 === 1)) && !c.final && this.hunting();
  }
}
