/**
 * The deployment files (deploy/): the Kubernetes manifests checked against the Kubernetes
 * schemas (kubernetes-models) and against each other (the StatefulSet's Service, replica count,
 * labels, probes, ports); the entrypoint's derivation of --name and --initial-cluster from a
 * StatefulSet pod's hostname; the health probe against a real member; the image definition and
 * the systemd unit's essentials. No container runtime is available here: the image itself is
 * not built (docs/deploy.md says so); the entrypoint runs a real cluster in test/netns.test.ts.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Service } from 'kubernetes-models/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { startCluster, ROOT, type Cluster } from './support/cluster.js';

const run = promisify(execFile);
const DEPLOY = join(ROOT, 'deploy');
const ENTRYPOINT = join(DEPLOY, 'entrypoint.sh');

type Doc = { apiVersion: string; kind: string; metadata: { name: string }; spec: Record<string, unknown> };
const MODELS: Record<string, new (d: never) => { validate(): void }> = {
  'v1/Service': Service,
  'apps/v1/StatefulSet': StatefulSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};

function manifests(): Doc[] {
  const docs = parseAllDocuments(readFileSync(join(DEPLOY, 'kubernetes/flotilla.yaml'), 'utf8'));
  for (const d of docs) expect(d.errors, 'YAML errors').toEqual([]);
  return docs.map((d) => d.toJS() as Doc);
}

/** Validates a manifest against its kind's schema; throws with the schema's complaint. */
function validate(d: Doc): void {
  const Model = MODELS[`${d.apiVersion}/${d.kind}`];
  if (!Model) throw new Error(`no schema for ${d.apiVersion} ${d.kind}`);
  new Model(d as never).validate();
}

async function entrypoint(env: Record<string, string>, args: string[] = []): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run('sh', [ENTRYPOINT, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FLOTILLA_ENTRYPOINT_DRY_RUN: '1', ...env } });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout, err: x.stderr };
  }
}

/** The value after `flag` in an argument list printed one per line. */
const flag = (out: string, name: string): string | undefined => {
  const lines = out.trim().split('\n');
  const i = lines.indexOf(name);
  return i < 0 ? undefined : lines[i + 1];
};

describe('Kubernetes manifests', () => {
  it('every manifest is valid for its kind\'s schema', () => {
    const docs = manifests();
    expect(docs.map((d) => d.kind).sort()).toEqual(['PodDisruptionBudget', 'Service', 'Service', 'StatefulSet']);
    for (const d of docs) validate(d);
  });

  it('the schema check refuses a broken manifest (the check can fail)', () => {
    const sts = manifests().find((d) => d.kind === 'StatefulSet')!;
    expect(() => validate({ ...sts, spec: { ...sts.spec, replicas: 'three' } })).toThrow(/replicas must be integer/);
    const { selector: _selector, ...noSelector } = sts.spec;
    expect(() => validate({ ...sts, spec: noSelector })).toThrow(/selector/);
  });

  it('the StatefulSet, its Services and the PodDisruptionBudget fit together as etcd\'s do', () => {
    const docs = manifests();
    const sts = docs.find((d) => d.kind === 'StatefulSet')! as unknown as { spec: { serviceName: string; replicas: number; podManagementPolicy: string; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: { securityContext: { runAsNonRoot: boolean }; containers: { env: { name: string; value?: string }[]; ports: { name: string; containerPort: number }[]; volumeMounts: { name: string; mountPath: string }[]; startupProbe: unknown; livenessProbe: { exec: { command: string[] } }; readinessProbe: { exec: { command: string[] } } }[] } }; volumeClaimTemplates: { metadata: { name: string } }[] } };
    const headless = docs.find((d) => d.kind === 'Service' && d.metadata.name === sts.spec.serviceName)! as unknown as { spec: { clusterIP: string; publishNotReadyAddresses: boolean; selector: Record<string, string>; ports: { port: number; targetPort: string }[] } };
    expect(headless, 'the headless Service the StatefulSet names').toBeDefined();
    expect(headless.spec.clusterIP).toBe('None');
    expect(headless.spec.publishNotReadyAddresses).toBe(true);
    expect(sts.spec.podManagementPolicy).toBe('Parallel');
    const labels = sts.spec.template.metadata.labels;
    expect(labels).toMatchObject(sts.spec.selector.matchLabels);
    expect(labels).toMatchObject(headless.spec.selector);
    const pdb = docs.find((d) => d.kind === 'PodDisruptionBudget')! as unknown as { spec: { maxUnavailable: number; selector: { matchLabels: Record<string, string> } } };
    expect(labels).toMatchObject(pdb.spec.selector.matchLabels);
    // A quorum survives the budget's disruptions.
    expect(sts.spec.replicas - pdb.spec.maxUnavailable).toBeGreaterThanOrEqual(Math.floor(sts.spec.replicas / 2) + 1);
    const c = sts.spec.template.spec.containers[0]!;
    const env = Object.fromEntries(c.env.map((e) => [e.name, e.value]));
    expect(Number(env.FLOTILLA_REPLICAS)).toBe(sts.spec.replicas);
    expect(env.FLOTILLA_SERVICE).toBe(sts.spec.serviceName);
    expect(env.FLOTILLA_DATA_DIR?.startsWith(c.volumeMounts.find((v) => v.name === sts.spec.volumeClaimTemplates[0]!.metadata.name)!.mountPath + '/')).toBe(true);
    expect(c.ports.map((p) => [p.name, p.containerPort])).toEqual([['client', 2379], ['peer', 2380]]);
    for (const p of headless.spec.ports) expect(c.ports.map((x) => x.name)).toContain(p.targetPort);
    expect(sts.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
    expect(c.livenessProbe.exec.command.at(-1)).toBe('/livez');
    expect(c.readinessProbe.exec.command.at(-1)).toBe('/readyz');
    expect(c.startupProbe).toBeDefined();
  });
});

describe('the entrypoint', () => {
  it('derives the member from a StatefulSet pod\'s hostname and the replica count', async () => {
    const r = await entrypoint({ HOSTNAME: 'flotilla-1', FLOTILLA_REPLICAS: '3', POD_NAMESPACE: 'prod' }, ['--lease-reads']);
    expect(r.code, r.err).toBe(0);
    const dns = (i: number) => `flotilla-${i}.flotilla.prod.svc.cluster.local`;
    expect(flag(r.out, '--name')).toBe('flotilla-1');
    expect(flag(r.out, '--initial-cluster')).toBe([0, 1, 2].map((i) => `flotilla-${i}=http://${dns(i)}:2380`).join(','));
    expect(flag(r.out, '--initial-advertise-peer-urls')).toBe(`http://${dns(1)}:2380`);
    expect(flag(r.out, '--advertise-client-urls')).toBe(`http://${dns(1)}:2379`);
    expect(flag(r.out, '--listen-peer-urls')).toBe('http://0.0.0.0:2380');
    expect(flag(r.out, '--initial-cluster-token')).toBe('flotilla-prod');
    expect(r.out.trim().split('\n')[0]).toBe('serve');
    expect(r.out.trim().split('\n').at(-1)).toBe('--lease-reads');
  });

  it('with FLOTILLA_TLS_DIR: https:// URLs and certificate auth on both ports', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-entry-tls-'));
    try {
      for (const f of ['ca.pem', 'server.pem', 'server-key.pem', 'peer.pem']) writeFileSync(join(dir, f), 'x');
      const missing = await entrypoint({ HOSTNAME: 'db-0', FLOTILLA_TLS_DIR: dir, FLOTILLA_REPLICAS: '1' });
      expect(missing.code).toBe(2);
      expect(missing.err).toContain('peer-key.pem is missing');
      writeFileSync(join(dir, 'peer-key.pem'), 'x');
      const r = await entrypoint({ HOSTNAME: 'db-0', FLOTILLA_TLS_DIR: dir, FLOTILLA_REPLICAS: '1' });
      expect(r.code, r.err).toBe(0);
      expect(flag(r.out, '--initial-cluster')).toBe('db-0=https://db-0.db.default.svc.cluster.local:2380');
      expect(flag(r.out, '--trusted-ca-file')).toBe(join(dir, 'ca.pem'));
      expect(r.out).toContain('--client-cert-auth\n');
      expect(r.out).toContain('--peer-client-cert-auth\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a hostname without an ordinal, and an ordinal beyond the initial cluster', async () => {
    const bad = await entrypoint({ HOSTNAME: 'flotilla' });
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('does not end in -<ordinal>');
    const beyond = await entrypoint({ HOSTNAME: 'flotilla-3', FLOTILLA_REPLICAS: '3' });
    expect(beyond.code).toBe(2);
    expect(beyond.err).toContain('member add');
    const replicas = await entrypoint({ HOSTNAME: 'flotilla-0', FLOTILLA_REPLICAS: 'x' });
    expect(replicas.code).toBe(2);
  });
});

describe('the health probe (deploy/healthcheck.mjs) against a real member', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster('flotilla', { size: 1 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  const probe = (path: string, port: number) =>
    new Promise<number | null>((resolve) => {
      const p = spawn(process.execPath, [join(DEPLOY, 'healthcheck.mjs'), path], { env: { ...process.env, FLOTILLA_CLIENT_PORT: String(port) }, stdio: 'ignore' });
      p.on('exit', (code) => resolve(code));
    });

  it('exits 0 on /health, /livez and /readyz of a healthy member, 1 on a missing path or a closed port', async () => {
    const port = Number(new URL(cluster.members[0]!.clientUrl).port);
    for (const path of ['/health', '/livez', '/readyz']) expect(await probe(path, port), path).toBe(0);
    expect(await probe('/no-such-path', port)).toBe(1);
    cluster.kill(0);
    expect(await probe('/health', port)).toBe(1);
  }, 60_000);
});

describe('the image and the systemd unit', () => {
  it('the image: two stages, a non-root user, the data volume, a /health check, the entrypoint', () => {
    const d = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
    expect(d.match(/^FROM /gm)?.length).toBe(2);
    expect(d).toMatch(/^FROM \S+ AS build$/m);
    expect(d).toMatch(/^COPY --from=build /m);
    const user = /^USER (\S+)$/m.exec(d)?.[1];
    expect(user && user !== 'root' && user !== '0').toBe(true);
    expect(d).toMatch(/^VOLUME \["\/var\/lib\/flotilla"\]$/m);
    expect(d).toMatch(/^HEALTHCHECK .*healthcheck\.mjs", "\/health"\]$/m);
    const dest = /^COPY deploy\/entrypoint\.sh (\S+)$/m.exec(d)?.[1];
    expect(d).toContain(`ENTRYPOINT ["${dest}"]`);
  });

  it('the unit runs flotilla serve as its own user, does not restart on bad flags (exit 2)', () => {
    const u = readFileSync(join(DEPLOY, 'systemd/flotilla.service'), 'utf8');
    const keys = Object.fromEntries(u.split('\n').filter((l) => /^[A-Za-z]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    expect(keys.User).toBe('flotilla');
    expect(keys.ExecStart).toMatch(/flotilla serve$/);
    expect(keys.RestartPreventExitStatus).toBe('2');
    expect(keys.EnvironmentFile).toBe('/etc/flotilla/flotilla.env');
    // Every variable of the example environment file is one `flotilla serve` reads.
    const env = readFileSync(join(DEPLOY, 'systemd/flotilla.env'), 'utf8').split('\n').filter((l) => /^[A-Z_]+=/.test(l));
    expect(env.length).toBeGreaterThan(5);
    const serveHelp = readFileSync(join(ROOT, 'src/server/config.ts'), 'utf8');
    for (const l of env) {
      const camel = l.slice('FLOTILLA_'.length, l.indexOf('=')).toLowerCase().replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
      expect(serveHelp, l).toContain(`'${camel}'`);
    }
  });
});
