import { describe, expect, it } from 'vitest';
import { NOT_SENT_DETAILS } from './proto.js';

describe('NOT_SENT_DETAILS', () => {
  it('matches only failures where the request never left, never a dropped connection', () => {
    for (const d of ['No connection established. Last error: connect ECONNREFUSED 127.0.0.1:2379', 'failed to connect to all addresses', 'Name resolution failed for target dns:x']) expect(NOT_SENT_DETAILS.test(d), d).toBe(true);
    // A write forwarded to a leader that died after applying it fails with "Connection dropped";
    // retrying it applied it twice (found by the fault harness: a CAS reported false whose
    // value others then read).
    for (const d of ['Connection dropped', 'Deadline exceeded', 'Call cancelled', 'etcdserver: request timed out']) expect(NOT_SENT_DETAILS.test(d), d).toBe(false);
  });
});
