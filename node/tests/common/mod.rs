//! A real node for the integration tests: bound on an ephemeral port with its data in a
//! directory of the test's, run in the test's runtime, stopped cleanly or aborted.
// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

use std::net::SocketAddr;

use strata_node::{Config, Server};
use tokio::sync::oneshot;

pub struct Running {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts a node on `127.0.0.1:0` with its log under `dir` and `settings` on top of the
/// embedded defaults.
pub async fn start(dir: &std::path::Path, settings: &[(&str, &str)]) -> Running {
    let mut config = Config::default()
        .with("listeners", "127.0.0.1:0")
        .and_then(|c| c.with("log.dirs", &dir.display().to_string()))
        .expect("valid config");
    for (key, value) in settings {
        config = config.with(key, value).expect("valid setting");
    }
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    Running { addr, stop, task }
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("join").expect("clean shutdown");
    }

    /// Stops the server without its shutdown (no final flush or checkpoint). Not a power loss:
    /// the page cache keeps what was written.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
