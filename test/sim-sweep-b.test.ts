import { sweepCase } from './sweep-case.js';

sweepCase(1001, 1000);
