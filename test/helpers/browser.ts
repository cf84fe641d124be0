// Headless Chromium for the browser tests: the Debian chromium at
// /usr/bin/chromium driven by playwright-core (which never downloads a
// browser; scripts/ensure-test-deps.sh installs chromium), pages in their own
// contexts, and polling assertions on what a page shows.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { eventually } from './eventually';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** Generous: WebRTC setup in a loaded CI container can take seconds. Not a timing assertion. */
export const WAIT_MS = 30_000;
export const BROWSER_TEST_TIMEOUT_MS = 180_000;

export const launchBrowser = (): Promise<Browser> => chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 120_000 });

export interface Tab {
  readonly page: Page;
  /** Uncaught page exceptions and console errors, prefixed with the tab's name. */
  readonly errors: string[];
}

/** Opens `url` in a fresh browser context (own storage, own WebRTC stack), closed in teardown; asserts a 200. */
export async function openTab(t: TestContext, browser: Browser, url: string, name: string): Promise<Tab> {
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`${name}: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`${name} console: ${message.text()}`);
  });
  const response = await page.goto(url);
  assert.equal(response?.status(), 200, `GET ${url} serves the page`);
  return { page, errors };
}

/** Text of the first element matching `selector` ('' when it has none). */
export async function textOf(page: Page, selector: string): Promise<string> {
  return (await page.locator(selector).first().textContent()) ?? '';
}

/** Waits until `selector`'s text equals `expected`. */
export async function shows(page: Page, selector: string, expected: string, timeoutMs = WAIT_MS): Promise<void> {
  await eventually(
    async () => assert.equal(await textOf(page, selector), expected, `${selector} should show ${JSON.stringify(expected)}`),
    timeoutMs,
    50,
  );
}

/** Waits until `selector`'s text contains `expected`. */
export async function contains(page: Page, selector: string, expected: string, timeoutMs = WAIT_MS): Promise<void> {
  await eventually(
    async () => {
      const text = await textOf(page, selector);
      assert.ok(text.includes(expected), `${selector} should contain ${JSON.stringify(expected)}; it shows ${JSON.stringify(text.slice(-800))}`);
    },
    timeoutMs,
    50,
  );
}

/** Asserts `check` passes on every poll for `ms` (for "nothing happens" claims, which no event can signal). */
export async function holds(check: () => Promise<void>, ms: number, intervalMs = 100): Promise<void> {
  const end = Date.now() + ms;
  do {
    await check();
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  } while (Date.now() < end);
  await check();
}

/** Types the peer's user id into the demo page; it watches the peer on `change`. */
export async function setPeer(page: Page, user: string): Promise<void> {
  await page.fill('#peer', user);
  await page.dispatchEvent('#peer', 'change');
}

/**
 * On the demo page: `caller` presses Call and both pages reach an open data
 * channel; each log shows the other side of the exchange (`who` is
 * "user/device"), and the offer's ack.
 */
export async function callAndOpen(caller: Tab, callee: Tab, callerWho: string, calleeWho: string): Promise<void> {
  await caller.page.click('#call');
  await shows(caller.page, '#channel-state', 'open');
  await shows(callee.page, '#channel-state', 'open');
  await contains(caller.page, '#log', 'data channel open');
  await contains(callee.page, '#log', 'data channel open');
  await contains(caller.page, '#log', `answer from ${calleeWho}`);
  await contains(callee.page, '#log', `offer from ${callerWho}: answering`);
  await contains(caller.page, '#log', 'ack m'); // the offer's id came back acknowledged
}
