//! Edits reach every client of a document, converge, and stay within it.

use chorus_e2e::{eventually, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_converge_on_concurrent_text_edits() {
    let server = TestServer::start().await;
    let a = server.client("doc-1", "alice").await;
    let b = server.client("doc-1", "bob").await;
    // Concurrent: both type at position 0 before seeing each other's edit.
    a.insert_title(0, "Hello from Alice. ");
    b.insert_title(0, "Hello from Bob. ");
    eventually(10, "both titles contain both edits", || {
        let (ta, tb) = (a.title(), b.title());
        ta == tb && ta.contains("Alice") && ta.contains("Bob")
    })
    .await
    .unwrap();
    assert_eq!(a.state_vector(), b.state_vector());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_body_edits_sync() {
    let server = TestServer::start().await;
    let a = server.client("doc-xml", "alice").await;
    let b = server.client("doc-xml", "bob").await;
    a.push_paragraph("first");
    b.push_paragraph("second");
    eventually(10, "bodies equal with two paragraphs", || {
        a.body() == b.body() && a.body().matches("<p>").count() == 2
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_clients_fifty_edits_each_converge() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for i in 0..20 {
        clients.push(server.client("crowd", &format!("user-{i}")).await);
    }
    for round in 0..50 {
        for (i, c) in clients.iter().enumerate() {
            c.insert_title(0, &format!("[{i}:{round}]"));
        }
        tokio::task::yield_now().await;
    }
    let expected_len: usize = (0..20)
        .flat_map(|i| (0..50).map(move |r| format!("[{i}:{r}]").len()))
        .sum();
    eventually(30, "all 20 replicas identical with 1000 edits", || {
        let first = clients[0].title();
        first.len() == expected_len && clients.iter().all(|c| c.title() == first)
    })
    .await
    .unwrap();
    let sv = clients[0].state_vector();
    assert!(clients.iter().all(|c| c.state_vector() == sv));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_isolated() {
    let server = TestServer::start().await;
    let a = server.client("doc-a", "alice").await;
    let b = server.client("doc-b", "bob").await;
    let a2 = server.client("doc-a", "carol").await;
    a.insert_title(0, "only for doc-a");
    eventually(10, "same-doc client gets the edit", || {
        a2.title() == "only for doc-a"
    })
    .await
    .unwrap();
    // The other document's client got nothing at all, not even an empty update.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(b.title(), "");
    assert_eq!(b.received_updates(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_receives_the_whole_state() {
    let server = TestServer::start().await;
    let a = server.client("late", "alice").await;
    a.insert_title(0, "before you came");
    a.push_paragraph("body text");
    // The probe proves the server holds both edits: they travel as two updates on
    // alice's socket, so seeing the first says nothing about the second.
    let probe = server.client("late", "probe").await;
    eventually(10, "probe caught up", || {
        probe.title() == "before you came" && probe.body() == "<p>body text</p>"
    })
    .await
    .unwrap();
    drop(probe);
    let c = server.client("late", "carol").await;
    assert_eq!(c.title(), "before you came");
    assert_eq!(c.body(), "<p>body text</p>");
}
