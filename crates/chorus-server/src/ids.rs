//! What an app id and a content id may be (PROTOCOL.md, "Connecting"): checked
//! where ids enter (configuration, websocket URLs, host API paths), so the layers
//! below only ever see valid ones.

/// Characters allowed in app and content ids.
pub fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '~')
}

/// Longest content id accepted in a URL.
pub const MAX_CONTENT_ID_LEN: usize = 256;

/// A content id as URLs, tokens and the store accept it (PROTOCOL.md, "Connecting").
pub fn is_valid_content_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CONTENT_ID_LEN && id.chars().all(is_id_char)
}
