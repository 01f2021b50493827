import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeMemberChange, encodeMemberChange, MemberTable, MEMBER_PEER_URLS_MAX, newMemberId, normalisePeerUrls, RAFT_ID_MAX, type MemberChange } from './membership.js';
import { KvStateMachine, SnapshotImageError } from './state-machine.js';

const boot = [
  { raftId: 1, id: 11n, peerUrls: ['http://127.0.0.1:2380'] },
  { raftId: 2, id: 22n, peerUrls: ['http://127.0.0.1:22380'] },
];
const add: MemberChange = { op: 'add', raftId: 3, id: 0xfedcba9876543210n, peerUrls: ['http://127.0.0.1:32380'], isLearner: true };

describe('member table', () => {
  it('member ids as etcd computes them for a runtime member: SHA-1 of the sorted URLs and the Unix seconds', () => {
    const a = newMemberId(['http://b:2', 'http://a:1'], 1_700_000_000.9);
    expect(a).toBe(newMemberId(['http://a:1', 'http://b:2'], 1_700_000_000));
    expect(a).not.toBe(newMemberId(['http://a:1', 'http://b:2'], 1_700_000_001));
  });

  it('peer URLs: scheme://host:port, http or https, bounded in number', () => {
    expect(normalisePeerUrls(['http://127.0.0.1:2380/'])).toEqual(['http://127.0.0.1:2380']);
    for (const bad of [[], ['ftp://h:1'], ['http://h'], ['http://h:1/path'], ['not a url'], [7], Array(MEMBER_PEER_URLS_MAX + 1).fill('http://h:1')]) {
      expect(normalisePeerUrls(bad as unknown[]), JSON.stringify(bad)).toBeNull();
    }
  });

  it('changes round-trip through a conf change context; any other string decodes to null, never a throw', () => {
    const changes: MemberChange[] = [add, { op: 'remove', raftId: 2, id: 22n }, { op: 'update', raftId: 1, id: 11n, peerUrls: ['https://h:1'] }, { op: 'promote', raftId: 3, id: add.id }];
    for (const c of changes) expect(decodeMemberChange(encodeMemberChange(c))).toEqual(c);
    fc.assert(fc.property(fc.string(), (s) => void decodeMemberChange(s)));
    fc.assert(fc.property(fc.json(), (s) => void decodeMemberChange(s)));
    expect(decodeMemberChange(JSON.stringify({ ...JSON.parse(encodeMemberChange(add)), raftId: RAFT_ID_MAX + 1 }))).toBeNull();
    expect(decodeMemberChange(JSON.stringify({ ...JSON.parse(encodeMemberChange(add)), id: '18446744073709551616' }))).toBeNull();
    expect(decodeMemberChange(JSON.stringify({ ...JSON.parse(encodeMemberChange(add)), id: '0' }))).toBeNull();
  });

  it('applies add, update, promote, remove; removed ids are remembered and Raft ids never reused', () => {
    const t = MemberTable.bootstrap(boot);
    expect(t.nextRaftId).toBe(3);
    t.apply(add);
    t.apply({ op: 'update', raftId: 3, id: add.id, peerUrls: ['http://127.0.0.1:42380'] });
    t.apply({ op: 'promote', raftId: 3, id: add.id });
    expect(t.byRaftId(3)).toEqual({ raftId: 3, id: add.id, peerUrls: ['http://127.0.0.1:42380'], isLearner: false });
    t.apply({ op: 'remove', raftId: 3, id: add.id });
    expect(t.byRaftId(3)).toBeUndefined();
    expect(t.isRemoved(add.id)).toBe(true);
    expect(t.nextRaftId).toBe(4);
    // A change naming the wrong id for a Raft id changes nothing of that member.
    t.apply({ op: 'update', raftId: 1, id: 999n, peerUrls: ['http://x:1'] });
    expect(t.byRaftId(1)!.peerUrls).toEqual(['http://127.0.0.1:2380']);
    const again = MemberTable.fromImage(JSON.parse(JSON.stringify(t.toImage())));
    expect(again).toBeInstanceOf(MemberTable);
    expect((again as MemberTable).toImage()).toEqual(t.toImage());
  });

  it('refuses images no table could have written', () => {
    const good = MemberTable.bootstrap(boot).toImage();
    const cases: [string, unknown][] = [
      ['not an object', []],
      ['an extra field', { ...good, x: 1 }],
      ['a Raft id at nextRaftId', { ...good, nextRaftId: 2 }],
      ['a repeated member id', { ...good, members: [good.members[0], { ...good.members[1], id: good.members[0]!.id }] }],
      ['a bad URL', { ...good, members: [{ ...good.members[0], peerUrls: ['x'] }] }],
      ['a removed id not decimal', { ...good, removed: ['0x1'] }],
    ];
    for (const [name, img] of cases) expect(typeof MemberTable.fromImage(img), name).toBe('string');
  });
});

describe('the state machine keeps the member table', () => {
  it('conf changes with a member change update it; it travels in the snapshot image; garbage contexts change nothing', () => {
    const sm = new KvStateMachine({ bootstrapMembers: boot });
    const seen: (MemberChange | null)[] = [];
    sm.onMembership((c) => seen.push(c));
    sm.applyConfChange({ changes: [{ kind: 'addLearner', nodeId: 3 }], context: encodeMemberChange(add) }, 5);
    sm.applyConfChange({ changes: [{ kind: 'addVoter', nodeId: 4 }], context: '{"op":"add"' }, 6);
    sm.applyConfChange({ changes: [] }, 7);
    expect(seen).toEqual([add, null, null]);
    expect(sm.appliedIndex).toBe(7);
    expect(sm.cluster.size).toBe(3);
    expect(sm.cluster.byRaftId(3)?.isLearner).toBe(true);
    expect(sm.cluster.byRaftId(4)).toBeUndefined();
    const other = new KvStateMachine();
    other.restore(sm.snapshot(), 7);
    expect(other.cluster.toImage()).toEqual(sm.cluster.toImage());
  });

  it('an image of version 1 (no table) restores to the bootstrap table; a bad table is a SnapshotImageError', () => {
    const sm = new KvStateMachine({ bootstrapMembers: boot });
    const v1 = new TextEncoder().encode(JSON.stringify({ v: 1, store: { $b: '' }, members: [] }));
    sm.restore(v1, 1);
    expect(sm.cluster.toImage()).toEqual(MemberTable.bootstrap(boot).toImage());
    const image = JSON.parse(new TextDecoder().decode(sm.snapshot())) as Record<string, unknown>;
    const bad = new TextEncoder().encode(JSON.stringify({ ...image, cluster: { nextRaftId: 0, members: [], removed: [] } }));
    expect(() => sm.restore(bad, 2)).toThrow(SnapshotImageError);
    expect(() => sm.restore(bad, 2)).toThrow(/image.cluster: nextRaftId/);
  });
});
