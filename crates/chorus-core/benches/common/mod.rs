//! What the core benchmarks share: an edit-mode session and a client document
//! configured as the web client's (UTF-16 offsets, a fixed client id).

use chorus_auth::Mode;
use chorus_core::Session;
use std::sync::Arc;
use yrs::Doc;

/// An edit-mode session for a benchmark member.
pub fn session() -> Arc<Session> {
    Arc::new(Session {
        user_id: "bench".into(),
        name: "bench".into(),
        color: "#000000".into(),
        avatar: None,
        mode: Mode::Edit,
        extensions: false,
    })
}

/// The document a client edits, producing the updates the room receives.
pub fn client_doc() -> Doc {
    Doc::with_options(yrs::Options {
        client_id: yrs::ClientID::new(42),
        offset_kind: yrs::OffsetKind::Utf16,
        ..yrs::Options::default()
    })
}
