import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { rawMember } from '../../src/protocol/json-member';

/** JSON text of `value` with random spacing around every structural character. */
const spaced = (value: unknown, spaces: string[]): string => {
  let i = 0;
  const pad = () => spaces[i++ % spaces.length] ?? '';
  let inString = false;
  let out = '';
  const text = JSON.stringify(value);
  for (let at = 0; at < text.length; at++) {
    const c = text[at] ?? '';
    if (c === '"' && !(inString && isEscaped(text, at))) inString = !inString;
    out += !inString && '{}[],:'.includes(c) ? pad() + c + pad() : c;
  }
  return pad() + out + pad();
};
const isEscaped = (text: string, at: number): boolean => {
  let n = 0;
  while (text[at - 1 - n] === '\\') n++;
  return n % 2 === 1;
};

test('finds the exact text of any member of any object, however it is spaced', () => {
  const spacing = fc.array(fc.constantFrom('', ' ', '\n', '\t ', '\r\n  '), { minLength: 1, maxLength: 8 });
  const object = fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 4 }), { minKeys: 1, maxKeys: 6 });
  fc.assert(
    fc.property(object, spacing, (value, spaces) => {
      const text = spaced(value, spaces);
      for (const key of Object.keys(value)) {
        const raw = rawMember(text, key);
        assert.ok(raw !== undefined && text.includes(raw), `${JSON.stringify(key)} not found in ${text}`);
        assert.deepEqual(JSON.parse(raw), JSON.parse(JSON.stringify(value[key])));
      }
    }),
    { numRuns: 3000 },
  );
});

test('strings full of quotes, backslashes and brackets are skipped whole', () => {
  const text = JSON.stringify({ a: 'x"}\\', b: { c: ['"]', '\\\\"'], d: '{' }, payload: 'ok"\\' });
  assert.equal(rawMember(text, 'payload'), JSON.stringify('ok"\\'));
  assert.equal(rawMember(text, 'b'), JSON.stringify({ c: ['"]', '\\\\"'], d: '{' }));
});

test('the last duplicate wins; absent keys and non-objects give undefined', () => {
  assert.equal(rawMember('{"k":1,"k":[2]}', 'k'), '[2]');
  assert.equal(rawMember('{"k":1}', 'payload'), undefined);
  assert.equal(rawMember('[1,2]', 'k'), undefined);
  assert.equal(rawMember('{}', 'k'), undefined);
  assert.equal(rawMember('{"k":-1.5e3 }', 'k'), '-1.5e3');
  assert.equal(rawMember('{"k":true,"j":null}', 'j'), 'null');
});
