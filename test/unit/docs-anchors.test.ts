// The documentation's links resolve: every `#anchor` link between README and
// docs/*.md names a heading (GitHub's slug) or an explicit <a id>, the alert
// runbook sections exist under the anchors the alert rules link to, and, when
// monitoring/prometheus/alerts.yml is present, every runbook annotation in it
// lands on a section of docs/operations.md.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = join(__dirname, '..', '..', '..');
const DOCS = ['README.md', 'docs/protocol.md', 'docs/errors.md', 'docs/operations.md'];
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

/** GitHub's heading slug: lowercase, punctuation dropped (hyphens and underscores kept), spaces to hyphens. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');

/** Every anchor a file offers: its headings' slugs (outside code blocks) and its explicit ids. */
function anchors(file: string): Set<string> {
  const found = new Set<string>();
  let fenced = false;
  for (const line of read(file).split('\n')) {
    if (line.trim().startsWith('```')) fenced = !fenced;
    else if (!fenced && /^#{1,6} /.test(line)) found.add(slug(line.replace(/^#+ /, '')));
    for (const [, id] of line.matchAll(/<a (?:id|name)="([^"]+)"/g)) found.add(id ?? '');
  }
  return found;
}

test('every #anchor link between README and docs/ resolves', () => {
  for (const file of DOCS) {
    const dir = file.includes('/') ? file.slice(0, file.lastIndexOf('/') + 1) : '';
    for (const [, target, anchor] of read(file).matchAll(/\]\(([^)#\s]*)#([^)\s]+)\)/g)) {
      if (target !== undefined && /^[a-z]+:/.test(target)) continue; // an external URL
      const linked = target === undefined || target === '' ? file : join(dir, target).replace(/\\/g, '/');
      if (!DOCS.includes(linked) && !existsSync(join(ROOT, linked))) assert.fail(`${file} links to missing ${linked}`);
      if (!linked.endsWith('.md') || !existsSync(join(ROOT, linked))) continue;
      assert.ok(anchors(linked).has(anchor ?? ''), `${file}: (${target}#${anchor}) names no heading in ${linked}`);
    }
  }
});

test('docs/operations.md has a runbook section for every alert, under the anchors the rules link to', () => {
  const offered = anchors('docs/operations.md');
  for (const alert of ['BusDown', 'NoReadyNodes', 'DeliveryP99High', 'RateLimitStorm', 'ConnectionSaturation', 'NodeMissing'])
    assert.ok(offered.has(`alert-switchboard${alert.toLowerCase()}`), `no "### Alert: Switchboard${alert}" section`);
  const rules = join(ROOT, 'monitoring', 'prometheus', 'alerts.yml');
  if (!existsSync(rules)) return;
  for (const [, anchor] of readFileSync(rules, 'utf8').matchAll(/runbook[a-z_]*:\s*["']?\S*docs\/operations\.md#([\w-]+)/g))
    assert.ok(offered.has(anchor ?? ''), `alerts.yml links to docs/operations.md#${anchor}, which is no section there`);
});
