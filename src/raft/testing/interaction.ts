/**
 * Transcript ("data-driven") tests for the core, in the spirit of etcd-io/raft's interaction
 * tests: a file is a list of commands, each followed by `----` and the exact output it must
 * produce (the core's log lines, the Readys handled, the messages delivered). A transcript reads
 * as a narrated protocol scenario, and any change in behaviour shows up as a diff.
 *
 * File format: blocks separated by blank lines. A block is optional `#` comment lines, one
 * command line (`name arg key=value key=(a,b)`), a `----` line, and the expected output lines.
 *
 * Pure: the caller reads and writes files; this module only parses, runs and formats.
 */
import { rng as makeRng } from '../../lib/prng.js';
import type { InitialState, Logger, RaftConfig } from '../config.js';
import type { Message } from '../messages.js';
import { RaftCore } from '../raft.js';
import type { ConfChange, ConfChangeSingle, ConfState, Entry, NodeId } from '../types.js';
import type { Ready } from '../ready.js';
import { decodeConfChange } from '../confchange.js';
import { freshDisk, persistReady, type Disk } from './cluster.js';

export interface Block {
  readonly comments: readonly string[];
  readonly command: string;
  readonly expected: readonly string[];
}

export function parseTranscript(text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length) {
    while (i < lines.length && lines[i]!.trim() === '') i++;
    if (i >= lines.length) break;
    const comments: string[] = [];
    while (i < lines.length && lines[i]!.startsWith('#')) comments.push(lines[i++]!);
    if (i >= lines.length || lines[i]!.trim() === '') {
      blocks.push({ comments, command: '', expected: [] });
      continue;
    }
    const command = lines[i++]!;
    if (lines[i] !== '----') throw new Error(`transcript line ${i + 1}: expected ---- after "${command}"`);
    i++;
    const expected: string[] = [];
    while (i < lines.length && lines[i]!.trim() !== '') expected.push(lines[i++]!);
    blocks.push({ comments, command, expected });
  }
  return blocks;
}

export function formatTranscript(blocks: readonly Block[]): string {
  return (
    blocks
      .map((b) => [...b.comments, ...(b.command ? [b.command, '----', ...(b.expected.length ? b.expected : ['ok'])] : [])].join('\n'))
      .join('\n\n') + '\n'
  );
}

interface Args {
  readonly pos: string[];
  readonly kv: Map<string, string>;
}

function parseArgs(parts: string[]): Args {
  const pos: string[] = [];
  const kv = new Map<string, string>();
  for (const p of parts) {
    const eq = p.indexOf('=');
    if (eq > 0) kv.set(p.slice(0, eq), p.slice(eq + 1));
    else pos.push(p);
  }
  return { pos, kv };
}

function idList(s: string | undefined): NodeId[] {
  if (!s) return [];
  return s
    .replace(/[()]/g, '')
    .split(',')
    .filter((x) => x !== '')
    .map(Number);
}

const dec = new TextDecoder();
const enc = new TextEncoder();

export function describeEntry(e: Entry): string {
  if (e.type === 'conf') {
    const cc = decodeConfChange(e.data);
    const parts = cc.changes.map((c) => `${c.kind === 'addVoter' ? 'v' : c.kind === 'addLearner' ? 'l' : 'r'}${c.nodeId}`);
    return `${e.term}/${e.index} EntryConfChange ${parts.length ? parts.join(' ') : 'leave-joint'}${cc.joint ? ' joint' : ''}`;
  }
  return `${e.term}/${e.index} EntryNormal ${JSON.stringify(dec.decode(e.data))}`;
}

export function describeMsg(m: Message): string {
  const head = `${m.from}->${m.to}`;
  switch (m.type) {
    case 'append':
      return `${head} MsgApp Term:${m.term} Log:${m.prevLogTerm}/${m.prevLogIndex} Commit:${m.commit}${m.entries.length ? ` Entries:[${m.entries.map(describeEntry).join(', ')}]` : ''}`;
    case 'appendResponse':
      return `${head} MsgAppResp Term:${m.term} Index:${m.index}${m.reject ? ` Rejected (Hint: ${m.hintTerm}/${m.hintIndex})` : ''}`;
    case 'heartbeat':
      return `${head} MsgHeartbeat Term:${m.term} Commit:${m.commit}${m.round ? ` Round:${m.round}` : ''}`;
    case 'heartbeatResponse':
      return `${head} MsgHeartbeatResp Term:${m.term}${m.round ? ` Round:${m.round}` : ''}${m.needAppend ? ' NeedAppend' : ''}`;
    case 'vote':
      return `${head} ${m.preVote ? 'MsgPreVote' : 'MsgVote'} Term:${m.term} Log:${m.lastLogTerm}/${m.lastLogIndex}${m.transfer ? ' Transfer' : ''}`;
    case 'voteResponse':
      return `${head} ${m.preVote ? 'MsgPreVoteResp' : 'MsgVoteResp'} Term:${m.term}${m.reject ? ' Rejected' : ''}`;
    case 'snapshot':
      return `${head} MsgSnap Term:${m.term} Snapshot: Index:${m.snapshot.meta.index} Term:${m.snapshot.meta.term} Voters:(${m.snapshot.meta.confState.voters.join(',')})`;
    case 'timeoutNow':
      return `${head} MsgTimeoutNow Term:${m.term}`;
    case 'readIndex':
      return `${head} MsgReadIndex Term:${m.term} Ctx:${m.ctx}`;
    case 'readIndexResponse':
      return `${head} MsgReadIndexResp Term:${m.term} Ctx:${m.ctx} Index:${m.index}${m.reject ? ' Rejected' : ''}`;
  }
}

function describeReady(rd: Ready): string[] {
  const out: string[] = [`Ready MustSync=${rd.mustSync}:`];
  if (rd.softState) out.push(`State:${rd.softState.role} Lead:${rd.softState.leader}`);
  if (rd.hardState) out.push(`HardState Term:${rd.hardState.term} Vote:${rd.hardState.vote} Commit:${rd.hardState.commit}`);
  if (rd.snapshot) out.push(`Snapshot Index:${rd.snapshot.meta.index} Term:${rd.snapshot.meta.term} Voters:(${rd.snapshot.meta.confState.voters.join(',')})`);
  if (rd.entries.length) out.push('Entries:', ...rd.entries.map(describeEntry));
  if (rd.committedEntries.length) out.push('CommittedEntries:', ...rd.committedEntries.map(describeEntry));
  if (rd.readStates.length) out.push('ReadStates:', ...rd.readStates.map((r) => `Index:${r.index} Ctx:${r.ctx}`));
  if (rd.messages.length) out.push('Messages:', ...rd.messages.map(describeMsg));
  return out.map((l, i) => (i === 0 ? l : `  ${l}`));
}

interface Member {
  core: RaftCore;
  disk: Disk;
  applied: number;
}

/** Builds each member's core (tests pass deliberately broken cores to see a transcript catch them). */
export type TranscriptCoreFactory = (config: RaftConfig, initial: InitialState) => RaftCore;

/** The environment one transcript runs in. */
export class InteractionEnv {
  constructor(private readonly coreFactory: TranscriptCoreFactory = (c, i) => new RaftCore(c, i)) {}

  private readonly members = new Map<NodeId, Member>();
  /** Messages in flight, per recipient, in send order. */
  private readonly inbox = new Map<NodeId, Message[]>();
  private readonly isolated = new Set<NodeId>();
  private readonly rng = makeRng(1);
  private out: string[] = [];
  private electionTicks = 10;
  private heartbeatTicks = 1;

  private logger(): Logger {
    return {
      debug: () => {},
      info: (msg) => this.out.push(`INFO ${msg}`),
      warn: (msg) => this.out.push(`WARN ${msg}`),
    };
  }

  private makeCore(id: NodeId, disk: Disk, opts: { preVote: boolean; checkQuorum: boolean; maxMsgBytes?: number }): RaftCore {
    return this.coreFactory(
      { id, electionTicks: this.electionTicks, heartbeatTicks: this.heartbeatTicks, rng: this.rng.fork(), ...opts, logger: this.logger() },
      { hardState: disk.hardState, snapshot: disk.snapshot, entries: disk.entries.slice(), applied: disk.snapshot.meta.index },
    );
  }

  private opts: { preVote: boolean; checkQuorum: boolean; maxMsgBytes?: number } = { preVote: true, checkQuorum: true };

  /** Runs one command; returns its output lines. */
  run(command: string): string[] {
    this.out = [];
    const [name, ...rest] = command.trim().split(/\s+/);
    const a = parseArgs(rest);
    const id = (): NodeId => {
      const v = Number(a.pos[0]);
      if (!this.members.has(v)) throw new Error(`${name}: no member ${a.pos[0]}`);
      return v;
    };
    switch (name) {
      case 'add-nodes': {
        const n = Number(a.pos[0]);
        this.opts = {
          preVote: a.kv.get('prevote') !== 'false',
          checkQuorum: a.kv.get('checkquorum') !== 'false',
          ...(a.kv.has('maxmsg') ? { maxMsgBytes: Number(a.kv.get('maxmsg')) } : {}),
        };
        if (a.kv.has('election')) this.electionTicks = Number(a.kv.get('election'));
        const first = this.members.size + 1;
        const ids = Array.from({ length: n }, (_, i) => first + i);
        const voters = a.kv.has('voters') ? idList(a.kv.get('voters')) : ids;
        const learners = idList(a.kv.get('learners'));
        const cs: ConfState = { voters, votersOutgoing: [], learners, learnersNext: [], autoLeave: false };
        for (const x of ids) {
          const disk = freshDisk(cs);
          this.members.set(x, { core: this.makeCore(x, disk, this.opts), disk, applied: 0 });
          this.inbox.set(x, []);
        }
        break;
      }
      case 'campaign':
        this.members.get(id())!.core.campaign();
        break;
      case 'tick': {
        const core = this.members.get(id())!.core;
        for (let i = 0; i < Number(a.kv.get('n') ?? 1); i++) core.tick();
        break;
      }
      case 'tick-heartbeat':
        for (let i = 0; i < this.heartbeatTicks; i++) this.members.get(id())!.core.tick();
        break;
      case 'tick-election': {
        // Enough ticks for any randomised election timeout (or one check-quorum round on a leader).
        const core = this.members.get(id())!.core;
        const n = core.currentRole === 'leader' ? this.electionTicks : 2 * this.electionTicks;
        const role = core.currentRole;
        for (let i = 0; i < n && core.currentRole === role; i++) core.tick();
        break;
      }
      case 'propose': {
        const r = this.members.get(id())!.core.propose(enc.encode(a.pos[1] ?? ''));
        if (!r.ok) this.out.push(`refused: ${r.reason} (leader hint ${r.leaderHint}): ${r.detail}`);
        break;
      }
      case 'propose-conf-change': {
        const changes: ConfChangeSingle[] = a.pos.slice(1).map((t) => {
          const kind = t[0] === 'v' ? 'addVoter' : t[0] === 'l' ? 'addLearner' : t[0] === 'r' ? 'removeNode' : undefined;
          if (!kind) throw new Error(`propose-conf-change: bad change "${t}" (use v<id>, l<id>, r<id>)`);
          return { kind, nodeId: Number(t.slice(1)) };
        });
        const transition = a.kv.get('transition');
        const cc: ConfChange = {
          changes,
          ...(transition === 'joint' || transition === 'explicit' ? { joint: true, autoLeave: transition === 'joint' } : {}),
        };
        const r = this.members.get(id())!.core.proposeConfChange(cc);
        if (!r.ok) this.out.push(`refused: ${r.reason}: ${r.detail}`);
        break;
      }
      case 'read-index': {
        const r = this.members.get(id())!.core.readIndex(a.pos[1] ?? '');
        if (!r.ok) this.out.push(`refused: ${r.reason}: ${r.detail}`);
        break;
      }
      case 'transfer-leadership': {
        const from = Number(a.kv.get('from'));
        const r = this.members.get(from)!.core.transferLeader(Number(a.kv.get('to')));
        if (!r.ok) this.out.push(`refused: ${r.reason}: ${r.detail}`);
        break;
      }
      case 'snapshot': {
        const m = this.members.get(id())!;
        const s = m.core.takeSnapshot(enc.encode(`applied=${m.core.appliedIndex}`), Number(a.kv.get('retain') ?? 0));
        if (s) {
          m.disk.snapshot = s;
          m.disk.entries = m.disk.entries.filter((e) => e.index > s.meta.index);
        } else this.out.push('no snapshot taken');
        break;
      }
      case 'inject-append': {
        // A crafted append, queued for `to` as if `from` had sent it: a late copy of an earlier
        // append, or one from a leader that probed from further back. The receiver's rules must
        // hold for any append its leader could have sent. Positions are index/term:
        // inject-append from=2 to=5 term=2 prev=1/1 entries=(2/1,3/2) commit=6
        const to = Number(a.kv.get('to'));
        if (!this.members.has(to)) throw new Error(`inject-append: no member ${a.kv.get('to')}`);
        const [prevIndex, prevTerm] = (a.kv.get('prev') ?? '0/0').split('/').map(Number);
        const entries: Entry[] = (a.kv.get('entries') ?? '')
          .replace(/[()]/g, '')
          .split(',')
          .filter((x) => x !== '')
          .map((x) => {
            const [index, term] = x.split('/').map(Number);
            return { index: index!, term: term!, type: 'normal', data: enc.encode(`injected ${index}/${term}`) };
          });
        const m: Message = {
          type: 'append',
          from: Number(a.kv.get('from')),
          to,
          term: Number(a.kv.get('term')),
          prevLogIndex: prevIndex!,
          prevLogTerm: prevTerm!,
          entries,
          commit: Number(a.kv.get('commit')),
        };
        this.inbox.get(to)!.push(m);
        this.out.push(`queued ${describeMsg(m)}`);
        break;
      }
      case 'process-ready':
        for (const x of this.targets(a)) this.processReady(x);
        break;
      case 'deliver-msgs':
        for (const x of this.targets(a)) this.deliver(x, idList(a.kv.get('drop')));
        break;
      case 'stabilize':
        this.stabilize(this.targets(a));
        break;
      case 'isolate':
        this.isolated.add(id());
        break;
      case 'heal':
        this.isolated.clear();
        break;
      case 'restart': {
        // A crash: volatile state and messages in flight to it are lost; the disk survives.
        const x = id();
        const m = this.members.get(x)!;
        this.inbox.set(x, []);
        m.core = this.makeCore(x, m.disk, this.opts);
        m.applied = m.disk.snapshot.meta.index;
        break;
      }
      case 'status': {
        const st = this.members.get(id())!.core.status();
        this.out.push(
          `${st.id}: ${st.role} term=${st.term} vote=${st.vote} lead=${st.leader} commit=${st.commit} applied=${st.applied} log=[${st.firstIndex},${st.lastIndex}] voters=(${st.confState.voters.join(',')})${st.confState.votersOutgoing.length ? `&&(${st.confState.votersOutgoing.join(',')})` : ''} learners=(${st.confState.learners.join(',')})`,
        );
        if (st.progress) {
          for (const [pid, p] of st.progress) this.out.push(`  ${pid}: ${p.state} match=${p.match} next=${p.next}${p.isLearner ? ' learner' : ''}${p.inflight ? ` inflight=${p.inflight}` : ''}`);
        }
        break;
      }
      case 'raft-log': {
        const core = this.members.get(id())!.core;
        if (core.lastIndex() < core.firstIndex()) this.out.push(`log is empty: first index=${core.firstIndex()}, last index=${core.lastIndex()}`);
        for (let i = core.firstIndex(); i <= core.lastIndex(); i++) this.out.push(describeEntry(core.entryAt(i)!));
        break;
      }
      default:
        throw new Error(`unknown command "${name}"`);
    }
    return this.out.length ? this.out : ['ok'];
  }

  private targets(a: Args): NodeId[] {
    const ids = a.pos.map(Number).filter((x) => !Number.isNaN(x));
    return ids.length ? ids : [...this.members.keys()];
  }

  private processReady(x: NodeId): boolean {
    const m = this.members.get(x)!;
    if (!m.core.hasReady()) return false;
    const rd = m.core.ready();
    this.out.push(`> ${x} handling Ready`);
    for (const l of describeReady(rd)) this.out.push(`  ${l}`);
    persistReady(m.disk, rd);
    let cut = 0;
    for (const msg of rd.messages) {
      // A partition drops what is sent across it.
      if (this.isolated.has(msg.from) || this.isolated.has(msg.to)) cut++;
      else this.inbox.get(msg.to)?.push(msg);
    }
    if (cut > 0) this.out.push(`  (${cut} message${cut > 1 ? 's' : ''} lost to the partition)`);
    m.core.advance(rd);
    return true;
  }

  private deliver(x: NodeId, drop: readonly NodeId[]): boolean {
    const msgs = this.inbox.get(x) ?? [];
    if (msgs.length === 0) return false;
    this.inbox.set(x, []);
    this.out.push(`> ${x} receiving messages`);
    for (const m of msgs) {
      if (drop.includes(m.from)) {
        this.out.push(`  ${describeMsg(m)} DROPPED`);
        continue;
      }
      this.out.push(`  ${describeMsg(m)}`);
      this.members.get(x)!.core.step(m);
    }
    return true;
  }

  private stabilize(ids: readonly NodeId[]): void {
    for (let round = 0; round < 1000; round++) {
      let moved = false;
      for (const x of ids) while (this.processReady(x)) moved = true;
      for (const x of ids) if (this.deliver(x, [])) moved = true;
      if (!moved) return;
    }
    throw new Error('stabilize: no fixed point after 1000 rounds');
  }
}

/** Runs a transcript; returns the blocks with their actual output. */
export function runTranscript(text: string, makeCore?: TranscriptCoreFactory): { blocks: Block[]; actual: Block[] } {
  const blocks = parseTranscript(text);
  const env = new InteractionEnv(makeCore);
  const actual = blocks.map((b) => {
    if (!b.command) return b;
    let output: string[];
    try {
      output = env.run(b.command);
    } catch (e) {
      output = [`error: ${(e as Error).message}`];
    }
    return { ...b, expected: output };
  });
  return { blocks, actual };
}
