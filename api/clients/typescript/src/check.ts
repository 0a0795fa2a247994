// Assertions over openapi-fetch results: a step either gets the documented answer or stops
// the program with what it got instead.

import type { components } from "./api.js";

export type Problem = components["schemas"]["Problem"];

/** What openapi-fetch answers: data on success, the typed error body otherwise. */
type Result<D, E> =
  | { data: D; error?: never; response: Response }
  | { data?: never; error: E; response: Response };

/** A step that did not get the answer it expected. */
export class Failure extends Error {}

export function check(condition: boolean, what: string): asserts condition {
  if (!condition) {
    throw new Failure(what);
  }
}

/** The body of a successful answer with `status`. */
export function expectOk<D, E>(result: Result<D, E>, status: number, what: string): NonNullable<D> {
  const got = result.response.status;
  const data = result.data;
  if (data == null || got !== status) {
    throw new Failure(`${what}: expected ${status}, got ${got}: ${JSON.stringify(result.error)}`);
  }
  return data;
}

/**
 * The problem body of an error answer with `status` and `code`; `code` must be one of the
 * codes the document lists for this operation's errors.
 */
export function expectProblem<D, E extends Problem>(
  result: Result<D, E>,
  status: number,
  code: E["code"],
  what: string,
): E {
  const got = result.response.status;
  if (result.error === undefined) {
    throw new Failure(`${what}: expected ${status} ${code}, got ${got} with ${JSON.stringify(result.data)}`);
  }
  const problem: E = result.error;
  const contentType = result.response.headers.get("content-type") ?? "";
  check(
    got === status && problem.status === status && problem.code === code,
    `${what}: expected ${status} ${code}, got ${got}: ${JSON.stringify(problem)}`,
  );
  check(
    contentType.startsWith("application/problem+json"),
    `${what}: a problem is application/problem+json, not ${contentType}`,
  );
  check(problem.detail.length > 0, `${what}: the problem has no detail`);
  return problem;
}

/** Prints one step that passed. */
export function passed(what: string): void {
  console.log(`ok    ${what}`);
}
