//! Event types, the outbox record and the request body built from it.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::HooksError;

/// Keys of the request body that [`HookEvent::data`] may not set.
pub(crate) const RESERVED_KEYS: [&str; 5] = ["id", "type", "app", "doc", "at"];

/// Version of the outbox record format written by [`StoredEvent::encode`].
const RECORD_VERSION: u32 = 1;

/// What happened to a document. Serialized (and sent as `"type"`) in kebab case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// `"editing"`: the first editor joined the document.
    Editing,
    /// `"saved"`: a draft snapshot was written (the server throttles these).
    Saved,
    /// `"closed"`: every editor left and the save delay passed.
    Closed,
    /// `"external-change"`: the host changed the draft through the API.
    ExternalChange,
    /// `"published"`: the draft was published.
    Published,
    /// `"deleted"`: the host deleted the draft (its history and log went with it).
    /// The document's events still undelivered are dropped in its favour.
    Deleted,
    /// `"evicted"`: the draft was not used for its app's `evict_after_secs` and left
    /// the store; the event carries its final content.
    Evicted,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 7] = [
        EventKind::Editing,
        EventKind::Saved,
        EventKind::Closed,
        EventKind::ExternalChange,
        EventKind::Published,
        EventKind::Deleted,
        EventKind::Evicted,
    ];

    /// The wire name: the body's `"type"` and the `X-Chorus-Event-Type` header.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Editing => "editing",
            EventKind::Saved => "saved",
            EventKind::Closed => "closed",
            EventKind::ExternalChange => "external-change",
            EventKind::Published => "published",
            EventKind::Deleted => "deleted",
            EventKind::Evicted => "evicted",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event to deliver to an app's callback URL.
///
/// The constructors ([`HookEvent::saved`], …) fill `data` with the fields listed in
/// the crate documentation; [`HookEvent::new`] takes any JSON object.
#[derive(Clone, Debug, PartialEq)]
pub struct HookEvent {
    /// What happened.
    pub kind: EventKind,
    /// The app (tenant) whose callback URL receives the event.
    pub app: String,
    /// The document (content id) it happened to; events of one (app, doc) are
    /// delivered in the order they were enqueued.
    pub doc: String,
    /// When it happened, ms since the Unix epoch (sent as `"at"`).
    pub at_ms: u64,
    /// Kind-specific fields, merged into the request body. Must be a JSON object (or
    /// `null` for none) and must not use the keys `id`, `type`, `app`, `doc`, `at`.
    pub data: Value,
}

impl HookEvent {
    /// An event with arbitrary kind-specific `data` (a JSON object or `null`).
    pub fn new(
        kind: EventKind,
        app: impl Into<String>,
        doc: impl Into<String>,
        at_ms: u64,
        data: Value,
    ) -> Self {
        Self {
            kind,
            app: app.into(),
            doc: doc.into(),
            at_ms,
            data,
        }
    }

    /// `editing`: `users` are the ids of the editors connected so far.
    pub fn editing<S: Into<String>>(
        app: impl Into<String>,
        doc: impl Into<String>,
        at_ms: u64,
        users: impl IntoIterator<Item = S>,
    ) -> Self {
        let users: Vec<String> = users.into_iter().map(Into::into).collect();
        Self::new(
            EventKind::Editing,
            app,
            doc,
            at_ms,
            json!({ "users": users }),
        )
    }

    /// `saved`: the draft with version `etag` is durable.
    pub fn saved(
        app: impl Into<String>,
        doc: impl Into<String>,
        at_ms: u64,
        etag: impl Into<String>,
    ) -> Self {
        let etag: String = etag.into();
        Self::new(EventKind::Saved, app, doc, at_ms, json!({ "etag": etag }))
    }

    /// `closed`: the final draft (`title`, sanitized `html`), everyone who contributed
    /// to it and its `etag`.
    pub fn closed<S: Into<String>>(
        app: impl Into<String>,
        doc: impl Into<String>,
        at_ms: u64,
        title: impl Into<String>,
        html: impl Into<String>,
        contributors: impl IntoIterator<Item = S>,
        etag: impl Into<String>,
    ) -> Self {
        let (title, html, etag): (String, String, String) =
            (title.into(), html.into(), etag.into());
        let contributors: Vec<String> = contributors.into_iter().map(Into::into).collect();
        Self::new(
            EventKind::Closed,
            app,
            doc,
            at_ms,
            json!({ "title": title, "html": html, "contributors": contributors, "etag": etag }),
        )
    }

    /// A `closed` event saying whether the draft changed since the host last saw it
    /// (its last publish or external change): `changed`. A host that closes nothing
    /// it did not change can skip the draft.
    pub fn with_changed(mut self, changed: bool) -> Self {
        if let Value::Object(map) = &mut self.data {
            map.insert("changed".to_owned(), Value::Bool(changed));
        }
        self
    }

    /// `external-change`: the host replaced `fields` (e.g. `"title"`, `"body"`); the
    /// draft is now at `etag`.
    pub fn external_change<S: Into<String>>(
        app: impl Into<String>,
        doc: impl Into<String>,
        at_ms: u64,
        fields: impl IntoIterator<Item = S>,
        etag: impl Into<String>,
    ) -> Self {
        let fields: Vec<String> = fields.into_iter().map(Into::into).collect();
        let etag: String = etag.into();
        Self::new(
            EventKind::ExternalChange,
            app,
            doc,
            at_ms,
            json!({ "fields": fields, "etag": etag }),
        )
    }

    /// `published`: the draft at `etag` (`title`, sanitized `html`) was published at
    /// `published_at_ms` (ms since the Unix epoch, sent as `publishedAt`).
    pub fn published(
        app: impl Into<String>,
        doc: impl Into<String>,
        at_ms: u64,
        title: impl Into<String>,
        html: impl Into<String>,
        etag: impl Into<String>,
        published_at_ms: u64,
    ) -> Self {
        let (title, html, etag): (String, String, String) =
            (title.into(), html.into(), etag.into());
        Self::new(
            EventKind::Published,
            app,
            doc,
            at_ms,
            json!({ "title": title, "html": html, "etag": etag, "publishedAt": published_at_ms }),
        )
    }

    /// `deleted`: the draft, its history and log were deleted; `editors` sessions
    /// were closed by it.
    pub fn deleted(
        app: impl Into<String>,
        doc: impl Into<String>,
        at_ms: u64,
        editors: usize,
    ) -> Self {
        Self::new(
            EventKind::Deleted,
            app,
            doc,
            at_ms,
            json!({ "closedSessions": editors }),
        )
    }

    /// `evicted`: the draft left the store after `last_used_ms` (its last change or
    /// session); `title` and `html` (sanitized) are its final content, `etag` its
    /// version. Joins are refused until the host writes the content again.
    #[allow(clippy::too_many_arguments)]
    pub fn evicted(
        app: impl Into<String>,
        doc: impl Into<String>,
        at_ms: u64,
        title: impl Into<String>,
        html: impl Into<String>,
        etag: impl Into<String>,
        last_used_ms: u64,
    ) -> Self {
        let (title, html, etag): (String, String, String) =
            (title.into(), html.into(), etag.into());
        Self::new(
            EventKind::Evicted,
            app,
            doc,
            at_ms,
            json!({ "title": title, "html": html, "etag": etag, "lastUsedAt": last_used_ms }),
        )
    }

    /// The `data` as an object, refusing anything that would clash with the envelope.
    fn data_object(&self) -> Result<Map<String, Value>, HooksError> {
        let data = match &self.data {
            Value::Null => Map::new(),
            Value::Object(map) => map.clone(),
            other => {
                return Err(HooksError::InvalidEvent(format!(
                    "data must be a JSON object, not {}",
                    json_type(other)
                )))
            }
        };
        if let Some(key) = RESERVED_KEYS.iter().find(|k| data.contains_key(**k)) {
            return Err(HooksError::InvalidEvent(format!(
                "data must not set the reserved key {key:?}"
            )));
        }
        Ok(data)
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The outbox payload of an event (the app is the outbox record's own field).
///
/// JSON: `{"v":1,"type":…,"doc":…,"at":…,"queuedAt":…,"data":{…}}`. `queuedAt` (ms
/// since the epoch, taken at enqueue) is what `max_age` is measured from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredEvent {
    pub(crate) v: u32,
    #[serde(rename = "type")]
    pub(crate) kind: EventKind,
    pub(crate) doc: String,
    pub(crate) at: u64,
    #[serde(rename = "queuedAt")]
    pub(crate) queued_at_ms: u64,
    pub(crate) data: Map<String, Value>,
}

impl StoredEvent {
    /// Validate `event` and build its record.
    pub(crate) fn from_event(event: &HookEvent, queued_at_ms: u64) -> Result<Self, HooksError> {
        if event.app.is_empty() || event.doc.is_empty() {
            return Err(HooksError::InvalidEvent(
                "app and doc must not be empty".to_owned(),
            ));
        }
        Ok(Self {
            v: RECORD_VERSION,
            kind: event.kind,
            doc: event.doc.clone(),
            at: event.at_ms,
            queued_at_ms,
            data: event.data_object()?,
        })
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, HooksError> {
        serde_json::to_vec(self).map_err(|e| HooksError::InvalidEvent(e.to_string()))
    }

    /// Parse an outbox payload; `Err` describes why it is unusable.
    pub(crate) fn decode(payload: &[u8]) -> Result<Self, String> {
        let record: Self = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        if record.v != RECORD_VERSION {
            return Err(format!("unknown record version {}", record.v));
        }
        if let Some(key) = RESERVED_KEYS.iter().find(|k| record.data.contains_key(**k)) {
            return Err(format!("data sets the reserved key {key:?}"));
        }
        Ok(record)
    }

    /// The exact bytes POSTed for this event: the envelope, then the data fields.
    pub(crate) fn body(&self, event_id: &str, app: &str) -> Bytes {
        let mut body = Map::new();
        body.insert("id".to_owned(), Value::from(event_id));
        body.insert("type".to_owned(), Value::from(self.kind.as_str()));
        body.insert("app".to_owned(), Value::from(app));
        body.insert("doc".to_owned(), Value::from(self.doc.as_str()));
        body.insert("at".to_owned(), Value::from(self.at));
        for (key, value) in &self.data {
            body.insert(key.clone(), value.clone());
        }
        // Serializing a `Value` cannot fail (string keys, no non-finite floats).
        Bytes::from(serde_json::to_vec(&Value::Object(body)).unwrap_or_default())
    }
}

/// The event id of outbox record `outbox_id`: stable across redeliveries and restarts.
pub(crate) fn event_id(outbox_id: u64) -> String {
    format!("evt-{outbox_id}")
}

/// The outbox id of an event id (`"evt-<n>"`, as [`event_id`] writes it).
pub(crate) fn parse_event_id(event_id: &str) -> Option<u64> {
    let digits = event_id.strip_prefix("evt-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

/// A webhook event given up on, as the host API lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadEvent {
    /// The event id, as every attempt sent it (`"evt-<n>"`).
    pub id: String,
    /// Its type (`None` if the record could not be read).
    pub kind: Option<EventKind>,
    /// The document it is about (`None` if the record could not be read).
    pub doc: Option<String>,
    /// Why delivery was given up: `max-age: <last failure>`, `no-target`, or
    /// `unreadable: <why>`.
    pub reason: String,
    /// When it was given up (ms since the epoch).
    pub dead_at_ms: u64,
    /// The body every attempt sent (`None` if the record could not be read).
    pub body: Option<Value>,
}

impl DeadEvent {
    pub(crate) fn from_dead_letter(dead: chorus_store::DeadLetter) -> Self {
        let id = event_id(dead.id);
        let record = StoredEvent::decode(&dead.payload).ok();
        DeadEvent {
            kind: record.as_ref().map(|r| r.kind),
            doc: record.as_ref().map(|r| r.doc.clone()),
            body: record.and_then(|r| serde_json::from_slice(&r.body(&id, &dead.app)).ok()),
            id,
            reason: dead.reason,
            dead_at_ms: dead.at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_as_their_wire_names() {
        for kind in EventKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
        assert_eq!(EventKind::ExternalChange.as_str(), "external-change");
    }

    #[test]
    fn record_round_trips_and_body_merges_data_after_the_envelope() {
        let event = HookEvent::closed("app", "doc", 7, "T", "<p>x</p>", ["u1", "u2"], "e1");
        let record = StoredEvent::from_event(&event, 9).unwrap();
        let decoded = StoredEvent::decode(&record.encode().unwrap()).unwrap();
        assert_eq!(decoded, record);
        let body: Value = serde_json::from_slice(&decoded.body("evt-3", "app")).unwrap();
        assert_eq!(
            body,
            json!({"id": "evt-3", "type": "closed", "app": "app", "doc": "doc", "at": 7,
                   "title": "T", "html": "<p>x</p>", "contributors": ["u1", "u2"], "etag": "e1"})
        );
    }

    #[test]
    fn data_must_be_an_object_without_reserved_keys() {
        let bad = HookEvent::new(EventKind::Saved, "a", "d", 1, json!([1]));
        assert!(matches!(
            StoredEvent::from_event(&bad, 0),
            Err(HooksError::InvalidEvent(_))
        ));
        for key in RESERVED_KEYS {
            let bad = HookEvent::new(EventKind::Saved, "a", "d", 1, json!({ key: 1 }));
            assert!(StoredEvent::from_event(&bad, 0).is_err(), "{key}");
        }
        let none = HookEvent::new(EventKind::Editing, "a", "d", 1, Value::Null);
        assert!(StoredEvent::from_event(&none, 0).unwrap().data.is_empty());
        let empty_doc = HookEvent::saved("a", "", 1, "e");
        assert!(StoredEvent::from_event(&empty_doc, 0).is_err());
    }

    #[test]
    fn decode_refuses_garbage_and_other_versions() {
        assert!(StoredEvent::decode(b"not json").is_err());
        assert!(StoredEvent::decode(
            br#"{"v":2,"type":"saved","doc":"d","at":1,"queuedAt":1,"data":{}}"#
        )
        .is_err());
        assert!(StoredEvent::decode(
            br#"{"v":1,"type":"saved","doc":"d","at":1,"queuedAt":1,"data":{"id":"x"}}"#
        )
        .is_err());
    }
}
