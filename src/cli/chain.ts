/**
 * The chain commands: `flotilla chain-node`, `flotilla chain-master`, and the client
 * `flotilla chain put|get|del|status NAME ...`. The control cluster: --control (or
 * FLOTILLA_ENDPOINTS), a comma-separated list of host:port, reached with etcdctl's TLS and auth
 * flags when it has client TLS or auth on (--cacert, --cert, --key, --user, --password, as the
 * client commands: command.ts). TLS on the chain port is another matter: a node's
 * --cert-file/--key-file/--trusted-ca-file, a client's --chain-cacert/--chain-cert/--chain-key.
 * `put --file F`, `cas --file F` and `get --out F` stream a large value from and to a file.
 */
import { createReadStream, readFileSync, renameSync, rmSync, statSync, createWriteStream, type ReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { InvalidArgumentError, type Command } from 'commander';
import type { ControlAccess } from '../chainnode/control.js';
import { credentialFlags, credentialsOf, tlsOf, UsageError, type Common } from './command.js';

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

/** The control cluster's TLS and credentials from etcdctl's flags (or FLOTILLA_CACERT, FLOTILLA_USER, ...). */
function controlAccess(o: Partial<Common>): ControlAccess {
  const tls = tlsOf(o as Common);
  const auth = credentialsOf(o as Common);
  // grpc-js sets the TLS server name to an IP endpoint, which Node (DEP0123) warns about on stderr.
  if (tls) process.noDeprecation = true;
  return { ...(tls ? { tls } : {}), ...(auth ? { auth } : {}) };
}

/** A usage problem in a server command's flags: the message, exit 2. */
function usage(command: string, e: unknown): never {
  console.error(`flotilla ${command}: ${(e as Error).message}`);
  process.exit(2);
}

export function registerChainCommands(program: Command): void {
  credentialFlags(program
    .command('chain-node'))
    .description('run one node of a chain (chain replication; the control cluster is its master\'s medium)')
    .requiredOption('--chain <name>', 'the chain')
    .requiredOption('--name <name>', 'this node\'s name')
    .requiredOption('--data-dir <dir>', 'where its WAL and snapshots live')
    .requiredOption('--listen <host:port>', 'address for peers and clients')
    .option('--advertise <host:port>', 'address others dial (default: --listen)')
    .option('--control <endpoints>', 'the control cluster (default FLOTILLA_ENDPOINTS or 127.0.0.1:2379)')
    .option('--reads <mode>', 'tail or craq', reads, 'tail')
    .option('--lease-ttl <s>', 'TTL of the registration lease', positiveInt('--lease-ttl'), 5)
    .option('--cert-file <file>', 'TLS on the chain port: this node\'s certificate (its CN must be the node\'s --name)')
    .option('--key-file <file>', 'its private key')
    .option('--trusted-ca-file <file>', 'the CA that signed the certificates of the chain\'s nodes and clients (required of every connection)')
    .action(async (o: Partial<Common> & { chain: string; name: string; dataDir: string; listen: string; advertise?: string; control?: string; reads: 'tail' | 'craq'; leaseTtl: number; certFile?: string; keyFile?: string; trustedCaFile?: string }) => {
      const tlsFlags = [o.certFile, o.keyFile, o.trustedCaFile].filter((f) => f !== undefined).length;
      if (tlsFlags !== 0 && tlsFlags !== 3) {
        console.error('flotilla chain-node: TLS needs all of --cert-file, --key-file and --trusted-ca-file');
        process.exit(2);
      }
      const tls = tlsFlags === 3 ? { certFile: o.certFile!, keyFile: o.keyFile!, trustedCaFile: o.trustedCaFile! } : undefined;
      let access: ControlAccess;
      try {
        access = controlAccess(o);
      } catch (e) {
        usage('chain-node', e);
      }
      const { ChainNodeProcess } = await import('../chainnode/node-process.js');
      let node;
      try {
        node = await ChainNodeProcess.start({ chain: o.chain, name: o.name, dataDir: o.dataDir, listen: o.listen, ...(o.advertise ? { advertise: o.advertise } : {}), control: endpoints(o.control), controlAccess: access, reads: o.reads, leaseTtlSec: o.leaseTtl, ...(tls ? { tls } : {}), log: (l) => console.log(l) });
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

  credentialFlags(program
    .command('chain-master'))
    .description('run a chain master (elected: several may run, one acts)')
    .requiredOption('--chain <name>', 'the chain')
    .option('--name <name>', 'this master\'s name in the election', `master-${process.pid}`)
    .option('--control <endpoints>', 'the control cluster (default FLOTILLA_ENDPOINTS or 127.0.0.1:2379)')
    .option('--members-max <n>', 'longest chain', positiveInt('--members-max'), 5)
    .option('--bootstrap-members <n>', 'registered nodes needed for the first configuration', positiveInt('--bootstrap-members'), 1)
    .action(async (o: Partial<Common> & { chain: string; name: string; control?: string; membersMax: number; bootstrapMembers: number }) => {
      let access: ControlAccess;
      try {
        access = controlAccess(o);
      } catch (e) {
        usage('chain-master', e);
      }
      const { ChainMaster } = await import('../chainnode/master-process.js');
      const m = new ChainMaster({ chain: o.chain, name: o.name, control: endpoints(o.control), controlAccess: access, membersMax: o.membersMax, bootstrapMembers: o.bootstrapMembers, log: (l) => console.log(l) });
      m.start();
      const stop = (): void => void m.stop().then(() => process.exit(0));
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      const e = await m.fatal;
      console.error(`fatal: ${e.message}`);
      process.exit(1);
    });

  const chain = program.command('chain').description('a chain\'s client: put, get, del, cas, status');
  const client = async (name: string, o: ClientFlags) => {
    const { ChainClient } = await import('../chainnode/client.js');
    return new ChainClient({ chain: name, control: endpoints(o.control), controlAccess: controlAccess(o), timeoutMs: o.commandTimeout * 1000, ...(o.reads ? { reads: o.reads } : {}), ...chainTls(o) });
  };
  const run = async (name: string, o: ClientFlags, f: (c: Awaited<ReturnType<typeof client>>) => Promise<void>): Promise<void> => {
    let c;
    try {
      c = await client(name, o);
    } catch (e) {
      console.error(`Error: ${(e as Error).message}`);
      process.exitCode = 2;
      return;
    }
    try {
      await f(c);
    } catch (e) {
      console.error(`Error: ${(e as Error).message}`);
      process.exitCode = e instanceof UsageError ? 2 : 1;
    } finally {
      await c.close();
    }
  };
  clientFlags(chain.command('put <chain> <key> [value]'))
    .option('--file <file>', 'the value is this file\'s content, streamed (up to 64 MiB)')
    .action((name: string, key: string, value: string | undefined, o: ClientFlags & { file?: string }) =>
      run(name, o, async (c) => {
        const v = valueOrFile(value, o.file);
        const r = typeof v === 'string' ? await c.put(key, v) : await c.putStream(key, v.open, v.size);
        console.log(`OK (version ${r.version})`);
      }),
    );
  clientFlags(chain.command('get <chain> <key>'))
    .option('--reads <mode>', 'tail or craq', reads)
    .option('--out <file>', 'write the value to this file (streamed; written whole or not at all), print its version and size')
    .action((name: string, key: string, o: ClientFlags & { out?: string }) =>
      run(name, o, async (c) => {
        if (o.out === undefined) {
          const r = await c.get(key);
          if (r.value !== null) console.log(`${key}\n${Buffer.from(r.value).toString('utf8')}`);
          return;
        }
        const r = await c.getStream(key);
        if (r === null) return;
        // Into a temporary file beside it, renamed once whole: a failed read leaves no half value.
        const tmp = `${o.out}.${process.pid}.tmp`;
        try {
          await pipeline(r.value, createWriteStream(tmp));
          renameSync(tmp, o.out);
        } catch (e) {
          rmSync(tmp, { force: true });
          throw e;
        }
        console.log(`${key}: version ${r.version}, ${r.size} bytes written to ${o.out}`);
      }),
    );
  clientFlags(chain.command('del <chain> <key>'))
    .action((name: string, key: string, o: ClientFlags) => run(name, o, async (c) => console.log((await c.delete(key)).deleted ? '1' : '0')));
  clientFlags(chain.command('cas <chain> <key> <version> [value]'))
    .description('set <value> (or --file\'s content) if the key\'s version is <version> (0: absent)')
    .option('--file <file>', 'the value is this file\'s content, streamed (up to 64 MiB)')
    .action((name: string, key: string, version: string, value: string | undefined, o: ClientFlags & { file?: string }) =>
      run(name, o, async (c) => {
        const expected = positiveIntOrZero(version);
        const v = valueOrFile(value, o.file);
        const r = typeof v === 'string' ? await c.cas(key, expected, v) : await c.casStream(key, expected, v.open, v.size);
        console.log(r.swapped ? `OK (version ${r.version})` : `FAILED (version is ${r.version})`);
        if (!r.swapped) process.exitCode = 1;
      }),
    );
  clientFlags(chain.command('status <chain>'))
    .action((name: string, o: ClientFlags) =>
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

interface ClientFlags extends Partial<Common> {
  control?: string;
  commandTimeout: number;
  reads?: 'tail' | 'craq';
  chainCacert?: string;
  chainCert?: string;
  chainKey?: string;
}

/** TLS to the chain's nodes from --chain-cacert/--chain-cert/--chain-key (all or none). */
function chainTls(o: ClientFlags): { tls?: { ca: Buffer; cert: Buffer; key: Buffer } } {
  const files = [o.chainCacert, o.chainCert, o.chainKey];
  const given = files.filter((f) => f !== undefined).length;
  if (given === 0) return {};
  if (given !== 3) throw new Error('TLS to the chain needs all of --chain-cacert, --chain-cert and --chain-key');
  const read = (flag: string, f: string): Buffer => {
    try {
      return readFileSync(f);
    } catch (e) {
      throw new Error(`${flag}: cannot read ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  return { tls: { ca: read('--chain-cacert', o.chainCacert!), cert: read('--chain-cert', o.chainCert!), key: read('--chain-key', o.chainKey!) } };
}

/** The chain client commands' flags: the control cluster (with etcdctl's TLS and auth flags) and TLS to the nodes. */
function clientFlags(c: Command): Command {
  return credentialFlags(c)
    .option('--control <endpoints>', 'the control cluster')
    .option('--command-timeout <s>', 'how long the command may take, retries included', positiveInt('--command-timeout'), 10)
    .option('--chain-cacert <file>', 'TLS to the chain\'s nodes: the CA that signed their certificates')
    .option('--chain-cert <file>', 'this client\'s certificate (the nodes require one)')
    .option('--chain-key <file>', 'its private key');
}

/** A command's value: given on the command line, or a file's content to stream (opened anew for each attempt). */
function valueOrFile(value: string | undefined, file: string | undefined): string | { open: () => ReadStream; size: number } {
  if ((value === undefined) === (file === undefined)) throw new UsageError('give the value or --file, not both');
  if (value !== undefined) return value;
  let size: number;
  try {
    size = statSync(file!).size;
  } catch (e) {
    throw new UsageError(`--file: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return { open: () => createReadStream(file!), size };
}

function positiveIntOrZero(v: string): number {
  if (!/^\d+$/.test(v)) throw new Error(`version must be a non-negative integer, got "${v}"`);
  return Number(v);
}
