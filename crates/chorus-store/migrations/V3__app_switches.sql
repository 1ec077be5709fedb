-- Chorus store, schema 3: the admin API's app switches (the kill switch), kept
-- across restarts and read by every node of a cluster, including one that joins
-- later. One row per app an operator switched; the configuration decides for the
-- others.
CREATE TABLE chorus_app_switches (
    app     text COLLATE "C" PRIMARY KEY,
    enabled boolean NOT NULL,
    at      timestamptz NOT NULL
);
