/** README.md's sections, for the tests that run a section's snippets as written. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './cluster.js';

/** The bodies of the ```sh blocks of README.md's section whose heading line is `heading` (e.g. `### Backup and restore`). */
export function shSnippets(heading: string): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(heading);
  if (start < 0) throw new Error(`README.md has no section "${heading}"`);
  const end = readme.indexOf('\n### ', start + heading.length);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}
