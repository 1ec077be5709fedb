//! `proto/openapi.yaml` describes exactly the REST routes the router serves (the host
//! API and the heartbeat): a route the spec lacks, or a spec entry with no route,
//! fails this test.

use std::collections::BTreeSet;

/// (method, path) pairs of the spec's `paths:` section. The spec is YAML; its layout
/// (two-space indents, one key per line) is fixed by hand, so a line scan suffices.
fn spec_operations() -> BTreeSet<(String, String)> {
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../proto/openapi.yaml"
    ))
    .expect("proto/openapi.yaml is readable");
    let mut ops = BTreeSet::new();
    let mut in_paths = false;
    let mut path: Option<String> = None;
    for line in spec.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line == "paths:";
            path = None;
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            path = Some(format!("/{}", p.trim_end_matches(':')));
        } else if let (Some(p), Some(method)) = (&path, line.strip_prefix("    ")) {
            let method = method.trim_end_matches(':');
            if ["get", "put", "post", "delete", "patch"].contains(&method) {
                ops.insert((method.to_owned(), p.clone()));
            }
        }
    }
    ops
}

#[test]
fn the_spec_and_the_router_list_the_same_rest_routes() {
    let served: BTreeSet<(String, String)> = chorus_server::rest_routes()
        .into_iter()
        .map(|(m, p, _)| (m.to_owned(), p.to_owned()))
        .collect();
    let spec = spec_operations();
    assert!(spec.len() >= 7, "the spec scan found too little: {spec:?}");
    let missing_in_spec: Vec<_> = served.difference(&spec).collect();
    let missing_in_router: Vec<_> = spec.difference(&served).collect();
    assert!(
        missing_in_spec.is_empty() && missing_in_router.is_empty(),
        "routes without a spec entry: {missing_in_spec:?}; spec entries without a route: {missing_in_router:?}"
    );
}
