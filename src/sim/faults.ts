/**
 * Fault injection (TigerBeetle's packet simulator and cluster faults, in one place): at random
 * times during the fault phase, one of the seed's fault kinds strikes — partitions of many
 * shapes, crashes, pauses, leadership transfers, membership changes, compactions — plus the
 * workload kinds aimed at rules the base kinds rarely reach (joint replaces under partitions of
 * one half, divergent tails under small messages, clock faults and lease races), and strikes at
 * new leaders within a few message delays (the Figure 8 interleavings).
 */
import type { Rng } from '../lib/prng.js';
import type { ConfChange, NodeId } from '../raft/types.js';
import { currentLeader, type SimNode, type SimWorld } from './cluster.js';
import type { MemberDriver } from './driver.js';
import type { KvCommand } from './kv.js';
import { CLOCK_FOLLOWER_JUMP_IN_MARGIN_US, CLOCK_RATE_IN_MARGIN, MS, type FaultKind } from './settings.js';

/** What the fault injector may do to members besides driving them. */
export interface FaultHost extends SimWorld {
  crash(n: SimNode): void;
  restart(n: SimNode): void;
  pause(n: SimNode): void;
  resume(n: SimNode): void;
  resumeClock(n: SimNode): void;
}

/** What a fault tells the rest of the simulation. */
export interface FaultListeners {
  /** A partition cut off the member that led (lease reads: the workload hunts it). */
  startHunt(target: NodeId, holdUs: number): void;
  /** A leader started a transfer (the minority-leader check waits for it). */
  transferStarted(l: SimNode): void;
}

/**
 * The random streams of the fault injector, by purpose: `schedule` (when the next fault
 * strikes and which kind), `strike` (new leaders struck down), and one per fault kind.
 */
export type FaultStream = FaultKind | 'schedule' | 'strike';

export class FaultInjector {
  constructor(
    private readonly host: FaultHost,
    private readonly driver: MemberDriver,
    private readonly listeners: FaultListeners,
    private readonly rng: (stream: FaultStream) => Rng,
  ) {}

  /** The next fault of the seed's kinds (not `lossy`, which is a property of the network), at a random time. */
  scheduleNext(): void {
    const h = this.host;
    const active = h.setting.faults.filter((f) => f !== 'lossy');
    if (active.length === 0) return;
    const r = this.rng('schedule');
    const [lo, hi] = h.opts.faultEveryMs ?? [20, 600];
    h.schedule(r.int(lo * MS, hi * MS + 1), '', () => {
      if (h.phase !== 'faults') return;
      this.inject(r.pick(active));
      this.scheduleNext();
    });
  }

  /** Half the time the leader, else any member. */
  private victim(r: Rng): SimNode {
    const h = this.host;
    const leader = currentLeader(h.nodes);
    if (leader && r.chance(0.5)) return leader;
    return h.nodes.get(r.int(1, h.setting.nodes + 1))!;
  }

  /** Heals the network after `holdUs`, unless the fault phase is over by then. */
  private healAfter(holdUs: number): void {
    const h = this.host;
    h.schedule(holdUs, '', () => {
      if (h.phase !== 'faults') return;
      h.net.healAll();
      h.note('FAULT network healed');
    });
  }

  private inject(kind: FaultKind): void {
    switch (kind) {
      case 'partition':
        this.partition();
        return;
      case 'crash': {
        const h = this.host;
        const r = this.rng('crash');
        const v = this.victim(r);
        if (!v.up) return;
        h.crash(v);
        const down = r.chance(0.2) ? r.int(0, 2 * MS) : r.int(10 * MS, 1500 * MS);
        h.schedule(down, '', () => h.restart(v));
        return;
      }
      case 'pause': {
        const h = this.host;
        const r = this.rng('pause');
        const v = this.victim(r);
        if (!v.up || v.paused) return;
        h.pause(v);
        const inc = v.incarnation;
        h.schedule(r.int(50 * MS, 800 * MS), '', () => {
          if (v.incarnation === inc) h.resume(v);
        });
        return;
      }
      case 'transfer':
        this.transfer();
        return;
      case 'membership':
        this.membership();
        return;
      case 'compaction':
        this.driver.compact(this.victim(this.rng('compaction')));
        return;
      case 'joint':
        this.joint();
        return;
      case 'clock':
        this.clock();
        return;
      case 'divergence':
        this.divergence();
        return;
      case 'lossy':
        return;
    }
  }

  private partition(): void {
    const h = this.host;
    const r = this.rng('partition');
    const ids = [...h.nodes.keys()];
    h.stats.partitions++;
    h.net.healAll();
    const shape = r.pick(['isolate', 'split', 'oneWay', 'ring', 'bridge', 'flapping'] as const);
    const hold = r.int(50 * MS, 1500 * MS);
    const ledBefore = currentLeader(h.nodes);
    const apply = (): string => {
      h.net.healAll();
      const shuffled = shuffle(r, ids);
      switch (shape) {
        case 'isolate':
        case 'flapping': {
          const v = this.victim(r).id;
          h.net.split([v], ids.filter((x) => x !== v));
          return `isolate n${v}`;
        }
        case 'split': {
          const k = r.int(1, Math.floor(ids.length / 2) + 1);
          h.net.split(shuffled.slice(0, k), shuffled.slice(k));
          return `split {${shuffled.slice(0, k).join(',')}} | {${shuffled.slice(k).join(',')}}`;
        }
        case 'oneWay': {
          const v = this.victim(r).id;
          const inbound = r.chance(0.5);
          for (const x of ids) {
            if (x === v) continue;
            if (inbound) h.net.block(x, v);
            else h.net.block(v, x);
          }
          return `one-way: n${v} ${inbound ? 'hears nobody' : 'is heard by nobody'}`;
        }
        case 'ring': {
          // Each member talks only to its two neighbours in a random ring: non-transitive.
          for (let i = 0; i < shuffled.length; i++) {
            for (let j = 0; j < shuffled.length; j++) {
              const d = Math.abs(i - j);
              if (d > 1 && d < shuffled.length - 1) h.net.block(shuffled[i]!, shuffled[j]!);
            }
          }
          return `ring ${shuffled.join('-')}`;
        }
        case 'bridge': {
          // Two halves that only one member (the bridge) connects.
          const bridge = shuffled[0]!;
          const rest = shuffled.slice(1);
          const k = Math.floor(rest.length / 2);
          h.net.split(rest.slice(0, k), rest.slice(k));
          return `bridge n${bridge} between {${rest.slice(0, k).join(',')}} and {${rest.slice(k).join(',')}}`;
        }
      }
    };
    h.note(`FAULT partition: ${apply()}`);
    if (ledBefore) this.listeners.startHunt(ledBefore.id, hold);
    if (shape === 'flapping') {
      const flips = r.int(3, 12);
      for (let i = 1; i <= flips; i++) {
        h.schedule((hold * i) / flips / 2, '', () => {
          if (h.phase !== 'faults') return;
          if (i % 2 === 1) {
            h.net.healAll();
            h.note('FAULT flapping partition heals');
          } else h.note(`FAULT flapping partition: ${apply()}`);
        });
      }
    }
    this.healAfter(hold);
  }

  private transfer(): void {
    const h = this.host;
    const l = currentLeader(h.nodes);
    if (!l) return;
    const voters = l.core!.status().confState.voters.filter((x) => x !== l.id);
    if (voters.length === 0) return;
    const to = this.rng('transfer').pick(voters);
    const res = this.driver.transferLeadership(l, to);
    if (!res) return;
    h.note(`FAULT transfer leadership n${l.id} -> n${to}: ${res.ok ? 'started' : res.reason}`);
    if (res.ok) {
      h.stats.transfers++;
      this.listeners.transferStarted(l);
    }
    this.driver.pump(l);
  }

  private membership(): void {
    const h = this.host;
    const l = currentLeader(h.nodes);
    if (!l) return;
    const cc = this.chooseConfChange(l);
    if (!cc) return;
    const ok = this.driver.proposeConfChange(l, cc, `FAULT conf change ${describeConfChange(cc)} at n${l.id}`);
    if (ok === undefined) return;
    if (ok) h.stats.confChanges++;
    this.driver.pump(l);
  }

  /**
   * Targeted faults: a new leader is sometimes struck down within a few message delays, before
   * its first entries are replicated. This is what produces the half-replicated logs of the
   * paper's Figure 8 far more often than faults at uniformly random times do.
   */
  onNewLeader(n: SimNode): void {
    const h = this.host;
    // Within the lease-read margin a leader's clock never stops: one that wins gets it back.
    if (n.clock.paused && h.setting.readOnly === 'lease' && !h.opts.clockBeyondMargin) h.resumeClock(n);
    if (h.phase !== 'faults') return;
    const r = this.rng('strike');
    const f = h.setting.faults;
    // Within a few one-way delays: the new leader has sent its first appends, few have arrived.
    const soon = r.int(0, 4 * h.net.profile.baseUs + 1);
    const p = h.setting.strikeChance;
    if (f.includes('crash') && r.chance(p)) {
      const inc = n.incarnation;
      h.schedule(soon, '', () => {
        if (h.phase !== 'faults' || n.incarnation !== inc || !n.up) return;
        h.note(`FAULT strike new leader n${n.id}:`);
        h.crash(n);
        h.schedule(r.int(5 * MS, 300 * MS), '', () => h.restart(n));
      });
    } else if (f.includes('partition') && r.chance(p)) {
      h.schedule(soon, '', () => {
        if (h.phase !== 'faults') return;
        h.stats.partitions++;
        h.net.healAll();
        h.net.split([n.id], [...h.nodes.keys()].filter((x) => x !== n.id));
        h.note(`FAULT partition: isolate new leader n${n.id}`);
        const hold = r.int(20 * MS, 500 * MS);
        this.listeners.startHunt(n.id, hold);
        this.healAfter(hold);
      });
    }
  }

  private chooseConfChange(l: SimNode): ConfChange | undefined {
    const cs = l.core!.status().confState;
    if (cs.votersOutgoing.length > 0) return undefined;
    const r = this.rng('membership');
    const all = [...this.host.nodes.keys()];
    const outside = all.filter((x) => !cs.voters.includes(x) && !cs.learners.includes(x));
    const options: (() => ConfChange)[] = [];
    if (outside.length > 0) options.push(() => ({ changes: [{ kind: 'addLearner', nodeId: r.pick(outside) }] }));
    if (cs.learners.length > 0) {
      options.push(() => ({ changes: [{ kind: 'addVoter', nodeId: r.pick(cs.learners) }], joint: r.chance(0.5), autoLeave: true }));
    }
    if (cs.voters.length > 2) {
      options.push(() => ({ changes: [{ kind: 'removeNode', nodeId: r.pick(cs.voters) }], ...(r.chance(0.5) ? { joint: true, autoLeave: true } : {}) }));
      options.push(() => ({ changes: [{ kind: 'addLearner', nodeId: r.pick(cs.voters) }] }));
    }
    if (cs.voters.length >= 2 && cs.learners.length > 0) {
      options.push(() => ({
        changes: [
          { kind: 'removeNode', nodeId: r.pick(cs.voters) },
          { kind: 'addVoter', nodeId: r.pick(cs.learners) },
        ],
        joint: true,
        autoLeave: true,
      }));
    }
    if (options.length === 0) return undefined;
    return r.pick(options)();
  }

  /**
   * A joint change at the leader: leave an explicit joint configuration, or replace voters by
   * members outside the configuration (one, several, or all of them at once), sometimes with a
   * voter added or removed besides; then, often, a partition that cuts off a majority of one half.
   */
  private joint(): void {
    const h = this.host;
    const l = currentLeader(h.nodes);
    if (!l) return;
    const r = this.rng('joint');
    const cs = l.core!.status().confState;
    let cc: ConfChange | undefined;
    if (cs.votersOutgoing.length > 0) {
      if (!cs.autoLeave && r.chance(0.5)) cc = { changes: [] };
    } else {
      const outside = shuffle(r, [...h.nodes.keys()].filter((x) => !cs.voters.includes(x)));
      const voters = shuffle(r, cs.voters);
      if (outside.length > 0 && voters.length > 0) {
        const k = r.int(1, Math.min(outside.length, voters.length) + 1);
        const changes: ConfChange['changes'][number][] = [];
        for (let i = 0; i < k; i++) changes.push({ kind: 'removeNode', nodeId: voters[i]! }, { kind: 'addVoter', nodeId: outside[i]! });
        // Sometimes the sizes change too: one more voter added, or one fewer kept.
        if (outside.length > k && r.chance(0.3)) changes.push({ kind: 'addVoter', nodeId: outside[k]! });
        else if (voters.length - k > 1 && r.chance(0.3)) changes.push({ kind: 'removeNode', nodeId: voters[k]! });
        cc = { changes, joint: true, autoLeave: r.chance(0.5) };
      }
    }
    if (cc) {
      if (cc.changes.length > 0) h.stats.jointChanges++;
      h.stats.confChanges++;
      if (this.driver.proposeConfChange(l, cc, `FAULT joint change ${describeConfChange(cc)}${cc.autoLeave ? ' auto-leave' : ''} at n${l.id}`) === undefined) return;
      this.driver.pump(l);
    }
    // Once the joint configuration is in force (a few round trips), cut off a majority of one half.
    if (r.chance(0.7)) h.schedule(r.int(1 * MS, 60 * MS), '', () => this.splitJointHalves());
  }

  /**
   * With the leader in a joint configuration: a partition whose one side holds a majority of one
   * half but not of the other (the outgoing majority cut off, or the incoming one), the leader
   * usually on that side.
   */
  private splitJointHalves(): void {
    const h = this.host;
    if (h.phase !== 'faults') return;
    const l = currentLeader(h.nodes);
    if (!l) return;
    const cs = l.core!.status().confState;
    if (cs.votersOutgoing.length === 0) return;
    const r = this.rng('joint');
    const cutOutgoing = r.chance(0.5);
    const keep = cutOutgoing ? cs.voters : cs.votersOutgoing;
    const starve = cutOutgoing ? cs.votersOutgoing : cs.voters;
    const side = new Set<NodeId>();
    if (r.chance(0.75)) side.add(l.id);
    // A majority of `keep`, taking members outside `starve` first.
    const need = (keep.length >> 1) + 1;
    const order = [...shuffle(r, keep.filter((x) => !starve.includes(x))), ...shuffle(r, keep.filter((x) => starve.includes(x)))];
    for (const x of order) {
      if ([...side].filter((y) => keep.includes(y)).length >= need) break;
      side.add(x);
    }
    const a = [...side];
    const b = [...h.nodes.keys()].filter((x) => !side.has(x));
    if (b.length === 0) return;
    h.stats.partitions++;
    h.net.healAll();
    h.net.split(a, b);
    h.note(`FAULT partition: joint halves (${cutOutgoing ? 'outgoing' : 'incoming'} majority cut off): {${a.join(',')}} | {${b.join(',')}}`);
    const hold = r.int(50 * MS, 1000 * MS);
    this.listeners.startHunt(l.id, hold);
    this.healAfter(hold);
  }

  /**
   * A leader cut off with a minority (itself and up to half the others minus one) while a burst
   * of writes arrives at it: the minority's logs grow a long tail of its term that the majority's
   * next leader overwrites; with small messages, the catch-up takes many batches.
   */
  private divergence(): void {
    const h = this.host;
    const l = currentLeader(h.nodes);
    if (!l || !l.up || l.paused) return;
    const r = this.rng('divergence');
    const cs = l.core!.status().confState;
    if (cs.votersOutgoing.length > 0) return;
    const others = shuffle(r, cs.voters.filter((x) => x !== l.id));
    const minority = [l.id, ...others.slice(0, ((cs.voters.length - 1) >> 1) - 1)];
    const rest = [...h.nodes.keys()].filter((x) => !minority.includes(x));
    h.stats.divergences++;
    h.stats.partitions++;
    h.net.healAll();
    h.net.split(minority, rest);
    const burst = r.int(10, 41);
    h.note(`FAULT divergence: {${minority.join(',')}} cut off with leader n${l.id}, ${burst} writes to it`);
    for (let i = 0; i < burst; i++) {
      // Writes nobody waits for, to a key no client reads (the invariants check them, not the history).
      const cmd: KvCommand = { id: `tail-${h.stats.divergences}-${i}`, op: 'write', key: 'tail', value: `t${i}` };
      this.driver.propose(l, cmd);
    }
    this.driver.pump(l);
    const hold = r.int(100 * MS, 1200 * MS);
    this.listeners.startHunt(l.id, hold);
    this.healAfter(hold);
  }

  /**
   * A member's clock runs at another rate for a while, jumps forward, or stops for a while.
   * With lease reads (unless `clockBeyondMargin`) the faults stay within the drift margin the
   * core allows for: rates within ±4% of true time, forward jumps of at most 1 ms except on the
   * leader (whose lease then only ends sooner), and a stopped clock never on the leader (one that
   * becomes leader gets its clock back at once).
   */
  private clock(): void {
    const h = this.host;
    const r = this.rng('clock');
    const v = this.victim(r);
    if (!v.up) return;
    const lease = h.setting.readOnly === 'lease';
    const inMargin = lease && !h.opts.clockBeyondMargin;
    const isLeader = v.core?.currentRole === 'leader';
    const kind = r.pick(['rate', 'rate', 'jump', 'stop', 'race', 'race'] as const);
    if (kind === 'race') {
      this.leaseRace();
      return;
    }
    h.stats.clockFaults++;
    const hold = r.int(50 * MS, 1500 * MS);
    switch (kind) {
      case 'rate': {
        const [lo, hi] = CLOCK_RATE_IN_MARGIN;
        const rate = inMargin ? lo + r.next() * (hi - lo) : r.pick([0.3, 0.5, 0.7, 0.85, 1.2, 1.5, 2, 3]);
        v.clock.setRate(rate, h.now);
        h.note(`FAULT clock of n${v.id} runs at ${rate.toFixed(3)}x`);
        // The clock is the machine's: it keeps its fault across a crash of the member.
        h.schedule(hold, '', () => {
          v.clock.setRate(1 / v.drift, h.now);
          h.note(`FAULT clock of n${v.id} back to its own rate`);
        });
        return;
      }
      case 'jump': {
        const us = inMargin && !isLeader ? r.int(1, CLOCK_FOLLOWER_JUMP_IN_MARGIN_US + 1) : r.int(1 * MS, 800 * MS);
        v.clock.jump(us, h.now);
        this.driver.clockJumped(v, us);
        h.note(`FAULT clock of n${v.id} jumps ${(us / MS).toFixed(3)}ms forward`);
        return;
      }
      case 'stop': {
        if (inMargin && isLeader) return;
        v.clock.pause(h.now);
        h.note(`FAULT clock of n${v.id} stops`);
        h.schedule(Math.min(hold, 800 * MS), '', () => h.resumeClock(v));
        return;
      }
    }
  }

  /**
   * The race a lease must win: the leader is cut off from everyone for longer than an election
   * takes, while hunting readers keep reading from it and the other clients write to whoever
   * is elected on the other side. The old leader may answer from its lease only until a new
   * leader could have been elected: its lease, shortened by the drift margin, must end before
   * the followers stop ignoring votes (their own clocks, counted from when they last heard it).
   */
  private leaseRace(): void {
    const h = this.host;
    const l = currentLeader(h.nodes);
    if (!l || h.phase !== 'faults') return;
    const r = this.rng('clock');
    if (r.chance(0.5) && this.bootRace(l)) return;
    h.stats.partitions++;
    h.net.healAll();
    h.net.split([l.id], [...h.nodes.keys()].filter((x) => x !== l.id));
    const hold = r.int(200 * MS, 1000 * MS);
    h.note(`FAULT lease race: isolate leader n${l.id} for ${(hold / MS).toFixed(0)}ms`);
    this.listeners.startHunt(l.id, hold);
    this.healAfter(hold);
  }

  /**
   * The race the boot window must win: a follower F that the leader's lease counts on restarts
   * at once, while a member C that has not heard the leader for a while (but whose log is as
   * long: no writes reach the leader meanwhile) campaigns. F has forgotten its leader; without
   * waiting an election timeout after starting it would vote for C at once, and C could commit
   * writes while the old leader still answers reads from its lease.
   */
  private bootRace(l: SimNode): boolean {
    const h = this.host;
    const cs = l.core!.status().confState;
    if (cs.votersOutgoing.length > 0 || cs.voters.length < 3) return false;
    const r = this.rng('clock');
    const others = shuffle(r, cs.voters.filter((x) => x !== l.id));
    const f = h.nodes.get(others[0]!)!;
    const cutFromLeader = [...h.nodes.keys()].filter((x) => x !== l.id && x !== f.id);
    h.stats.partitions++;
    h.net.healAll();
    h.net.split([l.id], cutFromLeader);
    const wait = r.int(120 * MS, 300 * MS);
    h.note(`FAULT boot race: n${l.id} leads with n${f.id} only; in ${(wait / MS).toFixed(0)}ms n${f.id} restarts and n${l.id} is cut off`);
    // No writes reach the leader from now on (the others' logs stay as long as its own).
    this.listeners.startHunt(l.id, wait + 600 * MS);
    h.schedule(wait, '', () => {
      if (h.phase !== 'faults') return;
      if (f.up) {
        h.crash(f);
        h.schedule(r.int(0, MS), '', () => h.restart(f));
      }
      h.net.healAll();
      h.net.split([l.id], [...h.nodes.keys()].filter((x) => x !== l.id));
      h.note(`FAULT boot race: n${l.id} cut off`);
      this.healAfter(r.int(200 * MS, 600 * MS));
    });
    return true;
  }
}

/** A random permutation of `xs`. */
function shuffle<T>(r: Rng, xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = r.int(0, i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function describeConfChange(cc: ConfChange): string {
  if (cc.changes.length === 0) return 'leave-joint';
  const parts = cc.changes.map((c) => `${c.kind}(${c.nodeId})`);
  return `${parts.join(' ')}${cc.joint ? ' joint' : ''}`;
}
