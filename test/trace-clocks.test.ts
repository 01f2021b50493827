/**
 * Logical clocks on a real 3-member cluster (issue 16, item 2) and `flotilla trace` through
 * bin/flotilla.js (item 3): GET /debug/trace of two members shows a message's send and its
 * receive with one msgId and the send's vector clock before the receive's; log lines carry
 * both clocks; `trace merge` of the members' logs and trace dumps puts the send before the
 * receive; with auth on, only root reads the trace. `flotilla sim --seed S --trace F` writes the
 * same file twice, and `trace merge --format shiviz` reads it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '../src/client/index.js';
import { compareClocks } from '../src/lib/vector-clock.js';
import type { TraceEvent } from '../src/trace/event.js';
import { SHIVIZ_REGEX } from '../src/trace/merge.js';
import { FLOTILLA_BIN, startCluster, type Cluster } from './support/cluster.js';

const run = promisify(execFile);

async function trace(clientUrl: string, since = 0, token?: string): Promise<TraceEvent[]> {
  const r = await fetch(`${clientUrl}/debug/trace?since=${since}`, { signal: AbortSignal.timeout(5000), headers: token ? { Authorization: token } : {} });
  if (r.status !== 200) throw new Error(`/debug/trace: ${r.status} ${await r.text()}`);
  expect(r.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
  return (await r.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as TraceEvent);
}

async function until<T>(what: string, f: () => Promise<T | null>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('logical clocks on a real cluster', () => {
  let cluster: Cluster;
  let dir: string;
  beforeAll(async () => {
    cluster = await startCluster('flotilla');
    dir = mkdtempSync(join(tmpdir(), 'flotilla-trace-'));
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a message sent by one member and received by another: same msgId, send before receive; logs and trace merge agree', async () => {
    const members = cluster.members;
    // Some traffic beyond heartbeats.
    const client = new FlotillaClient({ endpoints: cluster.endpoints });
    try {
      await client.put('traced', 'yes');
    } finally {
      await client.close();
    }
    // Followers seldom talk to each other: any two members of which one leads exchange messages.
    const pair = await until('a send at one member received by another', async () => {
      const traces = await Promise.all(members.map((m) => trace(m.clientUrl)));
      for (const [i, x] of traces.entries()) {
        for (const [j, y] of traces.entries()) {
          const yNode = y[0]?.node;
          if (i === j || !yNode) continue;
          for (const s of x) {
            if (s.kind !== 'send' || s.peer !== yNode) continue;
            const r = y.find((e) => e.kind === 'receive' && e.msgId === s.msgId);
            if (r) return { send: s, receive: r, ta: x, tb: y, a: members[i]!, b: members[j]! };
          }
        }
      }
      return null;
    });
    const { a, b } = pair;
    const { send, receive } = pair;
    expect(receive.peer).toBe(send.node);
    expect(receive.type).toBe(send.type);
    expect(compareClocks(send.vc, receive.vc)).toBe('before');
    expect(receive.lamport).toBeGreaterThan(send.lamport);
    // A member's clocks start at its start time in microseconds (a restart stamps above its past).
    expect(send.vc[send.node]).toBeGreaterThan(1_700_000_000_000_000);

    // ?since= answers the events after a Lamport time only; a bad one is refused.
    const mid = pair.ta[Math.floor(pair.ta.length / 2)]!.lamport;
    const later = await trace(a!.clientUrl, mid);
    expect(later.length).toBeGreaterThan(0);
    expect(later.every((e) => e.lamport > mid)).toBe(true);
    const bad = await fetch(`${a!.clientUrl}/debug/trace?since=-1`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/not a Lamport time/);

    // Log lines carry both clocks.
    expect(a!.output).toMatch(/ node=\d+ lamport=\d+ vc=\{"\d+":\d+/);

    // trace merge through the command: both members' logs and trace dumps.
    const files = [];
    for (const [i, m] of [a!, b!].entries()) {
      const log = join(dir, `m${i}.log`);
      const dump = join(dir, `m${i}.trace`);
      writeFileSync(log, m.output);
      writeFileSync(dump, (i === 0 ? pair.ta : pair.tb).map((e) => JSON.stringify(e)).join('\n'));
      files.push(log, dump);
    }
    const { stdout, stderr } = await run(process.execPath, [FLOTILLA_BIN, 'trace', 'merge', ...files], { maxBuffer: 64 << 20 });
    const lines = stdout.split('\n');
    const at = (e: TraceEvent) => lines.findIndex((l) => l.includes(` ${e.kind.padEnd(7)} `) && l.includes(`#${e.msgId} `));
    expect(at(send)).toBeGreaterThan(0);
    expect(at(receive)).toBeGreaterThan(at(send));
    expect(stdout).toMatch(/ local +(log|elected) /);
    expect(stderr).toMatch(/events from 4 file\(s\)/);
  }, 60_000);

  it('with auth on, only root reads /debug/trace', async () => {
    const ep = cluster.endpoints;
    const admin = new FlotillaClient({ endpoints: ep });
    try {
      await admin.userAdd('root', 'rootpw');
      await admin.userGrantRole('root', 'root');
      await admin.userAdd('alice', 'apw');
      await admin.authEnable();
    } finally {
      await admin.close();
    }
    const url = cluster.members[0]!.clientUrl;
    const token = async (name: string, password: string) => {
      const r = await fetch(`${url}/v3/auth/authenticate`, { method: 'POST', body: JSON.stringify({ name, password }) });
      return String(((await r.json()) as { token: string }).token);
    };
    const none = await fetch(`${url}/debug/trace`);
    expect(none.status).toBe(401);
    const alice = await fetch(`${url}/debug/trace`, { headers: { Authorization: await token('alice', 'apw') } });
    expect(alice.status).toBe(403);
    expect(await alice.text()).toMatch(/permission denied/);
    const forged = await fetch(`${url}/debug/trace`, { headers: { Authorization: 'forged.1' } });
    expect(forged.status).toBe(401);
    expect((await trace(url, 0, await token('root', 'rootpw'))).length).toBeGreaterThan(0);
  }, 60_000);
});

describe('flotilla sim --trace and flotilla trace merge (bin/flotilla.js)', () => {
  it('the same seed writes the same trace; trace merge reads it as text and ShiViz; bad input exits 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-simtrace-'));
    try {
      const files = [join(dir, 'a.jsonl'), join(dir, 'b.jsonl')];
      for (const f of files) {
        const { stdout } = await run(process.execPath, [FLOTILLA_BIN, 'sim', '--seed', '2', '--nodes', '3', '--fault-ms', '300', '--trace', f], { maxBuffer: 16 << 20 });
        expect(stdout).toMatch(/trace: \d+ events written to/);
      }
      const a = readFileSync(files[0]!);
      expect(a.length).toBeGreaterThan(1000);
      expect(a.equals(readFileSync(files[1]!))).toBe(true);
      const events = a.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as TraceEvent);
      expect(new Set(events.map((e) => e.node))).toEqual(new Set(['1', '2', '3']));
      const receive = events.find((e) => e.kind === 'receive')!;
      const send = events.find((e) => e.kind === 'send' && e.msgId === receive.msgId)!;
      expect(compareClocks(send.vc, receive.vc)).toBe('before');

      const shiviz = join(dir, 'out.shiviz');
      await run(process.execPath, [FLOTILLA_BIN, 'trace', 'merge', files[0]!, '--format', 'shiviz', '--out', shiviz], { maxBuffer: 64 << 20 });
      const lines = readFileSync(shiviz, 'utf8').split('\n');
      expect(lines[0]).toBe(SHIVIZ_REGEX);
      expect(lines.length).toBe(2 + 2 * events.length + 1);

      const text = await run(process.execPath, [FLOTILLA_BIN, 'trace', 'merge', files[0]!], { maxBuffer: 64 << 20 });
      expect(text.stdout.split('\n').filter((l) => !l.startsWith('#') && l).length).toBe(events.length);
      expect(text.stdout).toMatch(/\|\|/);

      await expect(run(process.execPath, [FLOTILLA_BIN, 'sim', '--seed', '5', '--runs', '2', '--trace', files[0]!])).rejects.toMatchObject({ code: 2 });
      await expect(run(process.execPath, [FLOTILLA_BIN, 'trace', 'merge', '--format', 'svg', files[0]!])).rejects.toMatchObject({ code: 2 });
      await expect(run(process.execPath, [FLOTILLA_BIN, 'trace', 'merge', join(dir, 'missing')])).rejects.toMatchObject({ code: 2 });
      writeFileSync(join(dir, 'noise'), 'hello\n{"not":"an event"}\n');
      await expect(run(process.execPath, [FLOTILLA_BIN, 'trace', 'merge', join(dir, 'noise')])).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/no events with clocks/) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
