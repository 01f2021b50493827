/**
 * The key-value commands of `flotilla` modelled on etcdctl 3.4 (put, get, del, txn, watch, lease,
 * lock, elect) on FlotillaClient; member and endpoint are in cluster.ts, user, role and auth in
 * auth.ts. What they print is in printers.ts (`-w simple` as etcdctl, `-w json` as etcd's JSON),
 * the txn input parser in txn.ts, the shared flags and the runner in command.ts.
 *
 * Failures print `Error: <message>` on stderr, nothing on stdout, and exit 1. This module only
 * registers commands: the caller builds the program and parses argv.
 */
import { spawn } from 'node:child_process';
import { Option, type Command } from 'commander';
import type { FlotillaClient, ResponseHeader, WatchEvent } from '../client/index.js';
import { registerAuth } from './auth.js';
import { registerCluster } from './cluster.js';
import { CLI_SESSION_TTL, common, fail, holdSession, nonNegative, onInterrupt, parseLeaseId, readStdin, run, sessionFileOf, sortOptions, UsageError, type Common } from './command.js';
import { deleteJson, flatHeader, goJson, headerJson, kvJson, leaseHex, out, printDelete, printKvs, printPut, printTxn, putJson, rangeJson, txnJson } from './printers.js';
import { parseTxn } from './txn.js';

// ---- the commands ----

/** Adds the client commands to `program` (which the caller parses). */
export function registerClientCommands(program: Command): void {
  common(program.command('put').description('put a key').argument('<key>').argument('<value>'))
    .option('--lease <id>', 'attach the key to this lease (hex id)')
    .option('--prev-kv', 'print the previous key-value')
    .action((key: string, value: string, o: Common & { lease?: string; prevKv?: boolean }) =>
      run(o, async (c, json) => {
        const r = await c.put(key, value, { ...(o.lease !== undefined ? { lease: parseLeaseId(o.lease) } : {}), prevKv: Boolean(o.prevKv) });
        return () => (json ? out(goJson(putJson(r))) : printPut(r));
      }),
    );

  common(program.command('get').description('get a key or a range of keys').argument('<key>').argument('[rangeEnd]'))
    .option('--prefix', 'get keys with this prefix')
    .option('--from-key', 'get keys >= key')
    .option('--rev <n>', 'read at this revision', nonNegative('--rev'))
    .option('--limit <n>', 'at most this many keys', nonNegative('--limit'))
    .option('--keys-only', 'keys only')
    .option('--count-only', 'print only the number of keys')
    .option('--sort-by <target>', 'KEY, VERSION, CREATE, MODIFY or VALUE')
    .option('--order <order>', 'ASCEND or DESCEND')
    .addOption(
      new Option('--consistency <level>', 'l: linearizable (ReadIndex); s: serializable (this member\'s state, may be stale); session: this member\'s state once it has applied everything this session saw (needs --session-file)')
        .choices(['l', 's', 'session'])
        .default('l'),
    )
    .action((key: string, rangeEnd: string | undefined, o: Common & { prefix?: boolean; fromKey?: boolean; rev?: number; limit?: number; keysOnly?: boolean; countOnly?: boolean; sortBy?: string; order?: string; consistency: string }) =>
      run(o, async (c, json) => {
        if (rangeEnd !== undefined && (o.prefix || o.fromKey)) throw new UsageError('too many arguments: a range end cannot be combined with --prefix or --from-key');
        if (o.consistency === 'session' && !sessionFileOf(o)) throw new UsageError('--consistency session needs --session-file (or FLOTILLA_SESSION_FILE): where commands share the revisions they saw');
        const r = await c.get(key, {
          prefix: Boolean(o.prefix),
          fromKey: Boolean(o.fromKey),
          ...(rangeEnd !== undefined ? { rangeEnd } : {}),
          revision: o.rev ?? 0,
          limit: o.limit ?? 0,
          keysOnly: Boolean(o.keysOnly),
          countOnly: Boolean(o.countOnly),
          consistency: o.consistency === 'l' ? 'linearizable' : o.consistency === 's' ? 'serializable' : 'session',
          ...sortOptions(o.sortBy, o.order),
        });
        return () => {
          if (json) out(goJson(rangeJson(r)));
          else if (o.countOnly) out(String(r.count));
          else printKvs(r.kvs, o.keysOnly);
        };
      }),
    );

  common(program.command('del').description('delete a key or a range of keys').argument('<key>').argument('[rangeEnd]'))
    .option('--prefix', 'delete keys with this prefix')
    .option('--from-key', 'delete keys >= key')
    .option('--prev-kv', 'print the deleted key-values')
    .action((key: string, rangeEnd: string | undefined, o: Common & { prefix?: boolean; fromKey?: boolean; prevKv?: boolean }) =>
      run(o, async (c, json) => {
        if (rangeEnd !== undefined && (o.prefix || o.fromKey)) throw new UsageError('too many arguments: a range end cannot be combined with --prefix or --from-key');
        const r = await c.delete(key, { prefix: Boolean(o.prefix), fromKey: Boolean(o.fromKey), prevKv: Boolean(o.prevKv), ...(rangeEnd !== undefined ? { rangeEnd } : {}) });
        return () => (json ? out(goJson(deleteJson(r))) : printDelete(r));
      }),
    );

  common(program.command('txn').description('run a transaction read from stdin (etcdctl format: compares, blank line, success ops, blank line, failure ops)')).action((o: Common) =>
    run(o, async (c, json) => {
      const r = await c.txn(parseTxn(await readStdin()));
      return () => (json ? out(goJson(txnJson(r))) : printTxn(r));
    }),
  );

  common(program.command('watch').description('print the events on a key or range until interrupted').argument('<key>').argument('[rangeEnd]'))
    .option('--prefix', 'watch keys with this prefix')
    .option('--rev <n>', 'start at this revision', nonNegative('--rev'))
    .option('--prev-kv', 'print each event\'s previous key-value')
    .action((key: string, rangeEnd: string | undefined, o: Common & { prefix?: boolean; rev?: number; prevKv?: boolean }) =>
      run(o, async (c, json) => {
        const w = c.watch(key, {
          prefix: Boolean(o.prefix),
          ...(rangeEnd !== undefined ? { rangeEnd } : {}),
          startRevision: o.rev ?? 0,
          prevKv: Boolean(o.prevKv),
        }, (events: WatchEvent[], h: ResponseHeader) => {
          if (json) {
            const evs = events.map((e) => ({ type: e.type === 'DELETE' ? 1 : undefined, kv: kvJson(e.kv), prev_kv: e.prevKv && kvJson(e.prevKv) }));
            out(goJson({ Header: headerJson(h), Events: evs, CompactRevision: 0, Canceled: false, Created: false }));
            return;
          }
          for (const e of events) {
            out(e.type);
            if (e.prevKv) printKvs([e.prevKv]);
            printKvs([e.kv]);
          }
        });
        onInterrupt(() => c.close());
        void w.done.then((e) => {
          if (e) fail(e);
          void c.close();
        });
        return 'hold';
      }),
    );

  registerLease(program);
  registerAuth(program);
  registerLock(program);
  registerElect(program);
  registerCluster(program);
}

function registerLease(program: Command): void {
  const lease = program.command('lease').description('lease commands: grant, revoke, timetolive, list, keep-alive');

  common(lease.command('grant').description('grant a lease').argument('<ttl>', 'seconds', nonNegative('<ttl>'))).action((ttl: number, o: Common) =>
    run(o, async (c, json) => {
      const r = await c.leaseGrant(ttl);
      return () => out(json ? goJson({ ...flatHeader(r.header), ID: r.id, TTL: BigInt(r.ttl), Error: '' }) : `lease ${leaseHex(r.id)} granted with TTL(${r.ttl}s)`);
    }),
  );

  common(lease.command('revoke').description('revoke a lease (deleting its keys)').argument('<id>', 'lease id (hex)')).action((id: string, o: Common) =>
    run(o, async (c, json) => {
      const lid = parseLeaseId(id);
      const h = await c.leaseRevoke(lid);
      return () => out(json ? goJson({ header: headerJson(h) }) : `lease ${leaseHex(lid)} revoked`);
    }),
  );

  common(lease.command('timetolive').description('show a lease\'s remaining TTL').argument('<id>', 'lease id (hex)'))
    .option('--keys', 'also list the attached keys')
    .action((id: string, o: Common & { keys?: boolean }) =>
      run(o, async (c, json) => {
        const r = await c.leaseTimeToLive(parseLeaseId(id), { keys: Boolean(o.keys) });
        return () => {
          if (json) return out(goJson({ ...flatHeader(r.header), id: r.id, ttl: BigInt(r.ttl), 'granted-ttl': BigInt(r.grantedTtl), keys: r.keys.length ? r.keys : null }));
          if (r.ttl === -1) return out(`lease ${leaseHex(r.id)} already expired`);
          const keys = o.keys ? `, attached keys([${r.keys.map((k) => k.toString('utf8')).join(' ')}])` : '';
          out(`lease ${leaseHex(r.id)} granted with TTL(${r.grantedTtl}s), remaining(${r.ttl}s)${keys}`);
        };
      }),
    );

  common(lease.command('list').description('list all leases')).action((o: Common) =>
    run(o, async (c, json) => {
      const r = await c.leaseLeases();
      return () => {
        if (json) return out(goJson({ ...flatHeader(r.header), leases: r.leases.map((id) => ({ id })) }));
        out(`found ${r.leases.length} leases`);
        for (const id of r.leases) out(leaseHex(id));
      };
    }),
  );

  common(lease.command('keep-alive').description('keep a lease alive until interrupted').argument('<id>', 'lease id (hex)'))
    .option('--once', 'renew once and exit')
    .action((id: string, o: Common & { once?: boolean }) =>
      run(o, async (c, json) => {
        const lid = parseLeaseId(id);
        const show = (r: { header: ResponseHeader; id: bigint; ttl: number }): void =>
          out(json ? goJson({ ...flatHeader(r.header), ID: r.id, TTL: BigInt(r.ttl) }) : `lease ${leaseHex(r.id)} keepalived with TTL(${r.ttl})`);
        if (o.once) {
          const r = await c.leaseKeepAliveOnce(lid);
          if (r.ttl <= 0) throw new Error('etcdserver: requested lease not found');
          return () => show(r);
        }
        const ka = c.leaseKeepAlive(lid, { onKeepAlive: show });
        onInterrupt(() => c.close());
        void ka.done.then((e) => {
          if (e && !json) out(`lease ${leaseHex(lid)} expired or revoked.`);
          void c.close();
        });
        return 'hold';
      }),
    );
}

function registerLock(program: Command): void {
  common(program.command('lock').description('acquire a lock; hold it until interrupted, or run a command while holding it').argument('<name>').argument('[command...]'))
    .option('--ttl <s>', 'TTL of the lock\'s session lease', nonNegative('--ttl'), CLI_SESSION_TTL)
    .action((name: string, command: string[], o: Common & { ttl: number }) =>
      run(o, async (c) => {
        const { id } = await c.leaseGrant(o.ttl);
        const endSession = holdSession(c, id);
        const release = async (): Promise<void> => {
          await endSession();
          await c.close();
        };
        onInterrupt(release);
        let lock;
        try {
          lock = await c.lock(name, { lease: id });
        } catch (e) {
          await endSession();
          throw e;
        }
        if (command.length === 0) {
          out(lock.key.toString('utf8'));
          return 'hold';
        }
        const child = spawn(command[0]!, command.slice(1), {
          stdio: 'inherit',
          env: { ...process.env, ETCD_LOCK_KEY: lock.key.toString('utf8'), ETCD_LOCK_REV: lock.revision.toString() },
        });
        child.on('error', (e) => {
          fail(e);
          void release();
        });
        child.on('exit', (code, signal) => {
          process.exitCode = code ?? (signal ? 1 : 0);
          void c.unlock(lock.key).catch(() => undefined).then(release);
        });
        return 'hold';
      }),
    );
}

function registerElect(program: Command): void {
  common(program.command('elect').description('campaign with a proposal and hold leadership until interrupted; without a proposal, print each leader').argument('<name>').argument('[proposal]'))
    .option('-l, --listen', 'observe the election (the default without a proposal)')
    .option('--ttl <s>', 'TTL of the campaign\'s session lease', nonNegative('--ttl'), CLI_SESSION_TTL)
    .action((name: string, proposal: string | undefined, o: Common & { listen?: boolean; ttl: number }) =>
      run(o, async (c) => {
        if (proposal === undefined || o.listen) {
          const ob = c.observe(name, (kv) => printKvs([kv]));
          onInterrupt(() => c.close());
          void ob.done.then(() => c.close());
          return 'hold';
        }
        const { id } = await c.leaseGrant(o.ttl);
        const endSession = holdSession(c, id);
        let leader: Awaited<ReturnType<FlotillaClient['campaign']>> | undefined;
        onInterrupt(async () => {
          if (leader) await c.resign(leader).catch(() => undefined);
          await endSession();
          await c.close();
        });
        try {
          leader = await c.campaign(name, proposal, { lease: id });
        } catch (e) {
          await endSession();
          throw e;
        }
        out(leader.key.toString('utf8'));
        out(proposal);
        return 'hold';
      }),
    );
}
