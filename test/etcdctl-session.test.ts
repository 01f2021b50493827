/**
 * The etcdctl runner of test/support/etcdctl-session.ts: a command that exits without reading
 * its input (here `false`, standing in for an etcdctl that refused its arguments) gives its exit
 * code and output, not an EPIPE that kills the test process.
 */
import { describe, expect, it } from 'vitest';
import { which } from './support/cluster.js';
import { etcdctl } from './support/etcdctl-session.js';

const FALSE = which('false');
/** Larger than a pipe's buffer (64 KiB on Linux): the writer is still writing when the reader has gone. */
const INPUT_BYTES = 4 << 20;

describe.skipIf(!FALSE)('etcdctl runner', () => {
  it('a command that exits before reading its input: its exit code, no EPIPE', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await etcdctl(FALSE!, ['127.0.0.1:1'], ['put', 'k'], { input: 'x'.repeat(INPUT_BYTES) });
      expect(r).toEqual({ code: 1, stdout: '', stderr: '' });
    }
  });
});
