//! What a presence (awareness) state may hold before the room relays it.
//!
//! Presence is JSON that every editor in the document parses, walks and renders
//! (y-prosemirror and TipTap draw a caret from `cursor` and a label from `user`), and
//! the room replays it to every joiner. One malformed state used to freeze every
//! editor: y-prosemirror's cursor plugin throws on `{"cursor":{}}`, and a provider
//! that lets the error escape stops applying updates. So the room relays only:
//!
//! - `user`: always the session's identity (`id`, `name`, `color`, `avatar`),
//!   whatever the client claimed; other keys the client put there are kept (within
//!   the caps below);
//! - `cursor`: `null`, or `{anchor, head}`, each a Yjs relative position as
//!   `Y.relativePositionToJSON` writes it (`type`/`item`: `null` or
//!   `{client, clock}` of non-negative safe integers; `tname`: a short string;
//!   `assoc`: an integer). Anything else is replaced by `null`: the peer shows no
//!   caret instead of crashing, and its sender stays connected;
//! - any other field, as JSON text an editor must treat as text (never markup),
//!   within 32 fields at the top and 8 levels deep (and the byte cap of
//!   [`crate::room::RoomLimits::max_awareness_state_bytes`]).
//!
//! This module knows nothing of rooms or connections (see `docs/PROTOCOL.md`,
//! "Awareness").

use crate::session::Session;
use serde_json::{Map, Value};

/// Most top-level fields a presence state may have (an editor's has two or three:
/// `user`, `cursor`, a selection).
pub const MAX_FIELDS: usize = 32;
/// Deepest nesting of a presence state (a y-prosemirror cursor is four deep).
pub const MAX_DEPTH: usize = 8;
/// Longest root name a relative position may carry (`tname`).
const MAX_TYPE_NAME: usize = 256;
/// Largest integer a JavaScript number holds exactly (`Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a presence state is refused (the sender is closed with 4400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not JSON, or past the field or depth caps.
    Malformed,
    /// JSON, but not an object.
    NotObject,
}

/// What the room keeps of a presence state: the state as the room relays it, and
/// whether a field was replaced (a malformed cursor).
#[derive(Debug)]
pub struct Checked {
    pub json: String,
    pub replaced: bool,
}

/// Check a presence state's JSON text and stamp the session's identity into it.
pub fn check(state: &str, session: &Session) -> Result<Checked, Refused> {
    let mut value: Value = serde_json::from_str(state).map_err(|_| Refused::Malformed)?;
    // Bounded in breadth and depth, not only in bytes: every editor walks it.
    if value.as_object().is_some_and(|o| o.len() > MAX_FIELDS) || nests_deeper(&value, MAX_DEPTH) {
        return Err(Refused::Malformed);
    }
    let obj = value.as_object_mut().ok_or(Refused::NotObject)?;
    let mut replaced = false;
    if let Some(cursor) = obj.get_mut("cursor") {
        if !cursor.is_null() && !is_cursor(cursor) {
            *cursor = Value::Null;
            replaced = true;
        }
    }
    let user = obj
        .entry("user")
        .or_insert_with(|| Value::Object(Map::new()));
    if !user.is_object() {
        *user = Value::Object(Map::new());
    }
    let user = user.as_object_mut().expect("made an object above");
    user.remove("avatar");
    for (k, v) in session.user_json() {
        user.insert(k, v);
    }
    Ok(Checked {
        json: value.to_string(),
        replaced,
    })
}

/// `{anchor, head}`, each a relative position, and nothing else.
fn is_cursor(value: &Value) -> bool {
    let Some(cursor) = value.as_object() else {
        return false;
    };
    cursor.len() == 2
        && cursor.get("anchor").is_some_and(is_relative_position)
        && cursor.get("head").is_some_and(is_relative_position)
}

/// A relative position as `Y.relativePositionToJSON` writes it (fields it leaves
/// `undefined` are absent in JSON; `null` is read the same by
/// `Y.createRelativePositionFromJSON`).
fn is_relative_position(value: &Value) -> bool {
    let Some(pos) = value.as_object() else {
        return false;
    };
    pos.iter().all(|(key, v)| match key.as_str() {
        "type" | "item" => v.is_null() || is_id(v),
        "tname" => v.is_null() || v.as_str().is_some_and(|s| s.len() <= MAX_TYPE_NAME),
        "assoc" => v.is_null() || v.as_i64().is_some_and(|a| i32::try_from(a).is_ok()),
        _ => false,
    })
}

/// `{client, clock}` of non-negative safe integers.
fn is_id(value: &Value) -> bool {
    let Some(id) = value.as_object() else {
        return false;
    };
    id.len() == 2
        && id
            .get("client")
            .and_then(Value::as_u64)
            .is_some_and(|c| c <= MAX_SAFE_INTEGER)
        && id
            .get("clock")
            .and_then(Value::as_u64)
            .is_some_and(|c| c <= u64::from(u32::MAX))
}

/// Whether a JSON value nests deeper than `limit`.
fn nests_deeper(value: &Value, limit: usize) -> bool {
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Object(o) => Box::new(o.values()),
            Value::Array(a) => Box::new(a.iter()),
            _ => continue,
        };
        if depth >= limit {
            return true;
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_auth::Mode;

    fn session() -> Session {
        Session {
            user_id: "u1".into(),
            name: "Ann".into(),
            color: "#112233".into(),
            avatar: None,
            mode: Mode::View,
            extensions: true,
            expires_at: u64::MAX,
            credential: Default::default(),
        }
    }

    fn cursor_of(state: &str) -> (Value, bool) {
        let checked = check(state, &session()).unwrap();
        let v: Value = serde_json::from_str(&checked.json).unwrap();
        (v["cursor"].clone(), checked.replaced)
    }

    #[test]
    fn a_cursor_y_prosemirror_writes_is_kept() {
        // What y-prosemirror sends (Y.relativePositionToJSON of two positions).
        let state = r#"{"user":{"name":"x"},"cursor":{"anchor":{"type":{"client":12,"clock":3},"tname":null,"item":{"client":9007199254740991,"clock":4},"assoc":0},"head":{"tname":"body","assoc":-1}}}"#;
        let (cursor, replaced) = cursor_of(state);
        assert!(!replaced);
        assert_eq!(cursor["anchor"]["item"]["client"], 9007199254740991u64);
        assert_eq!(cursor["head"]["tname"], "body");
        assert_eq!(cursor_of(r#"{"cursor":null}"#), (Value::Null, false));
    }

    #[test]
    fn a_malformed_cursor_is_replaced_by_null_and_the_rest_kept() {
        for bad in [
            r#"{}"#,
            r#"{"anchor":{}}"#,
            r#"{"anchor":{},"head":{},"x":1}"#,
            r#"{"anchor":null,"head":null}"#,
            r#"{"anchor":{"item":{"client":1}},"head":{}}"#,
            r#"{"anchor":{"item":{"client":-1,"clock":0}},"head":{}}"#,
            r#"{"anchor":{"item":{"client":1.5,"clock":0}},"head":{}}"#,
            r#"{"anchor":{"item":{"client":9007199254740992,"clock":0}},"head":{}}"#,
            r#"{"anchor":{"item":{"client":"1","clock":0}},"head":{}}"#,
            r#"{"anchor":{"assoc":"after"},"head":{}}"#,
            r#"{"anchor":{"tname":7},"head":{}}"#,
            r#"{"anchor":{"onclick":"x"},"head":{}}"#,
            r#""anchor""#,
            r#"[1,2]"#,
            r#"0"#,
        ] {
            let state = format!(r#"{{"cursor":{bad},"selection":"kept"}}"#);
            let checked = check(&state, &session()).unwrap();
            let v: Value = serde_json::from_str(&checked.json).unwrap();
            assert!(checked.replaced, "{bad}");
            assert_eq!(v["cursor"], Value::Null, "{bad}");
            assert_eq!(v["selection"], "kept", "{bad}");
        }
    }

    #[test]
    fn the_user_is_the_sessions_whatever_the_client_claims() {
        let checked = check(
            r#"{"user":{"name":"Mallory","color":"red;position:fixed","avatar":"javascript:x","note":"n"}}"#,
            &session(),
        )
        .unwrap();
        let v: Value = serde_json::from_str(&checked.json).unwrap();
        assert_eq!(v["user"]["name"], "Ann");
        assert_eq!(v["user"]["color"], "#112233");
        assert_eq!(v["user"]["id"], "u1");
        assert!(v["user"].get("avatar").is_none());
        assert_eq!(v["user"]["note"], "n");
        let checked = check(r#"{"user":"Mallory"}"#, &session()).unwrap();
        let v: Value = serde_json::from_str(&checked.json).unwrap();
        assert_eq!(v["user"]["name"], "Ann");
    }

    #[test]
    fn too_many_fields_too_deep_not_json_or_not_an_object_is_refused() {
        let wide: String = format!(
            "{{{}}}",
            (0..=MAX_FIELDS)
                .map(|i| format!(r#""f{i}":1"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let deep = format!(
            r#"{{"a":{}1{}}}"#,
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert_eq!(check(&wide, &session()).unwrap_err(), Refused::Malformed);
        assert_eq!(check(&deep, &session()).unwrap_err(), Refused::Malformed);
        assert_eq!(check("{", &session()).unwrap_err(), Refused::Malformed);
        assert_eq!(check("[]", &session()).unwrap_err(), Refused::NotObject);
    }
}
