//! The Hocuspocus provider's framing (`@hocuspocus/provider` v2 and v3), so that a
//! TipTap app on Hocuspocus switches to Chorus with a URL change.
//!
//! Every frame, both ways, is `varString documentName`, then `varUint type`, then the
//! type's payload. Types 0 (sync), 1 (awareness) and 3 (query awareness) carry
//! exactly the y-protocols message that follows the name, so a y-protocols frame
//! becomes a Hocuspocus one by putting the name in front ([`wrap`]). The others are
//! Hocuspocus's own:
//!
//! - 2 auth: client → server `Token` (0) + varString JWT (v4 appends its version:
//!   ignored); server → client `PermissionDenied` (1) + varString reason, or
//!   `Authenticated` (2) + varString scope (`read-write` / `readonly`);
//! - 5 stateless: an application string (ignored here);
//! - 7 close: client → server, the provider leaves the document;
//! - 8 sync status: server → client, varUint 1 for each update or step 2 of the
//!   client's that was applied (the provider counts its unsynced changes down).
//!
//! v4 providers may also send 1-byte `Ping` (9) / `Pong` (10) frames without a name:
//! [`Frame::Ping`]. PROTOCOL.md ("Hocuspocus endpoint") has the test vectors.

use crate::{DecodeError, Reader, Writer};
use bytes::Bytes;

/// Message types of the Hocuspocus framing.
pub const HP_SYNC: u64 = 0;
/// See [`HP_SYNC`].
pub const HP_AWARENESS: u64 = 1;
/// See [`HP_SYNC`].
pub const HP_AUTH: u64 = 2;
/// See [`HP_SYNC`].
pub const HP_QUERY_AWARENESS: u64 = 3;
/// See [`HP_SYNC`].
pub const HP_STATELESS: u64 = 5;
/// See [`HP_SYNC`].
pub const HP_CLOSE: u64 = 7;
/// See [`HP_SYNC`].
pub const HP_SYNC_STATUS: u64 = 8;

/// Auth sub-types (Hocuspocus's own numbers, not y-protocols').
const AUTH_TOKEN: u64 = 0;
const AUTH_PERMISSION_DENIED: u64 = 1;
const AUTH_AUTHENTICATED: u64 = 2;

/// One frame from a Hocuspocus provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A y-protocols message (sync, awareness, query awareness) for `name`:
    /// `message` is exactly the bytes `Message::decode` reads.
    Protocol {
        /// The document name.
        name: String,
        /// The y-protocols message.
        message: Bytes,
    },
    /// The provider's token for `name`.
    Auth {
        /// The document name.
        name: String,
        /// The session JWT.
        token: String,
    },
    /// The provider leaves `name`.
    Close {
        /// The document name.
        name: String,
    },
    /// Something the server may ignore: a stateless message, another auth sub-type.
    Ignored {
        /// The document name.
        name: String,
    },
    /// A v4 connection-level ping or pong.
    Ping,
}

impl Frame {
    /// Read one frame.
    pub fn decode(frame: &Bytes) -> Result<Frame, DecodeError> {
        if frame.len() == 1 && matches!(frame[0], 9 | 10) {
            return Ok(Frame::Ping);
        }
        let mut r = Reader::new(frame);
        let name = r.read_var_string()?;
        let at = frame.len() - r.remaining();
        let kind = r.read_var_u64()?;
        Ok(match kind {
            HP_SYNC | HP_AWARENESS | HP_QUERY_AWARENESS => Frame::Protocol {
                name,
                message: frame.slice(at..),
            },
            HP_AUTH => match r.read_var_u64()? {
                // v4 appends its version after the token: left unread.
                AUTH_TOKEN => Frame::Auth {
                    name,
                    token: r.read_var_string()?,
                },
                _ => Frame::Ignored { name },
            },
            HP_CLOSE => Frame::Close { name },
            HP_STATELESS => Frame::Ignored { name },
            other => return Err(DecodeError::UnknownType(other)),
        })
    }
}

/// The y-protocols frame `message` for the document `name`.
pub fn wrap(name: &str, message: &[u8]) -> Bytes {
    let mut w = Writer::with_capacity(name.len() + message.len() + 2);
    w.write_var_string(name);
    w.write_raw(message);
    w.finish()
}

/// `Authenticated`, with the session's scope.
pub fn authenticated(name: &str, read_only: bool) -> Bytes {
    let mut w = Writer::with_capacity(name.len() + 16);
    w.write_var_string(name);
    w.write_var_u64(HP_AUTH);
    w.write_var_u64(AUTH_AUTHENTICATED);
    w.write_var_string(if read_only { "readonly" } else { "read-write" });
    w.finish()
}

/// `PermissionDenied`, with a reason (Chorus's close reason, e.g. `token-expired`).
pub fn permission_denied(name: &str, reason: &str) -> Bytes {
    let mut w = Writer::with_capacity(name.len() + reason.len() + 8);
    w.write_var_string(name);
    w.write_var_u64(HP_AUTH);
    w.write_var_u64(AUTH_PERMISSION_DENIED);
    w.write_var_string(reason);
    w.finish()
}

/// `Stateless`: a string the provider hands its application as is (its `stateless`
/// event's `payload`).
pub fn stateless(name: &str, payload: &str) -> Bytes {
    let mut w = Writer::with_capacity(name.len() + payload.len() + 8);
    w.write_var_string(name);
    w.write_var_u64(HP_STATELESS);
    w.write_var_string(payload);
    w.finish()
}

/// `SyncStatus`: one of the client's updates was applied (`true`) or refused.
pub fn sync_status(name: &str, applied: bool) -> Bytes {
    let mut w = Writer::with_capacity(name.len() + 4);
    w.write_var_string(name);
    w.write_var_u64(HP_SYNC_STATUS);
    w.write_var_u64(u64::from(applied));
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Bytes {
        Bytes::from(
            s.split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).unwrap())
                .collect::<Vec<u8>>(),
        )
    }

    // The vectors of PROTOCOL.md, from lib0's encoders as the provider uses them.
    #[test]
    fn the_documented_test_vectors() {
        let doc = "doc-1";
        assert_eq!(
            Frame::decode(&hex("05 64 6f 63 2d 31 02 00 03 61 62 63")).unwrap(),
            Frame::Auth {
                name: doc.into(),
                token: "abc".into()
            }
        );
        // v4 appends its version.
        assert_eq!(
            Frame::decode(&hex(
                "05 64 6f 63 2d 31 02 00 03 61 62 63 05 34 2e 35 2e 30"
            ))
            .unwrap(),
            Frame::Auth {
                name: doc.into(),
                token: "abc".into()
            }
        );
        assert_eq!(
            authenticated(doc, false),
            hex("05 64 6f 63 2d 31 02 02 0a 72 65 61 64 2d 77 72 69 74 65")
        );
        assert_eq!(
            authenticated(doc, true),
            hex("05 64 6f 63 2d 31 02 02 08 72 65 61 64 6f 6e 6c 79")
        );
        assert_eq!(
            permission_denied(doc, "token-expired"),
            hex("05 64 6f 63 2d 31 02 01 0d 74 6f 6b 65 6e 2d 65 78 70 69 72 65 64")
        );
        assert_eq!(sync_status(doc, true), hex("05 64 6f 63 2d 31 08 01"));
        assert_eq!(sync_status(doc, false), hex("05 64 6f 63 2d 31 08 00"));
        let step1 = hex("05 64 6f 63 2d 31 00 00 01 00");
        assert_eq!(
            Frame::decode(&step1).unwrap(),
            Frame::Protocol {
                name: doc.into(),
                message: hex("00 00 01 00")
            }
        );
        assert_eq!(wrap(doc, &hex("00 00 01 00")), step1);
        assert_eq!(
            Frame::decode(&hex("05 64 6f 63 2d 31 07")).unwrap(),
            Frame::Close { name: doc.into() }
        );
        assert_eq!(
            Frame::decode(&hex("05 64 6f 63 2d 31 05 02 68 69")).unwrap(),
            Frame::Ignored { name: doc.into() }
        );
        assert_eq!(Frame::decode(&hex("09")).unwrap(), Frame::Ping);
        assert_eq!(Frame::decode(&hex("0a")).unwrap(), Frame::Ping);
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for bad in [
            "",
            "05 64 6f",
            "05 64 6f 63 2d 31",
            "05 64 6f 63 2d 31 04",
            "05 64 6f 63 2d 31 02",
            "05 ff fe fd fc fb 00",
        ] {
            assert!(Frame::decode(&hex(bad)).is_err(), "{bad:?}");
        }
    }
}
