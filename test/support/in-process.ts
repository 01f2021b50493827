/**
 * Test fixture: a cluster of server members in this process. Each member is the server of
 * `flotilla serve` (startServer: EtcdMember, the gRPC services and the JSON gateway), but its
 * peers are reached over one MemoryNetwork, its WAL and snapshots live on a MemFs and its
 * key-value store in a MemoryBackend: no child process, no peer port, no fsync. A cluster is
 * up in about one election timeout, and a test for a new RPC needs nothing else.
 *
 * The client side stays real: each member serves its client URL on loopback (a free port), so
 * the same clients as against `startCluster` (grpc-js, fetch, FlotillaClient, the etcd3
 * package) talk to it unchanged. (grpc-js has no in-process channel; a port on 127.0.0.1 costs
 * a millisecond and keeps the tests exercising the real gRPC and HTTP edge.)
 *
 * What needs real processes stays on support/cluster.ts: SIGKILL and restart (crash
 * recovery needs the disk), joining members (the join query goes over TCP), peer TLS, the
 * CLI, etcdctl, and anything that reads a member's log output or exit code.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryBackend } from '../../src/kv/backend.js';
import { resolveConfig, type RawConfig } from '../../src/server/config.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { MemFs } from '../../src/storage/fs.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import type { Logger } from '../../src/raft/config.js';
import { freePort } from '../../src/lib/proc.js';
import { waitHealthy } from './cluster.js';

/** WAL segments of 1 MiB (not 64): a MemFs copies a file on every sync (a larger entry still fits: the segment grows). */
const WAL_SEGMENT_BYTES = 1 << 20;
/** Log text kept per member for failure messages (the newest part). */
const OUTPUT_KEPT_CHARS = 20_000;

export interface InProcessMember {
  readonly name: string;
  readonly clientUrl: string;
  /** Named in the configuration (the member's identity), never listened on. */
  readonly peerUrl: string;
  readonly dataDir: string;
  /** The member's log lines (info and above), for failure messages. */
  output: string;
  server: RunningServer;
}

export interface InProcessCluster {
  readonly members: InProcessMember[];
  /** host:port of each member's client port. */
  readonly endpoints: string[];
  /** The members' peer network: `isolate` and `heal` cut and restore links. */
  readonly network: MemoryNetwork;
  readonly dir: string;
  readonly token: string;
  stop(): Promise<void>;
}

export interface InProcessOptions {
  readonly size?: number;
  /** Settings for every member, as `flotilla serve`'s flags (camelCase, e.g. { maxTxnOps: 8 }). */
  readonly settings?: RawConfig;
  /** ms to wait for every member's /health (default 20 s). */
  readonly readyTimeoutMs?: number;
}

function memberLogger(m: { output: string }, name: string): Logger & { error(msg: string): void } {
  const line = (level: string) => (msg: string) => {
    m.output = `${m.output}${level} ${name}: ${msg}\n`.slice(-OUTPUT_KEPT_CHARS);
  };
  return { debug: () => undefined, info: line('info'), warn: line('warn'), error: line('error') };
}

/** Starts `size` (default 3) members in this process and waits until each answers /health. */
export async function startInProcessCluster(o: InProcessOptions = {}): Promise<InProcessCluster> {
  const size = o.size ?? 3;
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-inproc-'));
  const token = `inproc-${process.pid}-${Date.now()}`;
  const network = new MemoryNetwork();
  const names = Array.from({ length: size }, (_, i) => `m${i + 1}`);
  // Peer URLs only name the members (their ids derive from them): nothing listens there.
  const peerUrl = (i: number) => `http://127.0.0.1:${23800 + i}`;
  const initialCluster = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
  const members: InProcessMember[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(members.map((m) => m.server.close().catch(() => undefined)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const started = await Promise.all(
      names.map(async (name, i) => {
        const clientUrl = `http://127.0.0.1:${await freePort()}`;
        const holder = { output: '' };
        const config = resolveConfig({
          ...o.settings,
          name,
          dataDir: join(dir, name),
          listenClientUrls: clientUrl,
          advertiseClientUrls: clientUrl,
          listenPeerUrls: peerUrl(i),
          initialAdvertisePeerUrls: peerUrl(i),
          initialCluster,
          initialClusterState: 'new',
          initialClusterToken: token,
        });
        const server = await startServer(config, memberLogger(holder, name), {
          env: { peerLink: (id) => network.link(id), fs: new MemFs(), walSegmentBytes: WAL_SEGMENT_BYTES, openBackend: () => new MemoryBackend() },
        });
        const m: InProcessMember = {
          name,
          clientUrl,
          peerUrl: peerUrl(i),
          dataDir: config.dataDir,
          get output() {
            return holder.output;
          },
          set output(v: string) {
            holder.output = v;
          },
          server,
        };
        members.push(m);
        return m;
      }),
    );
    members.sort((a, b) => names.indexOf(a.name) - names.indexOf(b.name));
    const dump = () => members.map((m) => `--- ${m.name}\n${m.output.slice(-3000)}`).join('\n');
    await waitHealthy(started.map((m) => m.clientUrl), o.readyTimeoutMs ?? 20_000, dump);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    members,
    get endpoints() {
      return members.map((m) => m.clientUrl.replace(/^https?:\/\//, ''));
    },
    network,
    dir,
    token,
    stop,
  };
}
