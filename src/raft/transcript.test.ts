import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatTranscript, runTranscript } from './testing/interaction.js';

// Each file in testdata/ is a protocol scenario: commands and the exact output they produce.
// REWRITE=1 regenerates the expected output in place; read the diff before committing it.
const dir = join(import.meta.dirname, 'testdata');
const files = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();

describe('transcripts', () => {
  it('there are transcripts', () => {
    expect(files.length).toBeGreaterThan(5);
  });
  for (const f of files) {
    it(f, () => {
      const path = join(dir, f);
      const text = readFileSync(path, 'utf8');
      const { actual } = runTranscript(text);
      const got = formatTranscript(actual);
      if (process.env.REWRITE === '1') {
        writeFileSync(path, got);
        return;
      }
      expect(got).toBe(text);
    });
  }
});
