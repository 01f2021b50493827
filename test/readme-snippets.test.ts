/**
 * Doc tests: every fenced block of README.md and examples/* /README.md is accounted for, so a
 * snippet cannot rot unnoticed.
 * - ```js programs (they import 'flotilla') run here as shown: 'flotilla' resolved to this
 *   build's dist/index.js, the ports they name replaced by free ones, in a temp directory; each
 *   must exit 0 and print what the README says it does.
 * - ```js outlines of an example's code: each line (comments dropped) is in the example's source.
 * - ```sh blocks of a section that another test extracts and runs (RUN_BY): that test must name
 *   the section.
 * - untagged and ```text blocks are shown output, not commands.
 * - ```sh blocks not yet run by any test are listed in NOT_RUN_YET: strict both ways (a new
 *   unlisted block fails, and so does a listed one that is gone or now run).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, ROOT } from './support/cluster.js';

interface Block {
  /** README.md or examples/<name>/README.md */
  file: string;
  /** The heading the block is under, without its #s. */
  section: string;
  lang: string;
  body: string;
}

function blocks(file: string): Block[] {
  const found: Block[] = [];
  let section = '';
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (/^#+ /.test(l)) section = l.replace(/^#+ /, '');
    if (!l.startsWith('```')) continue;
    const end = lines.findIndex((x, j) => j > i && x.startsWith('```'));
    found.push({ file, section, lang: l.slice(3).trim(), body: lines.slice(i + 1, end).join('\n') });
    i = end;
  }
  return found;
}

const FILES = ['README.md', ...readdirSync(join(ROOT, 'examples')).map((d) => `examples/${d}/README.md`)];
const ALL = FILES.flatMap(blocks);
const key = (b: Block): string => `${b.file}: ${b.section}`;

/** Sections whose ```sh blocks another test extracts from the README and runs. */
const RUN_BY: Record<string, string> = {
  'README.md: Backup and restore': 'test/snapshot.test.ts',
  'README.md: Watching a cluster: metrics, health, logs': 'test/readme-ops.test.ts',
  'README.md: Changing the membership (add, replace, remove a member)': 'test/readme-membership.test.ts',
  'README.md: Security: TLS, client certificates, peers': 'test/readme-security.test.ts',
  'README.md: Authentication and role-based access': 'test/readme-security.test.ts',
  'README.md: Where a member keeps its data': 'test/readme-sections.test.ts',
  'README.md: The dashboard: `/ui` on every member': 'test/readme-sections.test.ts',
  'README.md: Space quota and alarms': 'test/readme-sections.test.ts',
  'README.md: Flotilla': 'test/readme-cluster.test.ts',
  'README.md: Running a cluster': 'test/readme-cluster.test.ts',
  'README.md: Chain replication (a second data plane)': 'test/readme-cluster.test.ts',
  'README.md: Tracing causality: logical clocks, `/debug/trace`, `flotilla trace`': 'test/readme-cluster.test.ts',
  'examples/fenced-store/README.md: Fenced store: a lock that is safe to rely on': 'test/readme-cluster.test.ts',
  'README.md: Proving it under faults': 'test/netns.test.ts',
  'README.md: The example: a replicated counter (`examples/counter`)': 'test/readme-examples.test.ts',
  'examples/counter/README.md: Run three members': 'test/readme-examples.test.ts',
};

/** Outlines of an example's code: the example's source file. */
const OUTLINE_OF: Record<string, string> = {
  'examples/counter/README.md: The state machine': 'examples/counter/counter.js',
};

/** ```sh blocks no test runs yet: none (a new block needs a test, or it fails the check below). */
const NOT_RUN_YET: readonly string[] = [];

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('README snippets', () => {
  it('every block is run here, run by a named test, an outline of a source file, output, or listed as not run yet', () => {
    const notRun = new Set<string>();
    for (const b of ALL) {
      if (b.lang === '' || b.lang === 'text') continue;
      if (b.lang === 'js' && (b.body.includes("from 'flotilla'") || OUTLINE_OF[key(b)])) continue;
      if (b.lang === 'sh' && RUN_BY[key(b)]) {
        expect(readFileSync(join(ROOT, RUN_BY[key(b)]!), 'utf8'), `${RUN_BY[key(b)]} names the section`).toContain(b.section);
        continue;
      }
      expect(b.lang, key(b)).toBe('sh');
      notRun.add(key(b));
    }
    expect([...notRun].sort()).toEqual([...NOT_RUN_YET].sort());
  });

  it('outlines of example code match the example', () => {
    const outlines = ALL.filter((b) => OUTLINE_OF[key(b)]);
    expect(outlines.length).toBe(Object.keys(OUTLINE_OF).length);
    for (const b of outlines) {
      const source = readFileSync(join(ROOT, OUTLINE_OF[key(b)]!), 'utf8');
      for (const line of b.body.split('\n')) {
        const code = line.replace(/\/\*.*?\*\//g, '').replace(/\{\s*\}\s*$/, '{').trim();
        if (code !== '' && code !== '}') expect(source, `${key(b)}: "${code}"`).toContain(code);
      }
    }
  });

  const programs = ALL.filter((b) => b.lang === 'js' && b.body.includes("from 'flotilla'"));
  it.each(programs.map((b) => [key(b), b] as const))('%s runs as shown', async (_name, b) => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-readme-'));
    dirs.push(dir);
    let code = b.body.replace("from 'flotilla'", `from '${pathToFileURL(join(ROOT, 'dist/index.js')).href}'`);
    for (const port of new Set(b.body.match(/\b7\d{3}\b/g) ?? [])) code = code.replaceAll(port, String(await freePort()));
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    // The embedding example: the proposal's result and the linearizable read agree.
    expect(r.stdout).toBe('total 5, read 5\n');
  });
});
