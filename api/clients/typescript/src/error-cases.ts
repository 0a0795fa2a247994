// The answers a frontend must handle besides success: 401 and 422 as problem JSON whose
// `code` and `errors` are typed.

import { check, expectProblem, passed } from "./check.js";
import { api } from "./client.js";
import type { Target } from "./flow.js";

export async function errorCases(target: Target): Promise<void> {
  const anyone = api(target.baseUrl);

  const unsigned = await anyone.GET("/api/v1/me");
  expectProblem(unsigned, 401, "not_authenticated", "/me without a token");
  check(unsigned.response.headers.get("WWW-Authenticate") === "Bearer", "a 401 challenges with Bearer");
  expectProblem(await api(target.baseUrl, "not-a-jwt").GET("/api/v1/me"), 401, "invalid_token", "/me with a bad token");
  expectProblem(
    await anyone.POST("/api/v1/auth/login", {
      body: { email: "nobody@typescript-client.example", password: "wrong password" },
    }),
    401,
    "invalid_credentials",
    "a wrong password",
  );

  // A refresh token works once: showing it again ends the whole session.
  const email = `errors-${Date.now()}@typescript-client.example`;
  const password = "correct horse battery";
  const registered = await anyone.POST("/api/v1/auth/register", { body: { email, password, name: "E" } });
  check(registered.data !== undefined, "register a customer for the error cases");
  const rotated = await anyone.POST("/api/v1/auth/refresh", { body: { refresh: registered.data.refresh } });
  check(rotated.data !== undefined, "refresh once");
  expectProblem(
    await anyone.POST("/api/v1/auth/refresh", { body: { refresh: registered.data.refresh } }),
    401,
    "token_reused",
    "a refresh token used twice",
  );
  passed("401 without a token, with a bad token, with a wrong password, with a reused refresh token");

  const weak = expectProblem(
    await anyone.POST("/api/v1/auth/register", {
      body: { email: "weak@typescript-client.example", password: "short", name: "Weak" },
    }),
    422,
    "validation_failed",
    "a short password",
  );
  check(weak.errors?.some((e) => e.field === "password") === true, `422 names the field: ${JSON.stringify(weak)}`);

  const customer = await anyone.POST("/api/v1/auth/login", { body: { email, password } });
  check(customer.data !== undefined, "log in again after the session was revoked");
  const zero = expectProblem(
    await api(target.baseUrl, customer.data.access).POST("/api/v1/bookings", {
      body: { listing_id: "00000000-0000-0000-0000-000000000000", quantity: 0 },
    }),
    422,
    "validation_failed",
    "booking zero seats",
  );
  check(zero.errors?.some((e) => e.field === "quantity") === true, `422 names quantity: ${JSON.stringify(zero)}`);
  passed("422 validation_failed names the fields at fault");
}
