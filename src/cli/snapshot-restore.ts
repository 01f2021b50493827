/**
 * What `flotilla snapshot status|restore` do (snapshot.ts registers the commands and loads this
 * module only when one of them runs).
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { BoltFormatError } from '../kv/bbolt.js';
import { join } from 'node:path';
import type { LmdbBackend } from '../kv/backend-lmdb.js';
import { EtcdSnapshotError, etcdSnapshotSource, formatStatus, SnapshotFileError, snapshotStatus, withSnapshotFile } from '../kv/etcd-snapshot.js';
import { MvccStore } from '../kv/mvcc.js';
import { KvStateMachine, SnapshotImageError } from '../kv/state-machine.js';
import { clusterIdOf, ConfigError, parseInitialCluster } from '../server/config.js';
import { DiskStorage } from '../storage/storage.js';

/** The Raft position of a restored member's snapshot: the log starts after it. */
export const RESTORED_SNAPSHOT_INDEX = 1;
export const RESTORED_SNAPSHOT_TERM = 1;

/** Errors a user can act on: printed as etcdctl prints them, exit 1. */
const userError = (e: unknown): boolean => e instanceof BoltFormatError || e instanceof EtcdSnapshotError || e instanceof SnapshotFileError || e instanceof SnapshotImageError || e instanceof ConfigError || e instanceof RestoreError;

class RestoreError extends Error {}

export function fail(e: unknown): void {
  // What the file or the flags got wrong is the whole message; anything else (a system
  // error writing the data dir, a bug) also gets its stack.
  console.error(`Error: ${e instanceof Error ? e.message : String(e)}`);
  if (!userError(e) && e instanceof Error && e.stack) console.error(e.stack);
  process.exitCode = 1;
}

export interface RestoreOptions {
  readonly name: string;
  readonly initialCluster: string;
  readonly initialClusterToken: string;
  readonly initialAdvertisePeerUrls: string;
  readonly dataDir?: string;
  readonly skipHashCheck?: boolean;
}

export interface RestoreResult {
  readonly dataDir: string;
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly revision: number;
  readonly keys: number;
  readonly leases: number;
  readonly hash: number;
}

/** Builds `dataDir` for member `name` of a new cluster from a snapshot file. */
export async function restoreSnapshot(file: string, o: RestoreOptions): Promise<RestoreResult> {
  const token = o.initialClusterToken;
  const members = parseInitialCluster(o.initialCluster, token);
  const self = members.find((m) => m.name === o.name);
  if (!self) throw new RestoreError(`--initial-cluster has no member named ${JSON.stringify(o.name)}`);
  const advertised = parseInitialCluster(o.initialAdvertisePeerUrls.split(',').map((u) => `${o.name}=${u.trim()}`).join(','), token)[0]!.peerUrls;
  if ([...advertised].sort().join(',') !== [...self.peerUrls].sort().join(',')) {
    throw new RestoreError(`--initial-cluster has ${o.name}=${self.peerUrls.join(',')} but missing from --initial-advertise-peer-urls=${advertised.join(',')}`);
  }
  const dataDir = o.dataDir ?? `${o.name}.etcd`;
  if (existsSync(dataDir)) throw new RestoreError(`data-dir ${JSON.stringify(dataDir)} exists`);

  // The store is written straight into the new member's backend as the file is read
  // (MvccStore.importRevisions: in committed batches, each revision checked as it comes), then
  // opened as a store streamed from outside is (every record verified against the others);
  // the state machine records the new cluster's member table (from --initial-cluster) and the
  // applied index beside it. The Raft snapshot is then only the marker that the backend holds
  // the state at RESTORED_SNAPSHOT_INDEX, as a member's own snapshot is (persistTo). Nothing
  // of the store is held in memory. A refused file leaves no data dir.
  const voters = members.map((m) => m.raftId);
  const conf = { voters, votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
  /** The new member's backend once opened (abandoned, with the data dir, if the restore fails). */
  const opened: { backend?: LmdbBackend } = {};
  // Loaded here: `snapshot status`, which shares this module, needs no LMDB.
  const { LmdbBackend } = await import('../kv/backend-lmdb.js');
  try {
    const imported = withSnapshotFile(file, { skipHashCheck: o.skipHashCheck === true }, (r) => {
      const { source } = etcdSnapshotSource(r);
      // Commits are the import's own (IMPORT_BATCH_OPS), none by time or count.
      opened.backend = LmdbBackend.open(join(dataDir, 'member', 'db'), { batchIntervalMs: 0, batchOpsMax: Number.MAX_SAFE_INTEGER });
      return { summary: MvccStore.importRevisions(opened.backend, source), backend: opened.backend };
    });
    const backend = imported.backend;
    const sm = new KvStateMachine({ bootstrapMembers: members, streamedStore: true }, backend);
    const image = sm.persistImported(RESTORED_SNAPSHOT_INDEX);
    const result: RestoreResult = {
      dataDir,
      memberId: self.id,
      clusterId: clusterIdOf(members.map((m) => m.id)),
      revision: sm.store.revision,
      keys: sm.store.keyCount,
      leases: imported.summary.leases,
      hash: sm.store.hashKv(0).hash,
    };
    delete opened.backend;
    await backend.close();
    const storage = await DiskStorage.open(dataDir, conf);
    try {
      await storage.saveSnapshot({ meta: { index: RESTORED_SNAPSHOT_INDEX, term: RESTORED_SNAPSHOT_TERM, confState: conf }, data: image });
      await storage.save({ hardState: { term: RESTORED_SNAPSHOT_TERM, vote: 0, commit: RESTORED_SNAPSHOT_INDEX }, entries: [] }, true);
    } finally {
      await storage.close();
    }
    return result;
  } catch (e) {
    await opened.backend?.abandon().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
    if (e instanceof SnapshotImageError) throw new EtcdSnapshotError(`snapshot file holds no key space Flotilla can restore: ${e.message}`);
    throw e;
  }
}


/** `snapshot status`: the file's hash, revision, keys and size as etcdctl prints them. */
export function printStatus(file: string, writeOut: 'simple' | 'json' | 'table'): void {
  try {
    // etcdctl status reads the database whatever its trailing hash (it does not check it).
    const s = withSnapshotFile(file, { skipHashCheck: true }, (r) => snapshotStatus(r));
    console.log(formatStatus(s, writeOut));
  } catch (e) {
    fail(e);
  }
}
