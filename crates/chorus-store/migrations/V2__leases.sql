-- Chorus store, schema 2: document ownership for cluster mode.
-- One row per owned document: which node holds it, its fencing token (from the
-- sequence, so a takeover always gets a larger one) and when the lease lapses.
-- Every time is the database server's clock (now()), so node clocks never matter.

CREATE TABLE chorus_leases (
    app        text COLLATE "C" NOT NULL,
    doc        text COLLATE "C" NOT NULL,
    node       text NOT NULL,
    token      bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (app, doc)
);
CREATE INDEX chorus_leases_node ON chorus_leases (node);
CREATE SEQUENCE chorus_lease_token;
