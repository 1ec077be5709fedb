//! Presence: states are relayed, stamped with the verified user, and removed on leave.

use chorus_e2e::{eventually, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awareness_add_update_remove() {
    let server = TestServer::start().await;
    let a = server.client("presence", "alice").await;
    let b = server.client("presence", "bob").await;
    let a_id = a.client_id();

    // Add: alice claims to be someone else; bob sees the token's identity.
    a.set_awareness(
        1,
        r##"{"user":{"name":"Mallory","id":"bob","color":"#000"},"selection":{"anchor":1}}"##,
    );
    eventually(10, "bob sees alice", || b.awareness().contains_key(&a_id))
        .await
        .unwrap();
    let state = &b.awareness()[&a_id];
    assert_eq!(state["user"]["id"], "alice");
    assert_eq!(state["user"]["name"], "alice (from token)");
    assert_ne!(state["user"]["color"], "#000");
    assert_eq!(state["selection"]["anchor"], 1);

    // Update.
    a.set_awareness(2, r#"{"selection":{"anchor":7}}"#);
    eventually(10, "bob sees the new selection", || {
        b.awareness()
            .get(&a_id)
            .is_some_and(|s| s["selection"]["anchor"] == 7 && s["user"]["id"] == "alice")
    })
    .await
    .unwrap();

    // A late joiner gets the current presence on join.
    let c = server.client("presence", "carol").await;
    eventually(10, "carol sees alice", || c.awareness().contains_key(&a_id))
        .await
        .unwrap();

    // Remove: alice disconnects without saying goodbye.
    drop(a);
    eventually(10, "bob sees alice removed", || {
        !b.awareness().contains_key(&a_id)
    })
    .await
    .unwrap();
    eventually(10, "carol sees alice removed", || {
        !c.awareness().contains_key(&a_id)
    })
    .await
    .unwrap();
}
