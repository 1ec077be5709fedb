//! What an update carries, read from its bytes before it is applied: the facts that let
//! the guard skip checks whose answer the bytes already give.
//!
//! The guard's costly checks are the ones on text: a text's delta and proof that it
//! holds only strings (per changed text), or its full diff (per new text). Both look
//! for things that can only arrive as content of their own kind in the encoding —
//! embeds, JSON and binary values, subdocuments, nested nodes, refused marks. So:
//!
//! - an update of strings and deletions only (a keystroke) cannot hide anything in a
//!   text ([`UpdateProfile::plain_text`]);
//! - an update whose every formatting item is an allowed mark, and which holds no
//!   embed, JSON, binary, subdocument or keyless value, can hide something in a text
//!   only as a nested node; the guard counts the new nodes it walks as children of
//!   elements, and if that count equals [`UpdateProfile::new_nodes`] none is inside a
//!   text ([`UpdateProfile::texts_clean`]).
//!
//! The reading walks the encoding item by item as yrs's decoder does, without
//! allocating (the room has already decoded the same bytes with yrs, so they are well
//! formed), and is conservative: anything it does not recognise gives
//! [`UpdateProfile::UNKNOWN`], and the update gets every check.

use super::lib0::Cursor;
use super::marks::mark_allowed;
use chorus_whitelist::{EditorProfile, Policy};
use yrs::Any;

/// The whole info byte of a garbage-collected range.
const GC: u8 = 0;
/// The whole info byte of a skipped range.
const SKIP: u8 = 10;
/// Flags of an item's info byte.
const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;
/// Content kinds (yrs reads the low four bits).
const CONTENT_MASK: u8 = 0b1111;
const CONTENT_DELETED: u8 = 1;
const CONTENT_STRING: u8 = 4;
const CONTENT_FORMAT: u8 = 6;
const CONTENT_TYPE: u8 = 7;
const CONTENT_ANY: u8 = 8;
/// Node kinds of a type item.
const TYPE_XML_ELEMENT: u8 = 3;
const TYPE_XML_TEXT: u8 = 6;

/// What one update carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UpdateProfile {
    /// Only strings, deletions and collected or skipped ranges.
    pub plain_text: bool,
    /// No embed, JSON, binary, subdocument, keyless value or refused mark: a text can
    /// receive nothing but strings, allowed marks and (counted) nodes.
    pub texts_clean: bool,
    /// How many XML elements and texts the update creates.
    pub new_nodes: u32,
}

impl UpdateProfile {
    /// Nothing known: every check runs.
    pub const UNKNOWN: UpdateProfile = UpdateProfile {
        plain_text: false,
        texts_clean: false,
        new_nodes: 0,
    };

    /// Read the profile of `update` (lib0 v1 encoding), judging marks by `policy`.
    pub fn of(update: &[u8], policy: &Policy, editor: &EditorProfile) -> UpdateProfile {
        read(&mut Cursor::new(update), policy, editor).unwrap_or(UpdateProfile::UNKNOWN)
    }
}

/// `None` when the update holds something that ends the reading early (it is not
/// clean) or is malformed.
fn read<'a>(r: &mut Cursor<'a>, policy: &Policy, editor: &EditorProfile) -> Option<UpdateProfile> {
    let mut profile = UpdateProfile {
        plain_text: true,
        texts_clean: true,
        new_nodes: 0,
    };
    // Marks allowed so far: a paste repeats the same few many times.
    let mut allowed_marks: Vec<(&[u8], &[u8])> = Vec::new();
    let clients = r.var().ok()?;
    for _ in 0..clients {
        let structs = r.var().ok()?;
        r.var().ok()?; // client
        r.var().ok()?; // first clock
        for _ in 0..structs {
            let info = r.byte().ok()?;
            if info == GC || info == SKIP {
                r.var().ok()?;
                continue;
            }
            if info & HAS_ORIGIN != 0 {
                r.id().ok()?;
            }
            if info & HAS_RIGHT_ORIGIN != 0 {
                r.id().ok()?;
            }
            let mut keyed = false;
            if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
                if r.var().ok()? == 1 {
                    r.bytes().ok()?; // root name
                } else {
                    r.id().ok()?; // parent item
                }
                if info & HAS_PARENT_SUB != 0 {
                    r.bytes().ok()?;
                    keyed = true;
                }
            }
            match info & CONTENT_MASK {
                CONTENT_STRING => {
                    r.bytes().ok()?;
                }
                CONTENT_DELETED => {
                    r.var().ok()?;
                }
                CONTENT_FORMAT => {
                    profile.plain_text = false;
                    let (key, json) = (r.bytes().ok()?, r.bytes().ok()?);
                    if !allowed_marks.contains(&(key, json)) {
                        let key_text = std::str::from_utf8(key).ok()?;
                        let json_text = std::str::from_utf8(json).ok()?;
                        if !format_allowed(policy, editor, key_text, json_text) {
                            return None;
                        }
                        if allowed_marks.len() < 16 {
                            allowed_marks.push((key, json));
                        }
                    }
                }
                CONTENT_TYPE => {
                    profile.plain_text = false;
                    match r.byte().ok()? {
                        TYPE_XML_ELEMENT => {
                            r.bytes().ok()?; // tag
                        }
                        TYPE_XML_TEXT => {}
                        // Other shared types are refused wherever they appear; the
                        // full check finds and removes them.
                        _ => return None,
                    }
                    profile.new_nodes += 1;
                }
                // An attribute value (a map entry set for the first time). A value
                // without an explicit key may sit in a sequence, inside a text.
                CONTENT_ANY if keyed => {
                    profile.plain_text = false;
                    for _ in 0..r.var().ok()? {
                        r.value(0).ok()?;
                    }
                }
                _ => return None,
            }
        }
    }
    Some(profile)
}

/// Is a formatting item (`key` and its JSON value) an allowed mark, or a removal?
fn format_allowed(policy: &Policy, editor: &EditorProfile, key: &str, json: &str) -> bool {
    match json {
        "null" => true,
        "true" => mark_allowed(policy, editor, key, &Any::Bool(true)),
        _ => Any::from_json(json).is_ok_and(|v| mark_allowed(policy, editor, key, &v)),
    }
}

#[cfg(test)]
mod tests {
    use super::UpdateProfile;
    use chorus_whitelist::{EditorProfile, Policy};
    use std::collections::HashMap;
    use std::sync::Arc;
    use yrs::types::Attrs;
    use yrs::{
        Any, Array, Doc, GetString, Map, Text, Transact, Xml, XmlElementPrelim, XmlFragment,
        XmlTextPrelim,
    };

    fn profile(update: &[u8]) -> UpdateProfile {
        UpdateProfile::of(update, &Policy::default_policy(), &EditorProfile::html())
    }

    fn mark(name: &str, value: Any) -> Attrs {
        HashMap::from([(Arc::from(name), value)])
    }

    #[test]
    fn typing_and_deleting_are_plain_text() {
        let d = Doc::with_client_id(7);
        let title = d.get_or_insert_text("title");
        let typed = {
            let mut txn = d.transact_mut();
            title.insert(&mut txn, 0, "hello world");
            txn.encode_update_v1()
        };
        assert!(profile(&typed).plain_text);
        let deleted = {
            let mut txn = d.transact_mut();
            title.remove_range(&mut txn, 2, 3);
            txn.encode_update_v1()
        };
        assert_eq!(
            profile(&deleted),
            UpdateProfile {
                plain_text: true,
                texts_clean: true,
                new_nodes: 0
            }
        );
        assert_eq!(title.get_string(&d.transact()), "he world");
    }

    #[test]
    fn a_pasted_tree_with_allowed_marks_is_clean_and_its_nodes_counted() {
        let d = Doc::with_client_id(7);
        let body = d.get_or_insert_xml_fragment("body");
        let update = {
            let mut txn = d.transact_mut();
            let p = body.push_back(&mut txn, XmlElementPrelim::empty("p"));
            p.insert_attribute(&mut txn, "class", "x");
            let t = p.push_back(&mut txn, XmlTextPrelim::new("hello "));
            t.insert_with_attributes(&mut txn, 6, "bold", mark("strong", Any::Bool(true)));
            let a = Any::from(HashMap::from([(
                "href".to_owned(),
                Any::from("https://x.org"),
            )]));
            t.insert_with_attributes(&mut txn, 10, "link", mark("a", a));
            txn.encode_update_v1()
        };
        assert_eq!(
            profile(&update),
            UpdateProfile {
                plain_text: false,
                texts_clean: true,
                new_nodes: 2
            }
        );
    }

    #[test]
    fn refused_marks_embeds_values_and_other_types_are_not_clean() {
        let d = Doc::with_client_id(7);
        let title = d.get_or_insert_text("title");
        let map = d.get_or_insert_map("other");
        let array = d.get_or_insert_array("list");
        let href = |url: &str| Any::from(HashMap::from([("href".to_owned(), Any::from(url))]));
        let updates: Vec<(&str, Vec<u8>)> = vec![
            ("refused mark", {
                let mut txn = d.transact_mut();
                title.insert_with_attributes(&mut txn, 0, "x", mark("blink", Any::Bool(true)));
                txn.encode_update_v1()
            }),
            ("javascript link", {
                let mut txn = d.transact_mut();
                title.insert_with_attributes(
                    &mut txn,
                    0,
                    "x",
                    mark("a", href("javascript:alert(1)")),
                );
                txn.encode_update_v1()
            }),
            ("embed", {
                let mut txn = d.transact_mut();
                title.insert_embed(&mut txn, 0, Any::from("img"));
                txn.encode_update_v1()
            }),
            ("sequence value", {
                let mut txn = d.transact_mut();
                array.push_back(&mut txn, Any::from("v"));
                txn.encode_update_v1()
            }),
            ("nested map", {
                let mut txn = d.transact_mut();
                map.insert(&mut txn, "m", yrs::MapPrelim::default());
                txn.encode_update_v1()
            }),
        ];
        for (what, u) in &updates {
            assert!(!profile(u).texts_clean, "{what} is not clean");
            assert!(!profile(u).plain_text, "{what} is not plain text");
        }
        // A first-time map entry is a keyed value: clean, though not plain text.
        let keyed = {
            let mut txn = d.transact_mut();
            map.insert(&mut txn, "k", "v");
            txn.encode_update_v1()
        };
        let p = profile(&keyed);
        assert!(p.texts_clean && !p.plain_text);
    }

    #[test]
    fn malformed_bytes_are_unknown() {
        for bytes in [&[][..], &[1], &[1, 1, 7, 0, 4, 200], &[0xff; 12]] {
            assert_eq!(profile(bytes), UpdateProfile::UNKNOWN);
        }
        assert!(
            profile(&[0, 0]).plain_text,
            "an empty update is trivially plain"
        );
    }
}
