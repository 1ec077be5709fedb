//! Chorus extension messages (outer type 100). Only sent to clients that opted in
//! (see `proto/PROTOCOL.md`, "Extension messages"); a stock Yjs client never sees one.

use crate::{DecodeError, Reader, Writer};
use bytes::Bytes;

/// Outer message type of every Chorus extension message.
pub const CHORUS_MESSAGE_TYPE: u8 = 100;

const KIND_ERROR: u64 = 0;
const KIND_SAVED: u64 = 1;
const KIND_EXTERNAL_CHANGE: u64 = 2;
const KIND_READ_ONLY: u64 = 3;
const KIND_REFRESH_TOKEN: u64 = 4;
const KIND_HOLDER: u64 = 5;
const KIND_EDITABLE: u64 = 6;
const KIND_HOST_ACTION: u64 = 7;
const KIND_IDLE_WARNING: u64 = 8;

/// A Chorus extension message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChorusMessage {
    /// Server → client: something the client did was refused. `code` is a stable
    /// kebab-case identifier (see PROTOCOL.md), `message` is for humans.
    Error {
        /// Stable machine-readable code.
        code: String,
        /// Human-readable explanation.
        message: String,
    },
    /// Server → client: the first `n` update messages this connection sent are durable.
    Saved {
        /// Count of the connection's update messages now durable.
        n: u64,
    },
    /// Server → client: the host changed these fields (e.g. `["title","body"]`).
    ExternalChange {
        /// Names of the changed roots.
        fields: Vec<String>,
    },
    /// Server → client: this session cannot change the document, and why.
    ReadOnly {
        /// Stable reason code.
        reason: String,
    },
    /// Client → server: a fresh session token replacing the one in the URL.
    RefreshToken {
        /// The new JWT.
        token: String,
    },
    /// Server → client (exclusive mode): who holds the draft; this session is view-only
    /// until the hold passes to it.
    Holder {
        /// User id of the holder.
        user_id: String,
        /// Display name of the holder.
        name: String,
    },
    /// Server → client: this session may edit (again), e.g. the exclusive hold passed to it.
    Editable,
    /// Server → client: the host did something to the draft everyone should see
    /// credited ("Ann published", "Ann discarded the unpublished changes").
    HostAction {
        /// What: `published`, `discarded` (back to the last published version or a
        /// history point) or `restored` (a history point brought back).
        action: String,
        /// Who, as the host named them (empty if it did not).
        user_id: String,
        /// Their display name (empty if the host did not say).
        name: String,
    },
    /// Server → client: this session had no input for a while and is closed (4408
    /// `idle-timeout`) in `closes_in_secs` unless something happens.
    IdleWarning {
        /// Seconds until the close.
        closes_in_secs: u64,
    },
}

impl ChorusMessage {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.read_var_u64()? {
            KIND_ERROR => ChorusMessage::Error {
                code: r.read_var_string()?,
                message: r.read_var_string()?,
            },
            KIND_SAVED => ChorusMessage::Saved {
                n: r.read_var_u64()?,
            },
            KIND_EXTERNAL_CHANGE => {
                let n = r.read_var_u64()?;
                if n > 16 {
                    return Err(DecodeError::TruncatedPayload);
                }
                let mut fields = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    fields.push(r.read_var_string()?);
                }
                ChorusMessage::ExternalChange { fields }
            }
            KIND_READ_ONLY => ChorusMessage::ReadOnly {
                reason: r.read_var_string()?,
            },
            KIND_REFRESH_TOKEN => ChorusMessage::RefreshToken {
                token: r.read_var_string()?,
            },
            KIND_HOLDER => ChorusMessage::Holder {
                user_id: r.read_var_string()?,
                name: r.read_var_string()?,
            },
            KIND_EDITABLE => ChorusMessage::Editable,
            KIND_IDLE_WARNING => ChorusMessage::IdleWarning {
                closes_in_secs: r.read_var_u64()?,
            },
            KIND_HOST_ACTION => ChorusMessage::HostAction {
                action: r.read_var_string()?,
                user_id: r.read_var_string()?,
                name: r.read_var_string()?,
            },
            other => return Err(DecodeError::UnknownChorusKind(other)),
        })
    }

    /// Encode as one websocket frame.
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::with_capacity(64);
        w.write_u8(CHORUS_MESSAGE_TYPE);
        match self {
            ChorusMessage::Error { code, message } => {
                w.write_var_u64(KIND_ERROR);
                w.write_var_string(code);
                w.write_var_string(message);
            }
            ChorusMessage::Saved { n } => {
                w.write_var_u64(KIND_SAVED);
                w.write_var_u64(*n);
            }
            ChorusMessage::ExternalChange { fields } => {
                w.write_var_u64(KIND_EXTERNAL_CHANGE);
                w.write_var_u64(fields.len() as u64);
                for f in fields {
                    w.write_var_string(f);
                }
            }
            ChorusMessage::ReadOnly { reason } => {
                w.write_var_u64(KIND_READ_ONLY);
                w.write_var_string(reason);
            }
            ChorusMessage::RefreshToken { token } => {
                w.write_var_u64(KIND_REFRESH_TOKEN);
                w.write_var_string(token);
            }
            ChorusMessage::Holder { user_id, name } => {
                w.write_var_u64(KIND_HOLDER);
                w.write_var_string(user_id);
                w.write_var_string(name);
            }
            ChorusMessage::Editable => w.write_var_u64(KIND_EDITABLE),
            ChorusMessage::HostAction {
                action,
                user_id,
                name,
            } => {
                w.write_var_u64(KIND_HOST_ACTION);
                w.write_var_string(action);
                w.write_var_string(user_id);
                w.write_var_string(name);
            }
            ChorusMessage::IdleWarning { closes_in_secs } => {
                w.write_var_u64(KIND_IDLE_WARNING);
                w.write_var_u64(*closes_in_secs);
            }
        }
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    #[test]
    fn every_kind_round_trips() {
        for m in [
            ChorusMessage::Error {
                code: "read-only".into(),
                message: "view session".into(),
            },
            ChorusMessage::Saved { n: 42 },
            ChorusMessage::ExternalChange {
                fields: vec!["title".into(), "body".into()],
            },
            ChorusMessage::ReadOnly {
                reason: "view-mode".into(),
            },
            ChorusMessage::RefreshToken {
                token: "a.b.c".into(),
            },
            ChorusMessage::Holder {
                user_id: "u1".into(),
                name: "Ann".into(),
            },
            ChorusMessage::Editable,
            ChorusMessage::HostAction {
                action: "published".into(),
                user_id: "u2".into(),
                name: "Bo Ström".into(),
            },
            ChorusMessage::IdleWarning {
                closes_in_secs: 300,
            },
        ] {
            let frame = m.encode();
            assert_eq!(frame[0], CHORUS_MESSAGE_TYPE);
            assert_eq!(Message::decode(&frame).unwrap(), Message::Chorus(m));
        }
    }

    #[test]
    fn unknown_kind_is_refused() {
        let frame = Bytes::from_static(&[CHORUS_MESSAGE_TYPE, 9]);
        assert_eq!(
            Message::decode(&frame),
            Err(DecodeError::UnknownChorusKind(9))
        );
    }
}
