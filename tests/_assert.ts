/**
 * Minimal assertions (JSR's @std/assert is unreachable from our machines).
 *
 * @module
 */
import { AssertionError, deepStrictEqual } from "node:assert";

/** Asserts that `cond` is truthy. */
export function assert(cond: unknown, message = "Assertion failed"): asserts cond {
  if (!cond) throw new AssertionError({ message });
}

/** Rebuilds null-prototype objects (node:sqlite rows) as plain objects. */
function plain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object" && Object.getPrototypeOf(v) === null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

/** Asserts deep equality (Uint8Arrays compared by content; row objects as plain objects). */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  try {
    deepStrictEqual(plain(actual), plain(expected));
  } catch (e) {
    throw new AssertionError({
      message: `${message ? message + ": " : ""}${(e as Error).message}`,
    });
  }
}

/** Asserts that `text` contains `part`. */
export function assertIncludes(text: string, part: string, message?: string): void {
  if (!text.includes(part)) {
    throw new AssertionError({
      message: `${message ? message + ": " : ""}expected ${
        JSON.stringify(text.slice(0, 2000))
      } to include ${JSON.stringify(part)}`,
    });
  }
}

/** Asserts that `fn` rejects, optionally with an instance of `cls` and a message containing `includes`. */
export async function assertRejects(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  cls?: new (...args: any[]) => Error,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    if (cls && !(e instanceof cls)) {
      throw new AssertionError({
        message: `Expected ${cls.name}, got ${(e as Error)?.name}: ${(e as Error)?.message}`,
      });
    }
    if (includes && !(e as Error).message.includes(includes)) {
      throw new AssertionError({
        message: `Expected message to include "${includes}", got "${(e as Error).message}"`,
      });
    }
    return e as Error;
  }
  throw new AssertionError({ message: "Expected the promise to reject" });
}

/** Asserts that `fn` throws. */
export function assertThrows(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  cls?: new (...args: any[]) => Error,
  includes?: string,
): Error {
  try {
    fn();
  } catch (e) {
    if (cls && !(e instanceof cls)) {
      throw new AssertionError({
        message: `Expected ${cls.name}, got ${(e as Error)?.name}: ${(e as Error)?.message}`,
      });
    }
    if (includes && !(e as Error).message.includes(includes)) {
      throw new AssertionError({
        message: `Expected message to include "${includes}", got "${(e as Error).message}"`,
      });
    }
    return e as Error;
  }
  throw new AssertionError({ message: "Expected the function to throw" });
}
