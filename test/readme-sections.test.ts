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
 * etcdctl), "The dashboard: `/ui` on every member".
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FlotillaClient } from '../src/client/index.js';
import { FLOTILLA_BIN, ROOT, which } from './support/cluster.js';
import { BCRYPT_COST_MIN } from '../src/server/config.js';
import { startInProcessCluster, type InProcessCluster } from './support/in-process.js';

/** How long one block may run (bcrypt and a dozen CLI starts on a loaded machine). */
const BLOCK_TIMEOUT_MS = 120_000;
/** The README's compaction example compacts at revision 1000: the cluster gets past it first. */
const COMPACT_REVISION = 1000;

/** The ```sh blocks of the README section headed `heading` (without its #s). */
function shBlocks(heading: string): string[] {
  const md = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const m = new RegExp(`^(#+) ${heading.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm').exec(md);
  if (!m) throw new Error(`README.md has no section "${heading}"`);
  const rest = md.slice(m.index + m[0].length);
  const next = rest.search(/^#{1,6} /m);
  const section = next < 0 ? rest : rest.slice(0, next);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((x) => x[1]!);
}

interface Line {
  /** The command as written. */
  readonly text: string;
  /** Its trailing comment, if any. */
  readonly comment: string;
}

const lines = (block: string): Line[] =>
  block
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.trim().startsWith('#'))
    .map((l) => {
      const m = /^(.*?)\s+#\s?(.*)$/.exec(l);
      return m ? { text: m[1]!.trim(), comment: m[2]!.trim() } : { text: l.trim(), comment: '' };
    });

interface Ran extends Line {
  readonly code: number;
  readonly output: string;
}

/** Runs the block's lines in one bash, each line's output (stdout and stderr) and exit code apart. */
async function runBlock(block: string, endpoint: string): Promise<Ran[]> {
  const cli = `${JSON.stringify(process.execPath)} ${JSON.stringify(FLOTILLA_BIN)}`;
  const ls = lines(block);
  const sub = (s: string) => s.replaceAll('npx flotilla', cli).replaceAll('127.0.0.1:2379', endpoint);
  const script = ['exec 2>&1', ...ls.flatMap((l, i) => [`echo "@@@begin ${i}"`, sub(l.text), `echo "@@@end ${i} $?"`])].join('\n');
  const out = await new Promise<string>((resolve, reject) =>
    execFile('bash', ['-c', script], { timeout: BLOCK_TIMEOUT_MS, env: { ...process.env, ETCDCTL_API: '3' } }, (e, stdout) =>
      e ? reject(new Error(`the block did not finish: ${e.message}\n${stdout}`)) : resolve(stdout),
    ),
  );
  return ls.map((l, i) => {
    const m = new RegExp(`@@@begin ${i}\\n([\\s\\S]*?)@@@end ${i} (\\d+)\\n`).exec(out);
    if (!m) throw new Error(`no output for "${l.text}" in:\n${out}`);
    return { ...l, comment: sub(l.comment), output: m[1]!, code: Number(m[2]) };
  });
}

/** Every line exits 0 unless its comment says `Error: <text>` (then it fails with that text); `OK` prints OK. */
function checkComments(ran: readonly Ran[]): void {
  for (const r of ran) {
    const error = /^Error: (.*)$/.exec(r.comment);
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

  it('Authentication and role-based access', async () => {
    const [block, ...more] = shBlocks('Authentication and role-based access');
    expect(more).toEqual([]);
    const endpoint = await start();
    const ran = await runBlock(block!, endpoint);
    checkComments(ran);
    // "Authentication Status: true / AuthRevision: 7": two lines of output.
    const status = find(ran, 'npx flotilla auth status');
    for (const part of status.comment.split(' / ')) expect(status.output).toContain(part);
    // The gateway with alice's token reads /app/x (written by `put /app/x 1 --user alice:apw`).
    const range = JSON.parse(find(ran, 'curl -s -H "Authorization: $TOKEN"').output) as { kvs?: { key: string; value: string }[] };
    expect(range.kvs?.map((kv) => [Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64').toString()])).toEqual([['/app/x', '1']]);
  }, BLOCK_TIMEOUT_MS + 60_000);

  it.skipIf(!which('etcdctl'))('Where a member keeps its data (etcdctl)', async () => {
    const [block, ...more] = shBlocks('Where a member keeps its data');
    expect(more).toEqual([]);
    const endpoint = await start();
    const c = new FlotillaClient({ endpoints: [endpoint] });
    try {
      const put = (i: number) => c.put(`readme/compact/${i % 50}`, String(i));
      for (let i = 0; i < COMPACT_REVISION; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => put(i + j)));
    } finally {
      await c.close();
    }
    const ran = await runBlock(block!, endpoint);
    checkComments(ran);
    const defrag = find(ran, 'etcdctl --endpoints=127.0.0.1:2379 defrag');
    expect(defrag.output).toContain(defrag.comment);
  }, BLOCK_TIMEOUT_MS + 60_000);

  it('The dashboard: `/ui` on every member', async () => {
    const [block, ...more] = shBlocks('The dashboard: `/ui` on every member');
    expect(more).toEqual([]);
    const endpoint = await start();
    const ran = await runBlock(block!, endpoint);
    checkComments(ran);
    // "role, term, indexes, ...": the first 300 bytes of the status JSON.
    expect(ran[0]!.output).toMatch(/^\{"/);
    expect(ran[0]!.output.length).toBe(300);
  }, 60_000);
});
