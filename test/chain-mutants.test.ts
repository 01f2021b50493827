/**
 * Broken chain nodes the chain simulator must catch (each overrides one of ChainNode's protected
 * rule hooks, test-only): a predecessor that does not resend what its new successor lacks after a
 * middle failure, a non-tail node that answers reads from its own latest state (no CRAQ check),
 * a node that accepts messages of another epoch, and a tail that serves reads without a valid
 * lease from the control plane.
 */
import { describe, expect, it } from 'vitest';
import { ChainNode, type ReadPlan } from '../src/chain/node.js';
import type { Epoch, Seq } from '../src/chain/types.js';
import { runChainSimulation, type ChainNodeFactory } from '../src/sim/chain-sim.js';

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

const SEEDS_MAX = 1000;

function firstCaught(make: ChainNodeFactory): { seed: number; invariant: string } | null {
  for (let seed = 1; seed <= SEEDS_MAX; seed++) {
    const r = runChainSimulation({ seed, makeNode: make });
    if (!r.ok) return { seed, invariant: r.failure!.invariant };
  }
  return null;
}

describe('chain mutants are caught by the simulator', () => {
  it('a middle failure without resending', () => {
    const c = firstCaught((o, d) => new NoResendAfterMiddleFailure(o, d));
    expect(c).not.toBeNull();
  });

  it('a read served by a non-tail node without CRAQ\'s check', () => {
    const c = firstCaught((o, d) => new ReadsAtAnyNode(o, d));
    expect(c).not.toBeNull();
    expect(c!.invariant).toBe('linearizability');
  });

  it('reads served without a valid lease', () => {
    const c = firstCaught((o, d) => new IgnoresItsLease(o, d));
    expect(c).not.toBeNull();
    expect(c!.invariant).toBe('linearizability');
  });

  it('a message of a stale epoch accepted', () => {
    const c = firstCaught((o, d) => new AcceptsStaleEpochs(o, d));
    expect(c).not.toBeNull();
  });
});
