// Switchboard client SDK — the package export `switchboard/client`, and the
// browser bundle `switchboard-client.js` (global `Switchboard`). Browsers and
// Node alike: no Node-only import (Node 20 has no global WebSocket: pass the
// `ws` package's class as the `WebSocket` option).
//
//   const client = new SwitchboardClient({
//     urls: ['wss://a.example.com/ws', 'wss://b.example.com/ws'], // each reconnect tries the next
//     token: async ({ reason }) => (await fetch('/switchboard-token')).text(),
//   });
//   client.on('signal', ({ type, from, fromDevice, payload }) => ...);
//   await client.connect();
//   await client.send('bob', 'offer', { sdp });   // resolves on ack; rejects: peer_offline, timeout, closed, ...
//   await client.join('room-1');                  // + member_joined / member_left / room_message events
//   await client.watch(['bob']);                  // + presence events
//
// Reconnects follow the close codes (SPEC §3.8): 1012 draining → soon after
// the server's hint, to the next URL; 1008 / 4001 → with a new token from the
// provider; 4009 replaced → never (event `closed`); 4010 and the rest →
// jittered exponential backoff, reset once a connection stayed up. A loss
// the app did not ask for is followed by a resume of the session (SPEC §3.9:
// `?resume=`; `resumed: true` gives back rooms, watches and missed messages);
// when the server starts a new session instead, the client rejoins its rooms,
// rewatches its users and emits `resume_failed`. docs/client-sdk.md has the
// details.
export { SwitchboardClient, CLIENT_HEARTBEAT_TIMEOUT, type ClientState } from './client';
export type { ClientOptions } from './options';
export { SwitchboardError, type ClientErrorCode } from './errors';
export { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from './backoff';
export { closeAction, type CloseAction } from './close-policy';
export { tokenExpiry, type TokenProvider, type TokenRequest } from './token';
export type { SocketLike, WebSocketConstructor } from './platform';
export type * from './events';
