//! Talking to a cluster: everything regops sends to a Kubernetes API server.
//!
//! - [`Connection`]: one cluster's client, with the run's context, handed to everything below.
//! - [`client`]: kubeconfig, context and client; cluster errors that say what to do.
//! - [`read`]: reading the cluster (a few paged LISTs per kind) or a state file into the lean
//!   observed model.
//! - [`write`]: carrying out a plan: write strategy per kind, retries, ordering.
//! - [`lock`]: the Lease that keeps two applies apart (and elects `apply --watch`'s leader).
//! - [`retry`]: one retry policy (backoff, Retry-After, timeouts) for reads, writes and the
//!   lock.
//! - [`events`]: Kubernetes Events of what an apply did, repeats folded into series.
//! - [`progress`]: the work loop's heartbeat, which `/healthz` reads.
//! - [`request_log`]: `-v`/`-vv`: each API request and retry on stderr, never a header or
//!   body.

pub mod client;
pub mod events;
pub mod lock;
pub mod progress;
pub mod read;
pub mod request_log;
pub mod retry;
pub mod write;

/// One cluster as the layer below a command sees it: its client, the run's context (clock,
/// request timeout, connect budget, list limits), and whether this cluster has answered a
/// request yet (so that, in a fleet, one cluster answering does not give another that was
/// never reached the full retries instead of `--connect-timeout`). Cheap to clone: every part
/// is shared.
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    pub ctx: crate::context::RunContext,
    reached: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Connection {
    pub fn new(client: kube::Client, ctx: crate::context::RunContext) -> Connection {
        Connection {
            client,
            ctx,
            reached: std::sync::Arc::default(),
        }
    }

    /// The same cluster through another client (one built on another runtime: the Lease's
    /// renewal thread), sharing this one's context and whether the cluster has answered.
    pub fn with_client(&self, client: kube::Client) -> Connection {
        Connection {
            client,
            ctx: self.ctx.clone(),
            reached: self.reached.clone(),
        }
    }

    /// Whether this cluster has answered a request.
    pub fn reached(&self) -> bool {
        self.reached.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn mark_reached(&self) {
        self.reached
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// An API of one namespace, through this connection's client.
    pub fn namespaced<K>(&self, namespace: &str) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        kube::Api::namespaced(self.client.clone(), namespace)
    }

    /// A connection to nothing (port 9 of this host), for tests of what only reads its
    /// context.
    #[cfg(test)]
    #[allow(clippy::expect_used)]
    pub(crate) fn for_test(ctx: crate::context::RunContext) -> Connection {
        let url = "http://127.0.0.1:9".parse().expect("a URL");
        let client = kube::Client::try_from(kube::Config::new(url)).expect("a client");
        Connection::new(client, ctx)
    }
}
