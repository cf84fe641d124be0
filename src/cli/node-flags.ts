// The Node/V8 flags Switchboard runs with: `npm start`, the bench, and (with
// the deployment files) the image. A test keeps package.json's start script in
// step with this list.
//
// --max-semi-space-size=8: V8 grows the young generation up to 16 MB per
// semi-space when many objects survive its collections — which is exactly a
// connect storm, every session being long-lived — and does not give it back
// while connections sit idle. Capped at 8 MB, RSS per idle connection at
// 15,000 connections fell from ~2.7 KB to ~1.7 KB (bench W4), with relay
// throughput unchanged within the noise (bench W1, same-run ratios).
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];
