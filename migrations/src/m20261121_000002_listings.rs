//! Listings: what gets booked (a workshop session, a trip, a room-night), with the seat
//! count that bookings draw from, and the indexes behind the public list's filters,
//! orderings and `search`.

use sea_orm_migration::prelude::DeriveMigrationName;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE listings (
    id          uuid        PRIMARY KEY,
    provider_id uuid        NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    title       text        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description text        NOT NULL DEFAULT '',
    starts_at   timestamptz NOT NULL,
    capacity    integer     NOT NULL CHECK (capacity > 0),
    seats_left  integer     NOT NULL,
    price_cents bigint      NOT NULL CHECK (price_cents >= 0),
    currency    text        NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    status      text        NOT NULL DEFAULT 'published'
                            CHECK (status IN ('published', 'cancelled')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- The last line of defence against overbooking, whatever the application does.
    CONSTRAINT listings_seats_left_check CHECK (seats_left >= 0 AND seats_left <= capacity)
);
CREATE INDEX listings_starts_at_id_idx ON listings (starts_at, id);
CREATE INDEX listings_provider_id_starts_at_idx ON listings (provider_id, starts_at);
CREATE INDEX listings_price_cents_id_idx ON listings (price_cents, id);
-- `search` is ILIKE '%term%' on title and description, which only trigram indexes serve.
-- pg_trgm ships with PostgreSQL's contrib (Debian's postgresql-15, the official images,
-- managed services) and is trusted, so the database owner may create it; where it is
-- missing, the list still works, by sequential scan.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX listings_title_trgm_idx ON listings USING gin (title gin_trgm_ops);
        CREATE INDEX listings_description_trgm_idx ON listings
            USING gin (description gin_trgm_ops);
    ELSE
        RAISE NOTICE 'pg_trgm is not available: listings search runs without an index';
    END IF;
END
$$;
CREATE TRIGGER listings_touch_updated_at BEFORE UPDATE ON listings
    FOR EACH ROW EXECUTE FUNCTION orderly_touch_updated_at();
"#;

// The pg_trgm extension stays: it may have been installed before this migration, and
// `IF NOT EXISTS` makes the next `up` fine either way.
const DOWN: &str = r#"
DROP TABLE listings;
"#;

raw_sql_migration!();
