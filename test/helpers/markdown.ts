// Reading the documentation's Markdown tables, for the tests that keep the
// docs in step with the code (README, docs/errors.md).
import assert from 'node:assert/strict';

/** Rows (header and rule excluded) of the first table after `heading` in `markdown`, cells trimmed. */
export function tableRows(markdown: string, heading: string): string[][] {
  const start = markdown.indexOf(heading);
  assert.notEqual(start, -1, `no "${heading}" in the document`);
  const lines = markdown.slice(start + heading.length).split('\n');
  const first = lines.findIndex((line) => line.startsWith('|'));
  assert.notEqual(first, -1, `no table after "${heading}"`);
  const table: string[] = [];
  for (const line of lines.slice(first)) {
    if (!line.startsWith('|')) break;
    table.push(line);
  }
  return table
    .slice(2)
    .map((line) => line.split(/(?<!\\)\|/).slice(1, -1).map((cell) => cell.trim()));
}

/** A cell without its backquotes: `` `bad_message` `` → bad_message. */
export const unquote = (cell: string) => cell.replace(/`/g, '');
