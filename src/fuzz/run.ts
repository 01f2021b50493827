/**
 * `flotilla fuzz`: runs the chosen surfaces (grpc, gateway, peer against a real 3-member
 * cluster; wal, snapshot in process), `runs` inputs each from `seed`, and reports inputs/s,
 * failures and peak RSS per surface. Stops at the first failure (the report says how to replay
 * it); exit code 1 then.
 */
import { FaultCluster } from '../faults/cluster.js';
import { GATEWAY_ROUTES, GatewaySurface } from './gateway.js';
import { GrpcSurface } from './grpc.js';
import { BATCH_INPUTS_DEFAULT, runSurface, type Surface, type SurfaceResult } from './harness.js';
import { PeerSurface } from './peer.js';
import { allMethods } from './protogen.js';
import { SnapshotSurface, WalSurface } from './storage.js';

export const SURFACES = ['grpc', 'gateway', 'peer', 'wal', 'snapshot'] as const;
export type SurfaceName = (typeof SURFACES)[number];
const NETWORK: readonly SurfaceName[] = ['grpc', 'gateway', 'peer'];
/** Members of the fuzzed cluster. */
export const FUZZ_CLUSTER_MEMBERS = 3;

export interface FuzzOptions {
  readonly surfaces: readonly SurfaceName[];
  readonly runs: number;
  readonly seed: number;
  readonly first?: number;
  readonly batch?: number;
  /** gRPC methods (`etcdserverpb.KV/Put`) not fuzzed, on the grpc and gateway surfaces; `snapshot/image` skips state machine images. */
  readonly exclude?: readonly string[];
  readonly log: (line: string) => void;
}

export interface FuzzResult {
  readonly ok: boolean;
  readonly results: SurfaceResult[];
}

const mb = (n: number) => `${(n / 2 ** 20).toFixed(0)} MB`;

export function formatResult(r: SurfaceResult): string {
  const rss = Object.entries(r.peakRssBytes).map(([k, v]) => `${k}=${mb(v)}`).join(' ');
  return `${r.surface.padEnd(8)} ${String(r.inputs).padStart(9)} inputs in ${r.seconds.toFixed(1).padStart(7)} s = ${(r.inputs / Math.max(r.seconds, 1e-9)).toFixed(0).padStart(6)} inputs/s, failures: ${r.failure ? 1 : 0}, peak RSS: ${rss || 'n/a'}${r.stats ? `\n${' '.repeat(9)}(${r.stats})` : ''}`;
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzResult> {
  const exclude = new Set(o.exclude ?? []);
  const methods = allMethods().map((m) => m.name);
  const unknown = [...exclude].filter((x) => x !== 'snapshot/image' && !Object.keys(GATEWAY_ROUTES).some((p) => x === `/v3/${p}`) && !methods.includes(x.replace(/^(grpc|gateway):/, '')));
  if (unknown.length) throw new Error(`--exclude: no gRPC method ${unknown.join(', ')} (known: ${methods.join(', ')}, a gateway path /v3/..., snapshot/image)`);
  const results: SurfaceResult[] = [];
  let cluster: FaultCluster | null = null;
  try {
    for (const name of o.surfaces) {
      if (NETWORK.includes(name) && !cluster) {
        o.log(`starting ${FUZZ_CLUSTER_MEMBERS} members on loopback`);
        cluster = await FaultCluster.start(FUZZ_CLUSTER_MEMBERS);
      }
      let s: Surface;
      switch (name) {
        case 'grpc':
          s = new GrpcSurface(cluster!, o.seed, exclude);
          o.log(`grpc: ${(s as GrpcSurface).methods.length} methods${exclude.size ? ` (excluded: ${[...exclude].join(', ')})` : ''}`);
          break;
        case 'gateway':
          s = new GatewaySurface(cluster!, o.seed, exclude);
          break;
        case 'peer':
          s = new PeerSurface(cluster!, o.seed);
          break;
        case 'wal':
          s = new WalSurface(o.seed);
          break;
        case 'snapshot':
          s = new SnapshotSurface(o.seed, !exclude.has('snapshot/image'));
          break;
      }
      o.log(`fuzzing ${name}: ${o.runs} inputs from seed ${o.seed}`);
      let r: SurfaceResult;
      try {
        r = await runSurface(s, { seed: o.seed, runs: o.runs, first: o.first ?? 0, batch: o.batch ?? BATCH_INPUTS_DEFAULT, cluster: NETWORK.includes(name) ? cluster : null, log: o.log, replayArgs: exclude.size ? `--exclude ${[...exclude].join(',')}` : '' });
      } finally {
        await s.close();
      }
      results.push(r);
      if (r.failure) {
        o.log(r.failure);
        break;
      }
    }
  } finally {
    await cluster?.stop();
  }
  o.log('');
  for (const r of results) o.log(formatResult(r));
  const ok = results.length === o.surfaces.length && results.every((r) => !r.failure);
  return { ok, results };
}
