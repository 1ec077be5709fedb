//! Who is on a connection, as established by a verified token.

use chorus_auth::{Mode, SessionClaims};
use std::sync::Arc;

/// The verified identity and rights of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user id (`sub`).
    pub user_id: String,
    /// Display name; defaults to the user id.
    pub name: String,
    /// Cursor colour; derived from the user id when the token has none.
    pub color: String,
    /// Avatar URL, if the token carries one.
    pub avatar: Option<String>,
    /// Edit or view.
    pub mode: Mode,
    /// Whether this client asked for Chorus extension messages.
    pub extensions: bool,
    /// When the token expires (`exp`, seconds since the epoch): a host's downgrade
    /// or end of this session holds for its user until then.
    pub expires_at: u64,
    /// The token itself, kept so that in cluster mode the document's owner verifies
    /// it again instead of believing the node that forwards the connection.
    pub credential: Credential,
}

/// The token a session was granted by. Its `Debug` never shows it: sessions are
/// logged, tokens must not be.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credential(Option<Arc<str>>);

impl Credential {
    /// The token `token`.
    pub fn new(token: &str) -> Self {
        Credential(Some(token.into()))
    }

    /// The token, if the session kept one.
    pub fn token(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Credential(<redacted>)"
        } else {
            "Credential(none)"
        })
    }
}

/// A palette of readable cursor colours; a user without a colour claim gets a stable pick.
const PALETTE: [&str; 12] = [
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46a5a5", "#f032e6", "#6b8e23",
    "#c0392b", "#008080", "#9a6324", "#800000",
];

impl Session {
    /// Build a session from verified claims.
    pub fn from_claims(claims: &SessionClaims, extensions: bool) -> Self {
        Session {
            user_id: claims.sub.clone(),
            name: claims.name.clone().unwrap_or_else(|| claims.sub.clone()),
            // Editors put the colour into a style and the avatar into an `img src`:
            // a claim that is not a plain colour or an http(s) URL is not used
            // (`red;position:fixed;inset:0` would cover the other editors).
            color: claims
                .color
                .as_deref()
                .filter(|c| is_hex_color(c))
                .unwrap_or_else(|| color_for(&claims.sub))
                .to_owned(),
            avatar: claims.avatar.clone().filter(|a| is_http_url(a)),
            mode: claims.mode,
            extensions,
            expires_at: claims.exp,
            credential: Credential::default(),
        }
    }

    /// This session, keeping the token it was granted by (see [`Credential`]).
    pub fn with_credential(mut self, token: &str) -> Self {
        self.credential = Credential::new(token);
        self
    }

    /// True for edit-mode sessions.
    pub fn can_edit(&self) -> bool {
        self.mode == Mode::Edit
    }

    /// The same session in view mode (a downgrade, a wait for the exclusive hold, the
    /// editor cap).
    pub fn view_only(&self) -> Session {
        Session {
            mode: Mode::View,
            ..self.clone()
        }
    }

    /// The `user` object stamped into this session's awareness states.
    pub fn user_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("id".into(), self.user_id.clone().into());
        m.insert("name".into(), self.name.clone().into());
        m.insert("color".into(), self.color.clone().into());
        if let Some(a) = &self.avatar {
            m.insert("avatar".into(), a.clone().into());
        }
        m
    }
}

/// `#rgb` or `#rrggbb`.
pub fn is_hex_color(color: &str) -> bool {
    let Some(hex) = color.strip_prefix('#') else {
        return false;
    };
    matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An absolute `http:` or `https:` URL of printable ASCII without quotes, angle
/// brackets, backslashes or spaces (what an `img src` may hold as it is), at most
/// 2 KiB.
pub fn is_http_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return false;
    };
    url.len() <= 2048
        && !rest.is_empty()
        && !rest.starts_with('/')
        && url.bytes().all(|b| {
            b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'<' | b'>' | b'\\' | b'`')
        })
}

/// A stable colour for a user id (FNV-1a; stable across restarts and platforms).
pub fn color_for(user_id: &str) -> &'static str {
    let mut h: u32 = 0x811c_9dc5;
    for b in user_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    PALETTE[(h as usize) % PALETTE.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn color_is_stable_and_defaults_apply() {
        assert_eq!(color_for("alice"), color_for("alice"));
        let claims = SessionClaims {
            iss: "a".into(),
            sub: "u1".into(),
            doc: "d".into(),
            mode: Mode::View,
            exp: 1,
            nbf: None,
            iat: None,
            name: None,
            avatar: None,
            color: None,
        };
        let s = Session::from_claims(&claims, false);
        assert_eq!(s.name, "u1");
        assert_eq!(s.color, color_for("u1"));
        assert!(!s.can_edit());
    }

    #[test]
    fn a_colour_or_avatar_claim_editors_cannot_use_as_it_is_is_dropped() {
        let claims = |color: &str, avatar: &str| SessionClaims {
            iss: "a".into(),
            sub: "u1".into(),
            doc: "d".into(),
            mode: Mode::Edit,
            exp: 1,
            nbf: None,
            iat: None,
            name: None,
            avatar: Some(avatar.into()),
            color: Some(color.into()),
        };
        let s = Session::from_claims(&claims("#A0b1C2", "https://cdn.example/a.png?s=1"), true);
        assert_eq!(s.color, "#A0b1C2");
        assert_eq!(s.avatar.as_deref(), Some("https://cdn.example/a.png?s=1"));
        assert_eq!(
            Session::from_claims(&claims("#fff", "HTTP://x.example/"), true).color,
            "#fff"
        );
        for (color, avatar) in [
            ("red;position:fixed;inset:0", "javascript:alert(1)"),
            ("#ff000", "https://x.example/a\" onerror=\"alert(1)"),
            ("#ggg", "data:image/png;base64,AAAA"),
            ("red", "//x.example/a.png"),
            ("#fff ", "https:///a"),
            ("", "https://"),
        ] {
            let s = Session::from_claims(&claims(color, avatar), true);
            assert_eq!(s.color, color_for("u1"), "{color}");
            assert_eq!(s.avatar, None, "{avatar}");
        }
    }
}
