/**
 * Chain processes on a secured control cluster (issue 17): a Flotilla member with client TLS
 * (--cert-file/--key-file, --client-cert-auth --trusted-ca-file) and auth on (a user whose role
 * may read and write /flotilla/chains/ only). `flotilla chain-master` and three
 * `flotilla chain-node` processes reach it with etcdctl's flags (--cacert, --cert, --key,
 * --user), and `flotilla chain put|get|status` with the same flags writes and reads through the
 * chain. Refusals are immediate and in etcd's words: a chain-node, a chain-master and a chain
 * client with a wrong password, a user without permissions on the chain's keys, no credentials
 * at all, and no client certificate.
 * Skipped with the reason when openssl is missing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlotillaClient, prefixEnd } from '../src/client/index.js';
import { makeTestCerts } from './support/certs.js';
import { chainProcessesEnv } from './support/chain.js';
import { FLOTILLA_BIN, freePort, runProcess, which } from './support/cluster.js';

const OPENSSL = which('openssl');
if (!OPENSSL) console.log('skipping chain processes on a TLS and auth control cluster: openssl not installed');

const { dir, procs, startCluster } = chainProcessesEnv('flotilla-chain-auth-');

const launch = (name: string, args: string[]): void => procs.launch(name, args);
const logs = (): string => procs.logs(6);

const AUTH_FAILED = 'etcdserver: authentication failed, invalid user ID or password';

describe.skipIf(!OPENSSL)('chain processes on a control cluster with client TLS and auth', () => {
  it('reach it with --cacert/--cert/--key/--user; a wrong password, no permission or no credentials stop them at once with etcd\'s text', async () => {
    const certs = makeTestCerts(dir);
    const cluster = await startCluster('flotilla', {
      size: 1,
      clientTls: true,
      extraArgs: ['--cert-file', certs.server.cert, '--key-file', certs.server.key, '--client-cert-auth', '--trusted-ca-file', certs.ca.cert],
      healthTls: { ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key },
    });
    const endpoint = cluster.endpoints[0]!;
    const tls = { ca: readFileSync(certs.ca.cert), cert: readFileSync(certs.client.cert), key: readFileSync(certs.client.key) };
    const admin = new FlotillaClient({ endpoints: [endpoint], tls });
    try {
      await admin.userAdd('root', 'rootpw');
      await admin.userGrantRole('root', 'root');
      await admin.roleAdd('chains');
      await admin.roleGrantPermission('chains', 'READWRITE', '/flotilla/chains/', prefixEnd(Buffer.from('/flotilla/chains/')));
      await admin.userAdd('chainer', 'chainpw');
      await admin.userGrantRole('chainer', 'chains');
      await admin.userAdd('nobody', 'nopw');
      await admin.authEnable();
    } finally {
      await admin.close();
    }

    /**
     * What a chain-node that the control cluster refused said: refused at its first registration,
     * it does not start (exit 2). On a loaded machine that first attempt can time out before any
     * answer (a transient error: the node starts and retries), and then the refusal stops the
     * running node (exit 1) — at its next attempt, with the same words. null: neither.
     */
    const nodeRefused = (r: { code: number | null; stderr: string }): string | null => {
      const m = /^fatal: (cannot start: )?the control cluster refused: (.*)\n$/.exec(r.stderr);
      return m && r.code === (m[1] ? 2 : 1) ? m[2]! : null;
    };
    const control = ['--control', endpoint, '--cacert', certs.ca.cert, '--cert', certs.client.cert, '--key', certs.client.key];
    const as = (user: string): string[] => [...control, '--user', user];
    launch('master', ['chain-master', '--chain', 'sec', '--name', 'm1', '--bootstrap-members', '3', '--members-max', '3', ...as('chainer:chainpw')]);
    for (const n of ['n1', 'n2', 'n3']) {
      launch(n, ['chain-node', '--chain', 'sec', '--name', n, '--data-dir', join(dir, n), '--listen', `127.0.0.1:${await freePort()}`, ...as('chainer:chainpw')]);
    }
    const cli = (...args: string[]) => runProcess(process.execPath, [FLOTILLA_BIN, 'chain', ...args]);

    // The master configures the three nodes; status, put and get through the CLI.
    const deadline = performance.now() + 60_000;
    for (;;) {
      const s = await cli('status', 'sec', ...as('chainer:chainpw'));
      if (/tail n\d/.test(s.stdout) && (s.stdout.match(/^ {2}(head|mid |tail) /gm) ?? []).length === 3) break;
      if (performance.now() > deadline) throw new Error(`no chain of three: ${s.stdout}${s.stderr}\n${logs()}`);
      await new Promise((r) => setTimeout(r, 300));
    }
    const put = await cli('put', 'sec', 'greeting', 'hello over TLS and auth', ...as('chainer:chainpw'));
    expect(put.stderr, logs()).toBe('');
    expect(put.stdout).toMatch(/^OK \(version \d+\)\n$/);
    expect(await cli('get', 'sec', 'greeting', ...as('chainer:chainpw'))).toMatchObject({ code: 0, stdout: 'greeting\nhello over TLS and auth\n' });
    // --user NAME --password PW, and FLOTILLA_USER, work as for the client commands.
    expect(await cli('get', 'sec', 'greeting', ...control, '--user', 'chainer', '--password', 'chainpw')).toMatchObject({ code: 0, stdout: 'greeting\nhello over TLS and auth\n' });
    const env = await runProcess(process.execPath, [FLOTILLA_BIN, 'chain', 'get', 'sec', 'greeting', ...control], { ...process.env, FLOTILLA_USER: 'chainer', FLOTILLA_PASSWORD: 'chainpw' });
    expect(env).toMatchObject({ code: 0, stdout: 'greeting\nhello over TLS and auth\n' });

    // Refused by the control cluster: a clear message at once, not a hang or a timeout.
    const started = performance.now();
    const badNode = await runProcess(process.execPath, [FLOTILLA_BIN, 'chain-node', '--chain', 'sec', '--name', 'n4', '--data-dir', join(dir, 'n4'), '--listen', `127.0.0.1:${await freePort()}`, ...as('chainer:wrong')]);
    expect(nodeRefused(badNode), badNode.stdout + badNode.stderr).toBe(AUTH_FAILED);
    const noPermission = await runProcess(process.execPath, [FLOTILLA_BIN, 'chain-node', '--chain', 'sec', '--name', 'n5', '--data-dir', join(dir, 'n5'), '--listen', `127.0.0.1:${await freePort()}`, ...as('nobody:nopw')]);
    expect(nodeRefused(noPermission), noPermission.stdout + noPermission.stderr).toBe('etcdserver: permission denied');
    const badMaster = await runProcess(process.execPath, [FLOTILLA_BIN, 'chain-master', '--chain', 'sec', '--name', 'm2', ...as('chainer:wrong')]);
    expect(badMaster.code).toBe(1);
    expect(badMaster.stderr).toBe(`fatal: the control cluster refused: ${AUTH_FAILED}\n`);
    expect(await cli('get', 'sec', 'greeting', ...as('chainer:wrong'))).toMatchObject({ code: 1, stdout: '', stderr: `Error: chain sec: the control cluster refused: ${AUTH_FAILED}\n` });
    expect(await cli('put', 'sec', 'greeting', 'x', ...as('nobody:nopw'))).toMatchObject({ code: 1, stdout: '', stderr: 'Error: chain sec: the control cluster refused: etcdserver: permission denied\n' });
    const noUser = await cli('get', 'sec', 'greeting', ...control);
    expect(noUser.code).toBe(1);
    expect(noUser.stderr).toMatch(/^Error: chain sec: the control cluster refused: etcdserver: (user name is empty|user name not found|permission denied)\n$/);
    // Without a client certificate the member refuses the TLS handshake: said as such.
    const noCert = await cli('get', 'sec', 'greeting', '--control', endpoint, '--cacert', certs.ca.cert, '--user', 'chainer:chainpw');
    expect(noCert.code).toBe(1);
    expect(noCert.stderr).toMatch(/^Error: chain sec: the control cluster refused: cannot connect to 127\.0\.0\.1:\d+: .*client certificate/);
    // Well within the 10 s a retrying client would take (recorded, not a timing assertion on the machine).
    console.log(`refusals answered in ${Math.round(performance.now() - started)} ms (load ${(await import('node:os')).loadavg()[0]!.toFixed(2)})`);

    // The chain still serves, and the refused processes wrote nothing.
    expect(await cli('get', 'sec', 'greeting', ...as('chainer:chainpw'))).toMatchObject({ code: 0, stdout: 'greeting\nhello over TLS and auth\n' });
    const status = await cli('status', 'sec', ...as('chainer:chainpw'));
    expect(status.stdout).not.toMatch(/n4|n5/);
  }, 180_000);
});
