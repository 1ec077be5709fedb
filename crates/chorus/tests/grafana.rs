//! The Grafana dashboard in `deploy/grafana/chorus-dashboard.json` names only
//! what the real binary exports. Two `chorus` nodes run in cluster mode (this
//! machine's PostgreSQL and Redis, as in `cluster.rs`), so the cluster and webhook
//! families are rendered too; two, because a node alone on the bus never counts
//! itself in `chorus_bus_nodes_up` and the harness waits for that count. One node
//! is scraped, and every metric a query of the dashboard names must be a sample
//! name of its `/metrics` (`_total` of a counter, `_bucket`/`_sum`/`_count` of a
//! histogram, a gauge's own name), every label a query groups, filters or draws a
//! legend by must be on one of those samples, and counters and histogram series
//! are only read through `rate(…[range])`, gauges never.

use chorus_auth::Mode;
use chorus_e2e::processes::{metrics_of, redis_url, Cluster};
use chorus_e2e::{close_code, raw_connect, token_for, APP};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const BIN: &str = env!("CARGO_BIN_EXE_chorus");
const DASHBOARD: &str = include_str!("../../../deploy/grafana/chorus-dashboard.json");

/// Labels Prometheus adds to every series when it scrapes (not in `/metrics`).
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// Functions through which a counter or histogram series must be read.
const RATE_FUNCTIONS: [&str; 3] = ["rate", "irate", "increase"];

/// One scrape of `/metrics`, parsed.
#[derive(Debug, Default)]
struct Exposition {
    /// Family name → type, from the `# TYPE` lines (listed even without samples).
    families: BTreeMap<String, String>,
    /// Sample name → the label names seen on its samples.
    samples: BTreeMap<String, BTreeSet<String>>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut out = Exposition::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE <name> <type>");
                out.families.insert(name.to_owned(), kind.to_owned());
            } else if line.starts_with('#') || line.is_empty() {
                continue;
            } else {
                let end = line.find(['{', ' ']).expect("a sample has a value");
                let labels = out.samples.entry(line[..end].to_owned()).or_default();
                if line[end..].starts_with('{') {
                    labels.extend(label_names(&line[end + 1..]));
                }
            }
        }
        out
    }

    /// The sample names a family of this type renders.
    fn sample_names(family: &str, kind: &str) -> Vec<String> {
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "gauge" => &[""],
            "histogram" => &["_bucket", "_sum", "_count"],
            other => panic!("{family}: type {other} is new to this test; teach it its samples"),
        };
        suffixes.iter().map(|s| format!("{family}{s}")).collect()
    }

    /// Every name a query may use: each family's sample names (and `_created`
    /// if the server renders it), mapped to the family's type.
    fn exported(&self) -> BTreeMap<String, String> {
        let mut names = BTreeMap::new();
        for (family, kind) in &self.families {
            for name in Self::sample_names(family, kind) {
                names.insert(name, kind.clone());
            }
            let created = format!("{family}_created");
            if self.samples.contains_key(&created) {
                names.insert(created, "gauge".to_owned());
            }
        }
        names
    }
}

/// The label names of `a="x",b="y"}…` (values may hold escaped quotes and commas).
fn label_names(s: &str) -> Vec<String> {
    let (mut names, mut name, mut in_value, mut escaped) =
        (Vec::new(), String::new(), false, false);
    for c in s.chars() {
        if in_value {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => in_value = false,
                _ => escaped = false,
            }
        } else {
            match c {
                '"' => in_value = true,
                '}' => break,
                '=' | '!' | '~' => {
                    if !name.is_empty() {
                        names.push(std::mem::take(&mut name));
                    }
                }
                ',' | ' ' => {}
                c => name.push(c),
            }
        }
    }
    names
}

/// Every `chorus_…` identifier of `s`, with its byte offset.
fn chorus_names(s: &str) -> Vec<(usize, String)> {
    let bytes = s.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = s[i..].find("chorus_").map(|p| p + i) {
        let mut end = at + "chorus_".len();
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        if (at == 0 || !ident(bytes[at - 1])) && end > at + "chorus_".len() {
            out.push((at, s[at..end].to_owned()));
        }
        i = end;
    }
    out
}

/// The label names a PromQL expression uses: `by (…)` / `without (…)` groupings,
/// and each metric's selector `{…}` (as metric → labels).
fn expr_labels(expr: &str) -> (BTreeSet<String>, Vec<(String, Vec<String>)>) {
    let mut grouping = BTreeSet::new();
    for keyword in ["by", "without"] {
        let mut i = 0;
        while let Some(at) = expr[i..].find(keyword).map(|p| p + i) {
            i = at + keyword.len();
            let before = expr[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let rest = expr[i..].trim_start();
            if let Some(list) = rest.strip_prefix('(') {
                let list = &list[..list.find(')').expect("a closed grouping")];
                grouping.extend(
                    list.split(',')
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned),
                );
            }
        }
    }
    let selectors = chorus_names(expr)
        .into_iter()
        .filter_map(|(at, name)| {
            let rest = &expr[at + name.len()..];
            let body = rest.trim_start().strip_prefix('{')?;
            Some((name, label_names(body)))
        })
        .collect();
    (grouping, selectors)
}

/// The `{{label}}`s of a legend format.
fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|s| s.split_once("}}"))
        .map(|(label, _)| label.trim().to_owned())
        .collect()
}

/// The function a name at `at` of `expr` is the direct argument of, if any.
fn enclosing_function(expr: &str, at: usize) -> Option<&str> {
    let before = expr[..at].trim_end().strip_suffix('(')?.trim_end();
    let start = before
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |p| p + 1);
    Some(&before[start..])
}

/// One query of the dashboard.
struct Query {
    panel: String,
    expr: String,
    legend: String,
}

/// Every panel with targets, rows' nested panels included; returns their count.
fn walk_panels(panels: &[Value], queries: &mut Vec<Query>, ids: &mut Vec<u64>) -> usize {
    let mut with_targets = 0;
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?").to_owned();
        ids.push(
            panel["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{title}: no id")),
        );
        assert!(panel["gridPos"].is_object(), "{title}: no gridPos");
        if let Some(targets) = panel["targets"].as_array().filter(|t| !t.is_empty()) {
            with_targets += 1;
            assert_eq!(
                panel["datasource"]["uid"], "${DS_PROMETHEUS}",
                "{title}: not on the DS_PROMETHEUS input"
            );
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                assert!(!expr.trim().is_empty(), "{title}: a target without expr");
                queries.push(Query {
                    panel: title.clone(),
                    expr: expr.to_owned(),
                    legend: target["legendFormat"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
        }
        if let Some(nested) = panel["panels"].as_array() {
            with_targets += walk_panels(nested, queries, ids);
        }
    }
    with_targets
}

/// Every string of the document, with the key it sits under.
fn strings<'a>(value: &'a Value, key: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
    match value {
        Value::String(s) => out.push((key, s)),
        Value::Array(items) => items.iter().for_each(|v| strings(v, key, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| strings(v, k, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_names_only_metrics_the_server_exports() {
    let cluster = Cluster::new(BIN, 2, |db| db.url().to_owned(), redis_url());
    let addr = cluster.addr(0);

    // Families that start empty are still listed by their `# HELP` / `# TYPE` lines.
    let before = Exposition::parse(&metrics_of(addr).await);
    for family in ["chorus_connections_refused", "chorus_connections_closed"] {
        assert_eq!(
            before.families.get(family).map(String::as_str),
            Some("counter")
        );
        assert!(!before.samples.contains_key(&format!("{family}_total")));
    }

    // A forged token is refused (by reason) and its socket closed (by code and
    // reason): both families then have samples whose labels can be checked.
    let forged = token_for(
        APP,
        "not-this-apps-secret-0123456789abc",
        "doc",
        "eve",
        Mode::Edit,
    );
    let mut ws = raw_connect(&format!("ws://{addr}/v1/ws/{APP}/doc?token={forged}"))
        .await
        .unwrap();
    assert_eq!(
        close_code(&mut ws).await.unwrap(),
        (4401, "bad-signature".into())
    );
    let text = metrics_of(addr).await;
    assert!(text.ends_with("# EOF\n"), "{text}");
    let scraped = Exposition::parse(&text);
    let exported = scraped.exported();

    // The suffix rules above are the server's: every sample it renders is one of
    // them, and every family that has samples renders all of its names.
    for name in scraped.samples.keys() {
        assert!(
            exported.contains_key(name),
            "{name} is rendered but not derived from a # TYPE line"
        );
    }
    for (family, kind) in &scraped.families {
        let names = Exposition::sample_names(family, kind);
        if names.iter().any(|n| scraped.samples.contains_key(n)) {
            for name in &names {
                assert!(
                    scraped.samples.contains_key(name),
                    "{family} ({kind}) renders no {name}"
                );
            }
        }
    }
    for family in ["chorus_bus_nodes_up", "chorus_webhooks_pending"] {
        assert!(
            scraped.families.contains_key(family),
            "{family} missing:\n{text}"
        );
    }

    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "chorus");
    assert_eq!(dashboard["title"], "Chorus");
    assert_eq!(dashboard["schemaVersion"], 39);
    assert!(
        dashboard["__inputs"]
            .as_array()
            .is_some_and(|i| i.iter().any(|i| i["name"] == "DS_PROMETHEUS")),
        "no DS_PROMETHEUS datasource input"
    );
    let (mut queries, mut ids) = (Vec::new(), Vec::new());
    let panels = dashboard["panels"].as_array().expect("panels");
    let with_targets = walk_panels(panels, &mut queries, &mut ids);
    assert!(
        with_targets >= 15,
        "only {with_targets} panels with targets"
    );
    let unique: BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "panel ids repeat: {ids:?}");

    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for Query {
        panel,
        expr,
        legend,
    } in &queries
    {
        let names = chorus_names(expr);
        if names.is_empty() {
            problems.push(format!("{panel}: `{expr}` names no chorus metric"));
        }
        let mut available: BTreeSet<String> = TARGET_LABELS.map(str::to_owned).into();
        for (at, name) in &names {
            used.insert(name.clone());
            let Some(kind) = exported.get(name) else {
                problems.push(format!("{panel}: {name} is not exported"));
                continue;
            };
            available.extend(scraped.samples.get(name).into_iter().flatten().cloned());
            let in_rate =
                enclosing_function(expr, *at).is_some_and(|f| RATE_FUNCTIONS.contains(&f));
            let range = expr[at + name.len()..]
                .split(')')
                .next()
                .unwrap_or_default();
            let has_range = range.contains('[');
            match kind.as_str() {
                "gauge" if in_rate => problems.push(format!("{panel}: rate of gauge {name}")),
                "counter" | "histogram" if !(in_rate && has_range) => {
                    problems.push(format!("{panel}: {name} read without rate(…[range])"))
                }
                _ => {}
            }
        }
        let (grouping, selectors) = expr_labels(expr);
        for (name, labels) in &selectors {
            let has: BTreeSet<&str> = scraped
                .samples
                .get(name)
                .into_iter()
                .flatten()
                .map(String::as_str)
                .chain(TARGET_LABELS)
                .collect();
            for label in labels {
                if !has.contains(label.as_str()) {
                    problems.push(format!(
                        "{panel}: {name} has no label {label} (has {has:?})"
                    ));
                }
            }
        }
        for label in grouping.iter().chain(&legend_labels(legend)) {
            if !available.contains(label) {
                problems.push(format!(
                    "{panel}: label {label} is on none of {:?} (they have {available:?})",
                    names.iter().map(|(_, n)| n).collect::<Vec<_>>()
                ));
            }
        }
    }

    // Anything else that names a metric (variable queries, descriptions) names a
    // real one too: a query a sample name, prose a family or a sample name.
    let mut all = Vec::new();
    strings(&dashboard, "", &mut all);
    for (key, s) in all.into_iter().filter(|(key, _)| *key != "expr") {
        for (_, name) in chorus_names(s) {
            let query = matches!(key, "query" | "definition");
            let known =
                exported.contains_key(&name) || (!query && scraped.families.contains_key(&name));
            if !known {
                problems.push(format!("\"{key}\": {name} is not exported (in {s:?})"));
            }
        }
    }

    eprintln!(
        "{} panels with targets, {} queries, {} metric names: {used:?}",
        with_targets,
        queries.len(),
        used.len()
    );
    assert!(
        problems.is_empty(),
        "{}\n\n/metrics:\n{text}",
        problems.join("\n")
    );
}
