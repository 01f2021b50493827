/**
 * Client commands of `flotilla` (put, get, del, watch, lease, lock, elect, member, endpoint),
 * on our TypeScript client, with output modelled on etcdctl's: human by default, `-w json`
 * for JSON (bytes base64, as etcd's JSON).
 */
import { Command, InvalidArgumentError } from 'commander';
import { ClientError, FlotillaClient, type Wire } from '../client/index.js';

const DEFAULT_ENDPOINTS = '127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379';

interface Conn {
  endpoints?: string;
  writeOut?: string;
}

function connOptions(c: Command): Command {
  return c
    .option('--endpoints <list>', `comma-separated host:port of the members (env FLOTILLA_ENDPOINTS; default ${DEFAULT_ENDPOINTS})`)
    .option('-w, --write-out <format>', 'simple or json', 'simple');
}

function client(o: Conn): FlotillaClient {
  const endpoints = (o.endpoints ?? process.env.FLOTILLA_ENDPOINTS ?? DEFAULT_ENDPOINTS).split(',').map((s) => s.trim()).filter(Boolean);
  return new FlotillaClient({ endpoints });
}

const json = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) => {
    if (x && typeof x === 'object' && (x as { type?: string }).type === 'Buffer' && Array.isArray((x as { data?: unknown }).data)) return Buffer.from((x as { data: number[] }).data).toString('base64');
    return typeof x === 'bigint' ? x.toString() : x;
  });
const str = (b: unknown): string => (Buffer.isBuffer(b) ? b.toString() : String(b ?? ''));
const hex = (id: unknown): string => BigInt(String(id)).toString(16);
const nonNeg = (name: string) => (v: string) => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a non-negative integer, got "${v}"`);
  return Number(v);
};
const leaseId = (v: string): bigint => {
  if (!/^[0-9a-fA-F]+$/.test(v)) throw new InvalidArgumentError(`lease id must be hexadecimal (as printed by lease grant), got "${v}"`);
  return BigInt(`0x${v}`);
};

/** Runs a command body: errors print as etcdctl does ("Error: <message>") and exit 1. */
function run(o: Conn, body: (c: FlotillaClient, jsonOut: boolean) => Promise<void | 'keep'>): Promise<void> {
  if (o.writeOut !== 'simple' && o.writeOut !== 'json') {
    console.error(`Error: -w must be simple or json, got "${o.writeOut}"`);
    process.exitCode = 1;
    return Promise.resolve();
  }
  const c = client(o);
  return body(c, o.writeOut === 'json').then(
    (r) => {
      if (r !== 'keep') c.close();
    },
    (e: unknown) => {
      console.error(`Error: ${e instanceof ClientError ? e.details : (e as Error).message}`);
      process.exitCode = 1;
      c.close();
    },
  );
}

function printKvs(kvs: Wire[], o: { keysOnly?: boolean; printValueOnly?: boolean }): void {
  for (const kv of kvs) {
    if (!o.printValueOnly) console.log(str(kv.key));
    if (!o.keysOnly) console.log(str(kv.value));
  }
}

/** Splits a line into words; "double quotes" group words and may contain \" escapes. */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  return out;
}

const COMPARE_TARGETS: Record<string, string> = { value: 'VALUE', mod: 'MOD', create: 'CREATE', version: 'VERSION', lease: 'LEASE' };
const COMPARE_RESULTS: Record<string, string> = { '=': 'EQUAL', '!=': 'NOT_EQUAL', '<': 'LESS', '>': 'GREATER' };

/** etcdctl's txn format -> a wire TxnRequest; throws with the offending line. */
export function parseTxn(text: string): { compare: Wire[]; success: Wire[]; failure: Wire[] } {
  const sections: string[][] = [[], [], []];
  let i = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') {
      if (sections[i]!.length > 0 || i > 0) i++;
      if (i > 2) break;
      continue;
    }
    sections[i]!.push(line);
  }
  const compare = sections[0]!.map((line) => {
    const m = /^(value|mod|create|version|lease)\("((?:[^"\\]|\\.)*)"\)\s*(=|!=|<|>)\s*"((?:[^"\\]|\\.)*)"$/.exec(line);
    if (!m) throw new Error(`bad compare "${line}": expected e.g. value("key") = "v" or mod("key") > "0"`);
    const [, fn, key, op, v] = m as unknown as [string, string, string, string, string];
    const target = COMPARE_TARGETS[fn]!;
    const c: Wire = { key: Buffer.from(key), target, result: COMPARE_RESULTS[op]! };
    if (target === 'VALUE') c.value = Buffer.from(v);
    else {
      if (!/^-?\d+$/.test(v) && !(target === 'LEASE' && /^[0-9a-f]+$/i.test(v))) throw new Error(`bad compare "${line}": "${v}" is not a number`);
      c[target === 'MOD' ? 'mod_revision' : target === 'CREATE' ? 'create_revision' : target === 'LEASE' ? 'lease' : 'version'] = target === 'LEASE' ? BigInt(`0x${v}`).toString() : v;
    }
    return c;
  });
  const op = (line: string): Wire => {
    const [verb, key, arg] = words(line);
    if (verb === 'put' && key !== undefined && arg !== undefined) return { request_put: { key: Buffer.from(key), value: Buffer.from(arg) } };
    if (verb === 'get' && key !== undefined) return { request_range: { key: Buffer.from(key), range_end: arg !== undefined ? Buffer.from(arg) : Buffer.alloc(0) } };
    if ((verb === 'del' || verb === 'delete') && key !== undefined) return { request_delete_range: { key: Buffer.from(key), range_end: arg !== undefined ? Buffer.from(arg) : Buffer.alloc(0) } };
    throw new Error(`bad operation "${line}": expected put <key> <value>, get <key> [end] or del <key> [end]`);
  };
  return { compare, success: sections[1]!.map(op), failure: sections[2]!.map(op) };
}

const SORT_TARGETS: Record<string, string> = { KEY: 'KEY', VERSION: 'VERSION', CREATE: 'CREATE', MODIFY: 'MOD', VALUE: 'VALUE' };

export function registerClientCommands(program: Command): void {
  connOptions(program.command('put').description('put a key (needs a running cluster)').argument('<key>').argument('<value>'))
    .option('--lease <id>', 'attach the key to a lease (hex id)', leaseId)
    .option('--prev-kv', 'print the previous key-value')
    .action((key: string, value: string, o: Conn & { lease?: bigint; prevKv?: boolean }) =>
      run(o, async (c, j) => {
        const r = await c.put(key, value, { ...(o.lease !== undefined ? { lease: o.lease } : {}), prevKv: o.prevKv ?? false });
        if (j) return void console.log(json(r));
        console.log('OK');
        if (o.prevKv && r.prev_kv) printKvs([r.prev_kv as Wire], {});
      }),
    );

  connOptions(program.command('get').description('get a key or a range').argument('<key>').argument('[rangeEnd]'))
    .option('--prefix', 'all keys with this prefix')
    .option('--from-key', 'all keys >= key')
    .option('--rev <n>', 'read at this revision', nonNeg('--rev'))
    .option('--limit <n>', 'at most n keys', nonNeg('--limit'))
    .option('--keys-only', 'keys without values')
    .option('--count-only', 'only the count')
    .option('--print-value-only', 'values without keys')
    .option('--sort-by <target>', 'KEY, VERSION, CREATE, MODIFY or VALUE')
    .option('--order <order>', 'ASCEND or DESCEND')
    .option('--consistency <level>', 'l (linearizable, default) or s (serializable: this member\'s state)', 'l')
    .action((key: string, rangeEnd: string | undefined, o: Conn & { prefix?: boolean; fromKey?: boolean; rev?: number; limit?: number; keysOnly?: boolean; countOnly?: boolean; printValueOnly?: boolean; sortBy?: string; order?: string; consistency: string }) =>
      run(o, async (c, j) => {
        if (o.consistency !== 'l' && o.consistency !== 's') throw new Error(`--consistency must be l or s, got "${o.consistency}"`);
        const target = o.sortBy ? SORT_TARGETS[o.sortBy.toUpperCase()] : undefined;
        if (o.sortBy && !target) throw new Error(`--sort-by must be KEY, VERSION, CREATE, MODIFY or VALUE, got "${o.sortBy}"`);
        const order = o.order?.toUpperCase();
        if (order && order !== 'ASCEND' && order !== 'DESCEND') throw new Error(`--order must be ASCEND or DESCEND, got "${o.order}"`);
        const r = await c.get(key, {
          prefix: o.prefix ?? false,
          fromKey: o.fromKey ?? false,
          ...(rangeEnd !== undefined ? { rangeEnd } : {}),
          revision: o.rev ?? 0,
          limit: o.limit ?? 0,
          keysOnly: o.keysOnly ?? false,
          countOnly: o.countOnly ?? false,
          serializable: o.consistency === 's',
          ...(target ? { sortTarget: target as 'KEY' } : {}),
          ...(order ? { sortOrder: order as 'ASCEND' } : target ? { sortOrder: 'ASCEND' as const } : {}),
        });
        if (j) return void console.log(json(r));
        if (o.countOnly) return void console.log(String(r.count));
        printKvs((r.kvs as Wire[]) ?? [], { keysOnly: o.keysOnly ?? false, printValueOnly: o.printValueOnly ?? false });
      }),
    );

  connOptions(program.command('del').description('delete a key or a range').argument('<key>').argument('[rangeEnd]'))
    .option('--prefix', 'all keys with this prefix')
    .option('--from-key', 'all keys >= key')
    .option('--prev-kv', 'print the deleted key-values')
    .action((key: string, rangeEnd: string | undefined, o: Conn & { prefix?: boolean; fromKey?: boolean; prevKv?: boolean }) =>
      run(o, async (c, j) => {
        const r = await c.delete(key, { prefix: o.prefix ?? false, fromKey: o.fromKey ?? false, prevKv: o.prevKv ?? false, ...(rangeEnd !== undefined ? { rangeEnd } : {}) });
        if (j) return void console.log(json(r));
        console.log(String(r.deleted));
        if (o.prevKv) printKvs((r.prev_kvs as Wire[]) ?? [], {});
      }),
    );

  connOptions(program.command('txn').description("a transaction read from stdin in etcdctl's format: compares, a blank line, success ops, a blank line, failure ops"))
    .action((o: Conn) =>
      run(o, async (c, j) => {
        const text = await new Promise<string>((resolve) => {
          let t = '';
          process.stdin.setEncoding('utf8');
          process.stdin.on('data', (d: string) => (t += d));
          process.stdin.on('end', () => resolve(t));
        });
        const t = parseTxn(text);
        const r = await c.txn(t);
        if (j) return void console.log(json(r));
        console.log(r.succeeded ? 'SUCCESS' : 'FAILURE');
        for (const op of (r.responses as Wire[]) ?? []) {
          console.log('');
          if (op.response_put) console.log('OK');
          else if (op.response_delete_range) console.log(String((op.response_delete_range as Wire).deleted));
          else if (op.response_range) printKvs(((op.response_range as Wire).kvs as Wire[]) ?? [], {});
        }
      }),
    );

  connOptions(program.command('watch').description('print changes to a key or a range until Ctrl-C; resumes on another member if one fails').argument('<key>'))
    .option('--prefix', 'all keys with this prefix')
    .option('--rev <n>', 'start at this revision (history first)', nonNeg('--rev'))
    .option('--prev-kv', 'print the previous key-value of each change')
    .action((key: string, o: Conn & { prefix?: boolean; rev?: number; prevKv?: boolean }) =>
      run(o, async (c, j) => {
        const w = c.watch(
          key,
          { prefix: o.prefix ?? false, startRevision: o.rev ?? 0, prevKv: o.prevKv ?? false },
          (events, revision) => {
            if (j) return void console.log(json({ revision, events }));
            for (const e of events) {
              console.log(e.type);
              if (e.prevKv) printKvs([e.prevKv], {});
              printKvs([e.kv], {});
            }
          },
          (e) => {
            console.error(`watch was canceled (${e.details})`);
            process.exitCode = 1;
            c.close();
          },
        );
        process.once('SIGINT', () => {
          w.cancel();
          c.close();
        });
        return 'keep';
      }),
    );

  const lease = program.command('lease').description('lease grant, revoke, timetolive, list, keep-alive');
  connOptions(lease.command('grant').argument('<ttl>', 'seconds', nonNeg('ttl'))).action((ttl: number, o: Conn) =>
    run(o, async (c, j) => {
      const r = await c.leaseGrant(ttl);
      if (j) return void console.log(json({ ID: r.id, TTL: r.ttl }));
      console.log(`lease ${r.id.toString(16)} granted with TTL(${r.ttl}s)`);
    }),
  );
  connOptions(lease.command('revoke').argument('<id>', 'lease id (hex)', leaseId)).action((id: bigint, o: Conn) =>
    run(o, async (c, j) => {
      const r = await c.leaseRevoke(id);
      console.log(j ? json(r) : `lease ${id.toString(16)} revoked`);
    }),
  );
  connOptions(lease.command('timetolive').argument('<id>', 'lease id (hex)', leaseId))
    .option('--keys', 'list the attached keys')
    .action((id: bigint, o: Conn & { keys?: boolean }) =>
      run(o, async (c, j) => {
        const r = await c.leaseTimeToLive(id, o.keys ?? false);
        if (j) return void console.log(json(r));
        if (Number(r.TTL) < 0) return void console.log(`lease ${id.toString(16)} already expired`);
        const keys = o.keys ? `, attached keys([${((r.keys as Buffer[]) ?? []).map(str).join(' ')}])` : '';
        console.log(`lease ${id.toString(16)} granted with TTL(${r.grantedTTL}s), remaining(${r.TTL}s)${keys}`);
      }),
    );
  connOptions(lease.command('list')).action((o: Conn) =>
    run(o, async (c, j) => {
      const ids = await c.leaseLeases();
      if (j) return void console.log(json({ leases: ids.map((ID) => ({ ID })) }));
      console.log(`found ${ids.length} leases`);
      for (const id of ids) console.log(id.toString(16));
    }),
  );
  connOptions(lease.command('keep-alive').argument('<id>', 'lease id (hex)', leaseId))
    .option('--once', 'one keep-alive, then exit')
    .action((id: bigint, o: Conn & { once?: boolean }) =>
      run(o, async (c) => {
        const ttl = await c.leaseKeepAliveOnce(id);
        if (ttl <= 0) throw new Error(`lease ${id.toString(16)} expired or revoked`);
        console.log(`lease ${id.toString(16)} keepalived with TTL(${ttl})`);
        if (o.once) return;
        const k = c.leaseKeepAlive(id, ttl, () => {
          console.log(`lease ${id.toString(16)} expired or revoked.`);
          c.close();
        });
        process.once('SIGINT', () => {
          k.stop();
          c.close();
        });
        return 'keep';
      }),
    );

  connOptions(program.command('lock').description('take a distributed lock, print its key (and fencing token), hold it until Ctrl-C').argument('<name>'))
    .option('--ttl <s>', 'session TTL: the lock is released this long after this process dies', nonNeg('--ttl'), 60)
    .action((name: string, o: Conn & { ttl: number }) =>
      run(o, async (c) => {
        const l = await c.leaseGrant(o.ttl);
        const keep = c.leaseKeepAlive(l.id, l.ttl);
        const got = await c.lock(name, l.id);
        console.log(str(got.key));
        process.once('SIGINT', () => {
          keep.stop();
          c.leaseRevoke(l.id).finally(() => c.close());
        });
        return 'keep';
      }),
    );

  connOptions(program.command('elect').description('campaign with a proposal and hold leadership until Ctrl-C; with -l, print each leader').argument('<name>').argument('[proposal]'))
    .option('-l, --listen', 'observe the election and print its leaders')
    .option('--ttl <s>', 'session TTL', nonNeg('--ttl'), 60)
    .action((name: string, proposal: string | undefined, o: Conn & { listen?: boolean; ttl: number }) =>
      run(o, async (c) => {
        if (o.listen) {
          const stop = c.observe(name, (kv) => {
            console.log(str(kv.key));
            console.log(str(kv.value));
          });
          process.once('SIGINT', () => {
            stop();
            c.close();
          });
          return 'keep';
        }
        if (proposal === undefined) throw new Error('elect needs a proposal (or -l to listen)');
        const l = await c.leaseGrant(o.ttl);
        const keep = c.leaseKeepAlive(l.id, l.ttl);
        const leader = await c.campaign(name, proposal, l.id);
        console.log(str(leader.key));
        console.log(proposal);
        process.once('SIGINT', () => {
          keep.stop();
          c.resign(leader)
            .catch(() => undefined)
            .finally(() => c.leaseRevoke(l.id).finally(() => c.close()));
        });
        return 'keep';
      }),
    );

  const member = program.command('member').description('cluster membership');
  connOptions(member.command('list')).action((o: Conn) =>
    run(o, async (c, j) => {
      const ms = await c.memberList();
      if (j) return void console.log(json({ members: ms }));
      for (const m of ms) console.log(`${hex(m.ID)}, ${m.name ? 'started' : 'unstarted'}, ${String(m.name)}, ${(m.peerURLs as string[]).join(',')}, ${(m.clientURLs as string[]).join(',')}, ${String(m.isLearner)}`);
    }),
  );

  const endpoint = program.command('endpoint').description('status and health of members');
  const targets = async (c: FlotillaClient, o: Conn & { cluster?: boolean }): Promise<string[]> => {
    if (o.cluster) return (await c.memberList()).flatMap((m) => m.clientURLs as string[]);
    return (o.endpoints ?? process.env.FLOTILLA_ENDPOINTS ?? DEFAULT_ENDPOINTS).split(',').map((s) => s.trim());
  };
  connOptions(endpoint.command('status'))
    .option('--cluster', 'every member of the cluster (from member list)')
    .action((o: Conn & { cluster?: boolean }) =>
      run(o, async (c, j) => {
        for (const ep of await targets(c, o)) {
          try {
            const s = await c.status(ep);
            const h = s.header as Wire;
            if (j) console.log(json({ Endpoint: ep, Status: s }));
            else console.log(`${ep}, ${hex(h.member_id)}, ${String(s.version)}, ${String(s.dbSize)} B, ${String(s.leader === h.member_id)}, ${String(s.isLearner)}, ${String(s.raftTerm)}, ${String(s.raftIndex)}, ${String(s.raftAppliedIndex)}, ${((s.errors as string[]) ?? []).join(',')}`);
          } catch (e) {
            console.error(`Failed to get the status of endpoint ${ep} (${(e as Error).message})`);
            process.exitCode = 1;
          }
        }
      }),
    );
  connOptions(endpoint.command('health'))
    .option('--cluster', 'every member of the cluster (from member list)')
    .action((o: Conn & { cluster?: boolean }) =>
      run(o, async (c, j) => {
        for (const ep of await targets(c, o)) {
          const h = await c.health(ep);
          if (j) console.log(json({ endpoint: ep, health: h.healthy, took: `${h.tookMs.toFixed(1)}ms`, ...(h.error ? { error: h.error } : {}) }));
          else if (h.healthy) console.log(`${ep} is healthy: successfully committed proposal: took = ${h.tookMs.toFixed(3)}ms`);
          else console.error(`${ep} is unhealthy: failed to commit proposal: ${h.error}`);
          if (!h.healthy) process.exitCode = 1;
        }
      }),
    );
}
