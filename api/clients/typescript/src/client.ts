// Typed clients for the API: one per signed-in user, each sending its bearer token.

import createClient from "openapi-fetch";

import type { paths } from "./api.js";

export type Api = ReturnType<typeof createClient<paths>>;

/** A client for `baseUrl`, signed in when `token` is given. */
export function api(baseUrl: string, token?: string): Api {
  const headers: Record<string, string> = {};
  if (token !== undefined) {
    headers["Authorization"] = `Bearer ${token}`;
  }
  return createClient<paths>({ baseUrl, headers });
}
