/**
 * The random streams of one simulated run: each purpose (the settings, the network, the disk,
 * the clients, each fault kind, ...) draws from a stream of its own, derived from the seed and
 * the purpose's name. A new fault kind or a new draw for one purpose therefore changes only
 * the runs that use it, never what every other seed does.
 */
import { rng as makeRng, type Rng } from '../lib/prng.js';

/** FNV-1a (32 bits) offset basis and prime. */
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** A 32-bit hash of (seed, name): the seed's four bytes, then the name's UTF-16 code units. */
export function streamSeed(seed: number, name: string): number {
  let h = FNV_OFFSET;
  const s = seed >>> 0;
  for (let i = 0; i < 4; i++) h = Math.imul(h ^ ((s >>> (8 * i)) & 0xff), FNV_PRIME) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), FNV_PRIME) >>> 0;
  return h;
}

/** The stream named `name` of the run with seed `seed` (the generator's seeding mixes the hash further). */
export function stream(seed: number, name: string): Rng {
  return makeRng(streamSeed(seed, name));
}
