import { sweepCase } from './sweep-case.js';

sweepCase(1, 1000, 'core');
