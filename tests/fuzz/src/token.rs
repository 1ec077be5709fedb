//! Token verification: whatever the token, verification answers with an
//! [`AuthError`] or with claims that really are valid for this app, this document
//! and this moment; a token never passes as both kinds, and nothing verifies
//! without the app's secret.
//!
//! The first byte picks how the rest is used: as the token itself; as the claims
//! (raw bytes, any JSON or none) of a token signed with the app's secret, so the
//! fuzzer gets past the signature to the claim checks; as header and claims both
//! (split at the first `0xff`) signed with the secret; or as claims signed with a
//! secret the app does not have.
//!
//! [`AuthError`]: chorus_auth::AuthError

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chorus_auth::{App, AppRegistry, Secret};
use jsonwebtoken::{Algorithm, EncodingKey};

const APP: &str = "wiki";
const DOC: &str = "page-1";
const SECRET: &str = "fuzz-secret-0123456789abcdef0123456789";
const WRONG_SECRET: &str = "some-other-secret-0123456789abcdef";
const NOW: u64 = 1_800_000_000;
const LEEWAY: u64 = 30;

fn signed(header: &[u8], claims: &[u8], secret: &str) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let key = EncodingKey::from_secret(secret.as_bytes());
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256)
        .expect("HS256 signs any message");
    format!("{message}.{signature}")
}

/// Verify the token `data` describes, as a session token and as a host token.
pub fn token_verify(data: &[u8]) {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    const HEADER: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;
    let (token, has_secret) = match how % 4 {
        0 => (String::from_utf8_lossy(rest).into_owned(), false),
        1 => (signed(HEADER, rest, SECRET), true),
        2 => match rest.iter().position(|&b| b == 0xff) {
            Some(at) => (signed(&rest[..at], &rest[at + 1..], SECRET), true),
            None => (signed(rest, b"{}", SECRET), true),
        },
        _ => (signed(HEADER, rest, WRONG_SECRET), false),
    };
    let registry =
        AppRegistry::new(vec![App::new(APP, vec![Secret::new(SECRET)], true)]).with_leeway(LEEWAY);
    let session = registry.verify_session(APP, DOC, &token, NOW);
    let host = registry.verify_host(APP, Some(DOC), &token, NOW);
    let app_wide = registry.verify_host(APP, None, &token, NOW);
    if !has_secret {
        assert!(session.is_err(), "verified without the secret: {token}");
        assert!(
            host.is_err() && app_wide.is_err(),
            "verified without the secret"
        );
    }
    assert!(
        !(session.is_ok() && host.is_ok()),
        "one token passed as both kinds: {token}"
    );
    if let Ok(claims) = &session {
        assert_eq!(claims.iss, APP);
        assert_eq!(claims.doc, DOC);
        assert!(
            NOW < claims.exp.saturating_add(LEEWAY),
            "expired: {claims:?}"
        );
        assert!(claims.nbf.is_none_or(|nbf| nbf <= NOW + LEEWAY));
    }
    for claims in [&host, &app_wide].into_iter().flatten() {
        assert_eq!(claims.iss, APP);
        assert_eq!(claims.scope, "host");
        assert!(
            NOW < claims.exp.saturating_add(LEEWAY),
            "expired: {claims:?}"
        );
        assert!(claims.nbf.is_none_or(|nbf| nbf <= NOW + LEEWAY));
    }
    if let Ok(claims) = &host {
        assert!(claims.doc.as_deref().is_none_or(|d| d == DOC));
    }
    if let Ok(claims) = &app_wide {
        assert_eq!(
            claims.doc, None,
            "a one-document token granted the whole app"
        );
    }
}
