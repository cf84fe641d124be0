// What the two halves of the cross-node relay share (node-relay.ts for HTTP,
// node-relay-websockets.ts for WebSockets): the link that sends envelopes to
// another node, and the entries each node keeps for what is in flight.
import type { PublishWaiter } from '../bus/bus';
import type { RelayEnvelope } from '../protocol/relay-envelope';
import type { RelayFailure } from './exchange';
import type { TunnelRoute } from './registry';

/** A relayed request or WebSocket as the client's node holds it: what the sidecar's node sends back goes here. */
export interface SentEntry {
  fromSidecarNode(envelope: RelayEnvelope): void;
  /** The sidecar it waits on, for the sweep. */
  readonly route: TunnelRoute;
  readonly pathId: string;
  /** The sidecar's node is gone (the registry no longer lists the sidecar): fail at once. */
  nodeGone(): void;
}

/** A relayed request or WebSocket as the sidecar's node holds it: what the client's node sends goes here. */
export interface ServedEntry {
  fromClientNode(envelope: RelayEnvelope): void;
}

/** The relay as its entries see it. */
export interface RelayLink {
  readonly nodeId: string;
  send(node: string, envelope: RelayEnvelope, waiter: PublishWaiter): void;
  forgetSent(id: string): void;
  forgetServed(id: string): void;
}

/** The failures an envelope may name; anything else from another node reads as `tunnel_error`. */
export const FAILURES: ReadonlySet<string> = new Set<RelayFailure>(['gone', 'tunnel_disconnected', 'tunnel_timeout', 'response_too_large', 'tunnel_error']);
