import { expect } from "vitest";

/** The message of the error `fn` throws, checking its class; fails the test if it does not throw. */
export function messageOf(fn: () => unknown, errorClass: new (...args: never[]) => Error): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(errorClass);
    return (err as Error).message;
  }
  throw new Error(`expected a ${errorClass.name}`);
}
