//! Cluster mode: a host API call for a document another node owns is answered by
//! that node. The request (method, path, headers, body) travels over the bus as it
//! came; the owner runs it through its own router (authentication included) and
//! the response travels back as it left. A carried request is marked, so it is
//! served where it lands and never carried again.

use crate::api::ApiError;
use crate::state::AppState;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use chorus_docs::{DocKey, Route};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tower::ServiceExt;

/// Marks a request carried from another node (its value names that node).
const FORWARDED: &str = "x-chorus-forwarded-from";
/// Largest body carried (the host API's own limit).
const BODY_LIMIT: usize = 16 << 20;

#[derive(Serialize, Deserialize)]
struct Carried {
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
    // `/v1/apps/{app}/docs/{doc}` alone is no route; everything under it is.
    parts.next()?;
    let decoded = percent_encoding::percent_decode_str(doc)
        .decode_utf8()
        .ok()?;
    Some(DocKey::new(app, &*decoded))
}

/// Names the node that answered (in cluster mode): for a carried call, the owner.
const ANSWERED_BY: &str = "x-chorus-node";

/// Middleware: carry the call to the document's owner when that is another node.
pub async fn to_owner(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(node) = state.documents.node_id().map(str::to_owned) else {
        return next.run(req).await;
    };
    let here = |mut response: Response| {
        if let Ok(value) = HeaderValue::from_str(&node) {
            response.headers_mut().entry(ANSWERED_BY).or_insert(value);
        }
        response
    };
    if req.headers().contains_key(FORWARDED) {
        return here(next.run(req).await);
    }
    let Some(key) = document_of(req.uri().path()) else {
        return here(next.run(req).await);
    };
    if !crate::ids::is_valid_content_id(&key.doc) || state.apps.get(&key.app).is_none() {
        return here(next.run(req).await);
    }
    let owner = match state.documents.route(&key).await {
        Ok(Route::Local) | Err(_) => return here(next.run(req).await),
        Ok(Route::Remote(owner)) => owner,
    };
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, BODY_LIMIT).await else {
        return ApiError::TooLarge.into_response();
    };
    let carried = Carried {
        method: parts.method.to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
        headers: headers_to_wire(&parts.headers),
        body: body.to_vec(),
    };
    let request = postcard::to_allocvec(&carried).unwrap_or_default();
    let answer = state.documents.forward_host(&owner, request).await;
    let Some(answered) = answer
        .ok()
        .and_then(|bytes| postcard::from_bytes::<Answered>(&bytes).ok())
    else {
        tracing::warn!(app = %key.app, doc = %key.doc, %owner, "the owner did not answer a carried host call");
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
    let node = state.documents.node_id().unwrap_or_default().to_owned();
    state
        .documents
        .set_host_handler(Arc::new(move |request: Vec<u8>| {
            let router = router.clone();
            let node = node.clone();
            Box::pin(async move {
                let answered = match postcard::from_bytes::<Carried>(&request) {
                    Ok(carried) => serve(router, carried, &node).await,
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

async fn serve(router: Router, carried: Carried, node: &str) -> Answered {
    let mut req = Request::new(Body::from(carried.body));
    *req.method_mut() = Method::from_bytes(carried.method.as_bytes()).unwrap_or(Method::GET);
    *req.uri_mut() = carried.uri.parse().unwrap_or_default();
    headers_from_wire(carried.headers, req.headers_mut());
    if let Ok(from) = HeaderValue::from_str(node) {
        req.headers_mut().insert(FORWARDED, from);
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
        assert_eq!(document_of("/v1/apps/wiki/docs/page-1"), None);
        assert_eq!(document_of("/v1/admin/apps/wiki/disable"), None);
        assert_eq!(document_of("/v1/ws/wiki/page-1"), None);
    }
}
