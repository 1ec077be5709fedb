//! The `Authorization: Bearer` token of a delivery (HS256).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `iss` of every delivery token.
pub const ISSUER: &str = "chorus";

/// Lifetime of a delivery token (`exp - iat`), in seconds.
pub const TOKEN_TTL_SECS: u64 = 300;

/// Claims of the token signed for one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// The app id the event is for.
    pub aud: String,
    /// Unix seconds when the attempt was signed.
    pub iat: u64,
    /// `iat + 300`.
    pub exp: u64,
    /// The event id (the body's `"id"`): the same for every attempt of one event.
    pub jti: String,
    /// base64url (no padding) of the SHA-256 of the exact request body bytes.
    pub body_sha256: String,
}

/// Why a token could not be signed. Never carries the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SignError {
    #[error("the app has no signing secret")]
    EmptySecret,
    #[error("signing the delivery token failed")]
    Failed,
}

/// base64url (no padding) of SHA-256 of `body`.
pub fn body_sha256(body: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(body))
}

/// The compact JWS for one attempt to deliver `body` (event `event_id`) to `app`.
pub(crate) fn sign(
    secret: &[u8],
    app: &str,
    event_id: &str,
    body: &[u8],
    now_secs: u64,
) -> Result<String, SignError> {
    if secret.is_empty() {
        return Err(SignError::EmptySecret);
    }
    let claims = DeliveryClaims {
        iss: ISSUER.to_owned(),
        aud: app.to_owned(),
        iat: now_secs,
        exp: now_secs + TOKEN_TTL_SECS,
        jti: event_id.to_owned(),
        body_sha256: body_sha256(body),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|_| SignError::Failed)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    #[test]
    fn token_verifies_with_the_secret_and_binds_the_body() {
        let token = sign(b"s3cret", "app1", "evt-9", b"{\"a\":1}", 1_000).unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["app1"]);
        validation.set_issuer(&[ISSUER]);
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<DeliveryClaims>(
            &token,
            &DecodingKey::from_secret(b"s3cret"),
            &validation,
        )
        .unwrap();
        assert_eq!(data.header.alg, Algorithm::HS256);
        assert_eq!(data.claims.jti, "evt-9");
        assert_eq!(data.claims.exp, 1_300);
        assert_eq!(data.claims.body_sha256, body_sha256(b"{\"a\":1}"));
        assert!(jsonwebtoken::decode::<DeliveryClaims>(
            &token,
            &DecodingKey::from_secret(b"other"),
            &validation
        )
        .is_err());
    }

    #[test]
    fn body_hash_is_unpadded_base64url() {
        // SHA-256 of the empty string.
        assert_eq!(
            body_sha256(b""),
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn empty_secret_is_refused() {
        assert_eq!(sign(b"", "a", "e", b"", 0), Err(SignError::EmptySecret));
    }
}
