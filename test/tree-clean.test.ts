/**
 * `npm install` and the npm scripts leave a fresh clone's tree clean:
 * - package-lock.json already holds every optional (platform) package its packages name (esbuild,
 *   lmdb, rollup, ...), so npm install on another platform has nothing to add to it;
 * - and it is in the form both npm 10 (Node 20's own) and npm 11 leave as it is: npm 11 writes a
 *   `libc` field for the glibc/musl builds (of a package it resolves anew), npm 10 drops every
 *   such field (39 lines), and npm 11 does not add them back to entries it finds without one;
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

  it('package-lock.json has no libc field (npm 10 would drop it, rewriting the lock)', () => {
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { libc?: string[] }> };
    expect(Object.entries(lock.packages).filter(([, p]) => p.libc !== undefined).map(([path]) => path)).toEqual([]);
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
