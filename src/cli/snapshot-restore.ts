/**
 * What `flotilla snapshot status|restore` do (snapshot.ts registers the commands and loads this
 * module only when one of them runs).
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { BoltFormatError } from '../kv/bbolt.js';
import { EtcdSnapshotError, formatStatus, importEtcdSnapshot, SnapshotFileError, snapshotStatus, withSnapshotFile } from '../kv/etcd-snapshot.js';
import { encodeValue } from '../kv/commands.js';
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

  const imported = withSnapshotFile(file, { skipHashCheck: o.skipHashCheck === true }, (r) => importEtcdSnapshot(r));
  // Checked whole by the state machine (MvccStore.restore's invariants) before anything is
  // written; its own image of the result is what the member restores at start, with the new
  // cluster's member table (from --initial-cluster) in it.
  const sm = new KvStateMachine({ bootstrapMembers: members });
  try {
    sm.restore(encodeValue({ v: 1, store: imported.storeImage, members: [] }), RESTORED_SNAPSHOT_INDEX);
  } catch (e) {
    if (e instanceof SnapshotImageError) throw new EtcdSnapshotError(`snapshot file holds no key space Flotilla can restore: ${e.message}`);
    throw e;
  }
  const image = sm.snapshot();
  const voters = members.map((m) => m.raftId);
  const conf = { voters, votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
  try {
    const storage = await DiskStorage.open(dataDir, conf);
    try {
      await storage.saveSnapshot({ meta: { index: RESTORED_SNAPSHOT_INDEX, term: RESTORED_SNAPSHOT_TERM, confState: conf }, data: image });
      await storage.save({ hardState: { term: RESTORED_SNAPSHOT_TERM, vote: 0, commit: RESTORED_SNAPSHOT_INDEX }, entries: [] }, true);
    } finally {
      await storage.close();
    }
  } catch (e) {
    await rm(dataDir, { recursive: true, force: true });
    throw e;
  }
  return {
    dataDir,
    memberId: self.id,
    clusterId: clusterIdOf(members.map((m) => m.id)),
    revision: sm.store.revision,
    keys: sm.store.keyCount,
    leases: sm.store.leaseIds().length,
    hash: sm.store.hashKv(0).hash,
  };
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
