/**
 * The replicated counter's ```sh blocks run line by line as written (support/readme.ts), each in
 * a temp working directory of its own (the members' `./data/counterN`), every port they name
 * (Raft 7001..7003, HTTP 8001..8003) mapped to a free one, `node examples/...` run by this
 * Node from the checkout:
 * - examples/counter/README.md "Run three members": the members elect a leader that all three
 *   know.
 * - README.md "The example: a replicated counter (`examples/counter`)": the members (each "in
 *   its own terminal": here in the background), then the curl lines with what their comments
 *   say (an add on a member that is not the leader answers 421 with the leader's id; the reader
 *   then adds on that one).
 * `npm install` is not run (it would rebuild dist/, which the test files running beside this one
 * read): the test checks that it builds dist/ (`prepare`) and that 'flotilla' resolves to it.
 * The members are stopped (SIGTERM, then SIGKILL) at the end of each block.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLUSTER_READY_TIMEOUT_MS, freePort, ROOT } from './support/cluster.js';
import { onlyBlock, ReadmeShell, runLines, until, type Handlers, type Line } from './support/readme.js';

interface Status {
  id: number;
  role: string;
  term: number;
  leader: number;
  commit: number;
  applied: number;
}

/** How long a block may take (three members starting and electing on a loaded machine). */
const BLOCK_TIMEOUT_MS = 90_000;

describe('README: the replicated counter example', () => {
  const dirs: string[] = [];
  let shell: ReadmeShell | undefined;
  afterEach(async () => {
    await shell?.stopAll();
    shell = undefined;
    dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
  });

  /** A shell in a new temp directory with the block's ports mapped to free ones; `http(8001)` is the port used for 8001. */
  const setUp = async (block: string): Promise<{ shell: ReadmeShell; http: (readmePort: number) => number }> => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-readme-counter-'));
    dirs.push(dir);
    const ports = new Map<number, number>();
    for (const m of block.matchAll(/(?:127\.0\.0\.1:|--http )(\d+)/g)) if (!ports.has(Number(m[1]))) ports.set(Number(m[1]), await freePort());
    expect([...ports.keys()].filter((p) => p >= 8000).length, 'the HTTP ports the block names').toBeGreaterThan(0);
    shell = new ReadmeShell({
      cwd: dir,
      sub: (s) => s.replace(/(127\.0\.0\.1:|--http )(\d+)\b/g, (m, before: string, p: string) => (ports.has(Number(p)) ? `${before}${ports.get(Number(p))}` : m)).replace(/^node examples\//, `${JSON.stringify(process.execPath)} ${ROOT}examples/`),
    });
    return { shell, http: (p) => ports.get(p)! };
  };

  const status = async (port: number): Promise<Status | null> => {
    try {
      return (await (await fetch(`http://127.0.0.1:${port}/status`, { signal: AbortSignal.timeout(2000) })).json()) as Status;
    } catch {
      return null;
    }
  };

  /** `npm install` (not run): it builds dist/, which the example imports as 'flotilla'. */
  const npmInstall = async (l: Line): Promise<void> => {
    expect(l.comment).toMatch(/builds dist\//);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; scripts: Record<string, string>; exports: Record<string, { default: string }> };
    expect(pkg.scripts.prepare).toBe('npm run build');
    expect(pkg.name).toBe('flotilla');
    expect(pkg.exports['.']!.default).toBe('./dist/index.js');
    expect(statSync(join(ROOT, 'dist/index.js')).isFile()).toBe(true);
    await Promise.resolve();
  };

  /** The three member lines: each starts a member (in the background) that says it serves. */
  const members = (s: ReadmeShell): Handlers[number] => [
    /^node examples\/counter\/counter\.js --id \d --peers \$PEERS --http \d+ --data \.\/data\/counter\d( &)?$/,
    async (l) => void (await s.start(l.text).waitFor(/counter member \d: HTTP on /, CLUSTER_READY_TIMEOUT_MS)),
  ];
  const peers: Handlers[number] = [/^PEERS=1=127\.0\.0\.1:7001,2=127\.0\.0\.1:7002,3=127\.0\.0\.1:7003$/, async (l) => void (await shell!.ok(l.text))];

  /** Until all three members name the same leader; returns its id. */
  const leaderOfAll = async (http: (p: number) => number): Promise<number> => {
    let seen: (Status | null)[] = [];
    await until(
      async () => {
        seen = await Promise.all([8001, 8002, 8003].map((p) => status(http(p))));
        return seen.every((x) => x !== null && x.leader !== 0 && x.leader === seen[0]!.leader);
      },
      () => JSON.stringify(seen),
      CLUSTER_READY_TIMEOUT_MS,
    );
    return seen[0]!.leader;
  };

  it('examples/counter/README.md: Run three members', async () => {
    const block = onlyBlock('Run three members', 'examples/counter/README.md');
    const { shell: s, http } = await setUp(block);
    await runLines(block, [[/^npm install$/, npmInstall], peers, members(s)]);
    expect([1, 2, 3]).toContain(await leaderOfAll(http));
  }, BLOCK_TIMEOUT_MS);

  it('README.md: The example: a replicated counter (`examples/counter`)', async () => {
    const block = onlyBlock('The example: a replicated counter (`examples/counter`)');
    const { shell: s, http } = await setUp(block);
    await runLines(block, [
      [/^npm install$/, npmInstall],
      peers,
      members(s),
      [
        /^curl -X POST 'http:\/\/127\.0\.0\.1:8001\/add\?n=5'$/,
        async (l) => {
          expect(l.comment).toBe('on the leader: {"total":5,"id":...}; elsewhere 421 with the leader\'s id');
          const leader = await leaderOfAll(http);
          // As written, plus -s -w: the status code after the body (the progress meter off).
          const r = await s.ok(`${l.text} -s -w '\\n%{http_code}'`);
          const [body, code] = r.stdout.split('\n');
          if (leader === 1) {
            expect(code).toBe('200');
            expect(JSON.parse(body!)).toMatchObject({ total: 5 });
          } else {
            expect(code).toBe('421');
            expect(JSON.parse(body!)).toMatchObject({ leader });
            // The reader adds on the leader instead.
            const again = await s.ok(l.text.replace('127.0.0.1:8001', `127.0.0.1:800${leader}`));
            expect(JSON.parse(again.stdout)).toMatchObject({ total: 5 });
          }
        },
      ],
      [
        /^curl http:\/\/127\.0\.0\.1:8002\/value$/,
        async (l) => {
          expect(l.comment).toBe('linearizable read from any member');
          expect(JSON.parse((await s.ok(l.text)).stdout)).toEqual({ total: 5, ops: 1 });
        },
      ],
      [
        /^curl http:\/\/127\.0\.0\.1:8003\/status$/,
        async (l) => {
          expect(l.comment).toBe('role, term, leader, commit, applied');
          expect(Object.keys(JSON.parse((await s.ok(l.text)).stdout) as Status)).toEqual(['id', 'role', 'term', 'leader', 'commit', 'applied']);
        },
      ],
    ]);
  }, BLOCK_TIMEOUT_MS);
});
