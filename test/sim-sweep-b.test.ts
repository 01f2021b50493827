import { sweepCase } from './sweep-case.js';

// Seeds 1151..1200 run on the real store (sim-store.test.ts).
sweepCase(601, 550, 'node');
