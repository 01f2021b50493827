/**
 * README sections whose ```sh blocks run here as written, one bash per block (so `export` and
 * variables carry from line to line), each section against its own 3-member cluster in this
 * process (support/in-process.ts; bcrypt at its lowest cost: the members share one event loop,
 * and the README's commands do not depend on it): only `npx flotilla` (the built CLI) and the
 * address 127.0.0.1:2379 (member 1's client URL) are substituted. Every command must exit 0, except where its comment
 * says `# Error: <text>`: then it must fail and print that text; `# OK` must print OK. A few
 * lines are checked further below (what they print, as the comment says).
 *
 * Sections: "Authentication and role-based access", "Where a member keeps its data" (needs
 * etcdctl), "The dashboard: `/ui` on every member", and "Space quota and alarms" (needs
 * etcdctl): its block starts a member process of its own, given its URLs (and etcdctl its
 * endpoint) through the environment, FLOTILLA_* and ETCDCTL_ENDPOINTS, so the lines stay as
 * written; the test waits for that member's /health before the writes, as a reader would.
 * "Security: TLS, client certificates, peers" (needs openssl, etcdctl, curl) runs in a
 * directory of its own (the certificates it makes) with free ports for 2379 and 2380, its
 * `flotilla` the built CLI.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FlotillaClient } from '../src/client/index.js';
import { FLOTILLA_BIN, freePort, which } from './support/cluster.js';
import { BCRYPT_COST_MIN } from '../src/server/config.js';
import { startInProcessCluster, type InProcessCluster } from './support/in-process.js';
import { lines, onlyBlock, type Line } from './support/readme.js';

/** How long one block may run (bcrypt and a dozen CLI starts on a loaded machine). */
const BLOCK_TIMEOUT_MS = 120_000;
/** The README's compaction example compacts at revision 1000: the cluster gets past it first. */
const COMPACT_REVISION = 1000;

interface Ran extends Line {
  readonly code: number;
  readonly output: string;
  /** The pid of the job a line started in the background (`... &`), else 0. */
  readonly pid: number;
}

interface RunOptions {
  /** More substitutions (what the README names -> what this run uses). */
  readonly replace?: Readonly<Record<string, string>>;
  /** Environment variables for the block. */
  readonly env?: Readonly<Record<string, string>>;
  /** A command run after line i (what a reader does between two lines, e.g. wait for a member to start). */
  readonly after?: Readonly<Record<number, string>>;
  /** The block's working directory (default: this one). */
  readonly cwd?: string;
}

/**
 * Runs the block's lines in one bash (so variables carry), each line's output (stdout and
 * stderr, into a file of its own: a job a line leaves in the background keeps writing there,
 * not to the pipe this waits on) and exit code apart.
 */
async function runBlock(block: string, endpoint: string, o: RunOptions = {}): Promise<Ran[]> {
  const cli = `${JSON.stringify(process.execPath)} ${JSON.stringify(FLOTILLA_BIN)}`;
  const ls = lines(block);
  const sub = (s: string) => Object.entries(o.replace ?? {}).reduce((x, [from, to]) => x.replaceAll(from, to), s.replaceAll('npx flotilla', cli).replaceAll('127.0.0.1:2379', endpoint));
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-readme-run-'));
  try {
    const script = [
    // Whatever a line left in the background ends with the block (also when it is timed out).
    "trap 'kill $(jobs -p) 2>/dev/null' EXIT",
    "trap 'exit 143' TERM",
    ...ls.flatMap((l, i) => [`{\n${sub(l.text)}\n} > ${dir}/${i}.out 2>&1`, `echo "$? $!" > ${dir}/${i}.rc`, o.after?.[i] ?? '']),
  ].join('\n');
    await new Promise<void>((resolve, reject) =>
      execFile('bash', ['-c', script], { timeout: BLOCK_TIMEOUT_MS, env: { ...process.env, ETCDCTL_API: '3', ...o.env }, ...(o.cwd ? { cwd: o.cwd } : {}) }, (e, stdout, stderr) =>
        e ? reject(new Error(`the block did not finish: ${e.message}\n${stdout}${stderr}`)) : resolve(),
      ),
    );
    return ls.map((l, i) => {
      const [code, pid] = readFileSync(join(dir, `${i}.rc`), 'utf8').trim().split(' ');
      return { ...l, comment: sub(l.comment), shown: sub(l.shown), output: readFileSync(join(dir, `${i}.out`), 'utf8'), code: Number(code), pid: l.text.endsWith('&') ? Number(pid) : 0 };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Every line exits 0 unless its comment (or the comment lines below it) says `Error: <text>`:
 * then it fails and prints that text; `OK` prints OK.
 */
function checkComments(ran: readonly Ran[]): void {
  for (const r of ran) {
    const error = /^Error: (.*)$/.exec(r.comment) ?? /^Error: (.*)$/.exec(r.shown);
    if (error) {
      expect(r.code, `${r.text}\n${r.output}`).not.toBe(0);
      expect(r.output, r.text).toContain(error[1]!);
      continue;
    }
    expect(r.code, `${r.text}\n${r.output}`).toBe(0);
    if (r.comment === 'OK' || r.comment.startsWith('OK ')) expect(r.output, r.text).toContain('OK');
  }
}

const find = (ran: readonly Ran[], start: string): Ran => {
  const r = ran.find((x) => x.text.startsWith(start));
  if (!r) throw new Error(`no line starting with "${start}"`);
  return r;
};

/** runBlock, then checkComments. */
async function runChecked(block: string, endpoint: string): Promise<Ran[]> {
  const ran = await runBlock(block, endpoint);
  checkComments(ran);
  return ran;
}

describe('README sections run as written', () => {
  let cluster: InProcessCluster | undefined;
  /** A new cluster for a section; member 1's host:port. */
  const start = async (): Promise<string> => {
    cluster = await startInProcessCluster({ settings: { bcryptCost: BCRYPT_COST_MIN } });
    return cluster.endpoints[0]!;
  };
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it.skipIf(!which('etcdctl'))('Where a member keeps its data (etcdctl)', async () => {
    const block = onlyBlock('Where a member keeps its data');
    const endpoint = await start();
    const c = new FlotillaClient({ endpoints: [endpoint] });
    try {
      const put = (i: number) => c.put(`readme/compact/${i % 50}`, String(i));
      for (let i = 0; i < COMPACT_REVISION; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => put(i + j)));
    } finally {
      await c.close();
    }
    const ran = await runBlock(block, endpoint);
    checkComments(ran);
    const defrag = find(ran, 'etcdctl --endpoints=127.0.0.1:2379 defrag');
    expect(defrag.output).toContain(defrag.comment);
  }, BLOCK_TIMEOUT_MS + 60_000);

  it('The dashboard: `/ui` on every member', async () => {
    const block = onlyBlock('The dashboard: `/ui` on every member');
    const ran = await runChecked(block, await start());
    // "role, term, indexes, ...": the first 300 bytes of the status JSON.
    expect(ran[0]!.output).toMatch(/^\{"/);
    expect(ran[0]!.output.length).toBe(300);
  }, 60_000);

  it.skipIf(!which('etcdctl'))('Space quota and alarms (etcdctl)', async () => {
    const block = onlyBlock('Space quota and alarms');
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-readme-quota-'));
    const client = `127.0.0.1:${await freePort()}`;
    const peer = `http://127.0.0.1:${await freePort()}`;
    try {
      const ran = await runBlock(block, client, {
        replace: { '/tmp/quota-demo': join(dir, 'quota-demo') },
        env: {
          FLOTILLA_LISTEN_CLIENT_URLS: `http://${client}`,
          FLOTILLA_ADVERTISE_CLIENT_URLS: `http://${client}`,
          FLOTILLA_LISTEN_PEER_URLS: peer,
          FLOTILLA_INITIAL_ADVERTISE_PEER_URLS: peer,
          ETCDCTL_ENDPOINTS: client,
        },
        after: { 0: `until curl -sf http://${client}/health >/dev/null; do sleep 0.2; done` },
      });
      // "OK about N times ..., then: Error: etcdserver: mvcc: database space exceeded" (the comment line after it).
      const fill = find(ran, 'for i in');
      // The size the quota compares is the file plus what is not yet committed to it, so the
      // count does not depend on when batch commits run; "about N": N or one less (the file's
      // own pages, LMDB's growth steps).
      const oks = /^OK about (\d+) times, then:$/.exec(fill.comment);
      expect(oks, fill.comment).not.toBeNull();
      const okCount = fill.output.match(/^OK$/gm)?.length ?? 0;
      expect(okCount, fill.output).toBeGreaterThanOrEqual(Number(oks![1]) - 1);
      expect(okCount, fill.output).toBeLessThanOrEqual(Number(oks![1]));
      expect(fill.output).toContain('Error: etcdserver: mvcc: database space exceeded');
      expect(fill.code).not.toBe(0);
      checkComments(ran.filter((r) => r !== fill));
      // The alarm as the comments show it (the member id is this run's).
      for (const start of ['etcdctl alarm list', 'etcdctl endpoint status', 'etcdctl alarm disarm']) expect(find(ran, start).output).toMatch(/memberID:\d+ alarm:NOSPACE/);
      expect(find(ran, 'curl -s').output).toBe('{"health":"false","reason":"ALARM NOSPACE"}');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, BLOCK_TIMEOUT_MS + 30_000);
});
