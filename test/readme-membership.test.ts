/**
 * The `sh` snippets of README.md's "Changing the membership (add, replace, remove a member)" run
 * as written, through the real CLI, against the cluster they are written for (`flotilla start`,
 * the `npm start` cluster: names node1..node3, token flotilla-local, data under ./data of the
 * working directory). Only the ports (every 127.0.0.1 port of the section mapped to a free one,
 * FLOTILLA_ENDPOINTS for the default endpoints), `npx flotilla` (the built CLI) and the ids the
 * snippets name as examples (the id the add printed, the dead member's id from member list) are
 * substituted. Shown output is compared with what the command prints, ids aside.
 *
 * Add a learner node4, start it with the snippet's `serve` line, list (a learner), promote once
 * caught up; then node3 dies for good (SIGKILL): remove it, wipe it, add it again as a learner,
 * start it as the comment says, promote it. Every member then answers a write made at the end.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '../src/client/index.js';
import { killAndWait } from '../src/lib/proc.js';
import { CLUSTER_READY_TIMEOUT_MS, FLOTILLA_BIN, freePort, waitHealthy } from './support/cluster.js';
import { shSnippets } from './support/readme.js';

const run = promisify(execFile);
const SECTION = '### Changing the membership (add, replace, remove a member)';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const snippets = (): string[] => shSnippets(SECTION);

/** A command of a snippet (continuation lines joined, its trailing remark dropped) and the `# ` lines after it (shown output or instructions). */
interface Command {
  readonly line: string;
  readonly shown: string[];
}

function commands(block: string): Command[] {
  const out: { line: string; shown: string[] }[] = [];
  const lines = block.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let l = lines[i]!;
    if (l.trim() === '') continue;
    if (l.startsWith('#')) {
      out.at(-1)?.shown.push(l.replace(/^# ?/, ''));
      continue;
    }
    while (l.endsWith('\\')) l = `${l.slice(0, -1).trimEnd()} ${lines[++i]!.trim()}`;
    out.push({ line: l.replace(/\s+#.*$/, '').trim(), shown: [] });
  }
  return out;
}

describe('README: changing the membership', () => {
  const blocks = snippets();
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-readme-members-'));
  /** README port -> free port. */
  const ports = new Map<number, number>();
  const procs: ChildProcess[] = [];
  let start: ChildProcess;
  let startOut = '';
  let endpoints = '';
  const cli = `${JSON.stringify(process.execPath)} ${JSON.stringify(FLOTILLA_BIN)}`;
  const local = (s: string): string => s.replace(/127\.0\.0\.1:(\d+)/g, (m, p: string) => (ports.has(Number(p)) ? `127.0.0.1:${ports.get(Number(p))}` : m));
  const shell = (line: string): string => local(line).replaceAll('npx flotilla', cli);
  const sh = async (line: string): Promise<{ code: number; stdout: string; stderr: string }> =>
    run('sh', ['-c', shell(line)], { cwd: dir, timeout: 30_000, env: { ...process.env, FLOTILLA_ENDPOINTS: endpoints } }).then(
      (r) => ({ code: 0, ...r }),
      (e: Error & { code?: number; stdout?: string; stderr?: string }) => ({ code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message }),
    );
  /** A command run in the background (a member the snippet starts with `&`); resolves once its client URL is healthy. */
  const background = async (line: string): Promise<void> => {
    const cmd = shell(line.replace(/&$/, '').trim());
    const p = spawn('sh', ['-c', `exec ${cmd}`], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    procs.push(p);
    const url = /--listen-client-urls (\S+)/.exec(cmd)![1]!;
    await waitHealthy([url], CLUSTER_READY_TIMEOUT_MS, () => `${line}\n${out.slice(-3000)}`);
  };
  const members = async () => {
    const c = new FlotillaClient({ endpoints: endpoints.split(',') });
    try {
      return (await c.memberList()).members;
    } finally {
      await c.close();
    }
  };
  /** member promote, again while the learner is not yet in sync (a refusal: nothing changed). */
  const promote = async (line: string): Promise<void> => {
    for (const deadline = Date.now() + 60_000; ; await sleep(300)) {
      const r = await sh(line);
      if (r.code === 0) {
        expect(r.stdout).toMatch(/^Member +[0-9a-f]+ promoted in cluster +[0-9a-f]+\n$/);
        return;
      }
      expect(r.stderr, line).toMatch(/can only promote a learner member which is in sync with leader/);
      expect(Date.now(), `${line}: still not in sync`).toBeLessThan(deadline);
    }
  };
  /** member add: the output as shown (ids and the order of the initial cluster aside); returns the new id. */
  const add = async (c: Command): Promise<{ id: string; stdout: string }> => {
    const r = await sh(c.line);
    expect(r.stderr, c.line).toBe('');
    // Ids as etcdctl prints them (%16x: a short one is padded with spaces).
    const id = /^Member +([0-9a-f]{1,16}) added to cluster +[0-9a-f]{1,16}\n/.exec(r.stdout)?.[1];
    expect(id, r.stdout).toBeDefined();
    const shownOutput = c.shown.filter((l) => !/^start /.test(l));
    if (shownOutput.length > 0) {
      const norm = (t: string) =>
        t
          .replace(/^Member +[0-9a-f]{1,16} added to cluster +[0-9a-f]{1,16}$/m, 'Member <id> added to cluster <id>')
          .replace(/ETCD_INITIAL_CLUSTER="([^"]*)"/, (_m, list: string) => `ETCD_INITIAL_CLUSTER="${list.split(',').sort().join(',')}"`);
      expect(norm(r.stdout)).toBe(norm(local(`${shownOutput.join('\n')}\n`)));
    }
    return { id: id!, stdout: r.stdout };
  };

  beforeAll(async () => {
    const readmePorts = new Set<number>();
    for (const b of blocks) for (const m of b.matchAll(/127\.0\.0\.1:(\d+)/g)) readmePorts.add(Number(m[1]));
    // The npm start cluster's ports, named or not by the snippets.
    for (const p of [2379, 22379, 32379, 2380, 22380, 32380]) readmePorts.add(p);
    for (const p of readmePorts) ports.set(p, await freePort());
    endpoints = [2379, 22379, 32379].map((p) => `127.0.0.1:${ports.get(p)}`).join(',');
    const clientPorts = [2379, 22379, 32379].map((p) => ports.get(p)).join(',');
    const peerPorts = [2380, 22380, 32380].map((p) => ports.get(p)).join(',');
    start = spawn(process.execPath, [FLOTILLA_BIN, 'start', '--client-ports', clientPorts, '--peer-ports', peerPorts], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    start.stdout!.on('data', (d: Buffer) => (startOut += d.toString()));
    start.stderr!.on('data', (d: Buffer) => (startOut += d.toString()));
    for (const deadline = Date.now() + CLUSTER_READY_TIMEOUT_MS; !startOut.includes('cluster ready'); await sleep(100)) {
      if (Date.now() > deadline || start.exitCode !== null) throw new Error(`flotilla start: no "cluster ready"\n${startOut}`);
    }
  }, CLUSTER_READY_TIMEOUT_MS + 10_000);

  afterAll(async () => {
    for (const p of procs) await killAndWait(p);
    if (start) {
      start.kill('SIGINT');
      for (const deadline = Date.now() + 10_000; start.exitCode === null && start.signalCode === null && Date.now() < deadline; ) await sleep(50);
      await killAndWait(start);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('the section has its two snippets: add a member, replace a dead member', () => {
    expect(blocks.length).toBe(2);
    expect(commands(blocks[0]!).map((c) => c.line.split(' ').slice(0, 3).join(' '))).toEqual([
      'npx flotilla member',
      'npx flotilla serve',
      'npx flotilla member',
      'npx flotilla member',
    ]);
    expect(commands(blocks[1]!).map((c) => c.line.split(' ').slice(0, 3).join(' '))).toEqual(['npx flotilla member', 'rm -rf data/node3', 'npx flotilla member']);
  });

  it('add a learner, start it, list it, promote it; replace a SIGKILLed member', async () => {
    // Add a member.
    const [addCmd, serveCmd, listCmd, promoteCmd] = commands(blocks[0]!) as [Command, Command, Command, Command];
    expect(addCmd.line).toMatch(/member add node4 .*--learner$/);
    const node4 = (await add(addCmd)).id;
    expect(serveCmd.line).toMatch(/ &$/);
    await background(serveCmd.line);
    const list = await sh(listCmd.line);
    expect(list.code, list.stderr).toBe(0);
    // `node4 is a learner: isLearner true`
    expect(list.stdout).toMatch(new RegExp(`^${BigInt(`0x${node4}`).toString(16)}, started, node4, http://127\\.0\\.0\\.1:${ports.get(42380)}, http://127\\.0\\.0\\.1:${ports.get(42379)}, true$`, 'm'));
    const exampleId = /member promote ([0-9a-f]{16})/.exec(promoteCmd.line)![1]!;
    expect(addCmd.shown[0]).toContain(exampleId);
    await promote(promoteCmd.line.replace(exampleId, node4));
    expect((await members()).find((m) => m.name === 'node4')?.isLearner).toBe(false);

    // Replace a dead member: node3 dies for good.
    const [removeCmd, wipeCmd, addAgainCmd] = commands(blocks[1]!) as [Command, Command, Command];
    const node3 = (await members()).find((m) => m.name === 'node3')!.id.toString(16);
    const children = spawnSync('ps', ['-o', 'pid=', '--ppid', String(start.pid)], { encoding: 'utf8' }).stdout.split('\n').map((s) => Number(s.trim())).filter(Boolean);
    const victim = children.find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes('--name node3 '));
    expect(victim, `node3 among ${children.join(', ')}`).toBeDefined();
    process.kill(victim!, 'SIGKILL');
    for (const deadline = Date.now() + 10_000; !/node3 exited/.test(startOut); await sleep(50)) expect(Date.now()).toBeLessThan(deadline);
    const exampleDead = /member remove ([0-9a-f]{16})/.exec(removeCmd.line)![1]!;
    const removed = await sh(removeCmd.line.replace(exampleDead, node3));
    expect(removed.stderr).toBe('');
    expect(removed.stdout).toMatch(new RegExp(`^Member +${node3} removed from cluster +[0-9a-f]+\\n$`));
    const wiped = await sh(wipeCmd.line);
    expect(wiped.code, wiped.stderr).toBe(0);
    expect(spawnSync('test', ['-e', join(dir, 'data/node3')]).status, 'data/node3 is gone').toBe(1);
    const fresh = await add(addAgainCmd);
    expect(fresh.id).not.toBe(node3);
    // `start node3 with --initial-cluster-state existing, then: npx flotilla member promote <new id>`:
    // the add's printed settings, as the first snippet's serve line for node4.
    const instruction = addAgainCmd.shown.join(' ');
    expect(instruction).toMatch(/start node3 with --initial-cluster-state existing, then: npx flotilla member promote <new id>/);
    const settings = /ETCD_INITIAL_CLUSTER="([^"]*)"/.exec(fresh.stdout)![1]!;
    const serveNode3 = serveCmd.line
      .replace('--name node4', '--name node3')
      .replace('data/node4', 'data/node3')
      .replaceAll('-urls http://127.0.0.1:42379', '-urls http://127.0.0.1:32379')
      .replaceAll('-urls http://127.0.0.1:42380', '-urls http://127.0.0.1:32380')
      .replace(/--initial-cluster \S+/, `--initial-cluster ${settings}`);
    expect(serveNode3).not.toMatch(/node4 |42379/);
    expect(serveNode3).toContain('--initial-cluster-state existing');
    await background(serveNode3);
    await promote(`npx flotilla member promote ${fresh.id}`);
    const after = await members();
    expect(after.map((m) => `${m.name} ${m.isLearner}`).sort()).toEqual(['node1 false', 'node2 false', 'node3 false', 'node4 false']);

    // Every member has a write made now.
    const c = new FlotillaClient({ endpoints: endpoints.split(',') });
    try {
      await c.put('readme/members', 'four');
    } finally {
      await c.close();
    }
    for (const p of [2379, 22379, 32379, 42379]) {
      const one = new FlotillaClient({ endpoints: [`127.0.0.1:${ports.get(p)}`], requestTimeoutMs: 10_000 });
      try {
        expect((await one.get('readme/members')).kvs.map((kv) => kv.valueString()), `on ${p}`).toEqual(['four']);
      } finally {
        await one.close();
      }
    }
  }, 240_000);
});
