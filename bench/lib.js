/** Helpers shared by the benchmark scripts (they run on the build: `npm run build` first). */
export { freePort } from '../dist/lib/proc.js';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
