//! Verification tests. Every refusal test also checks that the same token with
//! the offending detail fixed is accepted, so removing a check makes a test fail.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::token::B64URL;
use crate::*;

const NOW: u64 = 1_700_000_000;
const SECRET_CURRENT: &str = "app1-current-secret-3f9a";
const SECRET_PREVIOUS: &str = "app1-previous-secret-77c2";
const SECRET_APP2: &str = "app2-secret-b1e0";
const SECRET_OFF: &str = "off-secret-9d01";

fn registry() -> AppRegistry {
    AppRegistry::new(vec![
        App::new(
            "app1",
            vec![Secret::new(SECRET_CURRENT), Secret::new(SECRET_PREVIOUS)],
            true,
        ),
        App::new("app2", vec![Secret::new(SECRET_APP2)], true),
        App::new("off", vec![Secret::new(SECRET_OFF)], false),
    ])
}

fn session(mode: Mode) -> SessionClaims {
    SessionClaims::new("app1", "user-1", "doc-1", mode, NOW + 60)
}

fn host() -> HostClaims {
    HostClaims::new("app1", NOW + 60)
}

/// Sign arbitrary JSON claims with an arbitrary algorithm through jsonwebtoken.
fn sign_json(claims: &Value, secret: &str, alg: Algorithm) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Session claims as a JSON object, for tests that remove or alter fields.
fn session_json() -> Value {
    serde_json::to_value(session(Mode::Edit)).unwrap()
}

/// Build `b64(header).b64(claims).signature` by hand.
fn raw_token(header: &str, claims: &str, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        B64URL.encode(header.as_bytes()),
        B64URL.encode(claims.as_bytes()),
        signature
    )
}

fn verify_s(token: &str) -> Result<SessionClaims, AuthError> {
    registry().verify_session("app1", "doc-1", token, NOW)
}

// ---------------------------------------------------------------- valid tokens

#[test]
fn valid_edit_token() {
    let mut claims = session(Mode::Edit);
    claims.name = Some("Ada".into());
    claims.avatar = Some("https://example.com/a.png".into());
    claims.color = Some("#ff0000".into());
    claims.iat = Some(NOW - 5);
    claims.nbf = Some(NOW - 5);
    let token = mint_session(&Secret::new(SECRET_CURRENT), &claims).unwrap();
    let got = verify_s(&token).unwrap();
    assert_eq!(got, claims);
    assert_eq!(got.mode, Mode::Edit);
    assert!(got.mode.can_write());
}

#[test]
fn valid_view_token() {
    let claims = session(Mode::View);
    let token = mint_session(&Secret::new(SECRET_CURRENT), &claims).unwrap();
    let got = verify_s(&token).unwrap();
    assert_eq!(got.mode, Mode::View);
    assert!(!got.mode.can_write());
    assert_eq!(got.sub, "user-1");
    assert_eq!(got.name, None);
}

#[test]
fn minted_token_is_hs256_jwt() {
    let token = mint_session(&Secret::new(SECRET_CURRENT), &session(Mode::Edit)).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
}

#[test]
fn rotation_any_secret_verifies() {
    for secret in [SECRET_CURRENT, SECRET_PREVIOUS] {
        let token = mint_session(&Secret::new(secret), &session(Mode::Edit)).unwrap();
        assert!(verify_s(&token).is_ok(), "secret {secret} should verify");
    }
    let app = registry().get("app1").unwrap();
    assert_eq!(app.signing_secret().unwrap().expose(), SECRET_CURRENT);
}

// ---------------------------------------------------------------- signature

#[test]
fn wrong_secret_is_bad_signature() {
    let token = mint_session(&Secret::new("not-the-secret"), &session(Mode::Edit)).unwrap();
    assert_eq!(verify_s(&token), Err(AuthError::BadSignature));
    // another app's secret does not work either
    let token = mint_session(&Secret::new(SECRET_APP2), &session(Mode::Edit)).unwrap();
    assert_eq!(verify_s(&token), Err(AuthError::BadSignature));
}

#[test]
fn tampered_payload_is_bad_signature() {
    let token = mint_session(&Secret::new(SECRET_CURRENT), &session(Mode::View)).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let payload = String::from_utf8(B64URL.decode(parts[1]).unwrap()).unwrap();
    // control: re-encoding the identical payload keeps the signature valid
    let same = format!(
        "{}.{}.{}",
        parts[0],
        B64URL.encode(payload.as_bytes()),
        parts[2]
    );
    assert!(verify_s(&same).is_ok());
    // privilege escalation attempt: view -> edit with the old signature
    let escalated = payload.replace(r#""mode":"view""#, r#""mode":"edit""#);
    assert_ne!(escalated, payload);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64URL.encode(escalated.as_bytes()),
        parts[2]
    );
    assert_eq!(verify_s(&forged), Err(AuthError::BadSignature));
    // signature stripped
    let stripped = format!("{}.{}.", parts[0], parts[1]);
    assert_eq!(verify_s(&stripped), Err(AuthError::BadSignature));
}

#[test]
fn empty_secrets_never_verify_nor_sign() {
    let reg = AppRegistry::new(vec![App::new("e", vec![Secret::new("")], true)]);
    let claims = json!({"iss": "e", "sub": "u", "doc": "d", "mode": "edit", "exp": NOW + 60});
    let token = sign_json(&claims, "", Algorithm::HS256);
    assert_eq!(
        reg.verify_session("e", "d", &token, NOW),
        Err(AuthError::BadSignature)
    );
    assert_eq!(
        mint_session(&Secret::new(""), &session(Mode::Edit)),
        Err(AuthError::Signing)
    );
    assert_eq!(
        mint_host(&Secret::new(""), &host()),
        Err(AuthError::Signing)
    );
    // an app with no secret at all
    let reg = AppRegistry::new(vec![App::new("e", vec![], true)]);
    assert_eq!(
        reg.verify_session("e", "d", &token, NOW),
        Err(AuthError::BadSignature)
    );
}

// ---------------------------------------------------------------- algorithm

#[test]
fn alg_none_is_refused() {
    let claims = serde_json::to_string(&session_json()).unwrap();
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None","typ":"JWT"}"#,
        r#"{"alg":"NONE"}"#,
        r#"{"alg":"hs256"}"#,
        r#"{"alg":""}"#,
    ] {
        let token = raw_token(header, &claims, "");
        assert_eq!(
            verify_s(&token),
            Err(AuthError::AlgorithmNotAllowed),
            "{header}"
        );
        assert_eq!(
            registry().verify_host("app1", None, &token, NOW),
            Err(AuthError::AlgorithmNotAllowed),
            "{header}"
        );
    }
    // a none token that carries a (valid HS256) signature is still refused
    let good = mint_session(&Secret::new(SECRET_CURRENT), &session(Mode::Edit)).unwrap();
    let sig = good.rsplit('.').next().unwrap();
    let token = raw_token(r#"{"alg":"none","typ":"JWT"}"#, &claims, sig);
    assert_eq!(verify_s(&token), Err(AuthError::AlgorithmNotAllowed));
    // control: the same hand-built token with HS256 in the header verifies
    let header = good.split('.').next().unwrap();
    let payload = good.split('.').nth(1).unwrap();
    assert!(verify_s(&format!("{header}.{payload}.{sig}")).is_ok());
}

#[test]
fn other_hmac_algorithms_are_refused() {
    let claims = session_json();
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign_json(&claims, SECRET_CURRENT, alg);
        assert_eq!(
            verify_s(&token),
            Err(AuthError::AlgorithmNotAllowed),
            "{alg:?}"
        );
    }
    assert!(verify_s(&sign_json(&claims, SECRET_CURRENT, Algorithm::HS256)).is_ok());
}

#[test]
fn asymmetric_algorithms_are_refused() {
    // Classic key-confusion attack: RS256 header, HMAC'd with the "public key".
    let claims = serde_json::to_string(&session_json()).unwrap();
    for alg in ["RS256", "ES256", "EdDSA", "PS256", "XX999"] {
        let token = raw_token(
            &format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#),
            &claims,
            "AAAA",
        );
        assert_eq!(
            verify_s(&token),
            Err(AuthError::AlgorithmNotAllowed),
            "{alg}"
        );
    }
}

#[test]
fn missing_or_non_string_alg_is_malformed() {
    let claims = serde_json::to_string(&session_json()).unwrap();
    for header in [
        r#"{"typ":"JWT"}"#,
        r#"{"alg":null}"#,
        r#"{"alg":256}"#,
        r#"["HS256"]"#,
    ] {
        let token = raw_token(header, &claims, "");
        assert_eq!(verify_s(&token), Err(AuthError::Malformed), "{header}");
    }
}

#[test]
fn crit_header_is_refused() {
    let claims = serde_json::to_string(&session_json()).unwrap();
    let good = mint_session(&Secret::new(SECRET_CURRENT), &session(Mode::Edit)).unwrap();
    let sig = good.rsplit('.').next().unwrap();
    let token = raw_token(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#, &claims, sig);
    assert_eq!(verify_s(&token), Err(AuthError::Malformed));
}

// ---------------------------------------------------------------- time

#[test]
fn expired() {
    let reg = registry();
    let mut claims = session(Mode::Edit);
    claims.exp = NOW;
    let token = mint_session(&Secret::new(SECRET_CURRENT), &claims).unwrap();
    assert_eq!(
        reg.verify_session("app1", "doc-1", &token, NOW),
        Err(AuthError::Expired)
    );
    assert_eq!(
        reg.verify_session("app1", "doc-1", &token, NOW + 1000),
        Err(AuthError::Expired)
    );
    assert!(reg.verify_session("app1", "doc-1", &token, NOW - 1).is_ok());
    claims.exp = 0;
    let token = mint_session(&Secret::new(SECRET_CURRENT), &claims).unwrap();
    assert_eq!(
        reg.verify_session("app1", "doc-1", &token, NOW),
        Err(AuthError::Expired)
    );
}

#[test]
fn not_yet_valid() {
    let reg = registry();
    let mut claims = session(Mode::Edit);
    claims.nbf = Some(NOW + 1);
    let token = mint_session(&Secret::new(SECRET_CURRENT), &claims).unwrap();
    assert_eq!(
        reg.verify_session("app1", "doc-1", &token, NOW),
        Err(AuthError::NotYetValid)
    );
    assert!(reg.verify_session("app1", "doc-1", &token, NOW + 1).is_ok());
}

#[test]
fn leeway_applies_to_exp_and_nbf() {
    let strict = registry();
    let lenient = registry().with_leeway(30);
    assert_eq!(strict.leeway(), DEFAULT_LEEWAY_SECS);
    assert_eq!(lenient.leeway(), 30);

    let mut claims = session(Mode::Edit);
    claims.exp = NOW - 10;
    let expired_recently = mint_session(&Secret::new(SECRET_CURRENT), &claims).unwrap();
    assert_eq!(
        strict.verify_session("app1", "doc-1", &expired_recently, NOW),
        Err(AuthError::Expired)
    );
    assert!(lenient
        .verify_session("app1", "doc-1", &expired_recently, NOW)
        .is_ok());
    claims.exp = NOW - 30;
    let expired_long_ago = mint_session(&Secret::new(SECRET_CURRENT), &claims).unwrap();
    assert_eq!(
        lenient.verify_session("app1", "doc-1", &expired_long_ago, NOW),
        Err(AuthError::Expired)
    );

    let mut claims = session(Mode::Edit);
    claims.nbf = Some(NOW + 30);
    let soon = mint_session(&Secret::new(SECRET_CURRENT), &claims).unwrap();
    assert_eq!(
        strict.verify_session("app1", "doc-1", &soon, NOW),
        Err(AuthError::NotYetValid)
    );
    assert!(lenient.verify_session("app1", "doc-1", &soon, NOW).is_ok());
    claims.nbf = Some(NOW + 31);
    let later = mint_session(&Secret::new(SECRET_CURRENT), &claims).unwrap();
    assert_eq!(
        lenient.verify_session("app1", "doc-1", &later, NOW),
        Err(AuthError::NotYetValid)
    );

    // host tokens get the same treatment
    let mut h = host();
    h.exp = NOW - 10;
    let token = mint_host(&Secret::new(SECRET_CURRENT), &h).unwrap();
    assert_eq!(
        strict.verify_host("app1", None, &token, NOW),
        Err(AuthError::Expired)
    );
    assert!(lenient.verify_host("app1", None, &token, NOW).is_ok());

    // huge leeway / exp do not overflow
    let max = registry().with_leeway(u64::MAX);
    assert!(max.verify_session("app1", "doc-1", &later, NOW).is_ok());
}

#[test]
fn exp_is_required_and_must_be_a_number() {
    let mut claims = session_json();
    claims.as_object_mut().unwrap().remove("exp");
    let token = sign_json(&claims, SECRET_CURRENT, Algorithm::HS256);
    assert_eq!(verify_s(&token), Err(AuthError::MissingClaim("exp")));
    claims["exp"] = Value::Null;
    let token = sign_json(&claims, SECRET_CURRENT, Algorithm::HS256);
    assert_eq!(verify_s(&token), Err(AuthError::MissingClaim("exp")));
    for bad in [json!("1800000000"), json!(-5), json!(true), json!(1e300)] {
        claims["exp"] = bad.clone();
        let token = sign_json(&claims, SECRET_CURRENT, Algorithm::HS256);
        assert_eq!(verify_s(&token), Err(AuthError::Malformed), "{bad}");
    }
    let mut h = serde_json::to_value(host()).unwrap();
    h.as_object_mut().unwrap().remove("exp");
    let token = sign_json(&h, SECRET_CURRENT, Algorithm::HS256);
    assert_eq!(
        registry().verify_host("app1", None, &token, NOW),
        Err(AuthError::MissingClaim("exp"))
    );
}

#[test]
fn fractional_numeric_dates_are_accepted() {
    let mut claims = session_json();
    claims["exp"] = json!(NOW as f64 + 0.5);
    claims["iat"] = json!(NOW as f64 - 0.5);
    let token = sign_json(&claims, SECRET_CURRENT, Algorithm::HS256);
    let got = verify_s(&token).unwrap_err();
    // exp rounds down to NOW -> expired at NOW, valid just before
    assert_eq!(got, AuthError::Expired);
    let ok = registry()
        .verify_session("app1", "doc-1", &token, NOW - 1)
        .unwrap();
    assert_eq!(ok.exp, NOW);
    assert_eq!(ok.iat, Some(NOW - 1));

    claims["exp"] = json!(NOW + 60);
    claims["nbf"] = json!(NOW as f64 + 0.5); // rounds up to NOW + 1
    let token = sign_json(&claims, SECRET_CURRENT, Algorithm::HS256);
    assert_eq!(verify_s(&token), Err(AuthError::NotYetValid));
}

// ---------------------------------------------------------------- apps

#[test]
fn an_unknown_app_is_a_bad_signature() {
    // Issue 28: an unknown app must not answer differently from a known app with
    // a wrong secret, or app ids can be enumerated without any secret.
    let mut claims = session_json();
    claims["iss"] = json!("nope");
    let token = sign_json(&claims, SECRET_CURRENT, Algorithm::HS256);
    assert_eq!(
        registry().verify_session("nope", "doc-1", &token, NOW),
        Err(AuthError::BadSignature)
    );
    assert_eq!(verify_s(&token), Err(AuthError::BadSignature));
    assert_eq!(
        AppRegistry::default().verify_host("app1", None, &token, NOW),
        Err(AuthError::BadSignature)
    );
    let host = mint_host(
        &Secret::new(SECRET_CURRENT),
        &HostClaims::new("nope", NOW + 60),
    )
    .unwrap();
    assert_eq!(
        registry().verify_host("nope", None, &host, NOW),
        Err(AuthError::BadSignature)
    );
    // The same answer as a known app's token signed with a wrong secret.
    let forged = sign_json(&session_json(), "not-the-secret", Algorithm::HS256);
    assert_eq!(verify_s(&forged), Err(AuthError::BadSignature));
}

#[test]
fn missing_iss() {
    let mut claims = session_json();
    claims.as_object_mut().unwrap().remove("iss");
    let token = sign_json(&claims, SECRET_CURRENT, Algorithm::HS256);
    assert_eq!(verify_s(&token), Err(AuthError::MissingClaim("iss")));
    claims["iss"] = json!(1);
    let token = sign_json(&claims, SECRET_CURRENT, Algorithm::HS256);
    assert_eq!(verify_s(&token), Err(AuthError::Malformed));
}

#[test]
fn disabled_app() {
    let reg = registry();
    let mut claims = session(Mode::Edit);
    claims.iss = "off".into();
    let token = mint_session(&Secret::new(SECRET_OFF), &claims).unwrap();
    assert_eq!(
        reg.verify_session("off", "doc-1", &token, NOW),
        Err(AuthError::AppDisabled)
    );
    // the flag is shared through the Arc and observed at once
    reg.get("off").unwrap().set_enabled(true);
    assert!(reg.get("off").unwrap().is_enabled());
    assert!(reg.verify_session("off", "doc-1", &token, NOW).is_ok());
    reg.get("off").unwrap().set_enabled(false);
    assert_eq!(
        reg.verify_session("off", "doc-1", &token, NOW),
        Err(AuthError::AppDisabled)
    );
    let h = mint_host(&Secret::new(SECRET_OFF), &HostClaims::new("off", NOW + 60)).unwrap();
    assert_eq!(
        reg.verify_host("off", None, &h, NOW),
        Err(AuthError::AppDisabled)
    );
    // a forged token for a disabled app reveals nothing beyond "bad signature"
    let forged = mint_session(&Secret::new("guess"), &claims).unwrap();
    assert_eq!(
        reg.verify_session("off", "doc-1", &forged, NOW),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn wrong_app() {
    let reg = registry();
    // genuine app2 token presented on app1's URL
    let mut claims = session(Mode::Edit);
    claims.iss = "app2".into();
    let token = mint_session(&Secret::new(SECRET_APP2), &claims).unwrap();
    assert_eq!(
        reg.verify_session("app1", "doc-1", &token, NOW),
        Err(AuthError::WrongApp)
    );
    assert!(reg.verify_session("app2", "doc-1", &token, NOW).is_ok());
    // URL app that does not exist at all
    assert_eq!(
        reg.verify_session("ghost", "doc-1", &token, NOW),
        Err(AuthError::WrongApp)
    );
    // claims app2 but signed with app1's secret: forged
    let forged = mint_session(&Secret::new(SECRET_CURRENT), &claims).unwrap();
    assert_eq!(
        reg.verify_session("app1", "doc-1", &forged, NOW),
        Err(AuthError::BadSignature)
    );
    // host tokens too
    let h = mint_host(
        &Secret::new(SECRET_APP2),
        &HostClaims::new("app2", NOW + 60),
    )
    .unwrap();
    assert_eq!(
        reg.verify_host("app1", None, &h, NOW),
        Err(AuthError::WrongApp)
    );
    assert!(reg.verify_host("app2", None, &h, NOW).is_ok());
}

// ---------------------------------------------------------------- session claims

#[test]
fn wrong_doc() {
    let token = mint_session(&Secret::new(SECRET_CURRENT), &session(Mode::Edit)).unwrap();
    let reg = registry();
    assert_eq!(
        reg.verify_session("app1", "doc-2", &token, NOW),
        Err(AuthError::WrongDoc)
    );
    assert_eq!(
        reg.verify_session("app1", "", &token, NOW),
        Err(AuthError::WrongDoc)
    );
    assert_eq!(
        reg.verify_session("app1", "DOC-1", &token, NOW),
        Err(AuthError::WrongDoc)
    );
    assert!(reg.verify_session("app1", "doc-1", &token, NOW).is_ok());
}

#[test]
fn missing_session_claims() {
    for name in ["mode", "sub", "doc"] {
        let mut claims = session_json();
        claims.as_object_mut().unwrap().remove(name);
        let token = sign_json(&claims, SECRET_CURRENT, Algorithm::HS256);
        assert_eq!(
            verify_s(&token),
            Err(AuthError::MissingClaim(name)),
            "{name}"
        );
        claims[name] = Value::Null;
        let token = sign_json(&claims, SECRET_CURRENT, Algorithm::HS256);
        assert_eq!(
            verify_s(&token),
            Err(AuthError::MissingClaim(name)),
            "{name}"
        );
    }
}

#[test]
fn invalid_session_claim_values() {
    for (name, value) in [
        ("mode", json!("admin")),
        ("mode", json!("Edit")),
        ("mode", json!(1)),
        ("sub", json!(42)),
        ("doc", json!(["doc-1"])),
        ("name", json!({"first": "Ada"})),
        ("iat", json!("yesterday")),
    ] {
        let mut claims = session_json();
        claims[name] = value.clone();
        let token = sign_json(&claims, SECRET_CURRENT, Algorithm::HS256);
        assert_eq!(
            verify_s(&token),
            Err(AuthError::Malformed),
            "{name}={value}"
        );
    }
    // unknown extra claims are tolerated
    let mut claims = session_json();
    claims["aud"] = json!("whatever");
    claims["jti"] = json!("x");
    let token = sign_json(&claims, SECRET_CURRENT, Algorithm::HS256);
    assert!(verify_s(&token).is_ok());
}

// ---------------------------------------------------------------- host tokens

#[test]
fn host_token_app_wide() {
    let reg = registry();
    let token = mint_host(&Secret::new(SECRET_CURRENT), &host()).unwrap();
    let got = reg.verify_host("app1", None, &token, NOW).unwrap();
    assert_eq!(got, host());
    assert_eq!(got.scope, HOST_SCOPE);
    assert!(reg
        .verify_host("app1", Some("any-doc"), &token, NOW)
        .is_ok());
    // rotation works for host tokens as well
    let token = mint_host(&Secret::new(SECRET_PREVIOUS), &host()).unwrap();
    assert!(reg.verify_host("app1", Some("doc-1"), &token, NOW).is_ok());
    let token = mint_host(&Secret::new("wrong"), &host()).unwrap();
    assert_eq!(
        reg.verify_host("app1", None, &token, NOW),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn host_scope_is_required() {
    let reg = registry();
    for scope in [
        json!("session"),
        json!("HOST"),
        json!(""),
        json!(["host"]),
        Value::Null,
    ] {
        let mut claims = serde_json::to_value(host()).unwrap();
        claims["scope"] = scope.clone();
        let token = sign_json(&claims, SECRET_CURRENT, Algorithm::HS256);
        assert_eq!(
            reg.verify_host("app1", None, &token, NOW),
            Err(AuthError::WrongScope),
            "{scope}"
        );
    }
    let mut claims = serde_json::to_value(host()).unwrap();
    claims.as_object_mut().unwrap().remove("scope");
    let token = sign_json(&claims, SECRET_CURRENT, Algorithm::HS256);
    assert_eq!(
        reg.verify_host("app1", None, &token, NOW),
        Err(AuthError::WrongScope)
    );
}

#[test]
fn host_doc_restriction() {
    let reg = registry();
    let mut claims = host();
    claims.doc = Some("doc-1".into());
    let token = mint_host(&Secret::new(SECRET_CURRENT), &claims).unwrap();
    let got = reg.verify_host("app1", Some("doc-1"), &token, NOW).unwrap();
    assert_eq!(got.doc.as_deref(), Some("doc-1"));
    assert_eq!(
        reg.verify_host("app1", Some("doc-2"), &token, NOW),
        Err(AuthError::WrongDoc)
    );
    // a doc-scoped token does not grant app-wide routes (e.g. list)
    assert_eq!(
        reg.verify_host("app1", None, &token, NOW),
        Err(AuthError::WrongDoc)
    );
}

#[test]
fn session_token_is_not_a_host_token() {
    let reg = registry();
    let token = mint_session(&Secret::new(SECRET_CURRENT), &session(Mode::Edit)).unwrap();
    assert!(reg.verify_session("app1", "doc-1", &token, NOW).is_ok());
    assert_eq!(
        reg.verify_host("app1", Some("doc-1"), &token, NOW),
        Err(AuthError::WrongScope)
    );
    assert_eq!(
        reg.verify_host("app1", None, &token, NOW),
        Err(AuthError::WrongScope)
    );
}

#[test]
fn host_token_is_not_a_session_token() {
    let reg = registry();
    let mut claims = host();
    claims.doc = Some("doc-1".into());
    let token = mint_host(&Secret::new(SECRET_CURRENT), &claims).unwrap();
    assert!(reg.verify_host("app1", Some("doc-1"), &token, NOW).is_ok());
    assert_eq!(
        reg.verify_session("app1", "doc-1", &token, NOW),
        Err(AuthError::WrongScope)
    );
    // even if it also carries every session claim
    let mut claims = session_json();
    claims["scope"] = json!("host");
    let token = sign_json(&claims, SECRET_CURRENT, Algorithm::HS256);
    assert_eq!(verify_s(&token), Err(AuthError::WrongScope));
}

// ---------------------------------------------------------------- garbage

#[test]
fn garbage_is_malformed() {
    let reg = registry();
    let good = mint_session(&Secret::new(SECRET_CURRENT), &session(Mode::Edit)).unwrap();
    let good_host = mint_host(&Secret::new(SECRET_CURRENT), &host()).unwrap();
    let [h, p, s]: [&str; 3] = good.split('.').collect::<Vec<_>>().try_into().unwrap();
    let not_object = B64URL.encode(b"[1,2,3]");
    let not_json = B64URL.encode(b"{nope");
    let oversized = format!("{h}.{p}.{s}{}", "A".repeat(MAX_TOKEN_LEN));
    // The signature with its last character's trailing (unused) bit set: a lax
    // decoder reads the same bytes, so the token would verify.
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = ALPHABET.find(s.chars().last().unwrap()).unwrap();
    assert_eq!(last % 4, 0, "a 32-byte signature leaves two trailing bits");
    let s_trailing_bit = format!("{}{}", &s[..s.len() - 1], &ALPHABET[last + 1..last + 2]);
    let cases: Vec<String> = vec![
        String::new(),
        "abc".into(),
        "a.b".into(),
        "a.b.c".into(),
        "...".into(),
        "..".into(),
        "\u{0}\u{1}.\u{2}.\u{3}".into(),
        "Bearer x.y.z".into(),
        "ünïcödé.ü.ü".into(),
        format!("{h}.{p}.{s}.{s}"),
        format!("{h}.{p}"),
        format!("{h}..{s}"),
        format!(".{p}.{s}"),
        format!("{h}.{p}.{s} "),
        format!(" {h}.{p}.{s}"),
        format!("{h}.{p}.{s}=="),
        format!("{h}.{p}.{s}="), // the signature correctly padded
        format!("{h}.{p}.{s_trailing_bit}"),
        format!("{h}.{p}.{}", s.replace('-', "+").replace('_', "/") + "+/"),
        format!("{h}.{p}!.{s}"),
        format!("{h}.{not_object}.{s}"),
        format!("{h}.{not_json}.{s}"),
        format!("{not_json}.{p}.{s}"),
        format!("{not_object}.{p}.{s}"),
        oversized,
    ];
    for case in &cases {
        assert_eq!(
            reg.verify_session("app1", "doc-1", case, NOW),
            Err(AuthError::Malformed),
            "{case:?}"
        );
        assert_eq!(
            reg.verify_host("app1", None, case, NOW),
            Err(AuthError::Malformed),
            "{case:?}"
        );
    }
    // the untouched tokens are fine
    assert!(reg.verify_session("app1", "doc-1", &good, NOW).is_ok());
    assert!(reg.verify_host("app1", None, &good_host, NOW).is_ok());
}

// ---------------------------------------------------------------- base64url

#[test]
fn base64url_round_trips_all_lengths() {
    let data: Vec<u8> = (0..=255u8).collect();
    for len in 0..40 {
        let enc = B64URL.encode(&data[..len]);
        assert!(!enc.contains('='));
        assert_eq!(B64URL.decode(&enc).ok().as_deref(), Some(&data[..len]));
    }
}

#[test]
fn base64url_known_vectors() {
    assert_eq!(B64URL.encode(b"{\"alg\":\"none\"}"), "eyJhbGciOiJub25lIn0");
    assert_eq!(
        B64URL.decode("eyJhbGciOiJub25lIn0").unwrap(),
        b"{\"alg\":\"none\"}"
    );
    assert_eq!(B64URL.decode("-_8").unwrap(), vec![0xfb, 0xff]);
}

#[test]
fn base64url_rejects_invalid() {
    assert!(B64URL.decode("A").is_err()); // impossible length
    assert!(B64URL.decode("AA==").is_err()); // padding
    assert!(B64URL.decode("AA").is_ok()); // (the same without padding)
    assert!(B64URL.decode("+/8").is_err()); // standard alphabet
    assert!(B64URL.decode("AB").is_err()); // non-zero trailing bits
    assert!(B64URL.decode("a b").is_err());
    assert_eq!(B64URL.decode("").unwrap(), Vec::<u8>::new());
}

// ---------------------------------------------------------------- secrets & errors

#[test]
fn secret_is_redacted() {
    let secret = Secret::new("hunter2-super-secret");
    assert_eq!(format!("{secret:?}"), "[redacted]");
    assert_eq!(format!("{secret}"), "[redacted]");
    assert_eq!(secret.expose(), "hunter2-super-secret");
    let app = App::new(
        "a",
        vec![secret.clone(), Secret::from("second-secret")],
        true,
    );
    let app_dbg = format!("{app:?}");
    let dbg = format!("{app_dbg} {:#?}", AppRegistry::new(vec![app]));
    assert!(!dbg.contains("hunter2"), "{dbg}");
    assert!(!dbg.contains("second-secret"), "{dbg}");
    assert!(dbg.contains("[redacted]"));
    // deserializable from configuration
    let s: Secret = serde_json::from_str("\"from-config\"").unwrap();
    assert_eq!(s.expose(), "from-config");
}

#[test]
fn error_messages_leak_nothing() {
    let all = [
        AuthError::Malformed,
        AuthError::BadSignature,
        AuthError::AlgorithmNotAllowed,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::AppDisabled,
        AuthError::WrongApp,
        AuthError::WrongDoc,
        AuthError::WrongScope,
        AuthError::MissingClaim("mode"),
        AuthError::Signing,
    ];
    let token = mint_session(&Secret::new(SECRET_CURRENT), &session(Mode::Edit)).unwrap();
    for e in &all {
        let msg = e.to_string();
        assert!(!msg.is_empty());
        assert!(!msg.contains(SECRET_CURRENT) && !msg.contains(&token));
        assert!(!e.code().is_empty());
    }
    assert!(AuthError::MissingClaim("mode").to_string().contains("mode"));
    let forbidden: Vec<_> = all.iter().filter(|e| e.is_forbidden()).cloned().collect();
    assert_eq!(
        forbidden,
        vec![
            AuthError::AppDisabled,
            AuthError::WrongApp,
            AuthError::WrongDoc,
            AuthError::WrongScope,
        ]
    );
}

// ---------------------------------------------------------------- types

#[test]
fn claims_serialization() {
    assert_eq!(serde_json::to_value(Mode::Edit).unwrap(), json!("edit"));
    assert_eq!(serde_json::to_value(Mode::View).unwrap(), json!("view"));
    assert_eq!(Mode::View.as_str(), "view");
    let v = serde_json::to_value(session(Mode::View)).unwrap();
    assert_eq!(
        v,
        json!({"iss": "app1", "sub": "user-1", "doc": "doc-1", "mode": "view", "exp": NOW + 60})
    );
    let v = serde_json::to_value(host()).unwrap();
    assert_eq!(v, json!({"iss": "app1", "scope": "host", "exp": NOW + 60}));
}

#[test]
fn registry_accessors() {
    let reg = registry();
    assert_eq!(reg.len(), 3);
    assert!(!reg.is_empty());
    assert_eq!(reg.ids(), vec!["app1", "app2", "off"]);
    assert!(reg.get("app1").unwrap().is_enabled());
    assert!(!reg.get("off").unwrap().is_enabled());
    assert!(reg.get("APP1").is_none());
    assert!(AppRegistry::default().is_empty());
    let dup = AppRegistry::new(vec![
        App::new("x", vec![Secret::new("first")], true),
        App::new("x", vec![Secret::new("last")], false),
    ]);
    assert_eq!(dup.len(), 1);
    assert_eq!(dup.get("x").unwrap().secrets[0].expose(), "last");
}
