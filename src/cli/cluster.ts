/**
 * etcdctl's cluster commands: member add|remove|update|promote|list (member_command.go) and
 * endpoint status|health (ep_command.go), with etcdctl 3.4's output.
 */
import type { Command } from 'commander';
import type { FlotillaClient, MemberListResult } from '../client/index.js';
import { common, fail, run, UsageError, type Common } from './command.js';
import { goDuration, goJson, goTable, headerJson, humanBytes, oe, out } from './printers.js';

export function registerCluster(program: Command): void {
  const member = program.command('member').description('membership commands: add, remove, update, promote, list');
  // etcdctl's member id argument: hex.
  const memberIdArg = (s: string): bigint => {
    if (!/^[0-9a-fA-F]{1,16}$/.test(s)) throw new UsageError(`bad member ID arg (strconv.ParseUint: parsing ${JSON.stringify(s)}: invalid syntax), expecting ID in Hex`);
    return BigInt(`0x${s}`);
  };
  const hex16 = (id: bigint): string => id.toString(16).padStart(16, ' ');
  const listJson = (r: MemberListResult): object => ({
    header: headerJson(r.header),
    members: r.members.map((m) => ({ ID: m.id, name: oe(m.name), peerURLs: oe(m.peerURLs), clientURLs: oe(m.clientURLs), isLearner: oe(m.isLearner) })),
  });
  const peerUrlList = (s: string | undefined, what: string): string[] => {
    const list = (s ?? '').split(',').map((x) => x.trim()).filter(Boolean);
    if (list.length === 0) throw new UsageError(what);
    return list;
  };

  common(member.command('add').argument('<name>', 'the new member\'s name').description('add a member (then start it with the settings printed)'))
    .option('--peer-urls <urls>', 'comma-separated peer URLs of the new member')
    .option('--learner', 'add it as a learner (a non-voting member that can be promoted once it has caught up)')
    .action((name: string, o: Common & { peerUrls?: string; learner?: boolean }) =>
      run(o, async (c, json) => {
        const urls = peerUrlList(o.peerUrls, 'member peer urls not provided');
        const r = await c.memberAdd(urls, { isLearner: o.learner === true });
        return () => {
          if (json) return out(goJson({ ...listJson(r), member: { ID: r.member.id, peerURLs: oe(r.member.peerURLs), isLearner: oe(r.member.isLearner) } }));
          // etcdctl's words and the settings the new member needs.
          out(`Member ${hex16(r.member.id)} added to cluster ${hex16(r.header.clusterId)}`);
          const conf = r.members.flatMap((m) => m.peerURLs.map((u) => `${m.id === r.member.id ? name : m.name}=${u}`));
          out('');
          out(`ETCD_NAME=${JSON.stringify(name)}`);
          out(`ETCD_INITIAL_CLUSTER=${JSON.stringify(conf.join(','))}`);
          out(`ETCD_INITIAL_ADVERTISE_PEER_URLS=${JSON.stringify(urls.join(','))}`);
          out('ETCD_INITIAL_CLUSTER_STATE="existing"');
        };
      }),
    );
  common(member.command('remove').argument('<memberID>', 'the member\'s id (hex)').description('remove a member')).action((id: string, o: Common) =>
    run(o, async (c, json) => {
      const r = await c.memberRemove(memberIdArg(id));
      return () => (json ? out(goJson(listJson(r))) : out(`Member ${hex16(BigInt(`0x${id}`))} removed from cluster ${hex16(r.header.clusterId)}`));
    }),
  );
  common(member.command('update').argument('<memberID>', 'the member\'s id (hex)').description('change a member\'s peer URLs'))
    .option('--peer-urls <urls>', 'comma-separated new peer URLs')
    .action((id: string, o: Common & { peerUrls?: string }) =>
      run(o, async (c, json) => {
        const r = await c.memberUpdate(memberIdArg(id), peerUrlList(o.peerUrls, 'member peer urls not provided'));
        return () => (json ? out(goJson(listJson(r))) : out(`Member ${hex16(BigInt(`0x${id}`))} updated in cluster ${hex16(r.header.clusterId)}`));
      }),
    );
  common(member.command('promote').argument('<memberID>', 'the learner\'s id (hex)').description('make a learner a voting member')).action((id: string, o: Common) =>
    run(o, async (c, json) => {
      const r = await c.memberPromote(memberIdArg(id));
      return () => (json ? out(goJson(listJson(r))) : out(`Member ${hex16(BigInt(`0x${id}`))} promoted in cluster ${hex16(r.header.clusterId)}`));
    }),
  );
  common(member.command('list').description('list the cluster\'s members'), ['simple', 'json', 'table']).action((o: Common) =>
    run(o, async (c, json) => {
      const r = await c.memberList();
      return () => {
        if (json) return out(goJson(listJson(r)));
        const rows = r.members.map((m) => [m.id.toString(16), m.name ? 'started' : 'unstarted', m.name, m.peerURLs.join(','), m.clientURLs.join(','), String(m.isLearner)]);
        if (o.writeOut === 'table') return out(goTable(['ID', 'Status', 'Name', 'Peer Addrs', 'Client Addrs', 'Is Learner'], rows));
        for (const row of rows) out(row.join(', '));
      };
    }),
  );

  const endpoint = program.command('endpoint').description('endpoint commands: status, health');
  const targets = async (c: FlotillaClient, cluster: boolean | undefined): Promise<string[]> =>
    cluster ? (await c.memberList()).members.flatMap((m) => m.clientURLs) : c.endpoints;

  common(endpoint.command('status').description('status of each endpoint'), ['simple', 'json', 'table'])
    .option('--cluster', 'all members\' client URLs (from member list) instead of --endpoints')
    .action((o: Common & { cluster?: boolean }) =>
      run(o, async (c, json) => {
        const eps = await targets(c, o.cluster);
        const all = await Promise.all(eps.map(async (ep) => ({ ep, r: await c.status(ep) })));
        return () => {
          if (json) {
            const st = all.map(({ ep, r }) => ({
              Endpoint: ep,
              Status: {
                header: headerJson(r.header), version: oe(r.version), dbSize: oe(r.dbSize), leader: oe(r.leader), raftIndex: oe(r.raftIndex), raftTerm: oe(r.raftTerm), raftAppliedIndex: oe(r.raftAppliedIndex), errors: oe(r.errors), dbSizeInUse: oe(r.dbSizeInUse), isLearner: oe(r.isLearner),
                // Flotilla's disk self-diagnosis (absent from etcd's answers): both, or neither.
                ...(r.fdatasyncP99Ms > 0 ? { fdatasyncP99Ms: r.fdatasyncP99Ms, slowFdatasyncs: r.slowFdatasyncs } : {}),
              },
            }));
            return out(goJson(st));
          }
          if (o.writeOut === 'table') {
            const head = ['endpoint', 'ID', 'version', 'db size', 'is leader', 'is learner', 'raft term', 'raft index', 'raft applied index', 'errors'];
            return out(goTable(head, all.map(({ ep, r }) => [ep, r.header.memberId.toString(16), r.version, humanBytes(r.dbSize), String(r.leader === r.header.memberId), String(r.isLearner), String(r.raftTerm), String(r.raftIndex), String(r.raftAppliedIndex), r.errors.join(', ')])));
          }
          for (const { ep, r } of all) {
            out(`${ep}, ${r.header.memberId.toString(16)}, ${r.version}, ${humanBytes(r.dbSize)}, ${r.leader === r.header.memberId}, ${r.isLearner}, ${r.raftTerm}, ${r.raftIndex}, ${r.raftAppliedIndex}, ${r.errors.join(', ')}`);
          }
        };
      }),
    );

  common(endpoint.command('health').description('whether each endpoint serves a linearizable read'), ['simple', 'json', 'table'])
    .option('--cluster', 'all members\' client URLs (from member list) instead of --endpoints')
    .action((o: Common & { cluster?: boolean }) =>
      run(o, async (c, json) => {
        const eps = await targets(c, o.cluster);
        const all = await Promise.all(eps.map((ep) => c.health(ep)));
        return () => {
          if (o.writeOut === 'table') out(goTable(['endpoint', 'health', 'took', 'error'], all.map((h, i) => [eps[i]!, String(h.health), goDuration(h.tookMs), h.error ?? ''])));
          all.forEach((h, i) => {
            if (json || o.writeOut === 'table') return;
            if (h.health) out(`${eps[i]} is healthy: successfully committed proposal: took = ${goDuration(h.tookMs)}`);
            else process.stderr.write(`${eps[i]} is unhealthy: failed to commit proposal: ${h.error}\n`);
          });
          if (json) out(goJson(all.map((h, i) => ({ endpoint: eps[i], health: h.health, took: goDuration(h.tookMs), error: h.error }))));
          if (all.some((h) => !h.health)) fail(new Error('unhealthy cluster'));
        };
      }),
    );
}
