//! Cluster mode: a host API call for a document another node owns is answered by
//! that node.
//!
//! - **Checked before work.** The node the host called verifies the host token (and
//!   charges the app's rate) before it asks who owns the document: an
//!   unauthenticated call starts no actor, takes no lease and puts nothing on the
//!   bus.
//! - **No credential on the bus.** The request travels (method, path, headers,
//!   body) without its `Authorization` header; the owner serves it as verified for
//!   the one document its path names. That is as strong as verifying again: only a
//!   node holding the cluster key can put a request on the bus (every message is
//!   signed), and every node holds the same app secrets, so a node that could forge
//!   the request could as well mint the token.
//! - **Marked by the request, not by a header.** A carried request is served where
//!   it lands and never carried again; the mark is a request extension only this
//!   module sets, so no header a client sends can claim it.
//! - **Bounded.** Bodies up to the host API's limit, and at most
//!   `chorus_docs`' `MAX_HOST_FORWARDS` calls carried at once per node (503 past it).

use crate::api::{authorize_host, ApiError, VerifiedHost};
use crate::state::AppState;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use chorus_docs::{DocKey, Route};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tower::ServiceExt;

/// Largest body carried (the host API's own limit).
const BODY_LIMIT: usize = 16 << 20;

/// Marks a request carried here from another node: it is served here.
#[derive(Debug, Clone)]
struct CarriedHere;

/// Whether `req` was carried here from another node (and is to be served here).
pub(crate) fn is_carried(req: &Request) -> bool {
    req.extensions().get::<CarriedHere>().is_some()
}

#[derive(Serialize, Deserialize)]
struct Carried {
    /// The document the carrying node verified the host token for.
    app: String,
    doc: String,
    method: String,
    uri: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Answered {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn headers_to_wire(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

/// A request's headers as they are carried: without its credentials.
fn request_headers_to_wire(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter(|(k, _)| *k != header::AUTHORIZATION && *k != header::COOKIE)
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

/// Headers as they travelled, back into `into` (a name or value that no longer
/// parses is left out).
fn headers_from_wire(headers: Vec<(String, Vec<u8>)>, into: &mut HeaderMap) {
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_bytes(&value))
        {
            into.append(name, value);
        }
    }
}

/// The document a host API path names (`/v1/apps/{app}/docs/{doc}/…`), if any.
fn document_of(path: &str) -> Option<DocKey> {
    let mut parts = path.strip_prefix("/v1/apps/")?.split('/');
    let app = parts.next()?;
    (parts.next()? == "docs").then_some(())?;
    let doc = parts.next()?;
    let decoded = percent_encoding::percent_decode_str(doc)
        .decode_utf8()
        .ok()?;
    Some(DocKey::new(app, &*decoded))
}

/// Names the node that answered (in cluster mode): for a carried call, the owner.
const ANSWERED_BY: &str = "x-chorus-node";

/// Middleware: carry the call to the document's owner when that is another node,
/// once its host token is verified.
pub async fn to_owner(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(node) = state.documents.node_id().map(str::to_owned) else {
        return next.run(req).await;
    };
    let here = |mut response: Response| {
        if let Ok(value) = HeaderValue::from_str(&node) {
            response.headers_mut().entry(ANSWERED_BY).or_insert(value);
        }
        response
    };
    if req.extensions().get::<CarriedHere>().is_some() {
        return here(next.run(req).await);
    }
    let Some(key) = document_of(req.uri().path()) else {
        return here(next.run(req).await);
    };
    if !crate::ids::is_valid_content_id(&key.doc) || state.apps.get(&key.app).is_none() {
        // The route's own extractor gives the answer; nothing starts.
        return here(next.run(req).await);
    }
    // Who asks, before any work: routing starts an actor and may take a lease.
    if let Err(refused) = authorize_host(&state, &key.app, Some(&key.doc), req.headers()) {
        return here(refused.into_response());
    }
    req.extensions_mut().insert(VerifiedHost(key.clone()));
    let owner = match state.documents.route(&key).await {
        Ok(Route::Local) | Err(_) => return here(next.run(req).await),
        Ok(Route::Remote(owner)) => owner,
    };
    carry(&state, &owner, req, Some(&key)).await
}

/// Carry `req` to `node` over the bus and answer with what it answers (503 if it
/// does not). `verified`: the document whose host token this node verified (the
/// node serves the request as verified for that one document only).
pub(crate) async fn carry(
    state: &AppState,
    node: &str,
    req: Request,
    verified: Option<&DocKey>,
) -> Response {
    let owner = node;
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, BODY_LIMIT).await else {
        return ApiError::TooLarge.into_response();
    };
    let carried = Carried {
        app: verified.map(|k| k.app.to_string()).unwrap_or_default(),
        doc: verified.map(|k| k.doc.to_string()).unwrap_or_default(),
        method: parts.method.to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
        headers: request_headers_to_wire(&parts.headers),
        body: body.to_vec(),
    };
    let request = postcard::to_allocvec(&carried).unwrap_or_default();
    drop(carried);
    let answer = state.documents.forward_host(owner, request).await;
    let Some(answered) = answer
        .ok()
        .and_then(|bytes| postcard::from_bytes::<Answered>(&bytes).ok())
    else {
        tracing::warn!(path = %parts.uri.path(), %owner, "the node did not answer a carried call");
        return ApiError::Unavailable.into_response();
    };
    let mut response = Response::new(Body::from(answered.body));
    *response.status_mut() =
        StatusCode::from_u16(answered.status).unwrap_or(StatusCode::BAD_GATEWAY);
    headers_from_wire(answered.headers, response.headers_mut());
    response
}

/// Answer calls other nodes carry here, through `router` (this node's own).
pub fn install_handler(state: &AppState, router: Router) {
    state
        .documents
        .set_host_handler(Arc::new(move |request: Vec<u8>| {
            let router = router.clone();
            Box::pin(async move {
                let answered = match postcard::from_bytes::<Carried>(&request) {
                    Ok(carried) => serve(router, carried).await,
                    Err(_) => Answered {
                        status: 400,
                        headers: Vec::new(),
                        body: Vec::new(),
                    },
                };
                postcard::to_allocvec(&answered).unwrap_or_default()
            })
        }));
}

async fn serve(router: Router, carried: Carried) -> Answered {
    let mut req = Request::new(Body::from(carried.body));
    *req.method_mut() = Method::from_bytes(carried.method.as_bytes()).unwrap_or(Method::GET);
    *req.uri_mut() = carried.uri.parse().unwrap_or_default();
    headers_from_wire(carried.headers, req.headers_mut());
    req.extensions_mut().insert(CarriedHere);
    // Verified by the carrying node for this document only: a path naming another
    // one is judged by its own (absent) credentials, and refused.
    let verified = DocKey::new(carried.app, carried.doc);
    if document_of(req.uri().path()).as_ref() == Some(&verified) {
        req.extensions_mut().insert(VerifiedHost(verified));
    }
    let response = match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, BODY_LIMIT * 2).await.unwrap_or_default();
    Answered {
        status: parts.status.as_u16(),
        headers: headers_to_wire(&parts.headers),
        body: body.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_document_routes_are_carried() {
        let key = |a: &str, d: &str| Some(DocKey::new(a, d));
        assert_eq!(
            document_of("/v1/apps/wiki/docs/page-1/draft"),
            key("wiki", "page-1")
        );
        assert_eq!(
            document_of("/v1/apps/wiki/docs/page%201/sessions/3/downgrade"),
            key("wiki", "page 1")
        );
        assert_eq!(
            document_of("/v1/apps/wiki/docs"),
            None,
            "the listing is the store's"
        );
        assert_eq!(
            document_of("/v1/apps/wiki/docs/page-1"),
            Some(DocKey::new("wiki", "page-1")),
            "DELETE of the draft itself"
        );
        assert_eq!(document_of("/v1/admin/apps/wiki/disable"), None);
        assert_eq!(document_of("/v1/ws/wiki/page-1"), None);
    }
}
