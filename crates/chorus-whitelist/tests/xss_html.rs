//! The HTML cleaner against the hostile corpus (`proto/test-vectors/xss-html.txt`)
//! and the no-false-positive corpus (`proto/test-vectors/rich-html.txt`).

use chorus_whitelist::test_vectors::vectors;
use chorus_whitelist::{HtmlCleaner, Policy};
use regex::Regex;
use std::collections::HashMap;
use std::sync::Arc;

const XSS_CORPUS: &str = include_str!("../../../proto/test-vectors/xss-html.txt");
const RICH_CORPUS: &str = include_str!("../../../proto/test-vectors/rich-html.txt");

/// Substrings (compared case-insensitively) no cleaned output may contain.
const FORBIDDEN: [&str; 15] = [
    "<script",
    "javascript:",
    "vbscript:",
    "data:text",
    "expression(",
    "url(",
    "<iframe",
    "<object",
    "<embed",
    "<base",
    "<meta",
    "<style",
    "-moz-binding",
    "behavior",
    "padding",
];

fn cleaner() -> HtmlCleaner {
    HtmlCleaner::new(Arc::new(Policy::default_policy()))
}

#[test]
fn hostile_html_is_defused() {
    let marker = Regex::new(r"XSS\d{3}").unwrap();
    let handler = Regex::new(r"(?i)\son[a-z]+\s*=").unwrap();
    let vectors = vectors(XSS_CORPUS);
    assert!(
        vectors.len() >= 150,
        "only {} vectors in xss-html.txt",
        vectors.len()
    );

    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut failures = Vec::new();
    let cleaner = cleaner();
    for (line_no, line, input) in &vectors {
        let mut markers: Vec<&str> = marker.find_iter(line).map(|m| m.as_str()).collect();
        markers.dedup();
        let [own] = markers[..] else {
            failures.push(format!(
                "line {line_no}: expected exactly one marker, found {markers:?}\n  vector: {line}"
            ));
            continue;
        };
        if let Some(previous) = seen.insert(own.to_owned(), *line_no) {
            failures.push(format!(
                "line {line_no}: marker {own} already used on line {previous}"
            ));
        }

        let output = cleaner.clean(input);
        let lowered = output.to_ascii_lowercase();
        let mut problems = Vec::new();
        if lowered.contains(&own.to_ascii_lowercase()) {
            problems.push(format!("marker {own} survived"));
        }
        for bad in FORBIDDEN {
            if lowered.contains(bad) {
                problems.push(format!("contains {bad:?}"));
            }
        }
        if let Some(m) = handler.find(&output) {
            problems.push(format!("contains an event handler {:?}", m.as_str()));
        }
        let again = cleaner.clean(&output);
        if again != output {
            problems.push(format!("not a fixed point: cleaned again it is {again:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "line {line_no} ({own}): {}\n  vector: {line}\n  output: {output}",
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}

#[test]
fn rich_html_survives_unchanged() {
    let vectors = vectors(RICH_CORPUS);
    assert!(
        vectors.len() >= 25,
        "only {} fragments in rich-html.txt",
        vectors.len()
    );
    let cleaner = cleaner();
    let failures: Vec<String> = vectors
        .iter()
        .filter_map(|(line_no, _, input)| {
            let output = cleaner.clean(input);
            (output != *input)
                .then(|| format!("line {line_no}:\n  input:  {input}\n  output: {output}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} fragments changed:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}
