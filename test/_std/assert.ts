/**
 * A small stand-in for `jsr:@std/assert`, built on `node:assert/strict`.
 *
 * JSR is unreachable from our CI machines, so deno.json maps `@std/assert` to
 * this file. It offers the names (and argument order) of the std module that
 * our tests use; switching back is one line in deno.json.
 *
 * @module
 */
import assert from "node:assert/strict";

/** Error thrown by every assertion here, like std's `AssertionError`. */
export const AssertionError: typeof assert.AssertionError = assert.AssertionError;

/** Asserts that `expr` is truthy. */
export function assert_(expr: unknown, msg?: string): asserts expr {
  assert.ok(expr, msg);
}
export { assert_ as assert };

/** Deep, strict equality (structural for objects, arrays, typed arrays, Maps, Sets). */
export function assertEquals<T>(actual: unknown, expected: T, msg?: string): asserts actual is T {
  assert.deepStrictEqual(actual, expected, msg);
}

/** The negation of {@linkcode assertEquals}. */
export function assertNotEquals(actual: unknown, expected: unknown, msg?: string): void {
  assert.notDeepStrictEqual(actual, expected, msg);
}

/** `Object.is` equality. */
export function assertStrictEquals<T>(
  actual: unknown,
  expected: T,
  msg?: string,
): asserts actual is T {
  assert.strictEqual(actual, expected, msg);
}

/** Asserts that `actual` is neither `null` nor `undefined`. */
export function assertExists<T>(actual: T, msg?: string): asserts actual is NonNullable<T> {
  if (actual === null || actual === undefined) {
    throw new AssertionError({ message: msg ?? `expected a value, got ${actual}` });
  }
}

/** Asserts that `actual` is `false`-y. */
export function assertFalse(expr: unknown, msg?: string): void {
  assert.ok(!expr, msg ?? `expected a falsy value, got ${String(expr)}`);
}

/** Asserts that `actual` contains `expected` (strings: substring; arrays: an element). */
export function assertStringIncludes(actual: string, expected: string, msg?: string): void {
  if (!actual.includes(expected)) {
    throw new AssertionError({
      message: msg ?? `expected ${JSON.stringify(actual)} to include ${JSON.stringify(expected)}`,
    });
  }
}

/** Asserts that `actual` matches the regular expression. */
export function assertMatch(actual: string, expected: RegExp, msg?: string): void {
  assert.match(actual, expected, msg);
}

/** Asserts that an array includes every value in `expected` (deep equality). */
export function assertArrayIncludes<T>(actual: ArrayLike<T>, expected: ArrayLike<T>, msg?: string) {
  const items = Array.from(actual);
  for (const want of Array.from(expected)) {
    if (!items.some((item) => isDeepEqual(item, want))) {
      throw new AssertionError({
        message: msg ?? `expected array to include ${JSON.stringify(want)}`,
      });
    }
  }
}

/** Asserts `actual < expected`. */
export function assertLess<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual < expected)) {
    throw new AssertionError({ message: msg ?? `expected ${actual} < ${expected}` });
  }
}

/** Asserts `actual <= expected`. */
export function assertLessOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual <= expected)) {
    throw new AssertionError({ message: msg ?? `expected ${actual} <= ${expected}` });
  }
}

/** Asserts `actual > expected`. */
export function assertGreater<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual > expected)) {
    throw new AssertionError({ message: msg ?? `expected ${actual} > ${expected}` });
  }
}

/** Asserts `actual >= expected`. */
export function assertGreaterOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual >= expected)) {
    throw new AssertionError({ message: msg ?? `expected ${actual} >= ${expected}` });
  }
}

/** Asserts that `|actual - expected| <= tolerance` (default 1e-7). */
export function assertAlmostEquals(
  actual: number,
  expected: number,
  tolerance = 1e-7,
  msg?: string,
): void {
  if (!(Math.abs(actual - expected) <= tolerance)) {
    throw new AssertionError({
      message: msg ?? `expected ${actual} to be within ${tolerance} of ${expected}`,
    });
  }
}

/** Asserts that `obj` is an instance of `type`. */
export function assertInstanceOf<T extends abstract new (...args: never[]) => unknown>(
  actual: unknown,
  expectedType: T,
  msg?: string,
): asserts actual is InstanceType<T> {
  if (!(actual instanceof expectedType)) {
    throw new AssertionError({
      message: msg ?? `expected an instance of ${expectedType.name}`,
    });
  }
}

/** Always fails. */
export function fail(msg?: string): never {
  throw new AssertionError({ message: msg ?? "Failed assertion." });
}

/** Fails as "unreachable" when called. */
export function unreachable(msg?: string): never {
  throw new AssertionError({ message: msg ?? "unreachable" });
}

type ErrorClass<E extends Error> = abstract new (...args: never[]) => E;

function checkError<E extends Error>(
  error: unknown,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
): E {
  if (ErrorClass && !(error instanceof ErrorClass)) {
    throw new AssertionError({
      message: `expected error to be an instance of ${ErrorClass.name}, got ${String(error)}`,
    });
  }
  if (msgIncludes !== undefined) {
    const message = error instanceof Error ? error.message : String(error);
    if (!message.includes(msgIncludes)) {
      throw new AssertionError({
        message: `expected error message ${JSON.stringify(message)} to include ${
          JSON.stringify(msgIncludes)
        }`,
      });
    }
  }
  return error as E;
}

/** Asserts that `fn` throws, optionally of class `ErrorClass` with a message including `msgIncludes`; returns the error. */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
): E {
  try {
    fn();
  } catch (error) {
    return checkError(error, ErrorClass, msgIncludes);
  }
  throw new AssertionError({ message: "expected function to throw" });
}

/** Asserts that the promise returned by `fn` rejects; returns the error. */
export async function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    return checkError(error, ErrorClass, msgIncludes);
  }
  throw new AssertionError({ message: "expected promise to reject" });
}

function isDeepEqual(a: unknown, b: unknown): boolean {
  try {
    assert.deepStrictEqual(a, b);
    return true;
  } catch {
    return false;
  }
}
