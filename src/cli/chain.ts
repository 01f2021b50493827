/**
 * The chain commands: `flotilla chain-node`, `flotilla chain-master`, and the client
 * `flotilla chain put|get|del|status NAME ...`. The control cluster: --control (or
 * FLOTILLA_ENDPOINTS), a comma-separated list of host:port.
 */
import { InvalidArgumentError, type Command } from 'commander';

function endpoints(v: string | undefined): string[] {
  const s = v ?? process.env.FLOTILLA_ENDPOINTS ?? '127.0.0.1:2379';
  return s.split(',').map((x) => x.trim()).filter((x) => x !== '');
}

function reads(v: string): 'tail' | 'craq' {
  if (v !== 'tail' && v !== 'craq') throw new InvalidArgumentError(`--reads must be tail or craq, got "${v}"`);
  return v;
}

function positiveInt(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError(`${name} must be a positive integer, got "${v}"`);
    return Number(v);
  };
}

export function registerChainCommands(program: Command): void {
  program
    .command('chain-node')
    .description('run one node of a chain (chain replication; the control cluster is its master\'s medium)')
    .requiredOption('--chain <name>', 'the chain')
    .requiredOption('--name <name>', 'this node\'s name')
    .requiredOption('--data-dir <dir>', 'where its WAL and snapshots live')
    .requiredOption('--listen <host:port>', 'address for peers and clients')
    .option('--advertise <host:port>', 'address others dial (default: --listen)')
    .option('--control <endpoints>', 'the control cluster (default FLOTILLA_ENDPOINTS or 127.0.0.1:2379)')
    .option('--reads <mode>', 'tail or craq', reads, 'tail')
    .option('--lease-ttl <s>', 'TTL of the registration lease', positiveInt('--lease-ttl'), 5)
    .action(async (o: { chain: string; name: string; dataDir: string; listen: string; advertise?: string; control?: string; reads: 'tail' | 'craq'; leaseTtl: number }) => {
      const { ChainNodeProcess } = await import('../chainnode/node-process.js');
      let node;
      try {
        node = await ChainNodeProcess.start({ chain: o.chain, name: o.name, dataDir: o.dataDir, listen: o.listen, ...(o.advertise ? { advertise: o.advertise } : {}), control: endpoints(o.control), reads: o.reads, leaseTtlSec: o.leaseTtl, log: (l) => console.log(l) });
      } catch (e) {
        console.error(`fatal: cannot start: ${(e as Error).message}`);
        process.exit(2);
      }
      console.log(`chain ${o.chain} node ${o.name} listening on ${node.address}`);
      const stop = (): void => void node.stop().then(() => process.exit(0));
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      const e = await node.fatal;
      console.error(`fatal: ${e.message}`);
      process.exit(1);
    });

  program
    .command('chain-master')
    .description('run a chain master (elected: several may run, one acts)')
    .requiredOption('--chain <name>', 'the chain')
    .option('--name <name>', 'this master\'s name in the election', `master-${process.pid}`)
    .option('--control <endpoints>', 'the control cluster (default FLOTILLA_ENDPOINTS or 127.0.0.1:2379)')
    .option('--members-max <n>', 'longest chain', positiveInt('--members-max'), 5)
    .option('--bootstrap-members <n>', 'registered nodes needed for the first configuration', positiveInt('--bootstrap-members'), 1)
    .action(async (o: { chain: string; name: string; control?: string; membersMax: number; bootstrapMembers: number }) => {
      const { ChainMaster } = await import('../chainnode/master-process.js');
      const m = new ChainMaster({ chain: o.chain, name: o.name, control: endpoints(o.control), membersMax: o.membersMax, bootstrapMembers: o.bootstrapMembers, log: (l) => console.log(l) });
      m.start();
      const stop = (): void => void m.stop().then(() => process.exit(0));
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });

  const chain = program.command('chain').description('a chain\'s client: put, get, del, cas, status');
  const client = async (name: string, o: { control?: string; reads?: 'tail' | 'craq' }) => {
    const { ChainClient } = await import('../chainnode/client.js');
    return new ChainClient({ chain: name, control: endpoints(o.control), ...(o.reads ? { reads: o.reads } : {}) });
  };
  const run = async (name: string, o: { control?: string; reads?: 'tail' | 'craq' }, f: (c: Awaited<ReturnType<typeof client>>) => Promise<void>): Promise<void> => {
    const c = await client(name, o);
    try {
      await f(c);
    } catch (e) {
      console.error(`Error: ${(e as Error).message}`);
      process.exitCode = 1;
    } finally {
      await c.close();
    }
  };
  chain
    .command('put <chain> <key> <value>')
    .option('--control <endpoints>', 'the control cluster')
    .action((name: string, key: string, value: string, o: { control?: string }) => run(name, o, async (c) => console.log(`OK (version ${(await c.put(key, value)).version})`)));
  chain
    .command('get <chain> <key>')
    .option('--control <endpoints>', 'the control cluster')
    .option('--reads <mode>', 'tail or craq', reads)
    .action((name: string, key: string, o: { control?: string; reads?: 'tail' | 'craq' }) =>
      run(name, o, async (c) => {
        const r = await c.get(key);
        if (r.value !== null) console.log(`${key}\n${Buffer.from(r.value).toString('utf8')}`);
      }),
    );
  chain
    .command('del <chain> <key>')
    .option('--control <endpoints>', 'the control cluster')
    .action((name: string, key: string, o: { control?: string }) => run(name, o, async (c) => console.log((await c.delete(key)).deleted ? '1' : '0')));
  chain
    .command('cas <chain> <key> <version> <value>')
    .description('set <value> if the key\'s version is <version> (0: absent)')
    .option('--control <endpoints>', 'the control cluster')
    .action((name: string, key: string, version: string, value: string, o: { control?: string }) =>
      run(name, o, async (c) => {
        const r = await c.cas(key, positiveIntOrZero(version), value);
        console.log(r.swapped ? `OK (version ${r.version})` : `FAILED (version is ${r.version})`);
        if (!r.swapped) process.exitCode = 1;
      }),
    );
  chain
    .command('status <chain>')
    .option('--control <endpoints>', 'the control cluster')
    .action((name: string, o: { control?: string }) =>
      run(name, o, async (c) => {
        const v = await c.status();
        if (!v.config) console.log(`chain ${name}: no configuration yet`);
        else {
          console.log(`chain ${name}: epoch ${v.config.epoch}`);
          v.config.members.forEach((m, i) => console.log(`  ${i === 0 ? 'head' : i === v.config!.members.length - 1 ? 'tail' : 'mid '} ${m} ${v.nodes.get(m)?.address ?? '(not registered)'}`));
          if (v.config.joining) console.log(`  joining ${v.config.joining} ${v.nodes.get(v.config.joining)?.address ?? '(not registered)'}`);
        }
        for (const [n, info] of v.nodes) if (!v.config?.members.includes(n) && v.config?.joining !== n) console.log(`  registered ${n} ${info.address}`);
      }),
    );
}

function positiveIntOrZero(v: string): number {
  if (!/^\d+$/.test(v)) throw new Error(`version must be a non-negative integer, got "${v}"`);
  return Number(v);
}
