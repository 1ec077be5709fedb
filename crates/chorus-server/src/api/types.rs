//! The host API's request and response bodies, as typed values. Field names are the
//! wire names of `proto/openapi.yaml` (camelCase); the Node suite and outside test
//! suites assert them, so a rename here is a breaking change.

use chorus_docs::DraftFormat;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeSet;

// ---- requests --------------------------------------------------------------------

/// Query of `GET …/draft`: `?format=json|html|yjs` (default `json`).
#[derive(Debug, Default, Deserialize)]
pub struct DraftQuery {
    /// The representation asked for.
    #[serde(default)]
    pub format: DraftFormat,
}

/// The representations of a history point (no `yjs`: a point is read, not synced).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PointFormat {
    /// Title and body as a JSON tree, with the point's metadata.
    #[default]
    Json,
    /// The body HTML, the title in `X-Chorus-Title`.
    Html,
}

/// Query of `GET …/history/{point}`: `?format=json|html` (default `json`).
#[derive(Debug, Default, Deserialize)]
pub struct PointQuery {
    /// The representation asked for.
    #[serde(default)]
    pub format: PointFormat,
}

/// What publish does when the draft moved on since it was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictPolicy {
    /// Publish nothing and answer 409 with the current ETag (the only policy).
    #[default]
    Abort,
}

/// Query of `POST …/publish`: `?conflictPolicy=abort` (the default).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishQuery {
    /// The conflict policy.
    #[serde(default)]
    pub conflict_policy: ConflictPolicy,
}

/// The `{point}` of `…/history/{point}` (the other path parameters are read by the
/// authenticating extractor).
#[derive(Debug, Deserialize)]
pub struct PointPath {
    /// The history point's number.
    pub point: u64,
}

/// The `{event}` of the dead-letter routes (`evt-<n>`, as the webhook's `id`).
#[derive(Debug, Deserialize)]
pub struct EventPath {
    /// The event id.
    pub event: String,
}

/// `GET /v1/apps/{app}/webhooks/dead-letters`.
#[derive(Debug, Serialize)]
pub struct DeadLetterList {
    /// Oldest first.
    pub events: Vec<DeadLetterJson>,
}

/// One webhook event given up on.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterJson {
    /// The event id every attempt carried.
    pub id: String,
    /// Its type, if the record could be read.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its document, if the record could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
    /// Why it was given up.
    pub reason: String,
    /// When (ms since the epoch).
    pub dead_at: u64,
    /// The body every attempt sent, if the record could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

impl From<chorus_hooks::DeadEvent> for DeadLetterJson {
    fn from(d: chorus_hooks::DeadEvent) -> Self {
        DeadLetterJson {
            id: d.id,
            kind: d.kind.map(|k| k.as_str().to_owned()),
            doc: d.doc,
            reason: d.reason,
            dead_at: d.dead_at_ms,
            body: d.body,
        }
    }
}

/// The `{session}` of the session routes.
#[derive(Debug, Deserialize)]
pub struct SessionPath {
    /// The session's id, as the sessions list gives it.
    pub session: SessionId,
}

/// A session id on the wire: a decimal number string of 1 to 19 digits (so it always
/// fits a `u64`), as `GET …/sessions` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionId(pub u64);

/// Longest session id accepted: 19 digits always fit a `u64`.
pub const MAX_SESSION_ID_DIGITS: usize = 19;

impl std::str::FromStr for SessionId {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > MAX_SESSION_ID_DIGITS || !s.bytes().all(|b| b.is_ascii_digit())
        {
            return Err("a session id is a number from the sessions list");
        }
        s.parse()
            .map(SessionId)
            .map_err(|_| "session id out of range")
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Body of `PUT …/content`: `{title?, html?, baseEtag?}`, at least one of `title`
/// and `html`. A `null` is refused like any non-string (the spec says `string`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContentBody {
    /// New plain-text title.
    #[serde(default, deserialize_with = "present_string")]
    pub title: Option<String>,
    /// New body HTML.
    #[serde(default, deserialize_with = "present_string")]
    pub html: Option<String>,
    /// ETag of the draft the change was computed from.
    #[serde(default, deserialize_with = "present_string")]
    pub base_etag: Option<String>,
}

/// An optional field that, when present, must be a string (not `null`).
fn present_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// Body of `POST …/restore`: `{point, by?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// The history point to bring back.
    #[serde(deserialize_with = "whole_number")]
    pub point: u64,
    /// Who restored it (credited to the editors).
    #[serde(default)]
    pub by: Option<ActedBy>,
}

/// Longest `by.id` or `by.name` taken (characters): a name shown to editors, not a
/// document.
pub const MAX_ACTED_BY_CHARS: usize = 256;

/// Who did something through the host API, as the host names them: the editors
/// are told ("Ann published"). Plain text; both may be absent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActedBy {
    /// The user's id in the host.
    #[serde(default, deserialize_with = "short_string")]
    pub id: String,
    /// Their display name.
    #[serde(default, deserialize_with = "short_string")]
    pub name: String,
}

impl From<ActedBy> for chorus_docs::ActingUser {
    fn from(by: ActedBy) -> Self {
        chorus_docs::ActingUser {
            id: by.id,
            name: by.name,
        }
    }
}

/// A string of at most [`MAX_ACTED_BY_CHARS`] characters.
fn short_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.chars().count() > MAX_ACTED_BY_CHARS {
        return Err(serde::de::Error::custom(format_args!(
            "longer than {MAX_ACTED_BY_CHARS} characters"
        )));
    }
    Ok(s)
}

/// Body of `POST …/publish` (optional): `{by?}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    /// Who published (credited to the editors).
    #[serde(default)]
    pub by: Option<ActedBy>,
}

/// Body of `POST …/discard` (optional): `{point?, by?}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscardBody {
    /// The history point to return to, instead of the last published version.
    #[serde(default, deserialize_with = "some_whole_number")]
    pub point: Option<u64>,
    /// Who discarded the changes (credited to the editors).
    #[serde(default)]
    pub by: Option<ActedBy>,
}

fn some_whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    whole_number(d).map(Some)
}

/// A JSON number that is a whole number from 0 to `u64::MAX`, written as an integer
/// or not (`3.0`): JSON Schema's `integer` admits both, so the spec's clients may
/// send either.
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    /// 2^64, the first whole number over `u64::MAX`.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    let n = serde_json::Number::deserialize(d)?;
    if let Some(v) = n.as_u64() {
        return Ok(v);
    }
    match n.as_f64() {
        // Exact: a whole f64 below 2^64 converts without rounding.
        Some(f) if (0.0..LIMIT).contains(&f) && f.fract() == 0.0 => Ok(f as u64),
        _ => Err(serde::de::Error::custom(format!(
            "{n} is not a whole number from 0 to {}",
            u64::MAX
        ))),
    }
}

// ---- responses -------------------------------------------------------------------

/// Every error: `{code, message}` (and the current `etag` on a publish conflict).
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: &'static str,
    /// For people; may change.
    pub message: String,
    /// Publish conflicts only: the draft's current ETag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// `GET /v1/apps/{app}/docs`.
#[derive(Debug, Serialize)]
pub struct DocList {
    /// Every stored document, sorted by id.
    pub docs: Vec<DocSummary>,
}

/// One document of [`DocList`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocSummary {
    /// Content id.
    pub id: String,
    /// First stored, ms since the epoch.
    pub created_at: u64,
    /// Last stored, ms since the epoch.
    pub updated_at: u64,
    /// User ids of everyone who contributed.
    pub contributors: BTreeSet<String>,
    /// Stored bytes.
    pub size_bytes: u64,
    /// Updates ever appended.
    pub update_count: u64,
    /// Evicted drafts only: when (ms since the epoch); its content went to the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evicted_at: Option<u64>,
}

/// `GET …/draft?format=json`: the document's JSON rendering (`title`, `body`) with its
/// ETag and last change.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DraftJson {
    /// `{title, body}` as `chorus_core::render::doc_json` renders it.
    #[serde(flatten)]
    pub document: serde_json::Value,
    /// Same value as the `ETag` header.
    pub etag: String,
    /// Last stored change, ms since the epoch.
    pub updated_at: u64,
}

/// `PUT …/content` and `POST …/restore`.
#[derive(Debug, Serialize)]
pub struct ChangeResult {
    /// The draft's ETag after the change (also the `ETag` header).
    pub etag: String,
    /// The fields that changed (`title`, `body`); empty if nothing did.
    pub changed: Vec<String>,
}

/// `DELETE /v1/apps/{app}/docs/{doc}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteResult {
    /// Sessions that were connected to the draft and were closed (4404).
    pub closed_sessions: usize,
}

/// `POST …/publish`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishResult {
    /// The published title.
    pub title: String,
    /// The published body HTML (cleaned by the app's whitelist).
    pub html: String,
    /// The ETag that was published.
    pub etag: String,
    /// When, ms since the epoch.
    pub published_at: u64,
}

/// `GET …/history`.
#[derive(Debug, Serialize)]
pub struct HistoryList {
    /// Every point, oldest first.
    pub points: Vec<HistorySummary>,
}

/// One point of [`HistoryList`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistorySummary {
    /// Number of the point within the document.
    pub point: u64,
    /// When, ms since the epoch.
    pub at: u64,
    /// `publish`, `auto` or `restore`.
    pub kind: String,
    /// The draft's ETag at that moment.
    pub etag: String,
    /// The title at that moment.
    pub title: String,
    /// Stored bytes.
    pub size_bytes: u64,
    /// Restore and discard points only: the point brought back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<u64>,
}

impl From<chorus_store::HistoryEntry> for HistorySummary {
    fn from(e: chorus_store::HistoryEntry) -> Self {
        HistorySummary {
            point: e.point,
            at: e.at_ms,
            kind: e.kind,
            etag: e.etag,
            title: e.title,
            size_bytes: e.size_bytes,
            restored_from: (e.restored_from > 0).then_some(e.restored_from),
        }
    }
}

/// `GET …/history/{point}?format=json`: the point's JSON rendering (`title`, `body`)
/// with its metadata.
#[derive(Debug, Serialize)]
pub struct PointJson {
    /// `{title, body}` as `chorus_core::render::doc_json` renders it.
    #[serde(flatten)]
    pub document: serde_json::Value,
    /// Number of the point.
    pub point: u64,
    /// When, ms since the epoch.
    pub at: u64,
    /// `publish`, `auto` or `restore`.
    pub kind: String,
    /// The draft's ETag at that moment.
    pub etag: String,
}

/// `GET …/sessions`.
#[derive(Debug, Serialize)]
pub struct SessionList {
    /// The connected sessions, oldest first.
    pub sessions: Vec<SessionSummary>,
}

/// One session of [`SessionList`].
#[derive(Debug, Serialize)]
pub struct SessionSummary {
    /// The session id (a decimal number string).
    pub id: String,
    /// The token's `sub`.
    pub user: String,
    /// Display name.
    pub name: String,
    /// `edit` or `view`.
    pub mode: &'static str,
    /// Exclusive mode: waiting for the hold.
    pub waiting: bool,
    /// When it joined, ms since the epoch.
    pub since: u64,
}

impl From<chorus_docs::SessionInfo> for SessionSummary {
    fn from(s: chorus_docs::SessionInfo) -> Self {
        SessionSummary {
            id: s.id.to_string(),
            user: s.user,
            name: s.name,
            mode: s.mode.as_str(),
            waiting: s.waiting,
            since: s.since_ms,
        }
    }
}

/// `POST /v1/admin/apps/{app}/enable|disable`.
#[derive(Debug, Serialize)]
pub struct AppSwitch {
    /// The app id.
    pub id: String,
    /// Its new state.
    pub enabled: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_up_to_19_decimal_digits() {
        assert_eq!("7".parse::<SessionId>(), Ok(SessionId(7)));
        assert_eq!("007".parse::<SessionId>(), Ok(SessionId(7)));
        assert_eq!(
            "9999999999999999999".parse::<SessionId>(),
            Ok(SessionId(9_999_999_999_999_999_999))
        );
        for bad in ["", "+7", "-1", "1.5", "x", "12345678901234567890", " 7"] {
            assert!(bad.parse::<SessionId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_fields_may_be_absent_but_not_null() {
        let b: ContentBody = serde_json::from_str(r#"{"html":"<p>x</p>"}"#).unwrap();
        assert_eq!((b.title, b.html.as_deref()), (None, Some("<p>x</p>")));
        assert!(serde_json::from_str::<ContentBody>(r#"{"title":null}"#).is_err());
        assert!(serde_json::from_str::<ContentBody>(r#"{"title":"t","x":1}"#).is_err());
    }

    #[test]
    fn a_point_is_a_whole_number_written_either_way() {
        for (json, point) in [
            (r#"{"point":3}"#, 3),
            (r#"{"point":3.0}"#, 3),
            (r#"{"point":821484117119.0}"#, 821_484_117_119),
            (r#"{"point":18446744073709551615}"#, u64::MAX),
        ] {
            assert_eq!(
                serde_json::from_str::<RestoreBody>(json).unwrap().point,
                point
            );
        }
        for json in [
            r#"{"point":-1}"#,
            r#"{"point":1.5}"#,
            r#"{"point":1e30}"#,
            r#"{"point":18446744073709551616}"#,
            r#"{"point":"1"}"#,
            r#"{"point":null}"#,
            r#"{}"#,
        ] {
            assert!(serde_json::from_str::<RestoreBody>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn response_field_names_are_the_wire_names() {
        let v = serde_json::to_value(HistorySummary::from(chorus_store::HistoryEntry {
            point: 2,
            at_ms: 5,
            kind: "restore".into(),
            restored_from: 1,
            etag: "\"e\"".into(),
            title: "T".into(),
            size_bytes: 9,
        }))
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"point": 2, "at": 5, "kind": "restore", "etag": "\"e\"",
                               "title": "T", "sizeBytes": 9, "restoredFrom": 1})
        );
        let v = serde_json::to_value(DraftJson {
            document: serde_json::json!({"title": "T", "body": []}),
            etag: "\"e\"".into(),
            updated_at: 3,
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"title": "T", "body": [], "etag": "\"e\"", "updatedAt": 3})
        );
        let v = serde_json::to_value(ErrorBody {
            code: "bad-request",
            message: "m".into(),
            etag: None,
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code": "bad-request", "message": "m"})
        );
    }
}
