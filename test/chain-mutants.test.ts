/**
 * Broken chain nodes the chain simulator must catch (each overrides one of ChainNode's protected
 * rule hooks, test-only): a predecessor that does not resend what its new successor lacks after a
 * middle failure, a non-tail node that answers reads from its own latest state (no CRAQ check),
 * a node that accepts messages of another epoch, a tail that serves reads without a valid
 * lease from the control plane, and a compaction that drops updates the tail has not yet
 * acknowledged (only compaction can reveal it: ChainNode.committedImage is what the driver
 * compacts its disk with).
 */
import { describe, expect, it } from 'vitest';
import { ChainNode, type ReadPlan } from '../src/chain/node.js';
import type { Epoch, Seq, SnapshotImage } from '../src/chain/types.js';
import { runChainSimulation, type ChainNodeFactory, type ChainSimOptions } from '../src/sim/chain-sim.js';
import { eventLoopTurn } from './support/event-loop.js';

class NoResendAfterMiddleFailure extends ChainNode {
  protected override resumeFrom(_theirLast: Seq): Seq {
    return this.durableSeqV; // "the new successor has all I have"
  }
}

class ReadsAtAnyNode extends ChainNode {
  protected override readPlan(key: string): ReadPlan {
    return this.isTail ? super.readPlan(key) : 'latest';
  }
}

class IgnoresItsLease extends ChainNode {
  protected override leaseValid(): boolean {
    return true; // an old tail cut off from the control plane keeps serving reads
  }
}

class AcceptsStaleEpochs extends ChainNode {
  protected override acceptsEpoch(_epoch: Epoch): boolean {
    return this.config !== null;
  }
}

/**
 * Compacts its whole durable history, but with the committed state: the snapshot claims to hold
 * the updates after ackedSeq (the disk releases them) without their effects.
 */
class CompactsUnacknowledged extends ChainNode {
  override committedImage(): SnapshotImage | null {
    if (this.durableSeqV < 0) return null;
    const seq = this.durableSeqV;
    return { seq, assignEpoch: seq === this.baseSeq ? this.baseAssign : this.updateAt(seq)!.assignEpoch, entries: [...this.clean.values()] };
  }
}

const SEEDS_MAX = 1000;

async function firstCaught(make: ChainNodeFactory, opts: Partial<ChainSimOptions> = {}): Promise<{ seed: number; invariant: string } | null> {
  for (let seed = 1; seed <= SEEDS_MAX; seed++) {
    const r = runChainSimulation({ seed, makeNode: make, ...opts });
    await eventLoopTurn();
    if (!r.ok) return { seed, invariant: r.failure!.invariant };
  }
  return null;
}

describe('chain mutants are caught by the simulator', () => {
  it('a middle failure without resending', async () => {
    const c = await firstCaught((o, d) => new NoResendAfterMiddleFailure(o, d));
    expect(c).not.toBeNull();
  });

  it('a read served by a non-tail node without CRAQ\'s check', async () => {
    const c = await firstCaught((o, d) => new ReadsAtAnyNode(o, d));
    expect(c).not.toBeNull();
    expect(c!.invariant).toBe('linearizability');
  });

  it('reads served without a valid lease', async () => {
    const c = await firstCaught((o, d) => new IgnoresItsLease(o, d));
    expect(c).not.toBeNull();
    expect(c!.invariant).toBe('linearizability');
  });

  it('a message of a stale epoch accepted', async () => {
    const c = await firstCaught((o, d) => new AcceptsStaleEpochs(o, d));
    expect(c).not.toBeNull();
  });

  describe('a compaction that drops updates the tail has not acknowledged', () => {
    const make: ChainNodeFactory = (o, d) => new CompactsUnacknowledged(o, d);

    it('is caught when the image is taken', async () => {
      const c = await firstCaught(make);
      expect(c).not.toBeNull();
      expect(c!.invariant).toBe('compaction');
    });

    it('is caught by what it does (restarts from the image), without the image check', async () => {
      const c = await firstCaught(make, { checkCompactionImages: false });
      expect(c).not.toBeNull();
      expect(['linearizability', 'state', 'acknowledged write lost', 'committed history changed', 'prefix', 'liveness']).toContain(c!.invariant);
    });

    it('only compaction reveals it: without compaction the same seeds pass', () => {
      for (let seed = 1; seed <= 40; seed++) {
        const r = runChainSimulation({ seed, makeNode: make, compaction: false });
        expect(r.failure?.message ?? 'ok', `seed ${seed}`).toBe('ok');
      }
    });
  });
});
