//! Membership on etcd. Each node holds a lease of `ttl`, renewed by a heartbeat every
//! third of it; attached to the lease are the node's registration
//! (`<prefix>nodes/<id>`, its [`NodeInfo`]) and, for the leader, `<prefix>leader` (its
//! id), taken with a create-if-absent transaction. A node that stops heartbeating loses
//! both when etcd expires its lease, and the next heartbeat of another node takes the
//! lead.
//!
//! A node leads only while its lease surely lives: until two thirds of `ttl` after the
//! heartbeat that last renewed it (etcd cannot expire the lease before `ttl` after that
//! renewal, so an old leader cut off from etcd stops before a new one can start).

use std::{
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use etcd_client::{
    Client, Compare, CompareOp, GetOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn,
    TxnOp,
};
use tokio::sync::watch;

use super::{FleetSize, Membership, NodeInfo, View, unix_now};
use crate::store::EtcdSettings;

/// How long a node leads after the heartbeat that renewed its lease, as a fraction of
/// the lease's lifetime.
const LEAD_FRACTION: (u32, u32) = (2, 3);

/// The registry keys under a cluster's prefix.
#[derive(Debug, Clone)]
pub struct RegistryKeys {
    prefix: String,
}

impl RegistryKeys {
    /// The keys under `prefix` (the store's `[store.etcd] prefix`).
    pub fn new(prefix: &str) -> RegistryKeys {
        RegistryKeys {
            prefix: prefix.to_string(),
        }
    }

    /// Where nodes register.
    pub fn nodes(&self) -> String {
        format!("{}nodes/", self.prefix)
    }

    /// A node's registration.
    pub fn node(&self, id: &str) -> String {
        format!("{}nodes/{id}", self.prefix)
    }

    /// The leader key.
    pub fn leader(&self) -> String {
        format!("{}leader", self.prefix)
    }
}

/// Until when a heartbeat at `renewed` lets a node lead, with a lease of `ttl`.
pub fn lead_deadline(renewed: Instant, ttl: Duration) -> Instant {
    renewed + ttl * LEAD_FRACTION.0 / LEAD_FRACTION.1
}

/// The heartbeat period for a lease of `ttl`.
pub fn heartbeat_period(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(200))
}

struct Shared {
    view: RwLock<View>,
    lead_until: Mutex<Option<Instant>>,
}

/// The cluster's membership on etcd (see the module documentation).
pub struct EtcdMembership {
    id: String,
    shared: Arc<Shared>,
}

impl Membership for EtcdMembership {
    fn node_id(&self) -> &str {
        &self.id
    }

    fn view(&self) -> View {
        self.shared
            .view
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn is_leader(&self) -> bool {
        let until = *self
            .shared
            .lead_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        until.is_some_and(|t| Instant::now() < t)
    }
}

/// A lease held, with its keep-alive channel.
struct Lease {
    id: i64,
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
}

/// The heartbeat task's state.
struct Heart {
    settings: EtcdSettings,
    ttl: Duration,
    keys: RegistryKeys,
    info: NodeInfo,
    client: Option<Client>,
    lease: Option<Lease>,
}

impl EtcdMembership {
    /// Registers `info` and starts heartbeating on the current tokio runtime until
    /// `stop` turns true (then the lease is revoked, so the node drops out at once).
    /// `fleet` is kept equal to the number of live nodes.
    pub fn start(
        settings: &EtcdSettings,
        ttl: Duration,
        info: NodeInfo,
        fleet: FleetSize,
        stop: watch::Receiver<bool>,
    ) -> (Arc<EtcdMembership>, tokio::task::JoinHandle<()>) {
        let shared = Arc::new(Shared {
            view: RwLock::new(View::default()),
            lead_until: Mutex::new(None),
        });
        let membership = Arc::new(EtcdMembership {
            id: info.id.clone(),
            shared: shared.clone(),
        });
        let heart = Heart {
            settings: settings.clone(),
            ttl,
            keys: RegistryKeys::new(&settings.prefix),
            info,
            client: None,
            lease: None,
        };
        let task = tokio::spawn(heart.run(shared, fleet, stop));
        (membership, task)
    }
}

impl Heart {
    async fn run(mut self, shared: Arc<Shared>, fleet: FleetSize, mut stop: watch::Receiver<bool>) {
        let period = heartbeat_period(self.ttl);
        let mut was_reachable = true;
        loop {
            let renewed = Instant::now();
            let beat = tokio::time::timeout(self.settings.timeout, self.beat()).await;
            let beat = match beat {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "etcd did not answer within {} ms",
                    self.settings.timeout.as_millis()
                )),
            };
            match beat {
                Ok((nodes, leader, leads)) => {
                    if !was_reachable {
                        tracing::info!(node = %self.info.id, "cluster registry reachable again");
                    }
                    was_reachable = true;
                    *shared
                        .lead_until
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        leads.then(|| lead_deadline(renewed, self.ttl));
                    fleet.set(u32::try_from(nodes.len()).unwrap_or(u32::MAX));
                    *shared
                        .view
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = View {
                        nodes,
                        leader,
                        reachable: true,
                        seen_at: unix_now(),
                    };
                }
                Err(reason) => {
                    if was_reachable {
                        tracing::warn!(node = %self.info.id, "cluster registry unreachable (this node keeps serving; it leads no once-only job until etcd answers): {reason}");
                    }
                    was_reachable = false;
                    // A lease whose renewal failed may expire: start afresh next time.
                    self.lease = None;
                    shared
                        .view
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .reachable = false;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.changed() => break,
            }
        }
        *shared
            .lead_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        if let (Some(mut client), Some(lease)) = (self.client.take(), self.lease.take()) {
            let _ =
                tokio::time::timeout(self.settings.timeout, client.lease_revoke(lease.id)).await;
        }
    }

    /// One heartbeat: (re)connect, renew or take a lease, publish this node, try for the
    /// lead, and read the live nodes. Returns them (by id), the leader, and whether this
    /// node leads.
    async fn beat(&mut self) -> Result<(Vec<NodeInfo>, Option<String>, bool), String> {
        let mut client = match &self.client {
            Some(c) => c.clone(),
            None => {
                let options = crate::store::etcd_connect_options(&self.settings)
                    .map_err(|e| e.to_string())?;
                let c = Client::connect(self.settings.endpoints.clone(), Some(options))
                    .await
                    .map_err(|e| e.to_string())?;
                self.client = Some(c.clone());
                c
            }
        };
        let lease = self.renew(&mut client).await?;
        self.info.heartbeat_at = unix_now();
        let value = serde_json::to_vec(&self.info).map_err(|e| e.to_string())?;
        client
            .put(
                self.keys.node(&self.info.id),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )
            .await
            .map_err(|e| e.to_string())?;
        let leader_key = self.keys.leader();
        let txn = Txn::new()
            .when([Compare::create_revision(
                leader_key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(
                leader_key.clone(),
                self.info.id.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(leader_key, None)]);
        let resp = client.txn(txn).await.map_err(|e| e.to_string())?;
        // The lead is this node's only when the leader key hangs on its current lease (a
        // key left on a lease it no longer renews is lost when that lease expires).
        let (leader, leads) = if resp.succeeded() {
            tracing::info!(node = %self.info.id, "this node now leads the once-only jobs");
            (Some(self.info.id.clone()), true)
        } else {
            let held = resp.op_responses().into_iter().find_map(|op| match op {
                etcd_client::TxnOpResponse::Get(mut g) => g
                    .take_kvs()
                    .into_iter()
                    .next()
                    .map(|kv| (String::from_utf8_lossy(kv.value()).into_owned(), kv.lease())),
                _ => None,
            });
            match held {
                Some((id, on)) => {
                    let leads = id == self.info.id && on == lease;
                    (Some(id), leads)
                }
                None => (None, false),
            }
        };
        let mut nodes_resp = client
            .get(self.keys.nodes(), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| e.to_string())?;
        let mut nodes: Vec<NodeInfo> = nodes_resp
            .take_kvs()
            .into_iter()
            .filter_map(|kv| match serde_json::from_slice(kv.value()) {
                Ok(info) => Some(info),
                Err(e) => {
                    tracing::warn!(key = %String::from_utf8_lossy(kv.key()), "unreadable node registration skipped: {e}");
                    None
                }
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok((nodes, leader, leads))
    }

    /// Renews the lease, or takes a new one when there is none or it expired. Returns its
    /// id.
    async fn renew(&mut self, client: &mut Client) -> Result<i64, String> {
        if let Some(lease) = &mut self.lease {
            lease.keeper.keep_alive().await.map_err(|e| e.to_string())?;
            match lease.stream.message().await.map_err(|e| e.to_string())? {
                Some(resp) if resp.ttl() > 0 => return Ok(lease.id),
                _ => {
                    tracing::warn!(node = %self.info.id, "this node's lease expired; registering again");
                    self.lease = None;
                }
            }
        }
        let ttl = i64::try_from(self.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let granted = client
            .lease_grant(ttl, None)
            .await
            .map_err(|e| e.to_string())?;
        let (keeper, stream) = client
            .lease_keep_alive(granted.id())
            .await
            .map_err(|e| e.to_string())?;
        self.lease = Some(Lease {
            id: granted.id(),
            keeper,
            stream,
        });
        Ok(granted.id())
    }
}
