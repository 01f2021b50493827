/**
 * The layering of src/ (ARCHITECTURE.md, "Layers") and its import graph:
 * - no import cycle between two files of src/ (static, dynamic, re-export and type-only imports
 *   all count, test files excepted), found as Tarjan's strongly connected components;
 * - ARCHITECTURE.md's table of layers lists exactly the allow-lists that the `layering` lint
 *   rule (LAYERS in eslint.config.js) enforces;
 * - the rule reports an import outside the allow-list, a dynamic one and a type-only one too.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');

/** Cycles allowed: none. A new cycle fails this test. */
const KNOWN_CYCLES: readonly string[] = [];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return p.endsWith('.ts') && !p.endsWith('.test.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

/** Every file of src/ and the files of src/ it imports (relative specifiers, `.js` meaning `.ts`). */
function importGraph(files: readonly string[]): Map<string, string[]> {
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const info = ts.preProcessFile(readFileSync(f, 'utf8'), true, true);
    const targets = info.importedFiles
      .map((i) => i.fileName)
      .filter((s) => s.startsWith('.'))
      .map((s) => resolve(dirname(f), s).replace(/\.js$/, '.ts'))
      .filter((t) => known.has(t));
    graph.set(f, [...new Set(targets)]);
  }
  return graph;
}

/** The strongly connected components of more than one file (Tarjan), each sorted, as `a <-> b`. */
function cycles(graph: Map<string, string[]>, base: string): string[] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1) found.push(scc.map((f) => relative(base, f).split(sep).join('/')).sort().join(' <-> '));
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found.sort();
}

describe('import graph of src/', () => {
  it('finds cycles (the checker itself)', () => {
    const g = new Map([
      ['/a', ['/b']],
      ['/b', ['/c']],
      ['/c', ['/a', '/d']],
      ['/d', ['/d2']],
      ['/d2', []],
      ['/e', ['/f']],
      ['/f', ['/e']],
    ]);
    expect(cycles(g, '/')).toEqual(['a <-> b <-> c', 'e <-> f']);
  });

  it('has no import cycle between files', () => {
    const files = sourceFiles(SRC);
    expect(files.length).toBeGreaterThan(50);
    expect(cycles(importGraph(files), SRC)).toEqual([...KNOWN_CYCLES].sort());
  });
});

describe('layers', () => {
  it("ARCHITECTURE.md's table lists the lint rule's allow-lists", async () => {
    const { LAYERS } = (await import(pathToFileURL(join(ROOT, 'eslint.config.js')).href)) as { LAYERS: Record<string, string[]> };
    const doc = readFileSync(join(ROOT, 'ARCHITECTURE.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## Layers'));
    const rows = [...section.matchAll(/^\| `([^`]+)` \| ([^|]*) \|/gm)];
    const table = Object.fromEntries(rows.map((m) => [m[1]!.replace(/\/$/, ''), [...m[2]!.matchAll(/`([^`]+(?:\/|\.ts))`/g)].map((x) => x[1]!.replace(/\/$/, '')).sort()]));
    const lint = Object.fromEntries(Object.entries(LAYERS).map(([k, v]) => [k, [...v].sort()]));
    expect(table).toEqual(lint);
  });

  it('the layering rule reports imports outside the allow-list (static, dynamic, type-only)', async () => {
    const { ESLint } = await import('eslint');
    const eslint = new ESLint({ cwd: ROOT });
    const code = [
      "import { assert } from '../lib/assert.js';",
      "import type { Transport } from '../node/node.js';",
      "export type Q = import('../sim/queue.js').EventQueue;",
      "export { ERR } from '../kv/errors.js';",
      'export const a = assert;',
      'export type T = Transport;',
    ].join('\n');
    const [r] = await eslint.lintText(code, { filePath: join(SRC, 'raft', 'layering-probe.ts') });
    const layering = r!.messages.filter((m) => m.ruleId === 'local/layering').map((m) => m.line);
    expect(layering).toEqual([2, 3, 4]);
    const [u] = await eslint.lintText("import { assert } from '../lib/assert.js';\nexport const a = assert;\n", { filePath: join(SRC, 'no-such-layer', 'x.ts') });
    expect(u!.messages.map((m) => m.message)).toEqual([expect.stringContaining('no entry in LAYERS')]);
  });
});
