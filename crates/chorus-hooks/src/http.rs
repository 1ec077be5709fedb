//! One delivery attempt over HTTP and what counts as success.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Client, StatusCode};
use serde_json::Value;

use crate::error::HooksError;

/// Header carrying the event id (the body's `"id"`).
pub const EVENT_ID_HEADER: &str = "X-Chorus-Event-Id";
/// Header carrying the event type (the body's `"type"`).
pub const EVENT_TYPE_HEADER: &str = "X-Chorus-Event-Type";

/// How much of a response body is read to look for an `"error"` field.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Why an attempt did not count as delivered. Displayed in logs: never contains the
/// callback URL (it may carry credentials), the token or the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The host answered with a non-2xx status.
    Status(u16),
    /// The host answered 2xx with a JSON body whose `"error"` is a non-zero number.
    HostError(String),
    /// No complete answer within the request timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connect(String),
    /// Any other transport problem (bad URL, protocol error, …).
    Request(String),
    /// The token could not be signed (e.g. the app has no secret).
    Signing(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(code) => write!(f, "host answered HTTP {code}"),
            Failure::HostError(code) => write!(f, "host answered error {code}"),
            Failure::Timeout => f.write_str("request timed out"),
            Failure::Connect(e) => write!(f, "connection failed: {e}"),
            Failure::Request(e) => write!(f, "request failed: {e}"),
            Failure::Signing(e) => write!(f, "{e}"),
        }
    }
}

/// The HTTP client every attempt uses: `timeout` per attempt (connect to last body
/// byte), no redirects (a 3xx is a failed attempt), rustls.
pub(crate) fn client(timeout: Duration) -> Result<Client, HooksError> {
    Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("chorus-hooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| HooksError::Client(e.without_url().to_string()))
}

/// One request to deliver.
pub(crate) struct Request {
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) event_id: String,
    pub(crate) event_type: &'static str,
    pub(crate) body: Bytes,
}

/// POST `request`; `Ok` if the host acknowledged it.
pub(crate) async fn deliver(client: &Client, request: Request) -> Result<(), Failure> {
    let response = client
        .post(&request.url)
        .header(AUTHORIZATION, format!("Bearer {}", request.token))
        .header(EVENT_ID_HEADER, &request.event_id)
        .header(EVENT_TYPE_HEADER, request.event_type)
        .header(CONTENT_TYPE, "application/json")
        .body(request.body)
        .send()
        .await
        .map_err(transport_failure)?;
    let status = response.status();
    if !status.is_success() {
        return Err(Failure::Status(status.as_u16()));
    }
    let body = read_limited(response).await?;
    judge(status, &body)
}

/// Read at most [`MAX_RESPONSE_BYTES`] of the body (a longer one is cut, not an error).
async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_failure)? {
        let room = MAX_RESPONSE_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_RESPONSE_BYTES {
            break;
        }
    }
    Ok(body)
}

/// Success is any 2xx, unless the body is a JSON object whose `"error"` is a non-zero
/// number (ONLYOFFICE-style hosts answer `{"error":0}` for success).
pub(crate) fn judge(status: StatusCode, body: &[u8]) -> Result<(), Failure> {
    if !status.is_success() {
        return Err(Failure::Status(status.as_u16()));
    }
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        if let Some(Value::Number(code)) = map.get("error") {
            let zero =
                code.as_i64() == Some(0) || code.as_u64() == Some(0) || code.as_f64() == Some(0.0);
            if !zero {
                return Err(Failure::HostError(code.to_string()));
            }
        }
    }
    Ok(())
}

fn transport_failure(e: reqwest::Error) -> Failure {
    let e = e.without_url();
    if e.is_timeout() {
        Failure::Timeout
    } else if e.is_connect() {
        Failure::Connect(error_chain(&e))
    } else {
        Failure::Request(error_chain(&e))
    }
}

/// `e` and its sources, `: `-separated (reqwest's own message alone is vague).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_2xx_is_success_unless_a_numeric_error_is_non_zero() {
        let ok = StatusCode::OK;
        assert_eq!(judge(ok, b""), Ok(()));
        assert_eq!(judge(StatusCode::NO_CONTENT, b""), Ok(()));
        assert_eq!(judge(ok, br#"{"error":0}"#), Ok(()));
        assert_eq!(judge(ok, br#"{"error":0.0}"#), Ok(()));
        assert_eq!(judge(ok, b"thanks"), Ok(()));
        assert_eq!(judge(ok, br#"{"error":"1"}"#), Ok(()), "only numbers count");
        assert_eq!(judge(ok, br#"[{"error":1}]"#), Ok(()));
        assert_eq!(
            judge(ok, br#"{"error":1}"#),
            Err(Failure::HostError("1".into()))
        );
        assert_eq!(
            judge(StatusCode::ACCEPTED, br#"{"error":-3}"#),
            Err(Failure::HostError("-3".into()))
        );
        assert_eq!(
            judge(StatusCode::INTERNAL_SERVER_ERROR, br#"{"error":0}"#),
            Err(Failure::Status(500))
        );
        assert_eq!(judge(StatusCode::FOUND, b""), Err(Failure::Status(302)));
    }
}
