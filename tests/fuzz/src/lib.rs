//! # What the fuzz targets check
//!
//! Each public function here takes the bytes a fuzzer produced and asserts what must
//! hold for *any* input to the part of Chorus that takes untrusted bytes. libFuzzer
//! calls them from `tests/fuzz/libfuzzer` (nightly, `cargo fuzz`), and `cargo test`
//! runs them on the committed seed corpus and on every input that ever crashed one
//! (`tests/fuzz/corpus/<target>/`, `tests/fuzz/regressions/<target>/`), so a fixed
//! crash stays fixed on the stable toolchain. See docs/FUZZING.md.
//!
//! Owns: the targets' oracles. Must not touch: anything outside the library APIs of
//! `chorus-protocol`, `chorus-core` and `chorus-auth` (no server, no store, no I/O).

pub mod blocks;
pub mod frame;
pub mod html;
pub mod oracle;
pub mod room;
pub mod token;
pub mod v1;

/// A target's checks: any bytes in, a panic if something does not hold.
pub type Check = fn(&[u8]);

/// Every target by name, as the corpus directories name them.
pub const TARGETS: &[(&str, Check)] = &[
    ("frame_decode", frame::frame_decode),
    ("room_receive_raw", room::room_receive_raw),
    ("room_receive_structured", room::room_receive_structured),
    ("room_receive_blocks", blocks::room_receive_blocks),
    ("html_import", html::html_import),
    ("token_verify", token::token_verify),
];

/// `CHORUS_FUZZ_SKIP_OPEN=1`: fuzz past findings reported but not fixed yet
/// (`tests/fuzz/open/README.md` lists them): the room targets' oracle then does not
/// report a stale piece of a keyed entry ([`oracle::STALE_PIECE`]).
/// Unset, every check is strict.
pub fn skip_open() -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("CHORUS_FUZZ_SKIP_OPEN").is_some())
}

/// For the libFuzzer entry points: a panic hook that prints each panic location
/// once and lets the panic unwind. The room catches a yrs panic by design (the
/// document is then dropped unsaved and its editors reconnect); libFuzzer's own
/// hook would abort on it as if the service had crashed. A panic nobody catches
/// still reaches libfuzzer-sys, which aborts: that is a crash.
pub fn report_caught_panics() {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map_or_else(
            || "unknown".to_owned(),
            |l| format!("{}:{}", l.file(), l.line()),
        );
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get_or_insert_with(HashSet::new).insert(at.clone()) {
            eprintln!("chorus-fuzz: panic at {at}: {info}");
        }
    }));
}
