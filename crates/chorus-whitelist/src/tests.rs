use super::*;

fn p() -> Policy {
    Policy::default_policy()
}

#[test]
fn the_default_policy_loads_and_covers_confluence_additions() {
    let p = p();
    for el in [
        "p", "table", "td", "a", "img", "time", "label", "form", "span", "ul", "li",
    ] {
        assert!(p.allows_element(el), "{el}");
    }
    for (el, attr) in [
        ("span", "contenteditable"),
        ("span", "data-ref"),
        ("time", "datetime"),
        ("div", "data-macro-name"),
        ("div", "data-macro-parameters"),
        ("img", "data-linked-resource-id"),
        ("div", "data-layout"),
        ("li", "data-inline-task-id"),
        ("td", "colspan"),
    ] {
        assert!(p.allows_attribute(el, attr, "x"), "{el} {attr}");
    }
}

#[test]
fn script_vectors_are_refused() {
    let p = p();
    for el in NEVER_ELEMENTS {
        assert!(!p.allows_element(el), "{el}");
    }
    assert!(!p.allows_element("SCRIPT"));
    assert!(!p.allows_element("svg"));
    assert!(!p.allows_attribute("img", "onerror", "alert(1)"));
    assert!(!p.allows_attribute("img", "ONLOAD", "alert(1)"));
    assert!(!p.allows_attribute("a", "formaction", "x"));
    for url in [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        "\u{0001}javascript:alert(1)",
        "vbscript:msgbox(1)",
        "data:text/html,<script>alert(1)</script>",
        "data:image/png;base64,AAAA",
    ] {
        assert!(!p.allows_attribute("a", "href", url), "{url:?}");
        assert!(!p.allows_attribute("img", "src", url), "{url:?}");
        assert!(!p.allows_mark("a", &[("href", url)]), "{url:?}");
    }
    for url in [
        "https://example.com/x",
        "/wiki/page",
        "page#frag",
        "mailto:a@b.c",
        "?q=1:2",
    ] {
        assert!(p.allows_attribute("a", "href", url), "{url:?}");
    }
}

#[test]
fn styles_are_judged_per_declaration() {
    let p = p();
    assert!(p.allows_attribute("p", "style", "color: red; text-align: center"));
    assert!(p.allows_attribute("span", "style", "background-color: rgb(1, 2, 3)"));
    for bad in [
        "padding-top: 10px",
        "padding: 0",
        "color: red; padding-left: 3px",
        "background: url(javascript:alert(1))",
        "width: expression(alert(1))",
        "color: re\\64",
        "display: block; position: fixed",
        "text-align: middle",
    ] {
        assert!(!p.allows_attribute("p", "style", bad), "{bad}");
    }
    assert_eq!(
        p.clean_style("color: red; padding: 1px; text-align: center")
            .as_deref(),
        Some("color: red; text-align: center")
    );
    assert_eq!(p.clean_style("padding: 1px"), None);
}

#[test]
fn marks_and_their_attributes() {
    let p = p();
    assert!(p.allows_mark("strong", &[]));
    assert!(p.allows_mark("a", &[("href", "https://x.y")]));
    assert!(!p.allows_mark("a", &[("onclick", "x")]));
    assert!(!p.allows_mark("script", &[]));
    assert!(!p.allows_mark("strong", &[("style", "color: red")]));
}

#[test]
fn policies_that_allow_the_never_allowed_are_refused() {
    let base: serde_json::Value = serde_json::from_str(DEFAULT_POLICY_JSON).unwrap();
    let mut with_script = base.clone();
    with_script["elements"]["script"] = serde_json::json!([]);
    assert!(matches!(
        Policy::from_json(&with_script.to_string()),
        Err(PolicyError::Forbidden(_))
    ));
    let mut with_handler = base.clone();
    with_handler["global_attributes"] = serde_json::json!(["onclick"]);
    assert!(matches!(
        Policy::from_json(&with_handler.to_string()),
        Err(PolicyError::Forbidden(_))
    ));
    let mut with_js = base.clone();
    with_js["url_schemes"] = serde_json::json!(["https", "JavaScript"]);
    assert!(matches!(
        Policy::from_json(&with_js.to_string()),
        Err(PolicyError::Forbidden(_))
    ));
    let mut bad_regex = base.clone();
    bad_regex["styles"]["color"] = serde_json::json!("([");
    assert!(matches!(
        Policy::from_json(&bad_regex.to_string()),
        Err(PolicyError::BadPattern { .. })
    ));
    assert!(matches!(
        Policy::from_json("{}"),
        Err(PolicyError::Format(_))
    ));
}

#[test]
fn urls_that_still_look_entity_encoded_are_refused() {
    let p = p();
    for url in [
        "&#106;avascript:alert(1)",
        "&#x6A;avascript:alert(1)",
        "&#106avascript&#58alert(1)",
        "javascript&#58;alert(1)",
        "javascript&colon;alert(1)",
        "JavaScript&COLON;alert(1)",
        "&amp;x",
        " &lt;x",
        "https://example.com/?q=&#1",
        "/page&#35;frag",
    ] {
        assert!(!p.allows_url(url), "{url:?}");
        assert!(!p.allows_attribute("a", "href", url), "{url:?}");
        assert!(!p.allows_mark("a", &[("href", url)]), "{url:?}");
    }
    for url in [
        "//cdn.example.com/a.png",
        "//cdn.example.com/x:y",
        "https://example.com/?a=1&b=2",
        "/wiki?x=1&y=2",
    ] {
        assert!(p.allows_url(url), "{url:?}");
    }
}

#[test]
fn accessors_expose_what_a_sanitiser_needs() {
    let p = p();
    assert!(p.global_attribute_names().contains("class"));
    assert!(p
        .global_attribute_names()
        .contains("data-inline-tasks-content-id"));
    assert!(!p.global_attribute_names().contains("href"));
    assert_eq!(
        p.element_attribute_names("A"),
        ["href", "name", "rel", "target"].into_iter().collect()
    );
    assert!(p.element_attribute_names("p").is_empty());
    assert!(p.element_attribute_names("script").is_empty());
    assert_eq!(
        p.global_attribute_prefixes(),
        ["data-linked-resource-", "data-macro-"]
            .into_iter()
            .collect()
    );
    assert_eq!(
        p.url_schemes(),
        ["http", "https", "mailto", "tel"].into_iter().collect()
    );
    assert!(p.is_url_attribute("HREF") && p.is_url_attribute("data-image-src"));
    assert!(!p.is_url_attribute("title"));
    assert!(p.allows_attribute_name("a", "rel"));
    assert!(p.allows_attribute_name("div", "data-macro-anything"));
    assert!(!p.allows_attribute_name("p", "rel"));
    assert!(!p.allows_attribute_name("p", "onclick"));
    assert!(!p.allows_attribute("img", "data-image-src", "javascript:alert(1)"));
}

#[test]
fn the_fingerprint_follows_the_rules_not_the_layout_of_the_file() {
    let default = p();
    let mut value: serde_json::Value = serde_json::from_str(DEFAULT_POLICY_JSON).unwrap();
    let pretty = serde_json::to_string_pretty(&value).unwrap();
    let compact = serde_json::to_string(&value).unwrap();
    for text in [&pretty, &compact] {
        assert_eq!(
            Policy::from_json(text).unwrap().fingerprint(),
            default.fingerprint()
        );
    }
    value["elements"]["p"]
        .as_array_mut()
        .unwrap()
        .push("data-extra".into());
    let changed = Policy::from_json(&value.to_string()).unwrap();
    assert_ne!(changed.fingerprint(), default.fingerprint());
    assert_eq!(default.fingerprint().len(), 64);
}
