//! Registered apps and token verification against them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::claims::HOST_SCOPE;
use crate::{token, AuthError, HostClaims, Secret, SessionClaims, DEFAULT_LEEWAY_SECS};

/// A host application allowed to use Chorus.
#[derive(Debug)]
pub struct App {
    /// The app id (the `iss` of its tokens and the `{app}` of URLs).
    pub id: String,
    /// Shared HS256 secrets. Any of them verifies a token (rotation); the first
    /// one is the one to sign with. Empty secrets are ignored.
    pub secrets: Vec<Secret>,
    enabled: AtomicBool,
}

impl App {
    /// A new app.
    pub fn new(id: impl Into<String>, secrets: Vec<Secret>, enabled: bool) -> Self {
        App {
            id: id.into(),
            secrets,
            enabled: AtomicBool::new(enabled),
        }
    }

    /// Whether the app's tokens are currently accepted.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Enable or disable the app at runtime (takes effect for the next
    /// verification; already-open sessions are the server's business).
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Release);
    }

    /// The secret new tokens should be signed with: the first one, if any.
    pub fn signing_secret(&self) -> Option<&Secret> {
        self.secrets.first()
    }
}

/// The set of registered apps, plus the verification policy (leeway).
#[derive(Clone, Debug)]
pub struct AppRegistry {
    apps: HashMap<String, Arc<App>>,
    leeway: u64,
}

impl Default for AppRegistry {
    fn default() -> Self {
        AppRegistry::new(Vec::new())
    }
}

impl AppRegistry {
    /// A registry of `apps` with [`DEFAULT_LEEWAY_SECS`]. If two apps share an
    /// id, the last one wins.
    pub fn new(apps: Vec<App>) -> Self {
        AppRegistry {
            apps: apps
                .into_iter()
                .map(|app| (app.id.clone(), Arc::new(app)))
                .collect(),
            leeway: DEFAULT_LEEWAY_SECS,
        }
    }

    /// Allow `secs` of clock skew on `exp` and `nbf` checks.
    pub fn with_leeway(mut self, secs: u64) -> Self {
        self.leeway = secs;
        self
    }

    /// The clock-skew allowance in seconds.
    pub fn leeway(&self) -> u64 {
        self.leeway
    }

    /// The app with this id.
    pub fn get(&self, id: &str) -> Option<Arc<App>> {
        self.apps.get(id).cloned()
    }

    /// All app ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.apps.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Number of registered apps.
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    /// `true` if no app is registered.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// Verify a browser session token for the websocket of (app_id, doc_id).
    ///
    /// Checks, in order: HS256 header, `iss` names a registered app and a secret
    /// of it signed the token (either failing is [`AuthError::BadSignature`]),
    /// app enabled, `iss == app_id`, `exp`/`nbf`
    /// against `now` (unix seconds) and the leeway, no `scope` claim (a host
    /// token is not a session token), required `sub`/`doc`/`mode`, and
    /// `doc == doc_id`.
    pub fn verify_session(
        &self,
        app_id: &str,
        doc_id: &str,
        token: &str,
        now: u64,
    ) -> Result<SessionClaims, AuthError> {
        let claims = self.authenticate(app_id, token, now)?;
        if !is_absent(&claims, "scope") {
            return Err(AuthError::WrongScope);
        }
        for name in ["sub", "doc", "mode"] {
            if is_absent(&claims, name) {
                return Err(AuthError::MissingClaim(name));
            }
        }
        let claims: SessionClaims =
            serde_json::from_value(Value::Object(claims)).map_err(|_| AuthError::Malformed)?;
        if claims.doc != doc_id {
            return Err(AuthError::WrongDoc);
        }
        Ok(claims)
    }

    /// Verify a host (REST) token; `doc` is the content the request is about
    /// (None for app-wide routes like list). A token with a `doc` claim only
    /// grants that doc.
    ///
    /// Same checks as [`AppRegistry::verify_session`] up to the time checks,
    /// then `scope` must be `"host"` ([`AuthError::WrongScope`]) and a `doc`
    /// claim must equal `doc` ([`AuthError::WrongDoc`], also when `doc` is
    /// `None`).
    pub fn verify_host(
        &self,
        app_id: &str,
        doc: Option<&str>,
        token: &str,
        now: u64,
    ) -> Result<HostClaims, AuthError> {
        let claims = self.authenticate(app_id, token, now)?;
        match claims.get("scope") {
            Some(Value::String(scope)) if scope == HOST_SCOPE => {}
            _ => return Err(AuthError::WrongScope),
        }
        let claims: HostClaims =
            serde_json::from_value(Value::Object(claims)).map_err(|_| AuthError::Malformed)?;
        if let Some(granted) = &claims.doc {
            if doc != Some(granted.as_str()) {
                return Err(AuthError::WrongDoc);
            }
        }
        Ok(claims)
    }

    /// The checks common to both token kinds; returns the verified claims
    /// object with `exp`/`nbf`/`iat` normalized to integers.
    fn authenticate(
        &self,
        app_id: &str,
        token: &str,
        now: u64,
    ) -> Result<Map<String, Value>, AuthError> {
        let unverified = token::parse(token)?;
        let iss = match unverified.claims.get("iss") {
            None | Some(Value::Null) => return Err(AuthError::MissingClaim("iss")),
            Some(Value::String(iss)) => iss,
            Some(_) => return Err(AuthError::Malformed),
        };
        // An unknown `iss` is a bad signature: no secret of it could have signed
        // the token, and a distinct answer would tell a caller without one which
        // app ids exist. (Timing is not made equal: an unknown app skips the HMAC.)
        let app = self.get(iss).ok_or(AuthError::BadSignature)?;
        if !unverified.verify(&app.secrets) {
            return Err(AuthError::BadSignature);
        }
        if !app.is_enabled() {
            return Err(AuthError::AppDisabled);
        }
        if app.id != app_id {
            return Err(AuthError::WrongApp);
        }

        let mut claims = unverified.claims;
        let exp =
            numeric_date(&mut claims, "exp", f64::floor)?.ok_or(AuthError::MissingClaim("exp"))?;
        let nbf = numeric_date(&mut claims, "nbf", f64::ceil)?;
        numeric_date(&mut claims, "iat", f64::floor)?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = nbf {
            if nbf > now.saturating_add(self.leeway) {
                return Err(AuthError::NotYetValid);
            }
        }
        Ok(claims)
    }
}

fn is_absent(claims: &Map<String, Value>, name: &str) -> bool {
    matches!(claims.get(name), None | Some(Value::Null))
}

/// Read a NumericDate claim as whole seconds. RFC 7519 allows non-integer
/// values: they are rounded with `round` (towards the stricter side) and
/// written back as integers so the typed claims deserialize. Absent or `null`
/// is `None`; negative, non-numeric or out-of-range is `Malformed`.
fn numeric_date(
    claims: &mut Map<String, Value>,
    name: &str,
    round: fn(f64) -> f64,
) -> Result<Option<u64>, AuthError> {
    let secs = match claims.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(secs) => secs,
            None => {
                let f = n.as_f64().ok_or(AuthError::Malformed)?;
                let f = round(f);
                // 2^53: beyond this f64 stops being exact; no real date is there.
                if !(0.0..=9_007_199_254_740_992.0).contains(&f) {
                    return Err(AuthError::Malformed);
                }
                f as u64
            }
        },
        Some(_) => return Err(AuthError::Malformed),
    };
    claims.insert(name.to_owned(), Value::from(secs));
    Ok(Some(secs))
}
