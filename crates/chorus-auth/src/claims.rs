//! JWT claim sets.

use serde::{Deserialize, Serialize};

/// The only `scope` value accepted by [`crate::AppRegistry::verify_host`].
pub const HOST_SCOPE: &str = "host";

/// What a session may do with its document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// May send document updates and awareness (`"edit"`).
    Edit,
    /// Receives everything, may send awareness only, never updates (`"view"`).
    View,
}

impl Mode {
    /// The wire name: `"edit"` or `"view"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Edit => "edit",
            Mode::View => "view",
        }
    }

    /// `true` for [`Mode::Edit`].
    pub fn can_write(self) -> bool {
        self == Mode::Edit
    }
}

/// Claims of a session token (browser → websocket).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// Issuer: the app id.
    pub iss: String,
    /// Subject: the user id in the host app.
    pub sub: String,
    /// The content (document) id this session may open.
    pub doc: String,
    /// Edit or view.
    pub mode: Mode,
    /// Expiry, unix seconds (required).
    pub exp: u64,
    /// Not before, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, unix seconds (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Display name of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Avatar URL of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// Cursor / presence colour of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

impl SessionClaims {
    /// Claims with the required fields set and every optional field `None`.
    pub fn new(
        app_id: impl Into<String>,
        sub: impl Into<String>,
        doc: impl Into<String>,
        mode: Mode,
        exp: u64,
    ) -> Self {
        SessionClaims {
            iss: app_id.into(),
            sub: sub.into(),
            doc: doc.into(),
            mode,
            exp,
            nbf: None,
            iat: None,
            name: None,
            avatar: None,
            color: None,
        }
    }
}

/// Claims of a host token (host application → REST API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostClaims {
    /// Issuer: the app id.
    pub iss: String,
    /// Must be [`HOST_SCOPE`] (`"host"`).
    pub scope: String,
    /// Expiry, unix seconds (required).
    pub exp: u64,
    /// Not before, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, unix seconds (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// If set, the token only grants this one document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
}

impl HostClaims {
    /// App-wide host claims (`scope = "host"`, no `doc` restriction).
    pub fn new(app_id: impl Into<String>, exp: u64) -> Self {
        HostClaims {
            iss: app_id.into(),
            scope: HOST_SCOPE.to_owned(),
            exp,
            nbf: None,
            iat: None,
            doc: None,
        }
    }
}
