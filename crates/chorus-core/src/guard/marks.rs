//! Whether a formatting attribute is an allowed mark: the one question the three
//! readers of an update (`scan.rs` on the document, `blocks.rs` and `profile.rs` on
//! its bytes) all ask, answered once so that they cannot disagree.

use chorus_whitelist::{EditorProfile, Policy};
use yrs::Any;

/// Is this formatting attribute an allowed mark? Keys are mark names (inline tag names
/// in the `html` profile); y-prosemirror suffixes overlapping marks of one type as
/// `name--xxxxxxxx`.
pub(super) fn mark_allowed(
    policy: &Policy,
    profile: &EditorProfile,
    key: &str,
    value: &Any,
) -> bool {
    let name = key.split_once("--").map_or(key, |(n, _)| n);
    match value {
        Any::Bool(true) => profile.allows_mark(policy, name, &[]),
        Any::Map(attrs) => {
            let mut pairs: Vec<(&str, String)> = Vec::with_capacity(attrs.len());
            for (k, v) in attrs.iter() {
                match v {
                    Any::Null | Any::Undefined => {}
                    Any::String(s) => pairs.push((k, s.to_string())),
                    Any::Bool(b) => pairs.push((k, b.to_string())),
                    Any::Number(yrs::any::Number::Int(i)) => pairs.push((k, i.to_string())),
                    Any::Number(yrs::any::Number::Float(f)) => pairs.push((k, f.to_string())),
                    _ => return false,
                }
            }
            let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            profile.allows_mark(policy, name, &borrowed)
        }
        _ => false,
    }
}
