//! The document layer on its own, over the in-memory store: host operations that are
//! prepared off the actor and what they answer when the draft moves meanwhile or
//! the store fails.

use chorus_core::RoomLimits;
use chorus_docs::{
    AppRules, DocCommand, DocError, DocKey, DocPolicy, DocSetup, Documents, DraftContent,
    DraftFormat, HostChange, HostError, NoMetrics,
};
use chorus_hooks::{Hooks, HooksConfig};
use chorus_store::{DocId, MemoryStore, Store, StoreCondition};
use std::sync::Arc;

fn documents(store: Arc<MemoryStore>) -> Arc<Documents> {
    let hooks = Hooks::new(
        store.clone(),
        Arc::new(|_: &str| None),
        HooksConfig::default(),
    )
    .expect("hooks");
    Documents::new(DocSetup {
        limits: RoomLimits::default(),
        rules: AppRules::default(),
        policy: DocPolicy::default(),
        store,
        hooks,
        metrics: Arc::new(NoMetrics),
        group_commit: true,
    })
}

fn key(doc: &str) -> DocKey {
    DocKey::new("wiki", doc)
}

fn change(html: &str) -> HostChange {
    HostChange {
        title: Some("Handbook".into()),
        html: Some(html.into()),
        base: None,
        restoring: None,
    }
}

/// A peer that drops every frame (the test reads the stored document only).
struct Nobody;

impl chorus_core::Peer for Nobody {
    fn send(&self, _: bytes::Bytes) -> bool {
        true
    }
}

/// The body HTML of what the store holds for `doc`.
fn stored_body(store: &MemoryStore, doc: &str) -> String {
    let Some(stored) = store.load(&DocId::new("wiki", doc)).unwrap() else {
        return String::new();
    };
    let room = chorus_core::Room::<Nobody>::from_stored(
        RoomLimits::default(),
        stored.snapshot.as_deref(),
        stored.updates.iter().map(|(_, u)| u.as_slice()),
    )
    .unwrap();
    chorus_core::render::doc_html(room.doc()).1
}

async fn etag(docs: &Arc<Documents>, key: &DocKey) -> String {
    let format = DraftFormat::Json;
    let read = docs.ask(key, |reply| DocCommand::Read { format, reply });
    read.await.unwrap().unwrap().etag
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_and_an_html_read_answer_the_rendered_draft() {
    let docs = documents(Arc::new(MemoryStore::new()));
    let k = key("clean");
    docs.external_change(&k, change("<p>Hello <b>world</b></p>"))
        .await
        .unwrap();
    let format = DraftFormat::Html;
    let draft = docs
        .ask(&k, |reply| DocCommand::Read { format, reply })
        .await
        .unwrap()
        .unwrap();
    let DraftContent::Html { title, html } = draft.content else {
        panic!("html asked for")
    };
    assert_eq!(title, "Handbook");
    assert_eq!(html, "<p>Hello <b>world</b></p>");
    let published = docs
        .publish(&k, draft.etag.clone(), Default::default())
        .await
        .unwrap();
    assert_eq!(published.html, html);
    assert_eq!(published.etag, draft.etag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_refuses_a_draft_that_moved_after_it_was_rendered() {
    let docs = documents(Arc::new(MemoryStore::new()));
    let k = key("race");
    docs.external_change(&k, change("<p>first</p>"))
        .await
        .unwrap();
    let read = etag(&docs, &k).await;
    // What `Documents::publish` does, with an edit landing between its two steps.
    let if_match = read.clone();
    let draft = docs
        .ask(&k, |reply| DocCommand::Render { if_match, reply })
        .await
        .unwrap()
        .unwrap();
    docs.external_change(&k, change("<p>second</p>"))
        .await
        .unwrap();
    let published = docs
        .ask(&k, |reply| DocCommand::Publish {
            draft,
            by: Default::default(),
            reply,
        })
        .await
        .unwrap();
    let now = etag(&docs, &k).await;
    match published {
        Err(HostError::Conflict { current }) => assert_eq!(current, now),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_ne!(read, now);
    // The public path publishes the draft as it is now.
    assert!(docs.publish(&k, now, Default::default()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_the_host_with_its_condition_and_the_retry_stores_the_change() {
    let store = Arc::new(MemoryStore::new());
    let docs = documents(store.clone());
    let k = key("full");
    docs.external_change(&k, change("<p>before</p>"))
        .await
        .unwrap();
    store.fail_with(std::io::ErrorKind::StorageFull);
    let refused = docs.external_change(&k, change("<p>after</p>")).await;
    match refused {
        Err(HostError::Unavailable(e @ DocError::Store(_))) => {
            assert_eq!(e.store_condition(), StoreCondition::DiskFull)
        }
        other => panic!("expected the store's condition, got {other:?}"),
    }
    assert_eq!(docs.store_failing(), Some(StoreCondition::DiskFull));
    // Space is back: the retry (a snapshot, a second later) stores the change that
    // stayed applied, and readiness recovers.
    store.set_failing(false);
    let mut stored = String::new();
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stored = stored_body(&store, "full");
        if docs.store_failing().is_none() && stored.contains("after") {
            break;
        }
    }
    assert_eq!(stored, "<p>after</p>", "the retry stored the change");
    assert_eq!(docs.store_failing(), None);
    // Repeating the refused change is safe: it already matches.
    let again = docs
        .external_change(&k, change("<p>after</p>"))
        .await
        .unwrap();
    assert!(again.fields.is_empty(), "{:?}", again.fields);
}
