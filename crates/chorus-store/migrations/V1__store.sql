-- Chorus store, schema 1: what SledStore keeps in its trees, one table per tree.
-- Every `value` is framed as in sled ([crc32 LE][payload]) and verified on read.
-- Ids sort bytewise (COLLATE "C") so listings order as the embedded store does.

CREATE TABLE chorus_meta (
    app   text COLLATE "C" NOT NULL,
    doc   text COLLATE "C" NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (app, doc)
);

CREATE TABLE chorus_snapshots (
    app      text COLLATE "C" NOT NULL,
    doc      text COLLATE "C" NOT NULL,
    -- The last log seq the snapshot covers (also inside the framed value).
    upto_seq bigint NOT NULL,
    value    bytea NOT NULL,
    PRIMARY KEY (app, doc)
);

CREATE TABLE chorus_log (
    app   text COLLATE "C" NOT NULL,
    doc   text COLLATE "C" NOT NULL,
    seq   bigint NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (app, doc, seq)
);

CREATE TABLE chorus_history (
    app   text COLLATE "C" NOT NULL,
    doc   text COLLATE "C" NOT NULL,
    point bigint NOT NULL,
    -- The framed HistoryEntry JSON, apart from the state so listings stay small.
    entry bytea NOT NULL,
    state bytea NOT NULL,
    PRIMARY KEY (app, doc, point)
);

-- Ids come from the sequence when an event is pushed; rows appear at the next
-- commit, so ids are increasing but not contiguous.
CREATE TABLE chorus_outbox (
    id    bigint PRIMARY KEY,
    value bytea NOT NULL
);
CREATE SEQUENCE chorus_outbox_id;
