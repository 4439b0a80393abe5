//! Command-line and environment configuration.
//!
//! Every flag can also come from an environment variable (`KVD_ADDR`, ...) so that a Procfile line
//! stays short. `Config::validate` turns the raw flags into checked values; anything wrong stops the
//! process with one line (see `main.rs`), never a panic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// kvd: a Redis-protocol key-value server whose writes are replicated with Raft.
#[derive(Parser, Debug, Clone)]
#[command(name = "kvd", version, about, long_about = None)]
pub struct Args {
    /// Directory holding this node's database (created if missing).
    #[arg(env = "KVD_DATA_DIR", default_value = "node-data/node0")]
    pub data_dir: PathBuf,

    /// Node name, unique in the cluster and never reused [default: the data dir's last component].
    #[arg(long, env = "KVD_ID")]
    pub id: Option<String>,

    /// Address for Redis clients (RESP).
    #[arg(long, env = "KVD_ADDR", default_value = "127.0.0.1:6379")]
    pub addr: String,

    /// Address for raft traffic from the other nodes.
    #[arg(long, env = "KVD_RAFT_ADDR", default_value = "127.0.0.1:19000")]
    pub raft_addr: String,

    /// Raft address the other nodes should use to reach this one, if not --raft-addr (behind a
    /// proxy or NAT).
    #[arg(long, env = "KVD_ADVERTISE_RAFT_ADDR")]
    pub advertise_raft_addr: Option<String>,

    /// Client address (HOST:PORT) of any cluster member: an empty node asks it to be added instead of
    /// bootstrapping a cluster of its own. Ignored once the node holds raft state.
    #[arg(long, env = "KVD_JOIN")]
    pub join: Option<String>,

    /// Log level: critical, error, warning, info, debug or trace.
    #[arg(long, env = "KVD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Reads served from the local state (local, may be stale on a lagging follower) or after a
    /// raft ReadIndex round (linearizable). Each connection can switch with CONSISTENCY.
    #[arg(
        long,
        env = "KVD_READ_CONSISTENCY",
        value_enum,
        default_value = "local"
    )]
    pub read_consistency: ReadConsistency,

    /// Longest a write waits for a raft leader and for its entry to commit, in milliseconds, before
    /// the client gets -CLUSTERDOWN / -TRYAGAIN.
    #[arg(long, env = "KVD_WRITE_TIMEOUT_MS", default_value_t = 5000)]
    pub write_timeout_ms: u64,

    /// Raft tick interval in milliseconds (election timeout is 10-20 ticks, heartbeat 2 ticks).
    #[arg(long, env = "KVD_TICK_MS", default_value_t = 100)]
    pub tick_ms: u64,

    /// Largest bulk string accepted on the wire (Redis proto-max-bulk-len); larger closes the connection.
    #[arg(long, env = "KVD_PROTO_MAX_BULK_LEN", default_value_t = 512 * 1024 * 1024)]
    pub proto_max_bulk_len: usize,

    /// Largest value (any argument) a command may carry; larger gets -ERR and the connection stays.
    #[arg(long, env = "KVD_MAX_VALUE_SIZE", default_value_t = 16 * 1024 * 1024)]
    pub max_value_size: usize,

    /// Largest key a command may carry.
    #[arg(long, env = "KVD_MAX_KEY_SIZE", default_value_t = 64 * 1024)]
    pub max_key_size: usize,

    /// Compact the raft log once it holds more than this many applied entries.
    #[arg(long, env = "KVD_COMPACT_ENTRIES", default_value_t = 50_000)]
    pub compact_entries: u64,

    /// Entries kept behind the applied index when compacting, so a briefly slow follower catches up
    /// from the log instead of needing a snapshot.
    #[arg(long, env = "KVD_COMPACT_KEEP", default_value_t = 5_000)]
    pub compact_keep: u64,

    /// Also compact the raft log once it holds more than this many MiB, keeping at most half
    /// of it (of the `--compact-keep` entries) for slow followers.
    #[arg(long, env = "KVD_COMPACT_LOG_MB", default_value_t = 64)]
    pub compact_log_mb: u64,

    /// The state database's page cache in MiB (the log database's takes at most 8).
    #[arg(long, env = "KVD_CACHE_MB", default_value_t = 64)]
    pub cache_mb: usize,

    /// Make the state database's durable commits with one fsync instead of two, as the log's
    /// always are (the log seals each one, see `kvd::log_db`). The state is made durable every
    /// `--compact-entries`/2 entries or 10 s, so this saves little; the price: a damaged header
    /// of the state database is then taken for a torn commit and the previous one is used (the
    /// log is applied again from further back, or, past a compaction, the start is refused).
    #[arg(long, env = "KVD_ONE_PHASE_COMMIT", value_parser = clap::builder::BoolishValueParser::new())]
    pub one_phase_commit: bool,

    /// The Redis version kvd reports (HELLO's `version`, INFO's `redis_version`). kvd answers
    /// as Redis 7.0.15; clients that gate a feature on a later version (redis-py 8's
    /// client-side cache wants 7.4, though it needs only CLIENT TRACKING and RESP3 pushes,
    /// which kvd has) can be let in with e.g. `--redis-version 7.4.0`.
    #[arg(long, env = "KVD_REDIS_VERSION", default_value = crate::server::REDIS_VERSION)]
    pub redis_version: String,

    /// Per-client output buffer limit in MiB: a client that does not read its replies is disconnected.
    #[arg(long, env = "KVD_CLIENT_OUTPUT_LIMIT_MB", default_value_t = 64)]
    pub client_output_limit_mb: usize,

    /// A client that does not take its replies for this long (milliseconds) is disconnected.
    #[arg(long, env = "KVD_CLIENT_STALL_TIMEOUT_MS", default_value_t = 60_000)]
    pub client_stall_timeout_ms: u64,

    /// Threads serving client and peer connections (the raft loop and the disk writer have
    /// their own).
    #[arg(long, env = "KVD_IO_THREADS", default_value_t = 2)]
    pub io_threads: usize,

    /// Most client connections served at once; more are refused with an error.
    #[arg(long, env = "KVD_MAX_CLIENTS", default_value_t = 10_000)]
    pub max_clients: usize,

    /// Cluster name checked in every peer handshake.
    #[arg(long, env = "KVD_CLUSTER", default_value = "kvd")]
    pub cluster: String,

    /// Password clients must give (AUTH, or HELLO ... AUTH) before any other command, as Redis's
    /// requirepass; empty or absent: none. Prefer the environment variable (a flag shows in ps).
    /// A node started with --join gives it to the member it joins through.
    #[arg(long, env = "KVD_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,

    /// Secret every node of the cluster shares: each peer connection (raft messages, forwarded
    /// writes, snapshot streams) starts with an HMAC-SHA256 challenge-response over fresh nonces
    /// from both sides, and a process that does not know it is refused. Prefer the environment
    /// variable or --cluster-secret-file (a flag shows in ps).
    #[arg(long, env = "KVD_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,

    /// File holding the cluster secret (its first line).
    #[arg(long, env = "KVD_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,

    /// Run a cluster without a secret on a raft address that is not loopback (anyone who can
    /// reach it can then join, send raft messages or take a snapshot).
    #[arg(long, env = "KVD_ALLOW_UNAUTHENTICATED_CLUSTER", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_unauthenticated_cluster: bool,

    /// As Redis's protected mode: with no password, a node whose client address is not loopback
    /// answers only loopback clients (`yes`), or everyone (`no`).
    #[arg(long, env = "KVD_PROTECTED_MODE", default_value = "yes", value_parser = ["yes", "no"])]
    pub protected_mode: String,
}

/// How reads are served.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// From this node's applied state: fast, possibly stale on a follower.
    Local,
    /// After a ReadIndex round confirms this node has applied everything committed.
    Linearizable,
}

/// Checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    pub addr: SocketAddr,
    pub raft_addr: SocketAddr,
    /// What peers are told to dial (defaults to `raft_addr`).
    pub advertise_raft_addr: SocketAddr,
    pub join: Option<SocketAddr>,
    pub log_level: slog::Level,
    pub read_consistency: ReadConsistency,
    pub write_timeout: Duration,
    pub tick: Duration,
    pub proto_max_bulk_len: usize,
    pub max_value_size: usize,
    pub max_key_size: usize,
    pub compact_entries: u64,
    pub compact_keep: u64,
    pub compact_log_bytes: u64,
    pub cache_bytes: usize,
    pub one_phase_commit: bool,
    pub redis_version: String,
    pub client_output_limit: usize,
    pub client_stall_timeout: Duration,
    pub max_clients: usize,
    pub io_threads: usize,
    pub cluster: String,
    /// `--requirepass`; `None` when absent or empty.
    pub requirepass: Option<Secret>,
    /// `--cluster-secret` or the first line of `--cluster-secret-file`.
    pub cluster_secret: Option<Secret>,
    pub protected_mode: bool,
}

/// A password. Its `Debug` form hides it, so a logged `Config` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(hidden)")
    }
}

impl Args {
    /// Checks every value; the error is one line meant for a human.
    pub fn validate(self) -> Result<Config, String> {
        let name = match self.id {
            Some(id) => id,
            None => self
                .data_dir
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
                .ok_or_else(|| {
                    format!(
                        "cannot derive a node name from data dir '{}': pass --id",
                        self.data_dir.display()
                    )
                })?,
        };
        check_name(&name)?;
        let addr = parse_addr("--addr", &self.addr)?;
        let raft_addr = parse_addr("--raft-addr", &self.raft_addr)?;
        let cluster_secret = match (&self.cluster_secret, &self.cluster_secret_file) {
            (Some(_), Some(_)) => {
                return Err("give --cluster-secret or --cluster-secret-file, not both".into());
            }
            (Some(s), None) => Some(s.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "cannot read --cluster-secret-file '{}': {e}",
                        path.display()
                    )
                })?;
                Some(text.lines().next().unwrap_or("").to_string())
            }
            (None, None) => None,
        };
        if cluster_secret.as_deref() == Some("") {
            return Err("the cluster secret is empty".into());
        }
        let cluster_secret = cluster_secret.map(Secret);
        if cluster_secret.is_none()
            && !self.allow_unauthenticated_cluster
            && !raft_addr.ip().is_loopback()
        {
            return Err(format!(
                "--raft-addr {raft_addr} is not a loopback address and no cluster secret is set: \
                 give every node the same --cluster-secret-file (or KVD_CLUSTER_SECRET), or pass \
                 --allow-unauthenticated-cluster"
            ));
        }
        let advertise_raft_addr = match &self.advertise_raft_addr {
            Some(a) => parse_addr("--advertise-raft-addr", a)?,
            None => raft_addr,
        };
        let join = self
            .join
            .as_deref()
            .map(|j| parse_addr("--join", j))
            .transpose()?;
        let log_level = parse_level(&self.log_level)?;
        if self.tick_ms == 0 || self.tick_ms > 10_000 {
            return Err(format!("--tick-ms must be 1..=10000, got {}", self.tick_ms));
        }
        let part_ok =
            |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
        let parts: Vec<&str> = self.redis_version.split('.').collect();
        if parts.len() != 3 || !parts.iter().all(|p| part_ok(p)) {
            return Err(format!(
                "--redis-version must be MAJOR.MINOR.PATCH (e.g. 7.4.0), got {:?}",
                self.redis_version
            ));
        }
        if self.max_value_size > self.proto_max_bulk_len {
            return Err("--max-value-size cannot exceed --proto-max-bulk-len".into());
        }
        if self.max_key_size == 0 || self.max_value_size == 0 {
            return Err("--max-key-size and --max-value-size must be positive".into());
        }
        if self.compact_entries == 0 {
            return Err("--compact-entries must be positive".into());
        }
        if self.cluster.is_empty() || self.cluster.len() > 255 {
            return Err("--cluster must be 1..=255 bytes".into());
        }
        Ok(Config {
            name,
            data_dir: self.data_dir,
            addr,
            raft_addr,
            advertise_raft_addr,
            join,
            log_level,
            read_consistency: self.read_consistency,
            write_timeout: Duration::from_millis(self.write_timeout_ms.max(1)),
            tick: Duration::from_millis(self.tick_ms),
            proto_max_bulk_len: self.proto_max_bulk_len,
            max_value_size: self.max_value_size,
            max_key_size: self.max_key_size,
            compact_entries: self.compact_entries,
            compact_keep: self.compact_keep,
            compact_log_bytes: self.compact_log_mb.max(1).saturating_mul(1024 * 1024),
            cache_bytes: self.cache_mb.saturating_mul(1024 * 1024),
            one_phase_commit: self.one_phase_commit,
            redis_version: self.redis_version.clone(),
            client_output_limit: self
                .client_output_limit_mb
                .saturating_mul(1024 * 1024)
                .max(1),
            client_stall_timeout: Duration::from_millis(self.client_stall_timeout_ms.max(1)),
            max_clients: self.max_clients.max(1),
            io_threads: self.io_threads.clamp(1, 64),
            cluster: self.cluster,
            requirepass: self.requirepass.filter(|p| !p.is_empty()).map(Secret),
            cluster_secret,
            protected_mode: self.protected_mode == "yes",
        })
    }
}

/// Node names appear in INFO lines and JOIN/LEAVE arguments: keep them to a safe alphabet.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid node name '{name}': use 1-64 characters from [A-Za-z0-9._-]"
        ))
    }
}

/// Parses HOST:PORT where HOST is an IP address or `localhost`.
pub fn parse_addr(flag: &str, s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Some(port) = s.strip_prefix("localhost:")
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(format!(
        "invalid {flag} '{s}': expected IP:PORT such as 127.0.0.1:6379"
    ))
}

fn parse_level(s: &str) -> Result<slog::Level, String> {
    match s.to_ascii_lowercase().as_str() {
        "critical" | "crit" => Ok(slog::Level::Critical),
        "error" => Ok(slog::Level::Error),
        "warning" | "warn" => Ok(slog::Level::Warning),
        "info" => Ok(slog::Level::Info),
        "debug" => Ok(slog::Level::Debug),
        "trace" => Ok(slog::Level::Trace),
        _ => Err(format!(
            "invalid --log-level '{s}': use critical, error, warning, info, debug or trace"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<Config, String> {
        let mut v = vec!["kvd"];
        v.extend_from_slice(extra);
        Args::try_parse_from(v)
            .map_err(|e| e.to_string())?
            .validate()
    }

    #[test]
    fn a_raft_address_off_loopback_needs_a_secret_or_an_explicit_choice() {
        let err = args(&["--raft-addr", "0.0.0.0:19000"]).unwrap_err();
        assert!(
            err.contains("not a loopback address and no cluster secret is set"),
            "{err}"
        );
        assert!(!err.contains('\n'));
        assert!(args(&["--raft-addr", "0.0.0.0:19000", "--cluster-secret", "s"]).is_ok());
        assert!(
            args(&[
                "--raft-addr",
                "0.0.0.0:19000",
                "--allow-unauthenticated-cluster"
            ])
            .is_ok()
        );
        // Loopback needs neither.
        assert_eq!(args(&[]).unwrap().cluster_secret, None);
        assert!(
            args(&["--cluster-secret", ""])
                .unwrap_err()
                .contains("empty")
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-file\nignored\n").unwrap();
        let c = args(&["--cluster-secret-file", file.to_str().unwrap()]).unwrap();
        assert_eq!(c.cluster_secret, Some(Secret("from-file".into())));
        let missing = dir.path().join("nope");
        assert!(
            args(&["--cluster-secret-file", missing.to_str().unwrap()])
                .unwrap_err()
                .starts_with("cannot read --cluster-secret-file")
        );
        assert!(args(&["--protected-mode", "maybe"]).is_err());
        assert!(!args(&["--protected-mode", "no"]).unwrap().protected_mode);
    }

    #[test]
    fn defaults_match_the_readme() {
        let c = args(&[]).unwrap();
        assert_eq!(c.name, "node0");
        assert_eq!(c.addr.to_string(), "127.0.0.1:6379");
        assert_eq!(c.raft_addr.to_string(), "127.0.0.1:19000");
        assert_eq!(c.data_dir, PathBuf::from("node-data/node0"));
        assert!(c.join.is_none());
    }

    #[test]
    fn name_comes_from_data_dir_unless_given() {
        assert_eq!(args(&["/tmp/x/abc"]).unwrap().name, "abc");
        assert_eq!(args(&["--id", "n7", "/tmp/x/abc"]).unwrap().name, "n7");
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        for bad in [
            &["--addr", "nonsense"][..],
            &["--raft-addr", "1.2.3.4"],
            &["--join", "x:y"],
            &["--log-level", "loud"],
            &["--id", "bad name"],
        ] {
            let e = args(bad).unwrap_err();
            assert!(!e.trim().contains('\n'), "{e}");
        }
    }

    #[test]
    fn requirepass_is_optional_and_empty_means_none() {
        assert_eq!(args(&[]).unwrap().requirepass, None);
        assert_eq!(args(&["--requirepass", ""]).unwrap().requirepass, None);
        let c = args(&["--requirepass", "s3cret"]).unwrap();
        assert_eq!(c.requirepass, Some(Secret("s3cret".into())));
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "Debug shows the password"
        );
    }

    #[test]
    fn localhost_is_accepted() {
        assert_eq!(
            parse_addr("--addr", "localhost:7000").unwrap().to_string(),
            "127.0.0.1:7000"
        );
    }
}
