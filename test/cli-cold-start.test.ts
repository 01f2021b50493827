/**
 * CLI cold start: a client command loads the client library and nothing of the server, the
 * store, the Raft core or the simulator (each command's heavy modules are imported in its
 * action; see src/cli/main.ts), checked on dist/cli/main.js as tsc built it; bin/flotilla.js
 * runs the client commands from the CLI's bundle (dist/cli-bundle, src/cli/bundle.ts: no
 * package loaded module by module) and the others from dist/cli. Measured times are in
 * bench/README.md; this checks the causes.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FLOTILLA_BIN, ROOT } from './support/cluster.js';

const dir = mkdtempSync(join(tmpdir(), 'flotilla-cold-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The dist/ modules and packages one run of `flotilla <args>` loads. */
function loaded(name: string, args: string[], entry = join(ROOT, 'dist/cli/main.js')): string[] {
  const log = join(dir, `${name}.txt`);
  const r = spawnSync(process.execPath, ['--import', join(ROOT, 'test/fixtures/record-loads.mjs'), entry, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, LOADED_LOG: log },
  });
  expect(r.error).toBeUndefined();
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter((u) => u.includes('/dist/') || u.includes('/node_modules/'))
    .map((u) => u.replace(/^.*\/dist\//, 'dist/').replace(/^.*\/node_modules\//, ''));
}

/** What no client command needs. */
const SERVER_SIDE = /^dist\/(kv|storage|raft|node|transport|sim|check|faults|fuzz|bench)\/|^dist\/server\/(?!log\.js$)|^lmdb\/|^dist\/cli\/(demo|sim|snapshot-restore)\.js$/;

describe('flotilla cold start', () => {
  it('get loads the client and none of the server side', () => {
    const mods = loaded('get', ['get', 'k', '--endpoints', '127.0.0.1:1']);
    expect(mods).toContain('dist/client/client.js');
    expect(mods.filter((m) => SERVER_SIDE.test(m))).toEqual([]);
  });

  it('--help loads neither the client nor the server side', () => {
    const mods = loaded('help', ['--help']);
    expect(mods).toContain('dist/cli/main.js');
    expect(mods.filter((m) => SERVER_SIDE.test(m) || m.startsWith('dist/client/client') || m.startsWith('@grpc/'))).toEqual([]);
  });

  it('bin/flotilla.js runs get from the bundle (no package or dist/cli module loaded one by one), serve --help from dist/cli', () => {
    const get = loaded('bin-get', ['get', 'k', '--endpoints', '127.0.0.1:1'], FLOTILLA_BIN);
    expect(get.some((m) => m.startsWith('dist/cli-bundle/'))).toBe(true);
    expect(get.filter((m) => !m.startsWith('dist/cli-bundle/'))).toEqual([]);
    const serve = loaded('bin-serve', ['serve', '--help'], FLOTILLA_BIN);
    expect(serve).toContain('dist/cli/main.js');
    expect(serve.filter((m) => m.startsWith('dist/cli-bundle/'))).toEqual([]);
  });
});
