-- Chorus store, schema 4: webhook events whose delivery was given up (too old, no
-- target any more, unreadable), kept until the host acknowledges them through the
-- host API. An event moves here from chorus_outbox with its id, in one statement.
CREATE TABLE chorus_dead_letters (
    id     int8 PRIMARY KEY,
    app    text COLLATE "C" NOT NULL,
    value  bytea NOT NULL,
    reason text NOT NULL,
    at_ms  int8 NOT NULL
);
CREATE INDEX chorus_dead_letters_app ON chorus_dead_letters (app, id);
