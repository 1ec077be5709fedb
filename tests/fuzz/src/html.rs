//! Host HTML import (parse, clean, fit, diff): any UTF-8 the host sends becomes a
//! body the whitelist has nothing left to remove from, the import applies to a live
//! document without a panic, and writing the document's own rendering back onto it
//! changes nothing (the no-op promise of `chorus_core::import`).

use chorus_core::import::{fit_editor, host_body};
use chorus_core::render::doc_html;
use chorus_core::{Peer, Room, RoomLimits};

/// A member that drops every frame.
struct Nobody;

impl Peer for Nobody {
    fn send(&self, _frame: bytes::Bytes) -> bool {
        true
    }
}

/// Import `data` (if UTF-8) as a host's body, then its own rendering again.
pub fn html_import(data: &[u8]) {
    let Ok(html) = std::str::from_utf8(data) else {
        return;
    };
    let mut room: Room<Nobody> = Room::new(RoomLimits::default());
    let whitelist = room.whitelist().clone();
    let body = host_body(&whitelist, html);
    assert_eq!(
        fit_editor(body.clone()),
        body,
        "fit_editor is not idempotent"
    );
    room.external_change(None, None, Some(&body))
        .unwrap_or_else(|e| panic!("a cleaned body does not apply: {e}"));
    let (neutralised, rejected) = room.take_neutralised();
    assert_eq!(
        (neutralised.total(), rejected),
        (0, 0),
        "the guard removed what the cleaner kept: {neutralised:?}"
    );
    let (_, rendered) = doc_html(room.doc());
    let again = host_body(&whitelist, &rendered);
    let fields = room
        .external_change(None, None, Some(&again))
        .unwrap_or_else(|e| panic!("the document's own rendering does not apply: {e}"));
    assert!(
        fields.is_empty(),
        "writing back the document's own rendering changed it:\n{rendered}\nbecame\n{}",
        doc_html(room.doc()).1
    );
}
