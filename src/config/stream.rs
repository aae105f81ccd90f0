//! `[stream]`: where the log's events are published for consumers
//! outside the node (`export`), or the store several nodes share is kept
//! (`failover`, split over `shards`): a NATS JetStream stream.

use serde::Deserialize;

/// Where every event of the log is published for consumers outside the
/// node (`crate::stream`): a NATS JetStream stream.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSettings {
    /// The NATS server (`nats://127.0.0.1:4222`), or several servers of
    /// one cluster separated by commas, tried in turn; empty: nothing is
    /// published. It may carry a user and password, so it is never printed.
    pub url: String,
    /// The JetStream stream's name.
    pub name: String,
    /// Subjects are `<subject>.<partition>`.
    pub subject: String,
    /// Orders are spread over this many subjects by their id.
    pub partitions: u32,
    /// Copies of the stream a JetStream cluster keeps.
    pub replicas: usize,
    /// `export`: the node's own store is the truth and the stream a copy.
    /// `failover`: several nodes share one store kept in JetStream; one
    /// leads, the others follow and take over (`docs/multi-node.md`).
    pub mode: StreamMode,
    /// In failover mode: how long the leader's lease lives without renewal,
    /// i.e. how soon a follower takes over from a leader that died.
    pub lease_ms: u64,
    /// In failover mode: this node's name among the others (letters,
    /// digits, - and _); empty: the host's name.
    pub node: String,
    /// In failover mode: the URL at which the other nodes reach this node's
    /// HTTP API, to forward requests to it when it leads; empty:
    /// `http://<http.bind>`, with the host's name for an unspecified
    /// address (0.0.0.0).
    pub advertise: String,
    /// In failover mode: a follower writes a snapshot of the store every
    /// this many copies, and the stream of copies keeps only as many
    /// before the newest snapshot; 0: never (the stream is kept whole).
    pub snapshot_every: u64,
    /// In failover mode: how many failover groups the orders are split
    /// over, each with a leader of its own (docs/multi-node.md, "shard
    /// groups"); 1: one group holds everything.
    pub shards: u32,
    /// Set on the copy of the settings a node runs one shard with
    /// ([`Settings::for_shard`]); never read from a file.
    #[serde(skip)]
    pub shard: Option<ShardOf>,
}

/// Which shard a copy of the settings runs, the cluster's own name, and
/// the key its server takes requests by.
#[derive(Clone, PartialEq, Eq)]
pub struct ShardOf {
    pub index: u32,
    /// `stream.name` of the cluster: the leases' bucket is the cluster's.
    pub cluster: String,
    /// The cluster's hop key (`cluster::replica::hop_key`), once the node
    /// joined it: the shard's server takes a request only with it, since
    /// any process on the machine can reach its loopback port, and only
    /// the node's router may say who the caller is or pick the shard.
    /// Empty: not known (a shard run by hand, as in tests).
    pub hop: String,
}

/// The hop key is a secret: a printed setting says only whether it is set.
impl std::fmt::Debug for ShardOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardOf")
            .field("index", &self.index)
            .field("cluster", &self.cluster)
            .field("hop", &if self.hop.is_empty() { "unset" } else { "set" })
            .finish()
    }
}

impl StreamSettings {
    /// The same settings for shard `index`: its events are exported to a
    /// stream and subjects of its own (`<name>_<index>`,
    /// `<subject>-<index>.<partition>`), since each shard's leader writes
    /// its own in order.
    pub fn of_shard(&self, index: u32) -> StreamSettings {
        StreamSettings {
            name: format!("{}_{index}", self.name),
            subject: format!("{}-{index}", self.subject),
            shard: Some(ShardOf { index, cluster: self.name.clone(), hop: String::new() }),
            ..self.clone()
        }
    }

    /// The shards of this cluster.
    pub fn sharding(&self) -> crate::domain::shard::Shards {
        crate::domain::shard::Shards::new(self.shards)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum StreamMode {
    Export,
    Failover,
}

/// Read by hand so that a mistyped mode is refused with the choices.
impl TryFrom<String> for StreamMode {
    type Error = String;

    fn try_from(mode: String) -> Result<Self, Self::Error> {
        match mode.as_str() {
            "export" => Ok(StreamMode::Export),
            "failover" => Ok(StreamMode::Failover),
            other => Err(format!("stream.mode must be \"export\" or \"failover\", not {other:?}")),
        }
    }
}

/// The URL may hold a password: a printed setting shows only its host.
impl std::fmt::Debug for StreamSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = host_of(&self.url);
        f.debug_struct("StreamSettings")
            .field("url", &host)
            .field("name", &self.name)
            .field("subject", &self.subject)
            .field("partitions", &self.partitions)
            .field("replicas", &self.replicas)
            .field("mode", &self.mode)
            .field("lease_ms", &self.lease_ms)
            .field("node", &self.node)
            .field("advertise", &self.advertise)
            .field("snapshot_every", &self.snapshot_every)
            .field("shards", &self.shards)
            .field("shard", &self.shard)
            .finish()
    }
}

/// `url` (or a comma-separated list of them) without what it may carry of
/// a user and password: for messages and printed settings.
pub fn host_of(url: &str) -> String {
    url.split(',').map(|u| host_of_one(u.trim())).collect::<Vec<_>>().join(",")
}

fn host_of_one(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.host_str().is_some() => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}", u.scheme(), u.host_str().unwrap_or(""))
        }
        // Whatever follows the last `@` holds no secret; before it may.
        _ => url.rsplit('@').next().unwrap_or("").to_owned(),
    }
}
