//! Who is on a connection, as established by a verified token.

use chorus_auth::{Mode, SessionClaims};

/// The verified identity and rights of one connection.
/// Serializable, so a node can forward a connection's session to the document's
/// owner in cluster mode.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
            color: claims
                .color
                .clone()
                .unwrap_or_else(|| color_for(&claims.sub).to_owned()),
            avatar: claims.avatar.clone(),
            mode: claims.mode,
            extensions,
        }
    }

    /// True for edit-mode sessions.
    pub fn can_edit(&self) -> bool {
        self.mode == Mode::Edit
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
}
