/**
 * A reader of the Prometheus text exposition format, enough to compare two servers' /metrics:
 * families with their TYPE, label names and samples.
 */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  type: string;
  /** Label names of its samples, without histogram `le` and summary `quantile`. */
  readonly labelNames: Set<string>;
  readonly samples: Sample[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: 'untyped', labelNames: new Set(), samples: [] }));
    return f;
  };
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)/.exec(line);
    if (t) {
      family(t[1]!).type = t[2]!;
      continue;
    }
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!;
    const base = families.has(m[1]!) ? m[1]! : m[1]!.replace(/_(bucket|sum|count)$/, '');
    const f = family(base);
    for (const k of Object.keys(labels)) if (k !== 'le' && k !== 'quantile') f.labelNames.add(k);
    f.samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return families;
}

/** Families of several scrapes (one per member) merged: a series any member has counts. */
export function mergeFamilies(all: readonly Map<string, Family>[]): Map<string, Family> {
  const out = new Map<string, Family>();
  for (const fams of all) {
    for (const f of fams.values()) {
      const o = out.get(f.name);
      if (!o) out.set(f.name, { name: f.name, type: f.type, labelNames: new Set(f.labelNames), samples: [...f.samples] });
      else {
        for (const l of f.labelNames) o.labelNames.add(l);
        o.samples.push(...f.samples);
      }
    }
  }
  return out;
}

/** The value of the one sample of `name` with these labels (all of them matching), or undefined. */
export function valueOf(fams: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const base = fams.get(name) ?? fams.get(name.replace(/_(bucket|sum|count)$/, ''));
  const s = base?.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
}

export async function scrape(clientUrl: string): Promise<Map<string, Family>> {
  const r = await fetch(`${clientUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  if (!r.ok) throw new Error(`GET ${clientUrl}/metrics: ${r.status}`);
  return parseExposition(await r.text());
}
