// The Node/V8 flags Switchboard runs with: the `switchboard` binary (its
// shebang), `npm start`, the bench, and (with the deployment files) the image.
// Tests keep the shebang and package.json's start script in step with this list.
//
// --max-semi-space-size=8: V8 grows the young generation up to 16 MB per
// semi-space when many objects survive its collections — which is exactly a
// connect storm, every session being long-lived — and does not give it back
// while connections sit idle. Capped at 8 MB, RSS per idle connection at
// 15,000 connections fell from ~2.7 KB to ~1.7 KB (bench W4), with relay
// throughput unchanged within the noise (bench W1, same-run ratios).
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];

/** The flags of NODE_FLAGS this process runs without (neither on its command line nor in NODE_OPTIONS). */
export function missingNodeFlags(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)]);
  return NODE_FLAGS.filter((flag) => !given.has(flag));
}
