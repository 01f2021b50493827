/**
 * The deterministic simulator: real Raft members driven under virtual time, a faulty network,
 * crashes that lose whatever was not yet durable, and clients whose operations are recorded
 * as a history. Safety invariants are checked after every event; after the fault phase a
 * liveness phase demands a leader and answers; the history is then checked for
 * linearizability. Everything random comes from one seed, so a run is reproducible exactly.
 *
 * This file is the cluster: the agenda, the network between members, member life cycles
 * (crash, restart, pause, resume, clocks) and the phases. The rest has a file each:
 * settings.ts (what a seed chooses), streams.ts (a random stream per purpose), cluster.ts
 * (members, clients, the view the parts get), driver.ts with node-driver.ts and
 * core-driver.ts (what runs each member), faults.ts (fault injection), workload.ts (clients
 * and their history), state-checker.ts, storage-checker.ts and liveness-checker.ts (the
 * invariants).
 */
import { AssertionError } from '../lib/assert.js';
import type { Rng } from '../lib/prng.js';
import type { Message } from '../raft/messages.js';
import { RaftCore } from '../raft/raft.js';
import type { ConfState, NodeId } from '../raft/types.js';
import type { Stamp } from '../trace/recorder.js';
import { currentLeader, roles, SimNode, type ClientRequest, type Phase, type Reply } from './cluster.js';
import { CoreDriver } from './core-driver.js';
import { SimDisk } from './disk.js';
import type { MemberDriver, SimHost } from './driver.js';
import { FaultInjector, type FaultHost, type FaultStream } from './faults.js';
import { checkHistory, LivenessChecker } from './liveness-checker.js';
import { Network, randomProfile } from './network.js';
import { NodeDriver } from './node-driver.js';
import { EventQueue, type TraceLine } from './queue.js';
import { chooseSetting, MS, newStats, type CoreFactory, type Setting, type SimFailure, type SimOptions, type SimResult } from './settings.js';
import { StateChecker, type MemberEvents } from './state-checker.js';
import { stream } from './streams.js';
import { SimTracer } from './trace.js';
import { InvariantViolation } from './violation.js';
import { Workload, type WorkloadHost } from './workload.js';

export {
  BASE_FAULT_CHANCE,
  BASE_FAULT_KINDS,
  CLOCK_FOLLOWER_JUMP_IN_MARGIN_US,
  CLOCK_RATE_IN_MARGIN,
  FAULT_KINDS,
  WORKLOAD_FAULT_CHANCE,
  WORKLOAD_FAULT_KINDS,
} from './settings.js';
export type { CoreFactory, FaultKind, SimDriver, SimFailure, SimOptions, SimResult, SimStats } from './settings.js';

/** Virtual time a stable leader, every client's write, and convergence may each take after the faults (µs). */
const LIVENESS_BOUND_US = 10_000 * MS;

export class Simulation implements SimHost, FaultHost, WorkloadHost {
  readonly diskRng: Rng;
  readonly coreRng: Rng;
  readonly setting: Setting;
  readonly net: Network;
  private readonly queue = new EventQueue();
  readonly nodes = new Map<NodeId, SimNode>();
  /** The members in id order, as `nodes` lists them (set up once: members are never added later). */
  private nodeList: SimNode[] = [];
  /**
   * The failure trace: the last `traceLength` lines with their virtual times, in a ring
   * (`traceNext` is where the next line goes once it is full), formatted only when shown.
   */
  private readonly traceAt: number[] = [];
  private readonly traceText: TraceLine[] = [];
  private traceNext = 0;
  private readonly traceLength: number;
  /** Logical clocks and trace events, when asked for (opts.onTrace). */
  private readonly tracer: SimTracer | null;
  readonly makeCore: CoreFactory;
  now = 0;
  phase: Phase = 'faults';
  liveEpoch = 0;
  readonly stats = newStats();
  bootstrap: ConfState = { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
  private readonly driver: MemberDriver;
  readonly checker: StateChecker;
  private readonly liveness: LivenessChecker;
  private readonly workload: Workload;
  private readonly faults: FaultInjector;

  constructor(readonly opts: SimOptions) {
    // Every purpose draws from a stream of its own (streams.ts), so a new draw for one purpose
    // or a new fault kind leaves every other draw of a seed as it was.
    const seed = opts.seed;
    this.setting = chooseSetting(opts);
    this.diskRng = stream(seed, 'disk');
    this.coreRng = stream(seed, 'core');
    const netRng = stream(seed, 'network');
    const profile = randomProfile(netRng);
    const lossy = this.setting.faults.includes('lossy');
    this.net = new Network(lossy ? profile : { ...profile, loss: 0, dup: 0 }, netRng);
    this.traceLength = opts.traceLength ?? 60;
    this.tracer = opts.onTrace ? new SimTracer(opts.onTrace, () => this.now / MS) : null;
    this.makeCore = opts.makeCore ?? ((config, initial) => new RaftCore(config, initial));
    if (this.setting.store === 'real' && (opts.driver ?? 'node') !== 'node') throw new RangeError('the real store runs under the node driver only');
    this.driver = (opts.driver ?? 'node') === 'node' ? new NodeDriver(this) : new CoreDriver(this);
    this.checker = new StateChecker(this.stats);
    this.liveness = new LivenessChecker(this);
    this.workload = new Workload(this, { client: stream(seed, 'clients'), lease: stream(seed, 'stray reads'), hunt: stream(seed, 'hunt') });
    const faultStreams = new Map<FaultStream, Rng>();
    const faultStream = (name: FaultStream): Rng => {
      let r = faultStreams.get(name);
      if (!r) faultStreams.set(name, (r = stream(seed, `fault ${name}`)));
      return r;
    };
    this.faults = new FaultInjector(this, this.driver, { startHunt: (t, hold) => this.workload.startHunt(t, hold), transferStarted: (l) => this.liveness.transferStarted(l) }, faultStream);
  }

  describeSetting(): string {
    const s = this.setting;
    const p = this.net.profile;
    const driver = this.driver.kind;
    return (
      `driver=${driver} nodes=${s.nodes} voters=${s.voters} learners=${s.learners} faults=${s.faults.join(',')} ` +
      `preVote=${s.preVote} checkQuorum=${s.checkQuorum} readOnly=${s.readOnly} heartbeat=${s.heartbeatTicks} maxMsgBytes=${s.maxMsgBytes} ` +
      `inflight=${s.inflightMsgsMax} snapshotEvery=${s.snapshotEvery} net=${p.delay}/${p.baseUs}us loss=${p.loss} dup=${p.dup} ` +
      `fsync=${s.fsyncUs[0]}-${s.fsyncUs[1]}us${driver === 'node' ? ` segment=${s.segmentBytes} tear=${s.tearChance}` : ''}` +
      `${s.store === 'real' ? ` store=real batch=${s.storeBatchOps} commitEvery=${s.storeCommitMs}ms` : ''} clients=${s.clients} keys=${s.keys} strike=${s.strikeChance}`
    );
  }

  async run(): Promise<SimResult> {
    let failure: SimFailure | undefined;
    try {
      this.setup();
      await this.settle();
      const faultEnd = (this.opts.faultPhaseMs ?? 3000) * MS;
      await this.runUntil(faultEnd);
      await this.livenessPhase(faultEnd);
      if (!this.opts.skipLinearizability) checkHistory(this.workload.history);
    } catch (e) {
      failure = this.toFailure(e);
    }
    this.stats.virtualMs = Math.round(this.now / MS);
    return {
      ok: failure === undefined,
      seed: this.opts.seed,
      nodes: this.setting.nodes,
      faults: this.setting.faults,
      setting: this.describeSetting(),
      ...(failure ? { failure } : {}),
      stats: this.stats,
      history: this.workload.history,
    };
  }

  private toFailure(e: unknown): SimFailure {
    const trace = this.traceLines();
    const timeMs = this.now / MS;
    if (e instanceof InvariantViolation) return { invariant: e.invariant, message: e.message, timeMs, trace };
    if (e instanceof AssertionError) return { invariant: 'core assertion', message: e.message, timeMs, trace };
    const err = e as Error;
    return { invariant: 'simulator error', message: `${err.name}: ${err.message}\n${err.stack ?? ''}`, timeMs, trace };
  }

  note(line: TraceLine): void {
    if (this.tracer) {
      if (typeof line !== 'string') line = line();
      this.tracer.note(line);
    }
    if (this.traceLength <= 0) return;
    if (this.traceText.length < this.traceLength) {
      this.traceAt.push(this.now);
      this.traceText.push(line);
    } else {
      this.traceAt[this.traceNext] = this.now;
      this.traceText[this.traceNext] = line;
      this.traceNext = (this.traceNext + 1) % this.traceLength;
    }
  }

  /** The failure trace, oldest line first: `    12.345ms  line`. */
  traceLines(): string[] {
    const out: string[] = [];
    const k = this.traceText.length;
    for (let j = 0; j < k; j++) {
      const i = (this.traceNext + j) % k;
      const line = this.traceText[i]!;
      out.push(`${(this.traceAt[i]! / MS).toFixed(3).padStart(10)}ms  ${typeof line === 'string' ? line : line()}`);
    }
    return out;
  }

  schedule(delayUs: number, label: TraceLine, run: () => void): void {
    this.queue.push(this.now + Math.max(0, Math.round(delayUs)), label, run);
  }

  private async runUntil(t: number, stop?: () => boolean): Promise<void> {
    for (;;) {
      if (stop && stop()) return;
      if (this.queue.peekTime() > t) {
        this.now = t;
        return;
      }
      const ev = this.queue.pop()!;
      this.now = ev.time;
      this.stats.events++;
      if (ev.label !== '') this.note(ev.label);
      ev.run();
      const pending = this.driver.settle();
      if (pending) await pending;
      this.afterEvent();
    }
  }

  /** The driver's asynchronous work started by an event, run to completion (node driver). */
  private async settle(): Promise<void> {
    const pending = this.driver.settle();
    if (pending) await pending;
  }

  // -------------------------------------------------------------------------------------
  // Members
  // -------------------------------------------------------------------------------------

  private setup(): void {
    const s = this.setting;
    const ids = Array.from({ length: s.nodes }, (_, i) => i + 1);
    const voters = ids.slice(0, s.voters);
    const learners = ids.slice(s.voters, s.voters + s.learners);
    const conf: ConfState = { voters, votersOutgoing: [], learners, learnersNext: [], autoLeave: false };
    this.bootstrap = conf;
    const driftRng = stream(this.opts.seed, 'drift');
    for (const id of ids) {
      const drift = 1 + (driftRng.next() - 0.5) * 0.1; // clocks differ by up to ±5%
      this.nodes.set(id, new SimNode(id, new SimDisk(id, conf), drift));
    }
    this.nodeList = [...this.nodes.values()];
    this.note(`start: ${this.describeSetting()}`);
    for (const n of this.nodes.values()) this.driver.boot(n);
    this.workload.start(voters);
    this.faults.scheduleNext();
  }

  newIncarnation(n: SimNode): void {
    this.liveEpoch++;
    n.restarted();
  }

  onNode(n: SimNode, f: () => void): void {
    if (!n.up) return;
    if (n.paused) n.deferred.push(f);
    else f();
  }

  handleRequest(n: SimNode, req: ClientRequest): void {
    this.driver.handleRequest(n, req);
  }

  reply(req: ClientRequest, rep: Reply): void {
    this.workload.reply(req, rep);
  }

  crash(n: SimNode): void {
    this.stats.crashes++;
    this.driver.crash(n);
    n.up = false;
    n.paused = false;
    n.deferred = [];
    n.outstanding = null;
    n.core = null;
    n.incarnation++;
    n.clockWaiters = [];
    this.liveEpoch++;
  }

  restart(n: SimNode): void {
    if (n.up) return;
    this.note(`FAULT restart n${n.id} from disk (term ${n.disk.hardState.term}, vote ${n.disk.hardState.vote}, commit ${n.disk.hardState.commit}, snapshot ${n.disk.snapshot.meta.index}, ${n.disk.entries.length} entries)`);
    this.driver.boot(n);
  }

  pause(n: SimNode): void {
    this.stats.pauses++;
    n.paused = true;
    this.liveEpoch++;
    this.note(`FAULT pause n${n.id}`);
  }

  resume(n: SimNode): void {
    if (!n.paused) return;
    this.note(`FAULT resume n${n.id}`);
    n.paused = false;
    this.liveEpoch++;
    this.driver.resumed(n);
    const work = n.deferred;
    n.deferred = [];
    for (const f of work) {
      if (!n.up || n.paused) break;
      f();
    }
    this.driver.pump(n);
  }

  afterClock(n: SimNode, clockUs: number, fn: () => void): void {
    if (n.clock.isPristine) {
      // Exactly the timing the simulator always had, for runs without clock faults.
      const target = n.clock.read(this.now) + clockUs;
      this.schedule(Math.ceil(clockUs * n.drift), '', () => (n.clock.isPristine ? fn() : this.atClock(n, target, fn)));
      return;
    }
    this.atClock(n, n.clock.read(this.now) + clockUs, fn);
  }

  /** Runs `fn` when member `n`'s clock reads `reading` (a stopped clock keeps it waiting). */
  private atClock(n: SimNode, reading: number, fn: () => void): void {
    const d = n.clock.realUntil(reading, this.now);
    if (d === 0) {
      fn();
      return;
    }
    if (d === Infinity) {
      n.clockWaiters.push(() => this.atClock(n, reading, fn));
      return;
    }
    // The clock may change rate or stop meanwhile: look again when the time comes.
    this.schedule(d, '', () => this.atClock(n, reading, fn));
  }

  resumeClock(n: SimNode): void {
    if (!n.clock.paused) return;
    n.clock.resume(this.now);
    this.note(`FAULT clock of n${n.id} runs again`);
    const waiting = n.clockWaiters;
    n.clockWaiters = [];
    for (const f of waiting) f();
  }

  // -------------------------------------------------------------------------------------
  // Network
  // -------------------------------------------------------------------------------------

  send(m: Message): void {
    this.stats.messagesSent++;
    const stamp = this.tracer?.send(m);
    const copies = this.net.copies();
    if (copies === 0) this.stats.messagesDropped++;
    for (let i = 0; i < copies; i++) {
      this.schedule(this.net.delayUs(), () => `deliver ${describeMessage(m)}`, () => this.deliver(m, stamp));
    }
  }

  private deliver(m: Message, stamp?: Stamp): void {
    const to = this.nodes.get(m.to);
    if (!to || !to.up || !this.net.canPass(m.from, m.to)) {
      this.stats.messagesDropped++;
      return;
    }
    const inc = to.incarnation;
    this.onNode(to, () => {
      if (to.incarnation !== inc) return;
      this.liveness.heardFrom(to, m.from);
      if (stamp) this.tracer?.receive(m, stamp);
      this.driver.deliver(to, m);
    });
  }

  // -------------------------------------------------------------------------------------
  // Checks and phases
  // -------------------------------------------------------------------------------------

  /** What the state checker tells the simulation about members (made once: it is used after every event). */
  private readonly memberEvents: MemberEvents = {
    roleChanged: (n: SimNode, role: string) => this.driver.roleChanged(n, role),
    newLeader: (n: SimNode) => {
      this.stats.leaders++;
      this.faults.onNewLeader(n);
    },
  };

  /** Checked after every event, for every running member. */
  private afterEvent(): void {
    for (const n of this.nodeList) {
      if (!n.up || !n.core) continue;
      this.checker.checkMember(n, this.memberEvents);
    }
    if (this.setting.checkQuorum && this.phase === 'faults') this.liveness.checkMinorityLeaders();
  }

  private async livenessPhase(faultEnd: number): Promise<void> {
    this.phase = 'liveness';
    this.net.healAll();
    this.net.faulty = false;
    this.note('--- faults stop: network healed, every member up ---');
    for (const n of this.nodes.values()) {
      if (!n.up) this.restart(n);
      else if (n.paused) this.resume(n);
      this.resumeClock(n);
    }
    await this.settle();
    this.workload.finish();
    // A leader every member of its configuration follows, within a bounded time.
    const bound = LIVENESS_BOUND_US;
    await this.runUntil(faultEnd + bound, () => this.liveness.stableLeader() !== undefined);
    const leader = this.liveness.stableLeader();
    if (!leader) throw new InvariantViolation('liveness', `no stable leader ${bound / MS}ms after the faults stopped: ${roles(this.nodes)}`);
    this.stats.leaderAfterHealMs = Math.round((this.now - faultEnd) / MS);
    // Every client gets an answer and completes a write.
    await this.runUntil(faultEnd + 2 * bound, () => this.workload.allDone());
    const stuck = this.workload.clients.filter((c) => !c.done);
    if (stuck.length > 0) {
      throw new InvariantViolation('liveness', `clients ${stuck.map((c) => c.id).join(',')} got no successful write within ${(2 * bound) / MS}ms after the faults stopped: ${roles(this.nodes)}`);
    }
    // Every member of the final configuration catches up to the same state.
    this.phase = 'settle';
    const withIndex = this.driver.smCountsEveryEntry;
    await this.runUntil(this.now + bound, () => this.liveness.converged(withIndex) === undefined);
    const why = this.liveness.converged(withIndex);
    if (why) throw new InvariantViolation('liveness', `members did not converge: ${why}`);
    this.stats.commitIndex = currentLeader(this.nodes)?.core!.commitIndex ?? 0;
    this.liveness.checkAckedEverywhere(this.workload.acked);
  }
}

export function describeMessage(m: Message): string {
  const head = `n${m.from}->n${m.to} ${m.type} t${m.term}`;
  switch (m.type) {
    case 'append':
      return `${head} prev=${m.prevLogIndex}/${m.prevLogTerm} entries=${m.entries.length > 0 ? `${m.entries[0]!.index}..${m.entries[m.entries.length - 1]!.index}` : 'none'} commit=${m.commit}`;
    case 'appendResponse':
      return `${head} index=${m.index}${m.reject ? ` REJECT hint=${m.hintIndex}/${m.hintTerm}` : ''}`;
    case 'heartbeat':
      return `${head} commit=${m.commit} round=${m.round}`;
    case 'heartbeatResponse':
      return `${head} round=${m.round}`;
    case 'vote':
      return `${head}${m.preVote ? ' pre' : ''} last=${m.lastLogIndex}/${m.lastLogTerm}${m.transfer ? ' transfer' : ''}`;
    case 'voteResponse':
      return `${head}${m.preVote ? ' pre' : ''} ${m.reject ? 'REJECT' : 'GRANT'}`;
    case 'snapshot':
      return `${head} at ${m.snapshot.meta.index}/${m.snapshot.meta.term}`;
    case 'readIndex':
      return `${head} ctx=${m.ctx}`;
    case 'readIndexResponse':
      return `${head} ctx=${m.ctx} index=${m.index}${m.reject ? ' REJECT' : ''}`;
    case 'timeoutNow':
      return head;
  }
}

export function runSimulation(opts: SimOptions): Promise<SimResult> {
  return new Simulation(opts).run();
}
