/**
 * README sections that work against the local cluster `npm start` runs, their ```sh blocks run
 * line by line as written (support/readme.ts: one bash per line, in one working directory, so
 * `data/node*.log` and the chain's data directories are where the README says):
 * - "Flotilla": `npm install && npm start` and `npm install && npm test` are not run as such
 *   (npm test is this suite: it would run itself; the build writes dist/, which the other test
 *   files running beside this one read). The test checks instead that package.json's scripts are
 *   what the lines promise (`prepare` builds, `test` typechecks, lints and runs vitest) and
 *   starts the cluster with the command the `start` script runs after its build
 *   (`node bin/flotilla.js start`), in a temp directory, on free ports (`--client-ports`,
 *   `--peer-ports`, as `npm start -- ...` passes them) instead of 2379/22379/32379 and
 *   2380/22380/32380, which another test or a cluster someone started could hold. That cluster
 *   serves every section below; at the end Ctrl-C (SIGINT to its process group, as a terminal
 *   sends it) must stop it with exit 0.
 * - "Running a cluster": the etcdctl / CLI / curl block against that cluster (the lock line in
 *   two copies: the second waits until the first is interrupted; the watch line sees a put);
 *   the `flotilla serve` block started three times as its prose says (n1 as written, n2 and n3
 *   on their own hosts), each 10.0.0.N:P mapped to a free 127.0.0.1 port, the data dirs into a
 *   temp directory.
 * - "Chain replication (a second data plane)": a chain master and three chain nodes on the
 *   cluster, the chain client commands with the output their comments show; then the
 *   simulator lines.
 * - "Tracing causality: logical clocks, `/debug/trace`, `flotilla trace`": traces from two
 *   members, merged with the members' logs; a simulated run's trace.
 * - examples/fenced-store/README.md "Fenced store: a lock that is safe to rely on": the store
 *   and two workers; A is paused past its lease, B takes the lock, A's late write is refused.
 *
 * Substituted: `npx flotilla` and `flotilla` (the built CLI), every README port (a free one),
 * and FLOTILLA_ENDPOINTS set to the cluster (the CLI's default endpoints are the README's
 * ports). Each line must match one of the handlers below, so a line added to a block is run
 * (or the test fails and says which line has no handler).
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '../src/client/index.js';
import { DEFAULT_ENDPOINTS } from '../src/cli/command.js';
import { CLUSTER_READY_TIMEOUT_MS, FLOTILLA_BIN, freePort, ROOT, waitHealthy, which } from './support/cluster.js';
import { CPU_LINE_TIMEOUT_MS, lines, onlyBlock, ReadmeShell, runLines, shBlocks, until, type Background } from './support/readme.js';

const CLI = `${JSON.stringify(process.execPath)} ${JSON.stringify(FLOTILLA_BIN)}`;
/** The ports of the cluster `npm start` runs (client, then peer), as README.md names them. */
const START_CLIENT_PORTS = [2379, 22379, 32379];
const START_PEER_PORTS = [2380, 22380, 32380];
/** How long a section may take (a dozen CLI starts and a few processes on a loaded machine). */
const SECTION_TIMEOUT_MS = 120_000;

/** `(await c.get(prefix, {prefix})).kvs` keys, for the lock lines. */
async function keysUnder(endpoints: string[], prefix: string): Promise<string[]> {
  const c = new FlotillaClient({ endpoints });
  try {
    return (await c.get(prefix, { prefix: true })).kvs.map((kv) => kv.key.toString());
  } finally {
    await c.close();
  }
}

if (!which('etcdctl')) console.log('test/readme-cluster.test.ts: "Running a cluster" (its etcdctl lines) skipped: etcdctl is not installed');

describe('README: the local cluster (npm start) and what runs on it', () => {
  const work = mkdtempSync(join(tmpdir(), 'flotilla-readme-cluster-'));
  /** README port -> the free one used here. */
  const ports = new Map<number, number>();
  const local = (s: string): string => s.replace(/(127\.0\.0\.1:|--port )(\d+)\b/g, (m, before: string, p: string) => (ports.has(Number(p)) ? `${before}${ports.get(Number(p))}` : m));
  let endpoints: string[] = [];
  let shell: ReadmeShell;
  let cluster: Background;

  beforeAll(async () => {
    const texts = [...shBlocks('Running a cluster'), ...shBlocks('Chain replication (a second data plane)'), ...shBlocks('Tracing causality: logical clocks, `/debug/trace`, `flotilla trace`'), onlyBlock('Fenced store: a lock that is safe to rely on', 'examples/fenced-store/README.md')];
    for (const p of [...START_CLIENT_PORTS, ...START_PEER_PORTS, ...texts.flatMap((t) => [...t.matchAll(/(?:127\.0\.0\.1:|--port )(\d+)/g)].map((m) => Number(m[1])))]) {
      // Distinct: a port freed after one probe may be handed out again by the next.
      while (!ports.has(p)) {
        const q = await freePort();
        if (![...ports.values()].includes(q)) ports.set(p, q);
      }
    }
    endpoints = START_CLIENT_PORTS.map((p) => `127.0.0.1:${ports.get(p)}`);
    shell = new ReadmeShell({
      cwd: work,
      env: { FLOTILLA_ENDPOINTS: endpoints.join(','), ETCDCTL_API: '3' },
      sub: (s) => local(s).replace(/\bnpx flotilla\b/g, CLI).replace(/^flotilla\b/, CLI).replace(/^node (examples|bin)\//, `${JSON.stringify(process.execPath)} ${ROOT}$1/`),
    });
    // What `npm start` runs after its build, with free ports (as `npm start -- --client-ports ...` passes them).
    const start = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start!;
    const command = /^npm run build --silent && (node bin\/flotilla\.js start)$/.exec(start);
    expect(command, `package.json's start script: ${start}`).not.toBeNull();
    cluster = shell.start(`${command![1]} --client-ports ${endpoints.map((e) => e.split(':')[1]).join(',')} --peer-ports ${START_PEER_PORTS.map((p) => ports.get(p)).join(',')}`);
    await cluster.waitFor(/^cluster ready: /m, CLUSTER_READY_TIMEOUT_MS);
  }, CLUSTER_READY_TIMEOUT_MS + 10_000);

  afterAll(async () => {
    await shell?.stopAll();
    rmSync(work, { recursive: true, force: true });
  });

  it('Flotilla: npm install / npm start / npm test are what the first lines say', async () => {
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    await runLines(onlyBlock('Flotilla'), [
      [
        /^npm install && npm start$/,
        async (l) => {
          // npm install builds (prepare); the cluster is the one beforeAll started with the start script's command.
          expect(scripts.prepare).toBe('npm run build');
          expect(l.comment).toMatch(/^a local 3-member cluster on 127\.0\.0\.1:2379, 22379, 32379 \(etcd v3 API; data in \.\/data; Ctrl-C stops it\)$/);
          expect(DEFAULT_ENDPOINTS).toBe(START_CLIENT_PORTS.map((p) => `127.0.0.1:${p}`).join(','));
          // Those are flotilla start's defaults (this run passes free ports instead).
          const help = (await shell.ok('npx flotilla start --help')).stdout.replace(/\s+/g, ' ');
          for (const d of [`--client-ports <list> the three client ports (default: "${START_CLIENT_PORTS.join(',')}")`, `--peer-ports <list> the three peer ports (default: "${START_PEER_PORTS.join(',')}")`, '--data-dir <dir> where the members keep their data (default: "./data")', '--host <ip> loopback address to listen on (default: "127.0.0.1")']) {
            expect(help).toContain(d);
          }
          expect(cluster.out).toContain(`cluster ready: ${endpoints.join(',')}`);
          for (const n of ['node1', 'node2', 'node3']) expect(statSync(join(work, 'data', n)).isDirectory()).toBe(true);
          const health = await shell.ok(`curl -s ${endpoints[0]}/health`);
          expect(JSON.parse(health.stdout)).toMatchObject({ health: 'true' });
        },
      ],
      [
        /^npm install && npm test$/,
        async (l) => {
          // Not run here: it is the whole suite, this file included.
          expect(l.comment).toMatch(/^typecheck \+ lint \+ the whole test suite/);
          expect(scripts.test).toMatch(/^npm run build --silent && npm run typecheck && npm run lint && vitest run/);
          expect(scripts.typecheck).toContain('tsc');
          expect(scripts.lint).toBe('eslint .');
          await Promise.resolve();
        },
      ],
    ]);
  });

  it('Running a cluster: npm start prints what the README shows', () => {
    // The section's first block (untagged: shown output), line by line ("…" elides), with this
    // run's ports, paths, ids, leader and term.
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const shown = /## Running a cluster\n[\s\S]*?\n```\n([\s\S]*?)\n```/.exec(readme)![1]!.split('\n');
    expect(shown.length).toBeGreaterThan(4);
    for (const line of shown.filter((l) => l.trim() !== '…')) {
      const re = local(line)
        .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
        .replaceAll('/…/', '/.*/')
        .replace(/node\d is up \\\(member [0-9a-f]+\\\)/, 'node\\d is up \\(member [0-9a-f]{1,16}\\)')
        .replace(/leader is node\d \\\(term \d+\\\)/, 'leader is node\\d \\(term \\d+\\)');
      expect(cluster.out, line).toMatch(new RegExp(`^${re}$`, 'm'));
    }
  });

  it.skipIf(!which('etcdctl'))('Running a cluster: etcdctl, the CLI and curl against it', async () => {
    const [block, byHand] = shBlocks('Running a cluster');
    expect(byHand).toBeDefined();
    let lastValue = 'hello';
    await runLines(block!, [
      [
        /^etcdctl .* put greeting hello$/,
        async (l) => expect((await shell.ok(l.text)).stdout).toBe('OK\n'),
      ],
      [
        /^etcdctl .* get greeting -w json$/,
        async (l) => {
          const r = JSON.parse((await shell.ok(l.text)).stdout) as { kvs: { key: string; value: string }[] };
          expect(r.kvs.map((kv) => [kv.key, kv.value])).toEqual([[Buffer.from('greeting').toString('base64'), Buffer.from('hello').toString('base64')]]);
        },
      ],
      [
        /^etcdctl .* lock mylock$/,
        async (l) => {
          // "in two terminals: the second waits": the second queues behind the first until the first is interrupted (Ctrl-C).
          expect(l.comment).toBe('in two terminals: the second waits');
          const first = shell.start(l.text);
          const key1 = (await first.waitFor(/^mylock\/\S+$/m))[0];
          const second = shell.start(l.text);
          await until(async () => (await keysUnder(endpoints, 'mylock/')).length === 2, () => `the second lock never queued; it printed:\n${second.out}`);
          expect(second.out, 'the second holds the lock with the first').toBe('');
          first.signal('SIGINT');
          const key2 = (await second.waitFor(/^mylock\/\S+$/m))[0];
          expect(key2).not.toBe(key1);
          second.signal('SIGINT');
          await Promise.all([first.exited, second.exited]);
          expect(await keysUnder(endpoints, 'mylock/')).toEqual([]);
        },
      ],
      [
        /^npx flotilla get greeting$/,
        async (l) => {
          expect(l.comment).toBe('FLOTILLA_ENDPOINTS or --endpoints');
          expect((await shell.ok(l.text)).stdout).toBe('greeting\nhello\n');
        },
      ],
      [
        /^npx flotilla watch greeting --prefix --prev-kv$/,
        async (l) => {
          const watch = shell.start(l.text);
          // Puts until the watch (once it is established) prints one, with the value before it.
          const c = new FlotillaClient({ endpoints });
          try {
            for (let i = 1; ; i++) {
              const value = `hello ${i}`;
              await c.put('greeting', value);
              const seen = await watch.waitFor(new RegExp(`^PUT\\ngreeting\\n${lastValue}\\ngreeting\\n${value}$`, 'm'), 500).catch(() => null);
              lastValue = value;
              if (seen) break;
              expect(i, `the watch printed nothing for ${i} puts:\n${watch.out}`).toBeLessThan(60);
            }
          } finally {
            await c.close();
          }
          await watch.stop();
        },
      ],
      [
        /^npx flotilla endpoint status --cluster$/,
        async (l) => {
          const out = (await shell.ok(l.text)).stdout;
          expect(out.trim().split('\n').map((line) => line.split(',')[0]).sort()).toEqual(endpoints.map((e) => `http://${e}`).sort());
        },
      ],
      [
        /^curl -s -X POST .*\/v3\/kv\/range/,
        async (l) => {
          expect(l.comment).toBe('the JSON gateway');
          const r = JSON.parse((await shell.ok(l.text)).stdout) as { kvs: { key: string; value: string }[] };
          expect(r.kvs.map((kv) => [kv.key, kv.value])).toEqual([[Buffer.from('greeting').toString('base64'), Buffer.from(lastValue).toString('base64')]]);
        },
      ],
      [/^curl -s 127\.0\.0\.1:2379\/health$/, async (l) => expect(JSON.parse((await shell.ok(l.text)).stdout)).toMatchObject({ health: 'true' })],
      [/^curl -s 127\.0\.0\.1:2379\/metrics$/, async (l) => expect((await shell.ok(l.text)).stdout).toMatch(/^etcd_server_has_leader 1$/m)],
    ]);
  }, SECTION_TIMEOUT_MS);

  it('Running a cluster: one member by hand (flotilla serve with etcd\'s flags), three of them', async () => {
    const [, byHand] = shBlocks('Running a cluster');
    const ls = lines(byHand!);
    expect(ls.length).toBe(1);
    const line = ls[0]!.text;
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-readme-serve-'));
    // n2 and n3 "run the same command on 10.0.0.2 and 10.0.0.3 with their own --name, --data-dir and listen and advertise URLs".
    const forMember = (n: number) =>
      line
        .replace('--name n1', `--name n${n}`)
        .replace('/var/lib/flotilla/n1', join(dir, `n${n}`))
        .replace(/(--(?:listen-client|advertise-client|listen-peer|initial-advertise-peer)-urls http:\/\/)10\.0\.0\.1:/g, (_m, flag: string) => `${flag}10.0.0.${n}:`);
    const written = [1, 2, 3].map(forMember);
    // Each host:port of the three hosts -> a free loopback port.
    const hostPorts = new Map<string, number>();
    for (const m of written.join('\n').matchAll(/10\.0\.0\.\d+:\d+/g)) if (!hostPorts.has(m[0])) hostPorts.set(m[0], await freePort());
    expect([...hostPorts.keys()].sort()).toEqual(['10.0.0.1:2379', '10.0.0.1:2380', '10.0.0.2:2379', '10.0.0.2:2380', '10.0.0.3:2379', '10.0.0.3:2380']);
    const members = written.map((w) => w.replace(/10\.0\.0\.\d+:\d+/g, (hp) => `127.0.0.1:${hostPorts.get(hp)}`));
    const serve = new ReadmeShell({ cwd: dir, sub: (s) => s.replace(/^flotilla\b/, CLI) });
    try {
      const procs = members.map((m) => serve.start(m));
      const clientUrls = members.map((m) => /--listen-client-urls (\S+)/.exec(m)![1]!);
      await waitHealthy(clientUrls, CLUSTER_READY_TIMEOUT_MS, () => procs.map((p) => p.out.slice(-2000)).join('\n---\n'));
      const c = new FlotillaClient({ endpoints: clientUrls.map((u) => u.replace('http://', '')) });
      try {
        expect((await c.memberList()).members.map((m) => m.name).sort()).toEqual(['n1', 'n2', 'n3']);
        await c.put('by-hand', 'yes');
      } finally {
        await c.close();
      }
    } finally {
      await serve.stopAll();
      rmSync(dir, { recursive: true, force: true });
    }
  }, SECTION_TIMEOUT_MS);

  it('Chain replication (a second data plane): a chain on the cluster, then the simulator', async () => {
    const [onCluster, sim] = shBlocks('Chain replication (a second data plane)');
    let version = 0;
    await runLines(onCluster!, [
      [/^export FLOTILLA_ENDPOINTS=127\.0\.0\.1:2379,127\.0\.0\.1:22379,127\.0\.0\.1:32379$/, async (l) => void (await shell.ok(l.text))],
      [/^npx flotilla chain-master --chain photos .*&$/, async (l) => void shell.start(l.text)],
      [/^npx flotilla chain-node --chain photos .*&$/, async (l) => void shell.start(l.text)],
      [
        /^npx flotilla chain status photos$/,
        async (l) => {
          // "(once all three joined)": run again until it shows them.
          let out = '';
          await until(async () => /^ {2}tail /m.test((out = (await shell.run(l.text)).stdout)) && !/joining|registered/.test(out) && out.split('\n').length === 5, () => out, 60_000);
          const nodes = [43001, 43002, 43003].map((p) => `127.0.0.1:${ports.get(p)}`);
          expect(out).toMatch(new RegExp(`^chain photos: epoch \\d+\\n  head n\\d (${nodes.join('|')})\\n  mid  n\\d (${nodes.join('|')})\\n  tail n\\d (${nodes.join('|')})\\n$`));
        },
      ],
      [
        /^npx flotilla chain put photos greeting hello$/,
        async (l) => {
          expect((await shell.ok(l.text)).stdout).toBe(`${l.comment}\n`);
          version = Number(/\d+/.exec(l.comment)![0]);
        },
      ],
      [
        /^npx flotilla chain get photos greeting$/,
        async (l) => {
          expect(l.comment).toBe('greeting / hello (from the tail)');
          expect((await shell.ok(l.text)).stdout).toBe('greeting\nhello\n');
        },
      ],
      [
        /^npx flotilla chain cas photos greeting 1 hi$/,
        async (l) => {
          const m = /^(OK \(version (\d+)\)); a stale version: (FAILED \(version is \2\)), exit 1$/.exec(l.comment);
          expect(m, l.comment).not.toBeNull();
          expect(version).toBe(1);
          expect((await shell.ok(l.text)).stdout).toBe(`${m![1]}\n`);
          // Again: version 1 is stale now.
          const stale = await shell.run(l.text);
          expect(stale.code).toBe(1);
          expect(stale.stdout).toBe(`${m![3]}\n`);
        },
      ],
      [/^npx flotilla chain del photos greeting$/, async (l) => expect((await shell.ok(l.text)).stdout).toBe(`${l.comment}\n`)],
    ]);
    await runLines(sim!, [
      [
        /^npx flotilla sim --chain --runs \d+$/,
        async (l) => {
          const runs = /--runs (\d+)/.exec(l.text)![1]!;
          expect(l.comment).toMatch(new RegExp(`^${runs} seeds: `));
          expect((await shell.ok(l.text, { timeoutMs: CPU_LINE_TIMEOUT_MS })).stdout).toMatch(new RegExp(`^chain: ${runs} runs ok \\(seeds 1\\.\\.${runs}\\)`, 'm'));
        },
      ],
      [/^npx flotilla sim --chain --seed 7 --runs 1 -v$/, async (l) => expect((await shell.ok(l.text)).stdout).toMatch(/^seed 7: ok .*\nchain: 1 runs ok \(seeds 7\.\.7\)/m)],
    ]);
  }, SECTION_TIMEOUT_MS + CPU_LINE_TIMEOUT_MS);

  it('Tracing causality: logical clocks, `/debug/trace`, `flotilla trace`', async () => {
    const file = (name: string) => readFileSync(join(work, name), 'utf8');
    await runLines(onlyBlock('Tracing causality: logical clocks, `/debug/trace`, `flotilla trace`'), [
      [
        /^curl -s '127\.0\.0\.1:2379\/debug\/trace\?since=0' \| tail -3$/,
        async (l) => {
          const events = (await shell.ok(l.text)).stdout.trim().split('\n').map((e) => JSON.parse(e) as Record<string, unknown>);
          expect(events.length).toBe(3);
          for (const e of events) expect(Object.keys(e)).toEqual(expect.arrayContaining(['t', 'node', 'lamport', 'vc', 'kind', 'type']));
        },
      ],
      [
        /^curl -s 127\.0\.0\.1:2379\/debug\/trace > node1\.trace; curl -s 127\.0\.0\.1:22379\/debug\/trace > node2\.trace$/,
        async (l) => {
          await shell.ok(l.text);
          for (const f of ['node1.trace', 'node2.trace']) expect(file(f).split('\n').length, f).toBeGreaterThan(10);
        },
      ],
      [
        /^npx flotilla trace merge data\/node\*\.log node1\.trace node2\.trace \| less$/,
        async (l) => {
          expect(l.comment).toBe('one timeline');
          const out = (await shell.ok(l.text)).stdout;
          expect(out).toMatch(/ send /);
          expect(out).toMatch(/ receive /);
          expect(out).toMatch(/ \|\| /);
        },
      ],
      [
        /^npx flotilla trace merge data\/node\*\.log --format shiviz --out cluster\.shiviz$/,
        async (l) => {
          await shell.ok(l.text);
          expect(file('cluster.shiviz').split('\n').length).toBeGreaterThan(10);
        },
      ],
      [
        /^npx flotilla sim --seed 30880 --runs 1 --trace seed30880\.jsonl$/,
        async (l) => {
          expect((await shell.ok(l.text)).stdout).toMatch(/^1 runs clean \(seeds 30880\.\.30880\)/m);
          expect(JSON.parse(file('seed30880.jsonl').split('\n')[0]!)).toHaveProperty('vc');
        },
      ],
      [
        /^npx flotilla trace merge seed30880\.jsonl --format shiviz --out seed30880\.shiviz$/,
        async (l) => {
          await shell.ok(l.text);
          expect(file('seed30880.shiviz').split('\n').length).toBeGreaterThan(10);
        },
      ],
    ]);
  }, SECTION_TIMEOUT_MS);

  it('examples/fenced-store: Fenced store: a lock that is safe to rely on', async () => {
    let store = 0;
    let a: Background | undefined;
    let tokenA = '';
    await runLines(onlyBlock('Fenced store: a lock that is safe to rely on', 'examples/fenced-store/README.md'), [
      [
        /^npm start$/,
        async (l) => {
          // The cluster this file started (what npm start runs).
          expect(l.comment).toBe('the cluster, in one terminal');
          expect(cluster.running).toBe(true);
          await Promise.resolve();
        },
      ],
      [
        /^node examples\/fenced-store\/store\.js --port 7000$/,
        async (l) => {
          store = ports.get(7000)!;
          await shell.start(l.text).waitFor(new RegExp(`^fenced store on 127\\.0\\.0\\.1:${store}$`, 'm'));
        },
      ],
      [
        /^node examples\/fenced-store\/worker\.js .* --id A --ttl 2$/,
        async (l) => {
          const m = /^-> LOCKED (\d+); type "write" -> WROTE \1$/.exec(l.shown);
          expect(m, l.shown).not.toBeNull();
          a = shell.start(l.text);
          tokenA = (await a.waitFor(/^LOCKED (\d+)$/m))[1]!;
          a.p.stdin!.write('write\n');
          await a.waitFor(new RegExp(`^WROTE ${tokenA}$`, 'm'));
        },
      ],
      [
        /^node examples\/fenced-store\/worker\.js .* --id B --ttl 2$/,
        async (l) => {
          const m = /^waits; now pause A \((kill -STOP) <pid of A>\) for more than 2 s -> B prints LOCKED (\d+); "write" -> WROTE \2 resume A \((kill -CONT)\), type "write" in A -> REFUSED stale fencing token (\d+) for job: \2 has been seen$/.exec(l.shown);
          expect(m, l.shown).not.toBeNull();
          const b = shell.start(l.text);
          // B waits: its lock key is queued behind A's, and it has not printed LOCKED.
          await until(async () => (await keysUnder(endpoints, 'job/')).length === 2, () => `B never queued:\n${b.out}`);
          expect(b.out).not.toMatch(/LOCKED/);
          await shell.ok(`${m![1]} ${a!.p.pid}`);
          const tokenB = (await b.waitFor(/^LOCKED (\d+)$/m))[1]!;
          expect(BigInt(tokenB)).toBeGreaterThan(BigInt(tokenA));
          b.p.stdin!.write('write\n');
          await b.waitFor(new RegExp(`^WROTE ${tokenB}$`, 'm'));
          await shell.ok(`${m![3]} ${a!.p.pid}`);
          a!.p.stdin!.write('write\n');
          await a!.waitFor(new RegExp(`^REFUSED stale fencing token ${tokenA} for job: ${tokenB} has been seen$`, 'm'));
          const final = (await (await fetch(`http://127.0.0.1:${store}/data/job`)).json()) as { token: string };
          expect(final.token).toBe(tokenB);
        },
      ],
    ]);
  }, SECTION_TIMEOUT_MS);

  it('Ctrl-C stops the cluster (exit 0)', async () => {
    cluster.signal('SIGINT');
    await cluster.exited;
    expect(cluster.p.exitCode, cluster.out.slice(-2000)).toBe(0);
    expect(cluster.out).toMatch(/^stopped$/m);
    // The members are gone with it: nothing answers on their client ports.
    for (const e of endpoints) await expect(fetch(`http://${e}/health`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
  }, 30_000);
});
