// The shipped HAProxy config, moved to loopback, in front of three node
// ports: written to a private temp dir, checked with `haproxy -c`, started,
// and waited on until every server is UP. Killed by PID in teardown (by
// startHaproxy). The server names are the shipped ones (node1..node3).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { eventually } from './eventually';
import { checkHaproxyConfig, haproxyStats, loopbackHaproxyConfig, serverRow, SHIPPED_HAPROXY_CFG, startHaproxy, type LoopbackLayout, type RunningHaproxy } from './haproxy';
import { freePort } from './redis';

export const HAPROXY_BACKEND = 'nodes';
export const HAPROXY_SERVERS = ['node1', 'node2', 'node3'] as const;

export interface HaproxyFront extends LoopbackLayout {
  haproxy: RunningHaproxy;
  /** The status column (UP, DOWN, "UP 1/2", MAINT…) of each server, by name. */
  statuses(): Promise<Record<string, string>>;
  /** Polls the stats page until `server` reports exactly `status`. */
  waitFor(server: string, status: string, timeoutMs?: number): Promise<void>;
}

export async function startHaproxyFront(t: TestContext, serverPorts: readonly number[], timeoutMs = 15_000): Promise<HaproxyFront> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-haproxy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const layout: LoopbackLayout = { frontendPort: await freePort(), statsPort: await freePort(), serverPorts };
  const file = path.join(dir, 'haproxy.cfg');
  writeFileSync(file, loopbackHaproxyConfig(readFileSync(SHIPPED_HAPROXY_CFG, 'utf8'), layout));
  const check = await checkHaproxyConfig(file);
  if (check.code !== 0) throw new Error(`haproxy -c refused the loopback config:\n${check.lines.join('\n')}`);
  const haproxy = startHaproxy(t, file);
  const statuses = async () => {
    const rows = await haproxyStats(layout.statsPort);
    return Object.fromEntries(HAPROXY_SERVERS.map((s) => [s, serverRow(rows, HAPROXY_BACKEND, s).status ?? '']));
  };
  const waitFor = async (server: string, status: string, waitMs = timeoutMs) => {
    await eventually(
      async () => {
        const now = (await statuses())[server];
        if (now !== status) throw new Error(`haproxy reports ${server} ${now}, waiting for ${status}`);
      },
      waitMs,
      50,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\nhaproxy output (tail):\n${haproxy.output.slice(-20).join('\n')}`);
    });
  };
  for (const server of HAPROXY_SERVERS) await waitFor(server, 'UP');
  return { ...layout, haproxy, statuses, waitFor };
}
