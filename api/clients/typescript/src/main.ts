// Drives Orderly's API through the generated types: `node .local/dist/main.js` with
// ORDERLY_API_BASE, ORDERLY_ADMIN_EMAIL and ORDERLY_ADMIN_PASSWORD set. Exits 1 at the
// first answer that is not the documented one.

import { errorCases } from "./error-cases.js";
import { bookingFlow, type Target } from "./flow.js";

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(`${name} is not set`);
  }
  return value;
}

async function main(): Promise<void> {
  const target: Target = {
    baseUrl: required("ORDERLY_API_BASE"),
    adminEmail: required("ORDERLY_ADMIN_EMAIL"),
    adminPassword: required("ORDERLY_ADMIN_PASSWORD"),
  };
  await bookingFlow(target);
  await errorCases(target);
  console.log("passed: the booking flow and its error cases, through the typed client");
}

main().catch((e: unknown) => {
  console.error(`FAILED: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
