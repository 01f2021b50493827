/**
 * `flotilla snapshot status|restore`: etcdctl's snapshot commands for files in etcd's format
 * (a bbolt file in etcd 3.4's schema and its SHA-256: what `etcdctl snapshot save` writes,
 * from Flotilla or from etcd). `restore` builds a new member's data directory: the member's
 * Raft storage holding one snapshot (index 1, term 1) of the restored store, with the new
 * cluster's members (from --initial-cluster) as its voters, as etcdctl restore does for etcd.
 * Every member of the new cluster is restored from the same file, then started with the same
 * --initial-cluster and --initial-cluster-token.
 */
import type { Command } from 'commander';

const WRITE_OUT = ['simple', 'json', 'table'] as const;

export function registerSnapshot(program: Command): void {
  const snap = program.command('snapshot').description("etcd snapshot files (etcdctl snapshot save writes them, from Flotilla or etcd 3.4): status and restore, with etcdctl's flags");

  snap
    .command('status')
    .description('hash, revision, total keys and size of a snapshot file (as etcdctl snapshot status)')
    .argument('<file>', 'snapshot file')
    .option('-w, --write-out <format>', 'simple, json or table', 'simple')
    .action(async (file: string, o: { writeOut: string }) => {
      if (!(WRITE_OUT as readonly string[]).includes(o.writeOut)) {
        console.error(`Error: unknown output format ${JSON.stringify(o.writeOut)} (simple, json or table)`);
        process.exitCode = 2; // a bad flag value, as every command's
        return;
      }
      const { printStatus } = await import('./snapshot-restore.js');
      printStatus(file, o.writeOut as (typeof WRITE_OUT)[number]);
    });

  snap
    .command('restore')
    .description("build a new member's data directory from a snapshot file (from Flotilla or etcd 3.4); restore every member of the new cluster from the same file")
    .argument('<file>', 'snapshot file')
    .option('--name <name>', 'human-readable name for this member', 'default')
    .option('--initial-cluster <list>', 'the new cluster: name=peerURL,...', 'default=http://localhost:2380')
    .option('--initial-cluster-token <token>', "the new cluster's token", 'etcd-cluster')
    .option('--initial-advertise-peer-urls <urls>', "this member's peer URLs", 'http://localhost:2380')
    .option('--data-dir <dir>', 'the data directory to create (must not exist; default <name>.etcd)')
    .option('--skip-hash-check', 'accept a file without (or with a wrong) trailing SHA-256, e.g. a backend copied from a data dir')
    .action(async (file: string, o: { name: string; initialCluster: string; initialClusterToken: string; initialAdvertisePeerUrls: string; dataDir?: string; skipHashCheck?: boolean }) => {
      const { fail, restoreSnapshot } = await import('./snapshot-restore.js');
      try {
        const r = await restoreSnapshot(file, o);
        console.log(`restored ${file} into ${r.dataDir}: member ${o.name} (${r.memberId.toString(16)}) of cluster ${r.clusterId.toString(16)}, revision ${r.revision}, ${r.keys} keys, ${r.leases} leases, hash ${r.hash}`);
      } catch (e) {
        fail(e);
      }
    });
}
