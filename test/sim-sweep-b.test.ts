import { sweepCase } from './sweep-case.js';

sweepCase(601, 600, 'node');
