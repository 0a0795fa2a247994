// The booking flow a frontend drives: accounts, listings, a booking with an Idempotency-Key,
// its payment, its cancellation; and the errors a frontend must handle on the way.

import { randomUUID } from "node:crypto";

import type { components } from "./api.js";
import { check, expectOk, expectProblem, passed } from "./check.js";
import { api } from "./client.js";

type Session = components["schemas"]["Session"];
type Listing = components["schemas"]["ListingView"];
type Booking = components["schemas"]["BookingView"];
type BookingStatus = components["schemas"]["BookingStatus"];

/** Where the API listens, and the admin `orderly-api create-admin` made. */
export interface Target {
  baseUrl: string;
  adminEmail: string;
  adminPassword: string;
}

const DAY_MS = 24 * 3600 * 1000;
const PASSWORD = "correct horse battery staple";

function inDays(days: number): string {
  return new Date(Date.now() + days * DAY_MS).toISOString();
}

async function register(target: Target, role: "customer" | "provider", tag: string): Promise<Session> {
  const email = `${role}-${tag}@typescript-client.example`;
  const result = await api(target.baseUrl).POST("/api/v1/auth/register", {
    body: { email, password: PASSWORD, name: `Flow ${role}`, role },
  });
  const session = expectOk(result, 201, `register a ${role}`);
  check(session.user.role === role && session.user.email === email, `register: ${JSON.stringify(session.user)}`);
  return session;
}

async function waitForPayment(target: Target, token: string, id: string): Promise<Booking> {
  const settled: BookingStatus[] = ["confirmed", "paid"];
  const deadline = Date.now() + 30_000;
  for (;;) {
    const result = await api(target.baseUrl, token).GET("/api/v1/bookings/{id}", {
      params: { path: { id } },
    });
    const booking = expectOk(result, 200, "get the booking");
    if (settled.includes(booking.status)) {
      return booking;
    }
    check(Date.now() < deadline, `the booking is still ${booking.status} after 30 s`);
    await new Promise<void>((resolve) => setTimeout(resolve, 250));
  }
}

/** Runs the whole flow; throws a `Failure` at the first unexpected answer. */
export async function bookingFlow(target: Target): Promise<void> {
  const tag = randomUUID().slice(0, 8);
  const anyone = api(target.baseUrl);

  // Accounts: register, log in, refresh (which rotates the refresh token).
  const provider = await register(target, "provider", tag);
  const registered = await register(target, "customer", tag);
  passed("register a customer and a provider");
  const login = expectOk(
    await anyone.POST("/api/v1/auth/login", { body: { email: registered.user.email, password: PASSWORD } }),
    200,
    "log in",
  );
  check(login.user.id === registered.user.id, "login answers the same user");
  const refreshed = expectOk(
    await anyone.POST("/api/v1/auth/refresh", { body: { refresh: login.refresh } }),
    200,
    "refresh",
  );
  check(refreshed.refresh !== login.refresh, "refresh rotates the refresh token");
  const customer = api(target.baseUrl, refreshed.access);
  const me = expectOk(await customer.GET("/api/v1/me"), 200, "me");
  check(me.id === registered.user.id, "the refreshed access token is the customer's");
  passed("log in, refresh, /me with the new access token");

  // Listings: three of the provider's, found again with filters, ordering and pages.
  const seller = api(target.baseUrl, provider.access);
  const listings: Listing[] = [];
  for (const [days, price] of [[10, 1500], [20, 2500], [30, 3500]] satisfies [number, number][]) {
    const created = await seller.POST("/api/v1/listings", {
      body: {
        title: `Pottery ${tag} in ${days} days`,
        description: "Wheel throwing for beginners",
        starts_at: inDays(days),
        capacity: 3,
        price_cents: price,
        currency: "eur",
      },
    });
    listings.push(expectOk(created, 201, "create a listing"));
  }
  passed("create three listings");
  const firstPage = expectOk(
    await anyone.GET("/api/v1/listings", {
      params: { query: { search: tag, ordering: "-price_cents", page: 1, page_size: 2 } },
    }),
    200,
    "list listings, page 1",
  );
  check(firstPage.count === 3 && firstPage.results.length === 2, `page 1: ${JSON.stringify(firstPage)}`);
  check(firstPage.results[0]?.price_cents === 3500, "ordering=-price_cents puts the dearest first");
  check(typeof firstPage.next === "string" && firstPage.previous == null, "page 1 links to page 2 only");
  const secondPage = expectOk(
    await anyone.GET("/api/v1/listings", {
      params: { query: { search: tag, ordering: "-price_cents", page: 2, page_size: 2 } },
    }),
    200,
    "list listings, page 2",
  );
  check(secondPage.results.length === 1 && secondPage.results[0]?.price_cents === 1500, "page 2 holds the cheapest");
  check(secondPage.next == null && typeof secondPage.previous === "string", "page 2 links back only");
  const window = expectOk(
    await anyone.GET("/api/v1/listings", {
      params: {
        query: { search: tag, provider_id: provider.user.id, starts_after: inDays(15), starts_before: inDays(25) },
      },
    }),
    200,
    "list listings in a time window",
  );
  const listing = listings[1];
  check(listing !== undefined, "the middle listing exists");
  check(
    window.count === 1 && window.results[0]?.id === listing.id,
    `starts_after/starts_before/provider_id: ${JSON.stringify(window.results.map((l) => l.title))}`,
  );
  passed("list listings with search, ordering, time window, provider and pages");

  // A booking, sent twice with one Idempotency-Key: the second answer is the first, replayed.
  const key = `flow-${tag}`;
  const book = () =>
    customer.POST("/api/v1/bookings", {
      params: { header: { "Idempotency-Key": key } },
      body: { listing_id: listing.id, quantity: 2 },
    });
  const first = await book();
  const booking = expectOk(first, 201, "book");
  check(first.response.headers.get("Idempotent-Replayed") === null, "a first answer is not a replay");
  check(booking.amount_cents === 5000 && booking.currency === "eur", `amount: ${JSON.stringify(booking)}`);
  const again = await book();
  const replayed = expectOk(again, 201, "book again with the same key");
  check(again.response.headers.get("Idempotent-Replayed") === "true", "the replay says Idempotent-Replayed: true");
  check(replayed.id === booking.id, "the replay is the same booking");
  expectProblem(
    await customer.POST("/api/v1/bookings", {
      params: { header: { "Idempotency-Key": key } },
      body: { listing_id: listing.id, quantity: 1 },
    }),
    422,
    "idempotency_key_reused",
    "the same key with another body",
  );
  passed("book with an Idempotency-Key and see the replay");

  const sold = await customer.POST("/api/v1/bookings", { body: { listing_id: listing.id, quantity: 2 } });
  // `code` is typed: a code the document does not list for this operation fails tsc.
  expectProblem(sold, 409, "sold_out", "booking more seats than are left");
  passed("409 sold_out when the seats are gone");

  const paid = await waitForPayment(target, refreshed.access, booking.id);
  check(paid.payment.provider === "simulated", `payment: ${JSON.stringify(paid.payment)}`);
  passed(`the booking's payment went through (${paid.status})`);

  const cancelled = expectOk(
    await customer.POST("/api/v1/bookings/{id}/cancel", { params: { path: { id: booking.id } } }),
    200,
    "cancel",
  );
  check(cancelled.status === "cancelled", `cancel answers ${cancelled.status}`);
  const seats = expectOk(
    await anyone.GET("/api/v1/listings/{id}", { params: { path: { id: listing.id } } }),
    200,
    "get the listing",
  );
  check(seats.seats_left === 3, `the cancelled seats are free again: ${seats.seats_left} left`);
  expectProblem(
    await customer.POST("/api/v1/bookings/{id}/cancel", { params: { path: { id: booking.id } } }),
    409,
    "conflict",
    "cancelling twice",
  );
  passed("cancel, and the seats come back");

  const admin = expectOk(
    await anyone.POST("/api/v1/auth/login", { body: { email: target.adminEmail, password: target.adminPassword } }),
    200,
    "log in as the admin",
  );
  check(admin.user.role === "admin", "the admin is an admin");
  const cancelledOnes = expectOk(
    await api(target.baseUrl, admin.access).GET("/api/v1/bookings", {
      params: { query: { status: "cancelled", page_size: 100 } },
    }),
    200,
    "the admin lists cancelled bookings",
  );
  check(
    cancelledOnes.results.some((b) => b.id === booking.id) && cancelledOnes.results.every((b) => b.status === "cancelled"),
    "status=cancelled lists the cancelled booking and only cancelled ones",
  );
  passed("the admin sees it among the cancelled bookings");
}
