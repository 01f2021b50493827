/**
 * `npm install` and the npm scripts leave a fresh clone's tree clean:
 * - package-lock.json already holds every optional (platform) package its packages name (esbuild,
 *   lmdb, rollup, ...), so npm install on another platform has nothing to add to it;
 * - what the scripts write by default (`npm run faults`'s history, `npm start`'s data) is under
 *   paths git ignores.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FLOTILLA_BIN, ROOT } from './support/cluster.js';

interface LockPackage {
  optionalDependencies?: Record<string, string>;
}

describe('a fresh clone stays clean', () => {
  it('package-lock.json lists every optional dependency of its packages', () => {
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { lockfileVersion: number; packages: Record<string, LockPackage> };
    expect(lock.lockfileVersion).toBe(3);
    const missing: string[] = [];
    for (const [path, p] of Object.entries(lock.packages)) {
      for (const dep of Object.keys(p.optionalDependencies ?? {})) {
        // Node's resolution: node_modules folders from the package up to the root.
        const parts = path.split('/node_modules/');
        const candidates = parts.map((_, i) => `${parts.slice(0, parts.length - i).join('/node_modules/')}/node_modules/${dep}`.replace(/^\//, ''));
        if (!candidates.some((c) => c in lock.packages) && !(`node_modules/${dep}` in lock.packages)) missing.push(`${path || '(root)'} -> ${dep}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("the scripts' default outputs are ignored by git", () => {
    const help = spawnSync(process.execPath, [FLOTILLA_BIN, 'faults', '--help'], { encoding: 'utf8', timeout: 30_000 });
    const history = /--history <file>[\s\S]*?\(default: "([^"]+)"\)/.exec(help.stdout)?.[1];
    expect(history, help.stdout).toBeDefined();
    for (const path of [history!, 'data/node1/wal/x.wal', 'dist/index.js']) {
      const r = spawnSync('git', ['check-ignore', '-q', path], { cwd: ROOT });
      expect(r.status, path).toBe(0);
    }
  });
});
