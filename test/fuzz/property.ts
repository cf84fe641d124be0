// One fuzz property: a name, an arbitrary and a predicate that throws when the
// contract is broken. The suite (*.test.ts here) runs each a few hundred times;
// `npm run fuzz` (run.ts) runs the same ones a million times in all.
//
// Every predicate also checks that nothing was added to Object.prototype or
// Array.prototype: a decoder that assigns a peer's `__proto__` member into a
// plain object would show up here, whatever it returned.
import assert from 'node:assert/strict';
import fc from 'fast-check';

export interface FuzzParams {
  numRuns: number;
  seed?: number;
  path?: string;
}

export interface FuzzProperty {
  name: string;
  check(params: FuzzParams): fc.RunDetails<unknown>;
}

const objectMembers = Object.getOwnPropertyNames(Object.prototype).length;
const arrayMembers = Object.getOwnPropertyNames(Array.prototype).length;

export function assertNoPollution(): void {
  assert.equal(Object.getOwnPropertyNames(Object.prototype).length, objectMembers, 'Object.prototype gained a member');
  assert.equal(Object.getOwnPropertyNames(Array.prototype).length, arrayMembers, 'Array.prototype gained a member');
  assert.equal(Object.getPrototypeOf({}), Object.prototype);
  assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype.polluted is set');
}

export function fuzzProperty<T>(name: string, arbitrary: fc.Arbitrary<T>, predicate: (value: T) => void): FuzzProperty {
  const property = fc.property(arbitrary, (value) => {
    predicate(value);
    assertNoPollution();
  });
  return {
    name,
    check: (params) => {
      const options: fc.Parameters<[T]> = { numRuns: params.numRuns };
      if (params.seed !== undefined) options.seed = params.seed;
      if (params.path !== undefined) options.path = params.path;
      return fc.check(property, options) as fc.RunDetails<unknown>;
    },
  };
}

/** JSON.parse that says undefined instead of throwing. */
export function parsed(text: string): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(text) as unknown };
  } catch {
    return undefined;
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What a value reads as once it has crossed the wire as JSON (-0 becomes 0, undefined members vanish). */
export function viaJson(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

/**
 * assert.deepStrictEqual for JSON values of any depth: the assert module recurses, and inputs here
 * nest 20,000 deep. Own enumerable members, prototypes ignored, numbers by Object.is.
 */
export function assertSameJson(actual: unknown, expected: unknown): void {
  const stack: [unknown, unknown, string][] = [[actual, expected, '$']];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [a, b, at] = top;
    if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) {
      assert.ok(Object.is(a, b), `${at}: ${String(a).slice(0, 80)} !== ${String(b).slice(0, 80)}`);
      continue;
    }
    assert.equal(Array.isArray(a), Array.isArray(b), `${at}: array and object`);
    const keysA = Object.keys(a);
    const keysB = Object.keys(b);
    assert.deepEqual([...keysA].sort(), [...keysB].sort(), `${at}: other members`);
    for (const key of keysA) stack.push([(a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], `${at}.${key}`]);
  }
}

/** Whether `text` is padded standard base64 that decodes to `bytes` and nothing else could. */
export function isCanonicalBase64(text: unknown, bytes: Buffer): boolean {
  return typeof text === 'string' && bytes.toString('base64') === text;
}
