//! Compact-JWS parsing (header pinned to HS256), signature checks and minting.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{AuthError, HostClaims, Secret, SessionClaims};

/// Longest token accepted, in bytes; anything longer is [`AuthError::Malformed`]
/// without being decoded.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The only algorithm accepted and produced.
const ALG: Algorithm = Algorithm::HS256;
const ALG_NAME: &str = "HS256";

/// Unpadded base64url (RFC 4648 §5), as JWS compact serialization uses. Decoding
/// refuses padding, characters outside the URL-safe alphabet, impossible lengths
/// and non-zero trailing bits, so every byte string has exactly one accepted
/// encoding. This is `URL_SAFE_NO_PAD` with each strictness setting spelled out,
/// so that it does not rest on the crate's defaults.
pub(crate) const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// A structurally valid HS256 token whose signature has not been checked yet.
pub(crate) struct Unverified<'a> {
    /// `base64url(header) "." base64url(claims)`: the signed message.
    message: &'a str,
    /// The signature part, still base64url (known to decode).
    signature: &'a str,
    /// The decoded claims object. Do not trust before [`Unverified::verify`].
    pub(crate) claims: Map<String, Value>,
}

fn json_object(part: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = B64URL.decode(part).map_err(|_| AuthError::Malformed)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AuthError::Malformed),
    }
}

/// Split and decode a compact JWS, checking the header first: the algorithm
/// must be exactly `HS256`.
pub(crate) fn parse(token: &str) -> Result<Unverified<'_>, AuthError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };

    let header_map = json_object(header)?;
    match header_map.get("alg") {
        Some(Value::String(alg)) if alg == ALG_NAME => {}
        Some(Value::String(_)) => return Err(AuthError::AlgorithmNotAllowed),
        _ => return Err(AuthError::Malformed),
    }
    // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; we
    // understand none.
    if header_map.contains_key("crit") {
        return Err(AuthError::Malformed);
    }

    let claims = json_object(payload)?;
    if B64URL.decode(signature).is_err() {
        return Err(AuthError::Malformed);
    }
    let message = &token[..header.len() + 1 + payload.len()];
    Ok(Unverified {
        message,
        signature,
        claims,
    })
}

impl Unverified<'_> {
    /// `true` if any non-empty secret verifies the HS256 signature
    /// (constant-time comparison inside the HMAC backend).
    pub(crate) fn verify(&self, secrets: &[Secret]) -> bool {
        secrets.iter().filter(|s| !s.is_empty()).any(|secret| {
            let key = DecodingKey::from_secret(secret.expose().as_bytes());
            matches!(
                jsonwebtoken::crypto::verify(self.signature, self.message.as_bytes(), &key, ALG),
                Ok(true)
            )
        })
    }
}

fn mint<T: Serialize>(secret: &Secret, claims: &T) -> Result<String, AuthError> {
    if secret.is_empty() {
        return Err(AuthError::Signing);
    }
    let key = EncodingKey::from_secret(secret.expose().as_bytes());
    jsonwebtoken::encode(&Header::new(ALG), claims, &key).map_err(|_| AuthError::Signing)
}

/// Sign session claims with HS256. Refuses an empty secret
/// ([`AuthError::Signing`]). Does not validate the claims.
pub fn mint_session(secret: &Secret, claims: &SessionClaims) -> Result<String, AuthError> {
    mint(secret, claims)
}

/// Sign host claims with HS256. Refuses an empty secret
/// ([`AuthError::Signing`]). Does not validate the claims.
pub fn mint_host(secret: &Secret, claims: &HostClaims) -> Result<String, AuthError> {
    mint(secret, claims)
}
