import { sweepCase } from './sweep-case.js';

sweepCase(1, 600, 'node');
