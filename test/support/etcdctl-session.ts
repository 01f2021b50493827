/**
 * A scripted etcdctl 3.4 session, run against a cluster and turned into a transcript that is
 * equal for two fresh clusters that behave alike: what differs by nature (member and lease
 * ids, ports, terms, raft indexes, sizes, timings) is replaced by placeholders, everything else
 * — values, revisions, versions, counts, error texts, exit codes, order of events — is kept.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cluster } from './cluster.js';

export interface Step {
  readonly name: string;
  readonly out: string;
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * etcdctl's own deadlines in the tests, s (its defaults: --dial-timeout 2s, --command-timeout 5s).
 * A dial with --user includes the password check (bcrypt at cost 10: ~50 ms of CPU, seconds at
 * nice 19 on a loaded shared machine), so tight deadlines failed steps by time alone with
 * `context deadline exceeded` (issue 14). Flotilla and etcd get the same values, so a
 * comparison stays fair; they bound how long a hung step waits, not how long an answer takes.
 */
export const ETCDCTL_DIAL_TIMEOUT_S = 15;
export const ETCDCTL_COMMAND_TIMEOUT_S = 30;
/** The flags for both, to put before etcdctl's command. */
export const ETCDCTL_TIMEOUT_FLAGS: readonly string[] = [`--dial-timeout=${ETCDCTL_DIAL_TIMEOUT_S}s`, `--command-timeout=${ETCDCTL_COMMAND_TIMEOUT_S}s`];
/** An etcdctl process is killed after, ms: later than both of its own deadlines would end it. */
export const ETCDCTL_KILL_MS = (ETCDCTL_DIAL_TIMEOUT_S + ETCDCTL_COMMAND_TIMEOUT_S + 15) * 1000;

/** Runs etcdctl with a time bound (default ETCDCTL_KILL_MS); `input` goes to stdin. */
export function etcdctl(bin: string, endpoints: string[], args: string[], o: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const p = spawn(bin, [`--endpoints=${endpoints.join(',')}`, ...ETCDCTL_TIMEOUT_FLAGS, ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), o.timeoutMs ?? ETCDCTL_KILL_MS);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    // An etcdctl that exits before reading all of its input (a usage error, a refused command)
    // closes the pipe: the write fails with EPIPE, which would otherwise be an uncaught error
    // of the test process. Its exit code and output say what happened.
    p.stdin.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') stderr += `(stdin: ${e.message})\n`;
    });
    p.stdin.end(o.input ?? '');
  });
}

/** A long-running etcdctl (watch, lock, elect) whose output is read as it comes. */
export class Background {
  readonly proc: ChildProcess;
  stdout = '';
  constructor(bin: string, endpoints: string[], args: string[]) {
    // The same dial deadline (a dial with --user includes the password check).
    this.proc = spawn(bin, [`--endpoints=${endpoints.join(',')}`, `--dial-timeout=${ETCDCTL_DIAL_TIMEOUT_S}s`, ...args], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
  }
  /** True once the output matches `re`; false after `ms` (generous: a loaded machine starts processes slowly). */
  async waitFor(re: RegExp, ms = ETCDCTL_KILL_MS): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!re.test(this.stdout)) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  }
  stop(signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
    return new Promise((resolve) => {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) return resolve();
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
      this.proc.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      this.proc.kill(signal);
    });
  }
}

/** Replaces what legitimately differs between two clusters. */
export class Normalizer {
  private readonly ids = new Map<string, string>();
  constructor(private readonly cluster: Cluster) {}

  private id(kind: string, v: string): string {
    const k = `${kind}:${v}`;
    let r = this.ids.get(k);
    if (!r) {
      r = `<${kind}${[...this.ids.keys()].filter((x) => x.startsWith(`${kind}:`)).length + 1}>`;
      this.ids.set(k, r);
    }
    return r;
  }

  /** Lease ids seen in output, in order of appearance (hex, as etcdctl prints them). */
  lease(hex: string): string {
    return this.id('lease', hex.toLowerCase());
  }

  text(s: string): string {
    let t = s;
    // The etcd client library's retry warnings (JSON lines on stderr) are timing noise.
    t = t.split('\n').filter((l) => !l.startsWith('{"level":')).join('\n');
    this.cluster.members.forEach((m, i) => {
      t = t.split(m.clientUrl.replace('http://', '')).join(`<client${i + 1}>`).split(m.peerUrl.replace('http://', '')).join(`<peer${i + 1}>`);
    });
    t = t.replace(/took = [\d.]+(ms|µs|s)/g, 'took = <t>');
    t = t.replace(/remaining\(\d+s\)/g, 'remaining(<n>s)');
    // etcd lists a lease's attached keys in Go map order (random from run to run): compare them as a set.
    t = t.replace(/attached keys\(\[([^\]]*)\]\)/g, (_m, keys: string) => `attached keys([${keys.split(' ').sort().join(' ')}])`);
    return t;
  }

  /** Member ids (16 hex digits) by the member name they belong to. */
  members(t: string, idsByName: Map<string, string>): string {
    let out = t;
    for (const [name, id] of idsByName) out = out.split(id).join(`<id:${name}>`);
    return out;
  }
}

/** Sorts the lines within the stdout and the stderr sections of a recorded step (lists ordered by random ids). */
function sortStdout(t: string): string {
  const m = /^([\s\S]*?--- stdout\n)([\s\S]*?)(--- stderr\n)([\s\S]*)$/.exec(t);
  if (!m) return t;
  const sort = (x: string) => x.split('\n').filter(Boolean).sort().join('\n');
  return `${m[1]}${sort(m[2]!)}\n${m[3]}${sort(m[4]!)}`;
}

export function tempFile(name: string): { path: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-etcdctl-'));
  return { path: join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function fileSize(path: string): number {
  return existsSync(path) ? statSync(path).size : -1;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The session. Every step's output is normalized and recorded; the test compares the two
 * transcripts step by step.
 */
export async function runSession(bin: string, cluster: Cluster): Promise<Step[]> {
  const steps: Step[] = [];
  const n = new Normalizer(cluster);
  const eps = cluster.endpoints;
  const ctl = (args: string[], input?: string) => etcdctl(bin, eps, args, input === undefined ? {} : { input });
  const record = (name: string, r: RunResult, f: (s: string) => string = (s) => s) =>
    steps.push({ name, out: f(n.text(`exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`)) });

  // Member ids by name, to normalize them everywhere.
  const ml = await ctl(['member', 'list', '-w', 'json']);
  // uint64 ids do not survive JSON.parse: read them as text.
  const idsByName = new Map<string, string>();
  for (const m of ml.stdout.matchAll(/"ID":(\d+),"name":"([^"]*)"/g)) idsByName.set(m[2]!, BigInt(m[1]!).toString(16));
  const header = (s: string) => s.replace(/"cluster_id":\d+/g, '"cluster_id":<cluster>').replace(/"member_id":\d+/g, '"member_id":<member>').replace(/"raft_term":\d+/g, '"raft_term":<term>');

  // --- KV
  for (const [k, v] of [['foo', 'bar'], ['foo1', 'bar1'], ['foo2', 'bar2'], ['fop', 'x'], ['zoo', 'z'], ['foo', 'bar-2']]) record(`put ${k}`, await ctl(['put', k!, v!]));
  record('put --prev-kv', await ctl(['put', 'foo1', 'again', '--prev-kv']));
  record('get one', await ctl(['get', 'foo']));
  record('get missing', await ctl(['get', 'nope']));
  record('get --prefix', await ctl(['get', 'foo', '--prefix']));
  record('get --from-key', await ctl(['get', 'foo2', '--from-key']));
  record('get range', await ctl(['get', 'foo', 'fop']));
  record('get --prefix --limit', await ctl(['get', 'f', '--prefix', '--limit', '2']));
  record('get --keys-only', await ctl(['get', 'f', '--prefix', '--keys-only']));
  record('get --print-value-only', await ctl(['get', 'foo', '--print-value-only']));
  record('get --count-only -w json', await ctl(['get', 'f', '--prefix', '--count-only', '-w', 'json']), header);
  record('get sort MODIFY DESCEND', await ctl(['get', 'f', '--prefix', '--sort-by=MODIFY', '--order=DESCEND']));
  record('get sort VALUE', await ctl(['get', 'f', '--prefix', '--sort-by=VALUE']));
  record('get sort CREATE ASCEND', await ctl(['get', 'f', '--prefix', '--sort-by=CREATE', '--order=ASCEND']));
  record('get --rev', await ctl(['get', 'foo', '--rev=2']));
  record('get -w json', await ctl(['get', 'foo', '-w', 'json']), header);
  record('get --consistency=s', await ctl(['get', 'zoo', '--consistency=s']));
  record('del --prev-kv', await ctl(['del', 'foo1', '--prev-kv']));
  record('del --prefix', await ctl(['del', 'foo', '--prefix']));
  record('del missing', await ctl(['del', 'nope']));
  record('get after del', await ctl(['get', 'f', '--prefix']));

  // --- txn, both branches
  await ctl(['put', 'tk', 'v1']);
  record('txn success', await ctl(['txn'], 'value("tk") = "v1"\nmod("tk") > "0"\n\nput tres yes\nget tk\n\nput tres no\n\n'));
  record('txn failure', await ctl(['txn'], 'value("tk") = "nope"\n\nput tres yes\n\nput tres no\ndel tk\n\n'));
  record('txn -w json', await ctl(['txn', '-w', 'json'], 'version("tres") = "2"\n\nget tres\n\n\n'), header);
  record('get txn results', await ctl(['get', 't', '--prefix']));

  // --- watch: live with prev-kv, then history from a revision
  // From the next revision: the events below are seen however long etcdctl takes to start.
  const revBefore = Number(JSON.parse((await ctl(['get', 'w', '--prefix', '-w', 'json'])).stdout).header.revision);
  const w = new Background(bin, eps, ['watch', 'w', '--prefix', '--prev-kv', `--rev=${revBefore + 1}`]);
  await ctl(['put', 'w1', 'a']);
  await ctl(['put', 'w1', 'b']);
  await ctl(['put', 'w2', 'c']);
  await ctl(['del', 'w1']);
  await w.waitFor(/DELETE/);
  await sleep(300);
  await w.stop();
  steps.push({ name: 'watch --prefix --prev-kv', out: n.text(w.stdout) });
  const revNow = Number(JSON.parse((await ctl(['get', 'w2', '-w', 'json'])).stdout).header.revision);
  const h = new Background(bin, eps, ['watch', 'w', '--prefix', `--rev=${revNow - 3}`]);
  await h.waitFor(/w2\nc\n/);
  await sleep(300);
  await h.stop();
  steps.push({ name: 'watch --rev (history)', out: n.text(h.stdout) });

  // --- leases
  const g = await ctl(['lease', 'grant', '100']);
  const leaseHex = /lease ([0-9a-f]+) granted/.exec(g.stdout)?.[1] ?? 'none';
  const L = (s: string) => s.split(leaseHex).join(n.lease(leaseHex));
  record('lease grant', g, L);
  record('put --lease', await ctl(['put', 'lk1', 'v', `--lease=${leaseHex}`]));
  record('put --lease 2', await ctl(['put', 'lk2', 'v', `--lease=${leaseHex}`]));
  record('lease timetolive --keys', await ctl(['lease', 'timetolive', leaseHex, '--keys']), L);
  record('lease list', await ctl(['lease', 'list']), L);
  record('lease keep-alive --once', await ctl(['lease', 'keep-alive', '--once', leaseHex]), L);
  record('lease revoke', await ctl(['lease', 'revoke', leaseHex]), L);
  record('get lease keys after revoke', await ctl(['get', 'lk', '--prefix']));
  record('lease timetolive after revoke', await ctl(['lease', 'timetolive', leaseHex]), L);
  record('put unknown lease', await ctl(['put', 'k', 'v', '--lease=1234abcd']));

  // --- lock contended by two processes
  const l1 = new Background(bin, eps, ['lock', 'mylock']);
  await l1.waitFor(/mylock\//);
  const l2 = new Background(bin, eps, ['lock', 'mylock']);
  await sleep(1500);
  const l2Before = l2.stdout;
  await l1.stop('SIGINT');
  const got2 = await l2.waitFor(/mylock\//);
  await l2.stop('SIGINT');
  const lockKeys = (s: string) => s.replace(/mylock\/[0-9a-f]+/g, 'mylock/<lease>');
  steps.push({ name: 'lock contended', out: lockKeys(`first: ${l1.stdout}second before release: [${l2Before}]\nsecond after release (${got2}): ${l2.stdout}`) });

  // --- elect contended by two processes, and an observer
  const e1 = new Background(bin, eps, ['elect', 'myelection', 'p1']);
  await e1.waitFor(/p1/);
  const e2 = new Background(bin, eps, ['elect', 'myelection', 'p2']);
  await sleep(1500);
  const e2Before = e2.stdout;
  const leader = await ctl(['elect', '-l', 'myelection'], undefined).catch(() => ({ code: -1, stdout: '', stderr: '' }));
  await e1.stop('SIGINT');
  const got = await e2.waitFor(/p2/);
  await e2.stop('SIGINT');
  steps.push({ name: 'elect contended', out: lockKeys(`first: ${e1.stdout}second before: [${e2Before}]\nsecond after (${got}): ${e2.stdout}`).replace(/myelection\/[0-9a-f]+/g, 'myelection/<lease>') });
  void leader;

  // --- cluster
  // Members are listed in id order, and ids differ between clusters: compare sorted by name.
  record('member list', await ctl(['member', 'list']), (s) => sortStdout(n.members(s, idsByName)));
  record('member list -w json', await ctl(['member', 'list', '-w', 'json']), (s) => {
    const t = header(s).replace(/"ID":\d+/g, '"ID":<id>');
    const entries = [...t.matchAll(/\{"ID":<id>[^}]*\}/g)].map((m) => m[0]);
    return `${t.replace(/"members":\[.*\]/, '"members":[…]')}\nmembers by name:\n${entries.sort((a, b) => (/"name":"([^"]*)"/.exec(a)![1]! < /"name":"([^"]*)"/.exec(b)![1]! ? -1 : 1)).join('\n')}`;
  });
  const status = await ctl(['endpoint', 'status', '--cluster']);
  // Which member leads is chance: keep how many lead, not which.
  record('endpoint status --cluster', status, (s) => {
    const leaders = (s.match(/, true, (true|false), \d+, /g) ?? []).length;
    const t = n.members(s, idsByName).replace(/, \d+(\.\d+)? [kMG]?B, (true|false), /g, ', <size>, <leader?>, ').replace(/, \d+, \d+, \d+, /g, ', <term>, <index>, <applied>, ');
    return `${sortStdout(t)}\nleaders: ${leaders}`;
  });
  record('endpoint health --cluster', await ctl(['endpoint', 'health', '--cluster']), sortStdout);

  // --- compaction and a read below it
  const rev = Number(JSON.parse((await ctl(['get', 'zoo', '-w', 'json'])).stdout).header.revision);
  record('compaction', await ctl(['compaction', String(rev - 2)]));
  record('get at compacted rev', await ctl(['get', 'zoo', `--rev=${rev - 3}`]));
  record('get at future rev', await ctl(['get', 'zoo', `--rev=${rev + 100}`]));
  record('compaction again (compacted)', await ctl(['compaction', String(rev - 3)]));

  // --- errors
  record('get empty key', await ctl(['get', '']));
  record('txn too many ops', await ctl(['txn'], `\n${Array.from({ length: 129 }, (_, i) => `put t${i} v`).join('\n')}\n\n\n`));

  // --- snapshot
  const f = tempFile('snap.db');
  try {
    const s = await etcdctl(bin, [eps[0]!], ['snapshot', 'save', f.path]);
    steps.push({ name: 'snapshot save', out: `exit ${s.code}, file ${fileSize(f.path) > 0 ? 'non-empty' : 'missing'}, ${/Snapshot saved at/.test(s.stdout) ? 'saved' : `not saved: ${s.stdout} ${s.stderr}`}` });
  } finally {
    f.cleanup();
  }
  return steps;
}
