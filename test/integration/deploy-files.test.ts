// The deployment artefacts agree with the code and with each other: the
// Dockerfile, deploy/ (compose, Prometheus, Grafana) and k8s/ (kustomize base).
//
// Docker and kubectl do not run here, and Debian 12 has no hadolint: these
// assertions are the check. Every YAML file is parsed by a real YAML parser;
// the environment each file gives a node is run through the node's own
// configuration loader; the image's HEALTHCHECK command is run against a real
// node; `promtool check config` reads the Prometheus file where promtool is
// installed. (The HAProxy config has its own test: deploy-haproxy.)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import proxyaddr from 'proxy-addr';
import { parse } from 'yaml';
import { NODE_FLAGS } from '../../src/cli/node-flags';
import { ConfigError, loadConfig } from '../../src/config/load';
import { envSchema, ENV_NAMES } from '../../src/config/schema';
import { makeTestCertificate } from '../helpers/certificates';
import { startTestNode, TEST_SECRET } from '../helpers/node';
import { REPO_ROOT } from '../helpers/process';
import { freePort } from '../helpers/redis';

// ---- reading -------------------------------------------------------------

type Yaml = Record<string, unknown>;

const read = (rel: string) => readFileSync(path.join(REPO_ROOT, rel), 'utf8');
/** YAML 1.1 merge keys (`<<: *anchor`) as compose reads them; duplicate keys are an error. */
const yaml = (rel: string): unknown => parse(read(rel), { merge: true });

/** The value at `dotted` (numeric parts index arrays); throws, naming the path, when it is missing. */
function at(value: unknown, dotted: string): unknown {
  let here = value;
  for (const key of dotted.split('.')) {
    if (Array.isArray(here) && /^\d+$/.test(key)) here = here[Number(key)];
    else if (typeof here === 'object' && here !== null && !Array.isArray(here)) here = (here as Yaml)[key];
    else here = undefined;
    if (here === undefined) throw new Error(`no ${dotted} (stopped at ${key})`);
  }
  return here;
}
const obj = (value: unknown, dotted: string): Yaml => {
  const found = at(value, dotted);
  assert.ok(typeof found === 'object' && found !== null && !Array.isArray(found), `${dotted} is not a mapping`);
  return found as Yaml;
};
const list = (value: unknown, dotted: string): unknown[] => {
  const found = at(value, dotted);
  assert.ok(Array.isArray(found), `${dotted} is not a list`);
  return found;
};
const str = (value: unknown, dotted: string): string => {
  const found = at(value, dotted);
  assert.equal(typeof found, 'string', `${dotted} is not a string`);
  return found as string;
};
const num = (value: unknown, dotted: string): number => {
  const found = at(value, dotted);
  assert.equal(typeof found, 'number', `${dotted} is not a number`);
  return found as number;
};

/** The drain budget a node works within: DRAIN_SPREAD_MS + SHUTDOWN_TIMEOUT_MS, from `env` or the schema's defaults. */
function drainBudgetMs(env: Record<string, string>): number {
  const parsed = envSchema.pick({ DRAIN_SPREAD_MS: true, SHUTDOWN_TIMEOUT_MS: true }).parse(env);
  return parsed.DRAIN_SPREAD_MS + parsed.SHUTDOWN_TIMEOUT_MS;
}

/** The node's own loader accepts `env`, and every name in it is a Switchboard variable (or NODE_OPTIONS). */
function assertValidNodeEnv(env: Record<string, string>, where: string): void {
  const unknown = Object.keys(env).filter((name) => name !== 'NODE_OPTIONS' && !(ENV_NAMES as string[]).includes(name));
  assert.deepEqual(unknown, [], `${where}: not Switchboard variables`);
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) assert.fail(`${where}: ${error.problems.join('; ')}`);
    throw error;
  }
}

const stringMap = (value: Yaml, where: string): Record<string, string> => {
  for (const [key, v] of Object.entries(value)) assert.equal(typeof v, 'string', `${where}.${key} must be a string (quote numbers)`);
  return value as Record<string, string>;
};

// ---- Dockerfile ----------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions with continuation lines joined and comments dropped, grouped by stage (FROM). */
function dockerStages(text: string): Instruction[][] {
  const joined = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const stages: Instruction[][] = [];
  for (const line of joined.split('\n')) {
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (match === null) continue;
    const instruction = { keyword: (match[1] as string).toUpperCase(), args: (match[2] as string).trim() };
    if (instruction.keyword === 'FROM') stages.push([]);
    const stage = stages[stages.length - 1];
    assert.ok(stage !== undefined, `an instruction before the first FROM: ${line}`);
    stage.push(instruction);
  }
  return stages;
}

const execForm = (args: string): string[] => {
  const parsed: unknown = JSON.parse(args);
  assert.ok(Array.isArray(parsed) && parsed.every((a) => typeof a === 'string'), `not exec form: ${args}`);
  return parsed;
};

const dockerfile = () => dockerStages(read('Dockerfile'));
const packageJson = () => JSON.parse(read('package.json')) as { bin: Record<string, string> };

test('Dockerfile: multi-stage on node:20-bookworm-slim, build with dev dependencies, run with production ones only', () => {
  const stages = dockerfile();
  assert.ok(stages.length >= 2, 'multi-stage');
  for (const stage of stages) assert.match((stage[0] as Instruction).args, /^node:20-bookworm-slim(\s|$)/);
  const build = stages[0] as Instruction[];
  const runtime = stages[stages.length - 1] as Instruction[];
  const buildName = /\sAS\s+(\S+)/i.exec((build[0] as Instruction).args)?.[1];
  assert.ok(buildName !== undefined, 'the build stage is named');
  const runs = (stage: Instruction[]) => stage.filter((i) => i.keyword === 'RUN').map((i) => i.args);
  assert.ok(runs(build).some((r) => /\bnpm ci\b/.test(r) && !/--omit=dev/.test(r)));
  assert.ok(runs(build).some((r) => /\bnpm run build\b/.test(r)));
  assert.ok(runs(runtime).some((r) => /\bnpm ci\b.*--omit=dev/.test(r)));
  assert.ok(!runs(runtime).some((r) => /\bnpm run build\b|\btsc\b/.test(r)), 'no compiler in the runtime stage');
  const copied = runtime.filter((i) => i.keyword === 'COPY' && i.args.includes(`--from=${buildName}`)).map((i) => i.args);
  // The bin (dist/src/cli/index.js) and the demo page (public/) come from the build stage.
  assert.ok(copied.some((c) => /\/app\/dist\s/.test(c)), 'dist/ from the build stage');
  assert.ok(copied.some((c) => /\/app\/public\s/.test(c)), 'public/ from the build stage');
});

test('Dockerfile: non-root, NODE_OPTIONS, EXPOSE, HEALTHCHECK on /live, exec-form ENTRYPOINT running the bin', () => {
  const runtime = dockerfile().at(-1) as Instruction[];
  const last = (keyword: string) => runtime.filter((i) => i.keyword === keyword).at(-1);
  const user = last('USER')?.args;
  assert.ok(user !== undefined && !/^(root|0)(:|$)/.test(user), `runs as a non-root user (USER ${user})`);
  const envs = runtime.filter((i) => i.keyword === 'ENV').map((i) => i.args);
  assert.ok(envs.some((e) => /\bNODE_ENV=production\b/.test(e)));
  const nodeOptions = envs.map((e) => /\bNODE_OPTIONS=(\S+)/.exec(e)?.[1]).find((v) => v !== undefined);
  for (const flag of NODE_FLAGS) assert.ok(nodeOptions?.split(' ').includes(flag), `NODE_OPTIONS carries ${flag}`);
  assert.equal(last('EXPOSE')?.args, String(envSchema.shape.PORT.parse(undefined)));

  const entrypoint = execForm(last('ENTRYPOINT')?.args ?? 'null');
  assert.deepEqual(entrypoint, ['node', packageJson().bin.switchboard], 'exec form: SIGTERM reaches node with no shell between');
  assert.deepEqual(execForm(last('CMD')?.args ?? 'null'), ['serve']);

  const healthcheck = last('HEALTHCHECK')?.args ?? '';
  const command = execForm(/\bCMD\s+(\[.*\])\s*$/.exec(healthcheck)?.[1] ?? 'null');
  assert.equal(command[0], 'node', 'no curl in the slim image: node itself');
  assert.match(command.join(' '), /\/live\b/);
});

test("Dockerfile: the HEALTHCHECK command passes against a running node and fails when nothing listens", async (t) => {
  const runtime = dockerfile().at(-1) as Instruction[];
  const healthcheck = runtime.filter((i) => i.keyword === 'HEALTHCHECK').at(-1)?.args ?? '';
  const [binary, ...args] = execForm(/\bCMD\s+(\[.*\])\s*$/.exec(healthcheck)?.[1] ?? 'null');
  assert.equal(binary, 'node');
  const run = (port: number, env: Record<string, string> = {}) =>
    new Promise<number>((resolve) => {
      execFile(process.execPath, args, { env: { ...process.env, PORT: String(port), ...env }, timeout: 10_000 }, (error) => {
        resolve(error === null ? 0 : typeof error.code === 'number' ? error.code : -1);
      });
    });
  const node = await startTestNode(t);
  assert.equal(await run(node.port), 0);
  assert.equal(await run(await freePort()), 1);
  // With TLS on the node's port, the same command asks over https.
  const dir = mkdtempSync(path.join(tmpdir(), 'switchboard-healthcheck-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { cert, key } = await makeTestCertificate(dir);
  const tlsNode = await startTestNode(t, { TLS_CERT_FILE: cert, TLS_KEY_FILE: key });
  assert.equal(await run(tlsNode.port, { TLS_CERT_FILE: cert }), 0, 'over https');
  assert.equal(await run(tlsNode.port), 1, 'plain http to the TLS port fails');
});

test('.dockerignore keeps installed and built files, VCS data and secrets out of the build context', () => {
  const patterns = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  for (const required of ['node_modules', 'dist', '.git', '.env', 'bench', 'test', '*.log']) assert.ok(patterns.includes(required), required);
  // Nothing the build reads is excluded.
  for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'src', 'scripts', 'public']) {
    assert.ok(!patterns.some((p) => p === needed || p === `${needed}/` || p === '*'), needed);
  }
});

// ---- deploy/ (docker compose) --------------------------------------------

const NODES = ['node1', 'node2', 'node3'];
const compose = () => yaml('deploy/docker-compose.yml');
const service = (name: string) => obj(compose(), `services.${name}`);
/** `./x` or `../x` relative to deploy/ → relative to the repository root. */
const fromDeploy = (p: string) => path.relative(REPO_ROOT, path.resolve(REPO_ROOT, 'deploy', p));
/** A service's bind mounts, as [source relative to the repository, target]. */
const mounts = (name: string): [string, string][] =>
  list(service(name), 'volumes').map((v) => {
    const [source, target] = String(v).split(':');
    assert.ok(source !== undefined && target !== undefined && source.startsWith('.'), `a relative bind mount: ${String(v)}`);
    return [fromDeploy(source), target];
  });
/** Bind mounts from monitoring/ (written with the dashboard and the alert rules) are checked once that folder exists. */
const mountSourceExists = (source: string) => !source.startsWith('monitoring/') || !existsSync(path.join(REPO_ROOT, 'monitoring')) || existsSync(path.join(REPO_ROOT, source));

test('compose: 3 nodes built from the Dockerfile, Redis, HAProxy, Prometheus and Grafana', () => {
  const names = Object.keys(obj(compose(), 'services'));
  for (const name of [...NODES, 'redis', 'haproxy', 'prometheus', 'grafana']) assert.ok(names.includes(name), name);
  for (const name of NODES) {
    const node = service(name);
    assert.equal(fromDeploy(str(node, 'build.context')), '');
    assert.ok(existsSync(path.join(REPO_ROOT, str(node, 'build.dockerfile'))));
    assert.equal(str(node, 'environment.NODE_ID'), name);
    assert.equal(str(node, 'depends_on.redis.condition'), 'service_healthy');
  }
  assert.ok(list(service('redis'), 'healthcheck.test').includes('ping'));
  for (const name of ['haproxy', 'prometheus', 'grafana']) {
    for (const [source] of mounts(name)) assert.ok(mountSourceExists(source), `${name} mounts ${source}, which does not exist`);
  }
});

test('compose: every node gets a valid configuration, NODE_OPTIONS, a trusted HAProxy and time to drain', () => {
  const haproxyAddress = str(service('haproxy'), 'networks.switchboard.ipv4_address');
  const subnet = str(compose(), 'networks.switchboard.ipam.config.0.subnet');
  assert.ok(proxyaddr.compile(subnet)(haproxyAddress, 0), `${haproxyAddress} is in ${subnet}`);
  for (const name of NODES) {
    const env = stringMap(obj(service(name), 'environment'), `${name}.environment`);
    // JWT_SECRET comes from deploy/.env, and compose refuses to start without it.
    assert.match(env.JWT_SECRET ?? '', /^\$\{JWT_SECRET:\?.+\}$/);
    assertValidNodeEnv({ ...env, JWT_SECRET: TEST_SECRET }, name);
    for (const flag of NODE_FLAGS) assert.ok(env.NODE_OPTIONS?.split(' ').includes(flag), `${name}: NODE_OPTIONS carries ${flag}`);
    assert.equal(env.REDIS_URL, 'redis://redis:6379');
    assert.deepEqual(env.TRUSTED_PROXIES?.split(','), [haproxyAddress], `${name} believes HAProxy's X-Forwarded-For`);
    const grace = /^(\d+)s$/.exec(str(service(name), 'stop_grace_period'));
    assert.ok(grace !== null);
    assert.ok(Number(grace[1]) * 1000 > drainBudgetMs(env), `${name}: stop_grace_period covers DRAIN_SPREAD_MS + SHUTDOWN_TIMEOUT_MS`);
  }
  // .env.example names every variable compose interpolates, with no value filled in for the secret.
  const example = read('deploy/.env.example');
  const interpolated = new Set([...read('deploy/docker-compose.yml').matchAll(/\$\{([A-Z_]+)/g)].map((m) => m[1]));
  for (const name of interpolated) assert.match(example, new RegExp(`^${name}=`, 'm'), `.env.example lists ${name}`);
  assert.match(example, /^JWT_SECRET=$/m);
  assert.ok(read('.gitignore').split('\n').includes('deploy/.env'), 'git ignores deploy/.env');
});

test('compose: HAProxy, Prometheus and Grafana point at the services and files that exist', () => {
  // HAProxy: the shipped config, on the port it binds, in front of the node services on their PORT.
  const cfg = read('deploy/haproxy/haproxy.cfg');
  const [cfgMount] = mounts('haproxy');
  assert.deepEqual(cfgMount, ['deploy/haproxy/haproxy.cfg', '/usr/local/etc/haproxy/haproxy.cfg']);
  const frontendPort = /^frontend switchboard\n(?:.*\n)*?\s+bind :(\d+)/m.exec(cfg)?.[1];
  assert.ok(list(service('haproxy'), 'ports').includes(`${frontendPort}:${frontendPort}`));
  const port = envSchema.shape.PORT.parse(undefined);
  assert.deepEqual([...cfg.matchAll(/^\s+server (\S+) (\S+) /gm)].map((m) => [m[1], m[2]]), NODES.map((n) => [n, `${n}:${port}`]));

  // Prometheus: job "switchboard" scrapes the three nodes; its rule file is where compose mounts the alert rules.
  const prometheus = yaml('deploy/prometheus/prometheus.yml');
  const job = list(prometheus, 'scrape_configs').find((c) => at(c, 'job_name') === 'switchboard');
  assert.equal(str(job, 'metrics_path'), '/metrics');
  assert.deepEqual(list(job, 'static_configs.0.targets'), NODES.map((n) => `${n}:${port}`));
  const promMounts = new Map(mounts('prometheus'));
  assert.equal(promMounts.get('deploy/prometheus/prometheus.yml'), '/etc/prometheus/prometheus.yml');
  assert.deepEqual(list(prometheus, 'rule_files'), [promMounts.get('monitoring/prometheus/alerts.yml')]);

  // Grafana: the provisioning folder, a data source at the prometheus service, dashboards from monitoring/grafana/.
  const grafanaMounts = new Map(mounts('grafana'));
  assert.equal(grafanaMounts.get('deploy/grafana/provisioning'), '/etc/grafana/provisioning');
  const datasource = obj(yaml('deploy/grafana/provisioning/datasources/prometheus.yml'), 'datasources.0');
  assert.equal(str(datasource, 'type'), 'prometheus');
  assert.equal(str(datasource, 'url'), `http://prometheus:${/:(\d+)$/.exec(String(list(service('prometheus'), 'ports')[0]))?.[1]}`);
  const provider = obj(yaml('deploy/grafana/provisioning/dashboards/switchboard.yml'), 'providers.0');
  assert.equal(str(provider, 'type'), 'file');
  assert.equal(str(provider, 'options.path'), grafanaMounts.get('monitoring/grafana'));
});

test('prometheus.yml passes promtool check config', async (t) => {
  const promtool = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => existsSync(p));
  if (promtool === undefined) return t.skip('promtool is not installed (Debian package prometheus)');
  // --syntax-only: the rule file it names is mounted by compose, not present at that path here.
  const output = await new Promise<string>((resolve, reject) =>
    execFile(promtool, ['check', 'config', '--syntax-only', path.join(REPO_ROOT, 'deploy/prometheus/prometheus.yml')], (error, stdout, stderr) =>
      error === null ? resolve(stdout) : reject(new Error(`${stdout}${stderr}`)),
    ),
  );
  assert.match(output, /SUCCESS/);
});

// ---- k8s/ (kustomize base) -----------------------------------------------

const K8S = 'k8s';
const k8sFiles = () => readdirSync(path.join(REPO_ROOT, K8S)).filter((f) => /\.ya?ml$/.test(f));
/** Every manifest in k8s/ (the kustomization and the examples too), by kind. */
function manifests(): Map<string, Yaml> {
  const byKind = new Map<string, Yaml>();
  for (const file of k8sFiles()) {
    const doc = obj({ doc: yaml(`${K8S}/${file}`) }, 'doc');
    const kind = str(doc, 'kind');
    assert.ok(!byKind.has(kind), `one ${kind} in k8s/`);
    byKind.set(kind, doc);
  }
  return byKind;
}
const manifest = (kind: string): Yaml => {
  const found = manifests().get(kind);
  assert.ok(found !== undefined, `k8s/ has a ${kind}`);
  return found;
};
/** Whether every label of `selector` is on `labels`. */
const selects = (selector: Yaml, labels: Yaml) => Object.entries(selector).every(([k, v]) => labels[k] === v);
const container = () => obj(manifest('Deployment'), 'spec.template.spec.containers.0');

test('k8s: kustomization lists every manifest but the Secret example, and each file parses', () => {
  const resources = list(manifest('Kustomization'), 'resources');
  const expected = k8sFiles().filter((f) => f !== 'kustomization.yaml' && !f.endsWith('.example.yaml'));
  assert.deepEqual([...resources].sort(), expected.sort());
  // The Secret is an example, never applied from git.
  assert.equal(str(manifest('Secret'), 'metadata.name'), str(container(), 'envFrom.1.secretRef.name'));
  assert.ok(!resources.some((r) => String(r).includes('secret')));
  for (const kind of ['Deployment', 'Service', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'ServiceMonitor', 'ConfigMap', 'Secret']) manifest(kind);
});

test('k8s: probes, ports, NODE_ID, NODE_OPTIONS and the security context of the Deployment', () => {
  const deployment = manifest('Deployment');
  assert.equal(num(deployment, 'spec.replicas'), 3);
  const c = container();
  const ports = list(c, 'ports');
  const http = ports.find((p) => at(p, 'name') === 'http');
  const configMap = stringMap(obj(manifest('ConfigMap'), 'data'), 'ConfigMap.data');
  assert.equal(num(http, 'containerPort'), envSchema.shape.PORT.parse(configMap.PORT));
  assert.deepEqual(
    ['readinessProbe', 'livenessProbe', 'startupProbe'].map((probe) => [probe, str(c, `${probe}.httpGet.path`), str(c, `${probe}.httpGet.port`)]),
    [
      ['readinessProbe', '/ready', 'http'],
      ['livenessProbe', '/live', 'http'],
      ['startupProbe', '/live', 'http'],
    ],
  );
  const env = list(c, 'env');
  assert.equal(str(env.find((e) => at(e, 'name') === 'NODE_ID'), 'valueFrom.fieldRef.fieldPath'), 'metadata.name');
  const nodeOptions = str(env.find((e) => at(e, 'name') === 'NODE_OPTIONS'), 'value');
  for (const flag of NODE_FLAGS) assert.ok(nodeOptions.split(' ').includes(flag), `NODE_OPTIONS carries ${flag}`);
  assert.equal(str(c, 'envFrom.0.configMapRef.name'), str(manifest('ConfigMap'), 'metadata.name'));

  assert.equal(at(deployment, 'spec.template.spec.securityContext.runAsNonRoot'), true);
  assert.equal(at(c, 'securityContext.readOnlyRootFilesystem'), true);
  assert.equal(at(c, 'securityContext.allowPrivilegeEscalation'), false);
  assert.deepEqual(list(c, 'securityContext.capabilities.drop'), ['ALL']);
  for (const part of ['requests.cpu', 'requests.memory', 'limits.memory']) str(c, `resources.${part}`);
});

test('k8s: terminationGracePeriodSeconds exceeds preStop + DRAIN_SPREAD_MS + SHUTDOWN_TIMEOUT_MS of the ConfigMap', () => {
  const command = list(container(), 'lifecycle.preStop.exec.command');
  assert.equal(command[0], 'sleep');
  const preStopS = Number(command[1]);
  assert.ok(preStopS > 0);
  const configMap = stringMap(obj(manifest('ConfigMap'), 'data'), 'ConfigMap.data');
  const graceS = num(manifest('Deployment'), 'spec.template.spec.terminationGracePeriodSeconds');
  assert.ok(graceS * 1000 > preStopS * 1000 + drainBudgetMs(configMap), `${graceS} s > ${preStopS} s + ${drainBudgetMs(configMap)} ms`);
});

test('k8s: labels and selectors agree across Deployment, Service, PDB, HPA and ServiceMonitor', () => {
  const deployment = manifest('Deployment');
  const podLabels = obj(deployment, 'spec.template.metadata.labels');
  const selector = obj(deployment, 'spec.selector.matchLabels');
  assert.ok(selects(selector, podLabels), 'the Deployment selects its own pods');
  const spec = obj(deployment, 'spec.template.spec');
  for (const constraint of list(spec, 'topologySpreadConstraints')) assert.ok(selects(obj(constraint, 'labelSelector.matchLabels'), podLabels));
  for (const term of list(spec, 'affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution')) {
    assert.ok(selects(obj(term, 'podAffinityTerm.labelSelector.matchLabels'), podLabels));
  }

  const svc = manifest('Service');
  assert.equal(str(svc, 'spec.type'), 'ClusterIP');
  assert.ok(selects(obj(svc, 'spec.selector'), podLabels), 'the Service selects the pods');
  const svcPorts = list(svc, 'spec.ports');
  const containerPorts = list(container(), 'ports').map((p) => at(p, 'name'));
  for (const p of svcPorts) assert.ok(containerPorts.includes(at(p, 'targetPort')), 'Service targetPort names a container port');

  assert.ok(selects(obj(manifest('PodDisruptionBudget'), 'spec.selector.matchLabels'), podLabels), 'the PDB covers the pods');
  const pdbSpec = obj(manifest('PodDisruptionBudget'), 'spec');
  assert.ok(pdbSpec.maxUnavailable === 1 || pdbSpec.minAvailable !== undefined);

  const hpa = manifest('HorizontalPodAutoscaler');
  assert.equal(str(hpa, 'apiVersion'), 'autoscaling/v2');
  assert.deepEqual(obj(hpa, 'spec.scaleTargetRef'), { apiVersion: str(deployment, 'apiVersion'), kind: 'Deployment', name: str(deployment, 'metadata.name') });
  assert.equal(str(hpa, 'spec.metrics.0.resource.name'), 'cpu');
  assert.ok(num(hpa, 'spec.minReplicas') >= 2 && num(hpa, 'spec.maxReplicas') > num(hpa, 'spec.minReplicas'));

  const monitor = manifest('ServiceMonitor');
  assert.equal(str(monitor, 'apiVersion'), 'monitoring.coreos.com/v1');
  assert.ok(selects(obj(monitor, 'spec.selector.matchLabels'), obj(svc, 'metadata.labels')), 'the ServiceMonitor selects the Service');
  assert.ok(svcPorts.some((p) => at(p, 'name') === str(monitor, 'spec.endpoints.0.port')));
  assert.equal(str(monitor, 'spec.endpoints.0.path'), '/metrics');
});

test('k8s: the ConfigMap is a valid node configuration; the Secret example is refused as it stands', () => {
  const configMap = stringMap(obj(manifest('ConfigMap'), 'data'), 'ConfigMap.data');
  const secret = stringMap(obj(manifest('Secret'), 'stringData'), 'Secret.stringData');
  assert.ok(!('JWT_SECRET' in configMap) && !('REDIS_URL' in configMap), 'secrets stay out of the ConfigMap');
  assertValidNodeEnv({ ...configMap, ...secret, JWT_SECRET: TEST_SECRET }, 'ConfigMap + Secret');
  // Applied unedited, the placeholder stops the node at start instead of running on a secret published in git.
  assert.throws(
    () => loadConfig({ ...configMap, ...secret }),
    (error: unknown) => error instanceof ConfigError && error.problems.some((p) => p.startsWith('JWT_SECRET:')),
  );
});
