/**
 * Backup and restore through the real tools: `etcdctl snapshot save` from a Flotilla cluster,
 * `etcdctl snapshot status` on the file, README's "Backup and restore" blocks run as written
 * (free ports substituted) to restore three data dirs and start a new cluster from them —
 * same keys, values, revisions, leases and HashKV (and a real etcd restored by etcdctl from the
 * same file serves the same key space); a snapshot saved from a real etcd 3.4
 * restored into Flotilla with the same keys, values and revisions; corrupt, truncated and
 * foreign files refused with a clear message and exit code 1.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLUSTER_READY_TIMEOUT_MS, FLOTILLA_BIN, ROOT, freePort, startCluster, waitHealthy, which, type Cluster } from './support/cluster.js';
import { createHash } from 'node:crypto';
import { SNAPSHOT_CHUNK_BYTES } from '../src/api/services.js';
import { killAndWait } from '../src/lib/proc.js';
import { ETCDCTL_KILL_MS, ETCDCTL_TIMEOUT_FLAGS } from './support/etcdctl-session.js';
import { rawClient } from './support/grpc.js';

const ETCDCTL = which('etcdctl');
const ETCD = which('etcd');
const missing = [!ETCDCTL && 'etcdctl', !ETCD && 'etcd'].filter(Boolean);
if (missing.length > 0) console.log(`skipping the snapshot tests: ${missing.join(' and ')} not installed (apt-get install -y etcd-client etcd-server)`);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
const run = (cmd: string, args: string[], o: { cwd?: string; input?: string } = {}): Run => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: Math.max(60_000, ETCDCTL_KILL_MS), cwd: o.cwd, input: o.input, env: { ...process.env, ETCDCTL_API: '3' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};
const etcdctl = (eps: string[], ...args: string[]) => {
  const r = run(ETCDCTL!, ['--endpoints', eps.join(','), ...ETCDCTL_TIMEOUT_FLAGS, ...args]);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
};
const flotilla = (args: string[], cwd?: string) => run(process.execPath, [FLOTILLA_BIN, ...args], { cwd });
const flotillaAsync = (args: string[]): Promise<Run> =>
  new Promise((resolve) => {
    const p = spawn(process.execPath, [FLOTILLA_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });

/** What a client sees of a key space: every key's fields, the revision, the leases and their keys. */
function keySpace(eps: string[]): { revision: string; kvs: unknown[]; leases: { id: string; keys: string[] }[] } {
  const got = JSON.parse(etcdctl(eps, 'get', '', '--prefix', '-w', 'json')) as { header: { revision: string | number }; kvs?: unknown[] };
  // Simple output: lease ids in hex (JSON would carry them as numbers above 2^53).
  const ids = etcdctl(eps, 'lease', 'list').split('\n').slice(1).filter(Boolean);
  const leases = ids.map((id) => {
    const ttl = JSON.parse(etcdctl(eps, 'lease', 'timetolive', id, '--keys', '-w', 'json')) as { keys?: string[] };
    return { id, keys: (ttl.keys ?? []).sort() };
  });
  return { revision: String(got.header.revision), kvs: got.kvs ?? [], leases: leases.sort((a, b) => a.id.localeCompare(b.id)) };
}
const hashKv = (ep: string, rev: string): string => {
  const out = JSON.parse(etcdctl([ep], 'endpoint', 'hashkv', '--rev', rev, '-w', 'json')) as { HashKV: { hash: number; compact_revision?: number } }[];
  return JSON.stringify({ hash: out[0]!.HashKV.hash, compact: out[0]!.HashKV.compact_revision ?? 0 });
};

/** Writes a mix that exercises the format: overwrites, deletes, a multi-op txn (sub-revisions), a lease, a compaction, a value spanning pages. */
function load(eps: string[]): void {
  etcdctl(eps, 'put', 'a', '1');
  etcdctl(eps, 'put', 'b', '2');
  etcdctl(eps, 'put', 'a', '3');
  etcdctl(eps, 'del', 'b');
  const lease = /lease ([0-9a-f]+) granted/.exec(etcdctl(eps, 'lease', 'grant', '600'))![1]!;
  etcdctl(eps, 'put', 'leased', 'x', `--lease=${lease}`);
  const r = run(ETCDCTL!, ['--endpoints', eps.join(','), ...ETCDCTL_TIMEOUT_FLAGS, 'txn'], { input: `\n${Array.from({ length: 100 }, (_, i) => `put t/${String(i).padStart(3, '0')} ${'v'.repeat(500)}${i}`).join('\n')}\n\n\n` });
  expect(r.code, r.stderr).toBe(0);
  etcdctl(eps, 'compact', '4');
  etcdctl(eps, 'put', 'big', 'B'.repeat(20_000));
  etcdctl(eps, 'del', 't/05', '--prefix');
}

/** The fenced ```sh blocks of README's "Backup and restore" section. */
function readmeBlocks(): string[] {
  const md = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = md.indexOf('### Backup and restore');
  const section = md.slice(start, md.indexOf('\n### ', start + 10));
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

describe.skipIf(missing.length > 0)('backup and restore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-snapshot-'));
  const procs: ChildProcess[] = [];
  let source: Cluster | undefined;
  let etcd: Cluster | undefined;
  afterAll(async () => {
    await Promise.all([source?.stop(), etcd?.stop(), ...procs.map((p) => killAndWait(p))]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("etcdctl snapshot save from Flotilla -> etcdctl snapshot status -> README's restore -> a new cluster with the same keys, revisions, leases and HashKV", async () => {
    source = await startCluster('flotilla');
    load(source.endpoints);
    const before = keySpace(source.endpoints);
    const hashBefore = hashKv(source.endpoints[0]!, before.revision);

    // The stream itself: messages of at most SNAPSHOT_CHUNK_BYTES, remaining_bytes counting
    // down to 0, the file's SHA-256 last.
    const grpcClient = rawClient(source.endpoints[0]!);
    const messages = await new Promise<{ blob: Buffer; remaining_bytes: string }[]>((resolve, reject) => {
      const got: { blob: Buffer; remaining_bytes: string }[] = [];
      const stream = grpcClient.client('etcdserverpb.Maintenance').Snapshot!({}) as NodeJS.ReadableStream;
      stream.on('data', (m: { blob: Buffer; remaining_bytes: string }) => got.push(m));
      stream.on('end', () => resolve(got));
      stream.on('error', reject);
    });
    grpcClient.close();
    const whole = Buffer.concat(messages.map((m) => m.blob));
    expect(messages.length).toBeGreaterThan(2);
    for (const m of messages) expect(m.blob.length).toBeLessThanOrEqual(SNAPSHOT_CHUNK_BYTES);
    expect(messages.map((m) => Number(m.remaining_bytes))).toEqual(messages.map((_, i) => whole.length - messages.slice(0, i + 1).reduce((n, x) => n + x.blob.length, 0)));
    expect(createHash('sha256').update(whole.subarray(0, whole.length - 32)).digest().equals(whole.subarray(whole.length - 32))).toBe(true);

    // README's first block, as written, with the source's endpoint and free peer ports.
    const [sh1, sh2] = readmeBlocks();
    expect(sh1).toMatch(/snapshot save backup\.db/);
    const ports = new Map<string, number>();
    for (const p of ['12379', '22379', '32379', '12380', '22380', '32380']) ports.set(p, await freePort());
    const sourceEp = source.endpoints[1]!;
    const subst = (s: string) => s.replace('127.0.0.1:2379', sourceEp).replace(/127\.0\.0\.1:(\d{5})/g, (m, p: string) => (ports.has(p) ? `127.0.0.1:${ports.get(p)}` : m));
    const script = `set -e\nflotilla() { ${JSON.stringify(process.execPath)} ${JSON.stringify(FLOTILLA_BIN)} "$@"; }\nexport ETCDCTL_API=3\n${subst(sh1!).replace(/npx flotilla/g, 'flotilla')}`;
    const r = run('bash', ['-c', script], { cwd: dir });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    // etcdctl's status and ours print the same table; the revision is the source's.
    const tables = r.stdout.split('\n').filter((l) => /^[|+]/.test(l));
    expect(tables).toHaveLength(10);
    expect(tables.slice(0, 5)).toEqual(tables.slice(5, 10));
    expect(tables[3]).toMatch(new RegExp(`^\\| [0-9a-f]+ \\| +${before.revision} \\| +\\d+ \\| +\\d+ kB \\|$`));
    const etcdStatus = JSON.parse(run(ETCDCTL!, ['snapshot', 'status', join(dir, 'backup.db'), '-w', 'json']).stdout) as { revision: number };
    expect(String(etcdStatus.revision)).toBe(before.revision);
    expect(flotilla(['snapshot', 'status', join(dir, 'backup.db'), '-w', 'json']).stdout.trim()).toBe(JSON.stringify(etcdStatus));
    expect(r.stdout).toMatch(/restored backup\.db into restored\/n3: member n3/);
    // etcd's own restore takes it too (it checks the trailing SHA-256 and reads the buckets).
    const [etcdClient, etcdPeer] = [`http://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await freePort()}`];
    const etcdFlags = ['--name', 'e1', '--initial-cluster', `e1=${etcdPeer}`, '--initial-advertise-peer-urls', etcdPeer, '--data-dir', join(dir, 'etcd-restored')];
    const etcdRestore = run(ETCDCTL!, ['snapshot', 'restore', join(dir, 'backup.db'), ...etcdFlags]);
    expect(etcdRestore.code, etcdRestore.stderr).toBe(0);
    await source.stop();
    source = undefined;

    // README's second block: the three members of the new cluster.
    const cluster = /^CLUSTER=(\S+)$/m.exec(subst(sh1!))![1]!;
    const lines = subst(sh2!).split('\n').filter((l) => l.startsWith('npx flotilla serve'));
    expect(lines).toHaveLength(3);
    const outputs: string[] = [];
    for (const l of lines) {
      const args = l.replace('npx flotilla ', '').replace('$CLUSTER', cluster).split(/\s+/);
      const p = spawn(process.execPath, [FLOTILLA_BIN, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      const n = outputs.push('') - 1;
      p.stdout!.on('data', (d: Buffer) => (outputs[n] = out += d.toString()));
      p.stderr!.on('data', (d: Buffer) => (outputs[n] = out += d.toString()));
      p.on('exit', (code) => code !== null && code !== 0 && console.log(`restored member exited ${code}: ${out.slice(-2000)}`));
      procs.push(p);
    }
    const clientUrls = ['12379', '22379', '32379'].map((p) => `http://127.0.0.1:${ports.get(p)}`);
    // Three members starting at once: on a loaded machine this takes well over 20 s at times.
    await waitHealthy(clientUrls, CLUSTER_READY_TIMEOUT_MS, () => `restored cluster\n${outputs.map((o) => o.slice(-2000)).join('\n---\n')}`);
    const eps = clientUrls.map((u) => u.replace('http://', ''));
    const after = keySpace(eps);
    expect(after).toEqual(before);
    for (const ep of eps) expect(hashKv(ep, before.revision)).toBe(hashBefore);
    // And it goes on from there.
    etcdctl(eps, 'put', 'after', 'restore');
    expect(JSON.parse(etcdctl(eps, 'get', 'after', '-w', 'json')).kvs[0].mod_revision).toBe(Number(before.revision) + 1);

    // Back to etcd: a real etcd started from etcdctl's restore of our file serves the same key space.
    procs.push(spawn(ETCD!, [...etcdFlags, '--listen-peer-urls', etcdPeer, '--listen-client-urls', etcdClient, '--advertise-client-urls', etcdClient], { stdio: 'ignore' }));
    await waitHealthy([etcdClient], CLUSTER_READY_TIMEOUT_MS, () => 'etcd restored from a Flotilla snapshot');
    expect(keySpace([etcdClient.replace('http://', '')])).toEqual(before);
  }, 180_000);

  it('a snapshot saved from etcd 3.4 restores into Flotilla with the same keys, values and revisions', async () => {
    etcd = await startCluster('etcd', { size: 1 });
    load(etcd.endpoints);
    const before = keySpace(etcd.endpoints);
    const file = join(dir, 'from-etcd.db');
    etcdctl(etcd.endpoints, 'snapshot', 'save', file);
    await etcd.stop();
    etcd = undefined;
    // Our status of etcd's file is etcdctl's, in every format.
    for (const w of ['json', 'table', 'simple']) expect(flotilla(['snapshot', 'status', file, '-w', w]).stdout).toBe(run(ETCDCTL!, ['snapshot', 'status', file, '-w', w]).stdout);

    const [client, peer] = [await freePort(), await freePort()];
    const peerUrl = `http://127.0.0.1:${peer}`;
    const clientUrl = `http://127.0.0.1:${client}`;
    const flags = ['--name', 'solo', '--initial-cluster', `solo=${peerUrl}`, '--initial-cluster-token', 'from-etcd', '--initial-advertise-peer-urls', peerUrl, '--data-dir', join(dir, 'solo')];
    const r = flotilla(['snapshot', 'restore', file, ...flags]);
    expect(r.code, r.stderr).toBe(0);
    const p = spawn(process.execPath, [FLOTILLA_BIN, 'serve', ...flags, '--listen-peer-urls', peerUrl, '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl], { stdio: 'ignore' });
    procs.push(p);
    await waitHealthy([clientUrl], CLUSTER_READY_TIMEOUT_MS, () => 'restored member');
    expect(keySpace([`127.0.0.1:${client}`])).toEqual(before);
  }, 120_000);

  it('corrupt, truncated and foreign files are refused with a clear message and exit code 1; nothing is created', async () => {
    const good = readFileSync(join(ROOT, 'test/fixtures/etcd-3.4.23.snapshot.db'));
    const cases: [string, Buffer, string[], RegExp][] = [
      ['flipped', Buffer.concat([good.subarray(0, 20_000), Buffer.from([good[20_000]! ^ 0xff]), good.subarray(20_001)]), [], /^Error: snapshot file is corrupt: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}$/],
      ['truncated', good.subarray(0, good.length - 1000), [], /^Error: snapshot missing hash but --skip-hash-check=false$/],
      ['truncated by pages', good.subarray(0, 32_768), ['--skip-hash-check'], /^Error: snapshot file is not a bbolt database: the file has 32768 bytes, its meta page says 18 pages of 4096$/],
      ['no meta', Buffer.concat([Buffer.alloc(8192, 7), good.subarray(8192)]), ['--skip-hash-check'], /^Error: snapshot file is not a bbolt database: no valid meta page/],
      ['text', Buffer.from('hello, not a database\n'.repeat(100)), ['--skip-hash-check'], /^Error: snapshot file is not a bbolt database: /],
      ['good, wrong name', good, ['--name', 'y'], /^Error: --initial-cluster has no member named "y"$/],
      ['good, wrong peer URL', good, ['--initial-advertise-peer-urls', 'http://127.0.0.1:2'], /^Error: --initial-cluster has x=http:\/\/127.0.0.1:1 but missing from --initial-advertise-peer-urls=http:\/\/127.0.0.1:2$/],
    ];
    // In parallel: each is its own CLI process.
    const results = await Promise.all(
      cases.map(([name, bytes, extra]) => {
        const f = join(dir, `${name}.db`);
        writeFileSync(f, bytes);
        const dataDir = join(dir, `bad-${name.replace(/ /g, '-')}`);
        return flotillaAsync(['snapshot', 'restore', f, '--name', 'x', '--initial-cluster', 'x=http://127.0.0.1:1', '--initial-advertise-peer-urls', 'http://127.0.0.1:1', '--data-dir', dataDir, ...extra]).then((r) => ({ r, dataDir }));
      }),
    );
    cases.forEach(([name, , , message], i) => {
      const { r, dataDir } = results[i]!;
      expect([name, r.code, r.stderr.trim()]).toEqual([name, 1, expect.stringMatching(message)]);
      expect(existsSync(dataDir), name).toBe(false);
    });
    const status = flotilla(['snapshot', 'status', join(dir, 'text.db')]);
    expect([status.code, status.stderr.trim()]).toEqual([1, expect.stringMatching(/^Error: snapshot file is not a bbolt database: no valid meta page/)]);
    // An existing data dir is never overwritten (etcdctl's rule).
    const again = flotilla(['snapshot', 'restore', join(ROOT, 'test/fixtures/etcd-3.4.23.snapshot.db'), '--name', 'x', '--initial-cluster', 'x=http://127.0.0.1:1', '--initial-advertise-peer-urls', 'http://127.0.0.1:1', '--data-dir', dir]);
    expect([again.code, again.stderr.trim()]).toEqual([1, `Error: data-dir ${JSON.stringify(dir)} exists`]);
  });
});
