// Rounds: a group runs `--runs` times; in each round every workload is measured
// on the baseline (A) and then on Switchboard (B), so the systems alternate
// A B A B A B and share the machine's noise.
import type { Measurement } from './loadgen';
import type { Options } from './options';
import { sleep } from './processes';
import { describe } from './format';
import type { Group, RoundContext, Workload, WorkloadResult } from './model';
import { evaluate } from './statistics';
import { deploy, SYSTEM_LABEL, SYSTEMS, undeploy, type Deployment, type SystemName } from './systems';
import type { TokenFiles } from './tokens';

/** Runs a group's rounds; a failed measurement is recorded as failed and the rest go on. */
export async function runGroup(group: Group, o: Options, tokens: TokenFiles, log: (line: string) => void): Promise<WorkloadResult[]> {
  const runs = new Map<string, WorkloadResult['runs']>(group.workloads.map((w) => [w.id, { raw: [], switchboard: [] }]));
  for (let round = 1; round <= o.runs; round++) {
    const ctx: RoundContext = { options: o, tokens, results: new Map() };
    const record = (w: Workload, system: SystemName, m: Measurement | { failed: string }) => {
      runs.get(w.id)?.[system].push(m);
      if (!('failed' in m)) ctx.results.set(w.id, { ...ctx.results.get(w.id), [system]: m });
      log(`${w.title} — ${SYSTEM_LABEL[system]} run ${round}/${o.runs}: ${'failed' in m ? `FAILED: ${m.failed}` : describe(m)}`);
    };
    const measure = async (w: Workload, d: Deployment) => {
      try {
        record(w, d.system, await w.measure(d, ctx));
      } catch (error) {
        record(w, d.system, { failed: error instanceof Error ? error.message : String(error) });
      }
      await sleep(100); // let the server finish closing the run's sockets
    };
    if (group.freshPerMeasurement) {
      for (const w of group.workloads)
        for (const system of SYSTEMS) {
          const d = await deploy(system, group.topology, w.launch);
          try {
            await measure(w, d);
          } finally {
            await undeploy(d);
          }
        }
      continue;
    }
    // Both systems stay up for the round (an idle server costs nothing); each workload runs A then B.
    const deployments: Deployment[] = [];
    try {
      for (const system of SYSTEMS) deployments.push(await deploy(system, group.topology));
      for (const w of group.workloads) for (const d of deployments) await measure(w, d);
    } finally {
      await Promise.all(deployments.map(undeploy));
    }
  }
  return group.workloads.flatMap((w) => {
    const r = runs.get(w.id);
    return r === undefined ? [] : [evaluate(w, group.name, r)];
  });
}
