//! Cluster mode in one process: `n` nodes (real servers on real sockets) on one
//! fresh PostgreSQL database and one Redis channel prefix of their own, dropped
//! with the [`Cluster`].

use crate::{eventually, Config, TestServer};
use chorus_store::TestDatabase;

/// The Redis of the cluster tests: this machine's, unless `CHORUS_TEST_REDIS` says.
pub fn redis_url() -> String {
    std::env::var("CHORUS_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Nodes `node-0` … `node-{n-1}` of one cluster.
pub struct Cluster {
    /// The nodes, in the order of their ids.
    pub nodes: Vec<TestServer>,
    /// Their store.
    pub db: TestDatabase,
    /// Their bus's channel prefix.
    pub prefix: String,
}

impl Cluster {
    /// `n` nodes with the default test configuration.
    pub async fn start(n: usize) -> Cluster {
        Cluster::start_with(n, |_| {}).await
    }

    /// `n` nodes, each configuration adjusted by `adjust` before it starts; returns
    /// once every node has heard every other.
    pub async fn start_with(n: usize, adjust: impl Fn(&mut Config)) -> Cluster {
        let db = TestDatabase::create();
        let prefix = format!("chorus-test:{}", db.name());
        let mut cluster = Cluster {
            nodes: Vec::new(),
            db,
            prefix,
        };
        for i in 0..n {
            let node = cluster.node(i, &adjust).await;
            cluster.nodes.push(node);
        }
        eventually(10, "nodes see each other", || {
            cluster.nodes.iter().all(|s| {
                s.state
                    .documents
                    .bus_stats()
                    .is_some_and(|b| b.nodes_up == n as u64)
            })
        })
        .await
        .unwrap();
        cluster
    }

    /// One more node of this cluster (`node-{len}`), not kept in [`Cluster::nodes`].
    pub async fn add_node(&self, adjust: impl Fn(&mut Config)) -> TestServer {
        self.node(self.nodes.len(), &adjust).await
    }

    async fn node(&self, i: usize, adjust: &impl Fn(&mut Config)) -> TestServer {
        let (url, prefix) = (self.db.url().to_owned(), self.prefix.clone());
        TestServer::start_with(|c| {
            c.store = url;
            c.bus = Some(redis_url());
            c.bus_prefix = Some(prefix);
            c.cluster_keys = vec![crate::processes::CLUSTER_KEY.to_owned()];
            c.node_id = Some(format!("node-{i}"));
            adjust(c);
        })
        .await
    }
}
