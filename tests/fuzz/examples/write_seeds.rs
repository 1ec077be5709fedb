//! Writes the seed corpus in `tests/fuzz/corpus/` (run from the repository root:
//! `cargo run -p chorus-fuzz --example write_seeds`). Seeds are small, real inputs
//! of each kind: frames the y-websocket stack sends, updates a yrs client makes,
//! the hostile HTML vectors of proto/test-vectors, tokens of each shape.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chorus_protocol::{
    encode_awareness, encode_sync, ChorusMessage, Message, SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE,
};
use std::path::Path;
use yrs::{Any, Doc, Text, Transact, Xml, XmlElementPrelim, XmlFragment, XmlTextPrelim};

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new("tests/fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

/// Updates a client makes: a title, a formatted paragraph, a hostile element, an
/// attribute change, a deletion.
fn updates() -> Vec<(&'static str, Vec<u8>)> {
    let doc = Doc::with_client_id(7);
    let title = doc.get_or_insert_text("title");
    let body = doc.get_or_insert_xml_fragment("body");
    let mut out = Vec::new();
    let mut step = |name, f: &dyn Fn(&mut yrs::TransactionMut)| {
        let mut txn = doc.transact_mut();
        f(&mut txn);
        out.push((name, txn.encode_update_v1()));
    };
    step("title", &|txn| title.insert(txn, 0, "Release notes"));
    step("paragraph", &|txn| {
        let p = body.push_back(txn, XmlElementPrelim::empty("p"));
        let t = p.push_back(txn, XmlTextPrelim::new("hello "));
        let bold =
            std::collections::HashMap::from([(std::sync::Arc::from("strong"), Any::Bool(true))]);
        t.insert_with_attributes(txn, 6, "world", bold.into_iter().collect());
    });
    step("script", &|txn| {
        let s = body.push_back(txn, XmlElementPrelim::empty("script"));
        s.push_back(txn, XmlTextPrelim::new("alert(1)"));
    });
    step("onclick", &|txn| {
        let a = body.push_back(txn, XmlElementPrelim::empty("a"));
        a.insert_attribute(txn, "href", "javascript:alert(1)");
        a.insert_attribute(txn, "onclick", "alert(2)");
    });
    step("delete", &|txn| title.remove_range(txn, 0, 8));
    out
}

fn main() {
    let updates = updates();
    // frame_decode: what a y-websocket client and Chorus send.
    write(
        "frame_decode",
        "step1-empty",
        &encode_sync(SYNC_STEP1, &[0]),
    );
    for (name, u) in &updates {
        write(
            "frame_decode",
            &format!("update-{name}"),
            &encode_sync(SYNC_UPDATE, u),
        );
    }
    write(
        "frame_decode",
        "step2",
        &encode_sync(SYNC_STEP2, &updates[0].1),
    );
    let state = r##"{"user":{"name":"Ann","color":"#123456"},"cursor":null}"##;
    write(
        "frame_decode",
        "awareness",
        &Message::Awareness(encode_awareness([(7, 3, state), (8, 1, "null")])).encode(),
    );
    write("frame_decode", "query-awareness", &[3]);
    write(
        "frame_decode",
        "auth-denied",
        &[2, 0, 4, b'n', b'o', b'p', b'e'],
    );
    for (name, m) in [
        (
            "refresh",
            ChorusMessage::RefreshToken {
                token: "a.b.c".into(),
            },
        ),
        ("saved", ChorusMessage::Saved { n: 300 }),
        (
            "external",
            ChorusMessage::ExternalChange {
                fields: vec!["title".into(), "body".into()],
            },
        ),
        ("editable", ChorusMessage::Editable),
    ] {
        write("frame_decode", &format!("chorus-{name}"), &m.encode());
    }

    // room_receive_raw: the first byte picks frame (0), step 2 (1), update (2) or
    // length-prefixed updates (3); 0x80 picks reject mode.
    for (name, u) in &updates {
        let mut data = vec![2];
        data.extend_from_slice(u);
        write("room_receive_raw", &format!("update-{name}"), &data);
        let mut data = vec![0x81];
        data.extend_from_slice(u);
        write("room_receive_raw", &format!("reject-step2-{name}"), &data);
    }
    let mut several = vec![3];
    for (_, u) in &updates {
        if let Ok(len) = u8::try_from(u.len()) {
            several.push(len);
            several.extend_from_slice(u);
        }
    }
    write("room_receive_raw", "several", &several);
    let mut frame = vec![0];
    frame.extend_from_slice(&encode_sync(SYNC_UPDATE, &updates[1].1));
    write("room_receive_raw", "frame-update", &frame);

    // room_receive_structured: arbitrary bytes become a script; a few shapes to start.
    for (i, seed) in [
        &b"\x00\x01\x00\x00\x03\x00p\x00\x01\x02\x03hello"[..],
        b"\x01\x02\x00\x05\x00\x1a\x01\x00\x07\x01\x02\x00\x00\x00",
        b"\x00\x03\x00\x02\x00\x00\x00\x03\x01\x01\x00\x04\x00\x00\x00\x05\x09\x01",
        b"\x00\x01\x01\x08\x00\x00\x0b\x01\x00\x00\x02\x00\x01",
    ]
    .iter()
    .enumerate()
    {
        write("room_receive_structured", &format!("script-{i}"), seed);
    }

    // room_receive_blocks: chosen block-level scripts (the lone-format bypass of
    // 2026-12-03 among them), as the bytes `arbitrary` reads back into them.
    for (name, script) in chorus_fuzz::blocks::seeds() {
        write("room_receive_blocks", name, &script.seed_bytes());
    }

    // html_import: rich and hostile HTML from proto/test-vectors.
    for file in ["rich-html.txt", "xss-html.txt"] {
        let text = std::fs::read_to_string(Path::new("proto/test-vectors").join(file)).unwrap();
        let vectors: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .collect();
        for (i, chunk) in vectors.chunks(24).enumerate() {
            let stem = file.trim_end_matches(".txt");
            write(
                "html_import",
                &format!("{stem}-{i}"),
                chunk.join("\n").as_bytes(),
            );
        }
    }

    // token_verify: the first byte picks raw (0), signed claims (1), signed header and
    // claims split at 0xff (2), claims signed with a wrong secret (3).
    let claims = [
        (
            "session",
            r#"{"iss":"wiki","sub":"u1","doc":"page-1","mode":"edit","exp":1800000100,"name":"Ann"}"#,
        ),
        ("host", r#"{"iss":"wiki","scope":"host","exp":1800000100}"#),
        (
            "host-doc",
            r#"{"iss":"wiki","scope":"host","doc":"page-1","exp":1800000100.5,"nbf":1799999999}"#,
        ),
        (
            "expired",
            r#"{"iss":"wiki","sub":"u1","doc":"page-1","mode":"view","exp":1700000000}"#,
        ),
    ];
    for (name, c) in claims {
        for how in [1u8, 3] {
            let mut data = vec![how];
            data.extend_from_slice(c.as_bytes());
            write("token_verify", &format!("{how}-{name}"), &data);
        }
    }
    let mut data = vec![2];
    data.extend_from_slice(br#"{"alg":"none"}"#);
    data.push(0xff);
    data.extend_from_slice(claims[0].1.as_bytes());
    write("token_verify", "2-alg-none", &data);
    let raw = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims[0].1)
    );
    write(
        "token_verify",
        "0-unsigned",
        &[&[0u8][..], raw.as_bytes()].concat(),
    );
}
