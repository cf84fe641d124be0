// The demo page (public/demo.html, GET / with DEMO=true) in a real browser
// against a real node: two tabs connect, see each other's presence, open a
// WebRTC data channel through Switchboard's signaling, chat over it and hang
// up; a second connection of the same device closes the page with 4009 and
// the page does not reconnect.
//
// Drives the Debian chromium at /usr/bin/chromium with playwright-core (which
// never downloads a browser); scripts/ensure-test-deps.sh (npm pretest)
// installs it or prints the install command.
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import type { Browser } from 'playwright-core';
import { BROWSER_TEST_TIMEOUT_MS as TEST_TIMEOUT_MS, callAndOpen, contains, holds, launchBrowser, openTab as openPage, setPeer, shows, textOf, type Tab } from '../helpers/browser';
import { startTestNode, type TestNode } from '../helpers/node';
import { TestClient } from '../helpers/ws-client';

/** Opens the demo page of `node` with `?token=`. */
async function openTab(t: TestContext, browser: Browser, node: TestNode, name: string, token: string): Promise<Tab> {
  const tab = await openPage(t, browser, `http://127.0.0.1:${node.port}/?token=${encodeURIComponent(token)}`, name);
  assert.equal(await tab.page.inputValue('#token'), token, 'the token field is prefilled from ?token=');
  return tab;
}

/** Clicks Connect and waits for the welcome to show who we are. */
async function connect(tab: Tab, node: TestNode, user: string, device: string): Promise<void> {
  await tab.page.click('#connect');
  await shows(tab.page, '#status', 'connected');
  await shows(tab.page, '#me', `${user} / ${device} @ ${node.config.nodeId}`);
  await contains(tab.page, '#log', `welcome: user ${user}, device ${device}, node ${node.config.nodeId}`);
}

/** Audit records of connections replaced by a newer one of the same (user, device). */
function takeovers(node: TestNode, user: string): Record<string, unknown>[] {
  return node.logs.filter((r) => r.event === 'takeover' && r.user === user);
}

describe('demo page in a browser', () => {
  let browser: Browser;

  before(async () => {
    browser = await launchBrowser();
  });
  after(() => browser?.close());

  test('two tabs: presence, a call, chat both ways over the data channel, hang up', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const node = await startTestNode(t, { DEMO: 'true' });
    const aliceToken = node.token({ sub: 'alice', device_id: 'alice-laptop' });
    const bobToken = node.token({ sub: 'bob', device_id: 'bob-laptop' });

    const a = await openTab(t, browser, node, 'alice', aliceToken);
    await connect(a, node, 'alice', 'alice-laptop');
    assert.equal(await a.page.isDisabled('#call'), false, 'Call is enabled once connected');
    assert.equal(await a.page.isDisabled('#chat-send'), true, 'no chat before a data channel');

    // Presence of a user who is not connected yet, then a call to them.
    await setPeer(a.page, 'bob');
    await shows(a.page, '#peer-presence', 'offline');
    await a.page.click('#call');
    await contains(a.page, '#log', 'error peer_offline');
    await contains(a.page, '#log', 'call ended: peer is offline');
    await shows(a.page, '#channel-state', 'closed');

    const b = await openTab(t, browser, node, 'bob', bobToken);
    await connect(b, node, 'bob', 'bob-laptop');
    await shows(a.page, '#peer-presence', 'online');
    await contains(a.page, '#log', 'presence: bob is online');

    // The call: offer/answer/candidates go through the node; the channel is peer-to-peer.
    await callAndOpen(a, b, 'alice/alice-laptop', 'bob/bob-laptop');
    assert.equal(await b.page.inputValue('#peer'), 'alice', "the callee's peer field is filled from the offer");
    assert.equal(await a.page.isDisabled('#hangup'), false);

    // Chat both ways (button and Enter key).
    await a.page.fill('#chat-input', 'hello from alice');
    await a.page.click('#chat-send');
    await contains(b.page, '#chat-log', 'alice: hello from alice');
    await contains(a.page, '#chat-log', 'me: hello from alice');
    await b.page.fill('#chat-input', 'hi back from bob');
    await b.page.press('#chat-input', 'Enter');
    await contains(a.page, '#chat-log', 'bob: hi back from bob');

    // Received HTML is shown as text, never parsed.
    const evil = '<img src=x onerror="window.__xss=1"><b id="bold">bold</b>';
    await a.page.fill('#chat-input', evil);
    await a.page.click('#chat-send');
    await contains(b.page, '#chat-log', `alice: ${evil}`);
    await contains(a.page, '#chat-log', `me: ${evil}`);
    for (const tab of [a, b]) {
      assert.equal(await tab.page.locator('#chat-log img, #chat-log b').count(), 0, 'no element was created from chat text');
      assert.equal(await tab.page.evaluate<unknown>('typeof window.__xss'), 'undefined', 'no script ran from chat text');
    }

    // Hang up: a bye through the node; both sides close.
    await a.page.click('#hangup');
    await shows(a.page, '#channel-state', 'closed');
    await shows(b.page, '#channel-state', 'closed');
    await contains(b.page, '#log', 'bye from alice');
    await contains(b.page, '#log', 'call ended: remote hung up');
    for (const tab of [a, b]) {
      assert.equal(await tab.page.isDisabled('#chat-send'), true, 'chat is off after hang-up');
      assert.equal(await tab.page.isDisabled('#hangup'), true, 'nothing left to hang up');
      assert.equal(await textOf(tab.page, '#status'), 'connected', 'signaling stays connected after a hang-up');
    }

    assert.deepEqual([...a.errors, ...b.errors], [], 'no page errors');
  });

  test('a second connection of the same device closes the page with 4009 replaced; the page does not reconnect', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const node = await startTestNode(t, { DEMO: 'true' });
    const bobToken = node.token({ sub: 'bob', device_id: 'bob-laptop' });

    const a = await openTab(t, browser, node, 'alice', node.token({ sub: 'alice', device_id: 'alice-laptop' }));
    await connect(a, node, 'alice', 'alice-laptop');
    await setPeer(a.page, 'bob');
    await shows(a.page, '#peer-presence', 'offline');

    const b = await openTab(t, browser, node, 'bob', bobToken);
    await connect(b, node, 'bob', 'bob-laptop');
    await shows(a.page, '#peer-presence', 'online');

    // The same token, so the same (user, device) pair: the node closes the page's socket.
    const replacement = await TestClient.welcomed(node.port, bobToken);
    t.after(() => replacement.close());
    assert.equal(replacement.welcome.device, 'bob-laptop');
    await shows(b.page, '#status', 'closed 4009 replaced');
    await contains(b.page, '#log', 'socket closed: 4009 replaced');
    await contains(b.page, '#log', 'not reconnecting');
    assert.equal(takeovers(node, 'bob').length, 1, 'the node replaced one connection');
    assert.equal(await b.page.isDisabled('#call'), true, 'no calls without a connection');

    // Had the page reconnected (its first retry would come after ~1 s), it would
    // in turn have replaced the test client with another 4009.
    await holds(async () => {
      assert.equal(await textOf(b.page, '#status'), 'closed 4009 replaced');
      assert.equal(replacement.closed, undefined, 'the replacement connection stays open');
      assert.equal(takeovers(node, 'bob').length, 1, 'no further takeover');
      assert.ok(!(await textOf(b.page, '#log')).includes('reconnecting in'), 'the page schedules no reconnect');
    }, 3_000);

    // Bob stays online through the replacement; once it goes, nothing of bob is left.
    assert.equal(await textOf(a.page, '#peer-presence'), 'online');
    replacement.close();
    await shows(a.page, '#peer-presence', 'offline');
    await contains(a.page, '#log', 'presence: bob is offline');

    assert.deepEqual([...a.errors, ...b.errors], [], 'no page errors');
  });
});
