//! Process lifecycle: open the database, bind both listeners, start the raft thread and the
//! transport, accept clients, join a cluster when asked to, and shut down cleanly on
//! SIGTERM/SIGINT or SHUTDOWN (stop accepting, let connections finish what they started, stop raft,
//! exit 0).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use slog::{Logger, info, warn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cmd::JoinAnswer;
use crate::cmd::config::Settings;
use crate::config::Config;
use crate::connection::ClientSlot;
use crate::fatal::{Exit, fatal};
use crate::raft::snapshot::SnapshotRegistry;
use crate::raft::status::Role;
use crate::raft::transport::Transport;
use crate::raft::{self, Input, RaftHandle, StartMode};
use crate::resp::Reply;
use crate::session::{Clients, RequirePass};
use crate::store::{self, Db};

/// The Redis version kvd reports (HELLO, INFO server), that of the redis-server whose replies it
/// matches, so clients enable the Redis 7 features it speaks.
pub const REDIS_VERSION: &str = "7.0.15";

/// How long `--join` keeps asking before giving up.
const JOIN_GIVE_UP: Duration = Duration::from_secs(600);

/// Why the node cannot start (or, with `--join`, cannot become a member); each is the one line
/// `kvd` prints before it exits.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "database in '{}' is damaged (the storage engine panicked opening it): refusing to start",
        .0.display()
    )]
    DatabasePanicked(PathBuf),
    /// `store::open` says why, in its own words.
    #[error("{0}")]
    Database(String),
    #[error("cannot listen for {what} connections on {addr}: {source}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Nonblocking {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot create the raft thread's poller: {0}")]
    Poller(#[source] std::io::Error),
    #[error(transparent)]
    Raft(#[from] raft::StartError),
    #[error("{0}")]
    Serve(#[source] std::io::Error),
    #[error("the cluster refused to add this node: {0}")]
    JoinRefused(String),
    #[error("could not join the cluster through {seed} within {}s", JOIN_GIVE_UP.as_secs())]
    JoinGaveUp { seed: SocketAddr },
}

/// Counters for INFO.
#[derive(Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub commands_processed: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub connected_clients: AtomicUsize,
    pub writes_proposed: AtomicU64,
    /// Calls, rejections and failures per command and error replies per prefix, for INFO
    /// commandstats, errorstats and stats.
    pub commands: crate::cmd::CommandStats,
}

impl Stats {
    /// CONFIG RESETSTAT: the counters start again from 0 (connected clients are a gauge).
    pub fn reset(&self) {
        for c in [
            &self.connections_received,
            &self.commands_processed,
            &self.rejected_connections,
            &self.writes_proposed,
        ] {
            c.store(0, Relaxed);
        }
        self.commands.reset();
    }
}

/// What every connection shares.
pub struct Shared {
    pub config: Config,
    pub db: Db,
    pub raft: RaftHandle,
    pub stats: Stats,
    pub started: Instant,
    pub next_client_id: AtomicU64,
    pub logger: Logger,
    /// The default user's password; behind a lock so it can change at run time.
    pub requirepass: RequirePass,
    /// CONFIG GET/SET values of this node (not replicated).
    pub settings: Settings,
    /// The live client connections, for CLIENT LIST/KILL and pausing.
    pub clients: Clients,
    /// Where node-local listeners (blocking pops, pub/sub, tracking) hear of applied writes.
    pub events: Arc<crate::events::Hub>,
    /// Clients blocked in BLPOP and its kin on this node.
    pub blocking: Arc<crate::blocking::Blocking>,
    /// This node's Pub/Sub subscribers and its links to the peers' (`pubsub`).
    pub pubsub: Arc<crate::pubsub::Hub>,
    /// SHUTDOWN asked the node to stop (as SIGTERM does).
    pub shutdown: tokio::sync::Notify,
    /// SLOWLOG's entries and settings.
    pub slowlog: crate::slowlog::SlowLog,
}

/// Runs the node until SIGTERM/SIGINT. Startup errors come back as one line.
pub fn run(config: Config) -> Result<(), StartError> {
    let logger = crate::logging::logger(config.log_level, &config.name);
    raise_fd_limit(&logger);
    // redb may panic on a file damaged in ways its checks miss: still one line, not a backtrace.
    store::set_one_phase(config.one_phase_commit);
    let db = crate::quiet_panics(|| store::open(&config.data_dir, config.cache_bytes))
        .map_err(|_| StartError::DatabasePanicked(config.data_dir.clone()))?
        .map_err(StartError::Database)?;
    let log = crate::quiet_panics(|| {
        store::open_log(&config.data_dir, config.cache_bytes, &db)
            .and_then(|log| crate::log_db::LogDb::open(log, &config.data_dir))
    })
    .map_err(|_| StartError::DatabasePanicked(config.data_dir.clone()))?
    .map_err(StartError::Database)?;
    // Bind before anything starts, so a port in use is reported plainly.
    let client_listener = bind(config.addr, "client")?;
    let raft_listener = bind(config.raft_addr, "raft")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.io_threads)
        .enable_all()
        .thread_name("kvd-io")
        .build()
        .map_err(StartError::Runtime)?;
    let (tx, inbox) = raft::inbox::channel(logger.clone()).map_err(StartError::Poller)?;
    let snapshots = SnapshotRegistry::default();
    let key = config
        .cluster_secret
        .as_ref()
        .map(|s| crate::raft::transport::ClusterKey::new(s.0.as_bytes()));
    if key.is_none() {
        warn!(logger, "cluster traffic is not authenticated (no cluster secret)";
              "raft_addr" => %config.raft_addr);
    }
    let transport = Transport::new(
        crate::raft::transport::PeerAuth {
            cluster_name: config.cluster.clone(),
            key,
        },
        config.advertise_raft_addr,
        tx.clone(),
        snapshots.clone(),
        db.clone(),
        runtime.handle().clone(),
        logger.clone(),
    );
    let events = crate::events::Hub::new();
    let blocking = crate::blocking::Blocking::new();
    events.add(blocking.clone());
    let (raft, mode, raft_thread) = raft::start(
        &config,
        (db.clone(), log),
        (crate::cmd::apply_write, events.clone()),
        (tx, inbox),
        transport.clone(),
        snapshots,
        &logger,
    )?;
    let requirepass = RequirePass::new(config.requirepass.clone().map(|p| p.0));
    let settings = Settings::new(&config);
    let pubsub = crate::pubsub::Hub::new(crate::pubsub::links::Links::new(transport.clone()));
    transport.set_pubsub(pubsub.clone());
    events.add(pubsub.clone());
    let shared = Arc::new(Shared {
        pubsub,
        settings,
        clients: Clients::default(),
        events,
        blocking,
        config,
        db,
        raft,
        stats: Stats::default(),
        started: Instant::now(),
        next_client_id: AtomicU64::new(1),
        logger: logger.clone(),
        requirepass,
        shutdown: tokio::sync::Notify::new(),
        slowlog: crate::slowlog::SlowLog::default(),
    });
    crate::cmd::scripting::set_server(Arc::downgrade(&shared));
    let settings = Arc::downgrade(&shared);
    crate::script::set_log(logger.clone(), move || {
        settings.upgrade().map_or(2, |s| {
            crate::script::verbosity_of(&s.settings.get("loglevel"))
        })
    });
    let result = runtime.block_on(serve(
        shared.clone(),
        client_listener,
        raft_listener,
        transport,
        mode,
    ));
    shared.raft.send(Input::Shutdown);
    let _ = raft_thread.join();
    info!(logger, "stopped");
    drop(shared);
    runtime.shutdown_timeout(Duration::from_secs(1));
    // Let the async logger drain.
    drop(logger);
    std::thread::sleep(Duration::from_millis(50));
    result
}

/// Raises the open-file limit to its hard maximum so that `--max-clients` connections (10,000 by
/// default) do not run into the usual soft limit of 1024.
fn raise_fd_limit(logger: &Logger) {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let wanted = lim.rlim_max;
            lim.rlim_cur = wanted;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                warn!(logger, "cannot raise the open file limit"; "hard" => wanted);
            }
        }
    }
}

fn bind(addr: SocketAddr, what: &'static str) -> Result<std::net::TcpListener, StartError> {
    let l = std::net::TcpListener::bind(addr).map_err(|source| StartError::Listen {
        what,
        addr,
        source,
    })?;
    l.set_nonblocking(true)
        .map_err(|source| StartError::Nonblocking { addr, source })?;
    Ok(l)
}

async fn serve(
    shared: Arc<Shared>,
    client_listener: std::net::TcpListener,
    raft_listener: std::net::TcpListener,
    transport: Transport,
    mode: StartMode,
) -> Result<(), StartError> {
    let logger = shared.logger.clone();
    // Accepted clients inherit receive timestamps: blocked clients are queued by arrival.
    crate::arrival::enable(&client_listener);
    let clients = TcpListener::from_std(client_listener).map_err(StartError::Serve)?;
    let peers = TcpListener::from_std(raft_listener).map_err(StartError::Serve)?;
    info!(logger, "listening"; "addr" => %shared.config.addr, "raft_addr" => %shared.config.raft_addr,
          "data_dir" => %shared.config.data_dir.display());
    tokio::spawn(transport.serve(peers));
    tokio::spawn(shared.pubsub.links.clone().maintain());
    if mode == StartMode::Join
        && let Some(seed) = shared.config.join
    {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = join_cluster(shared, seed).await {
                fatal(Exit::Failed, e);
            }
        });
    } else if mode == StartMode::Join {
        info!(
            logger,
            "waiting to be added to a cluster (JOIN from a member)"
        );
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(crate::expiry::run(shared.clone(), stop_rx.clone()));
    tokio::spawn(crate::reclaim::run(shared.clone(), stop_rx.clone()));
    tokio::spawn(crate::blocking::run(shared.clone(), stop_rx.clone()));
    let mut conns = JoinSet::new();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = clients.accept() => match accepted {
                Ok((stream, peer)) => accept(&shared, &mut conns, stream, peer, stop_rx.clone()).await,
                Err(e) => {
                    warn!(logger, "accept failed"; "error" => %e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = &mut signal => break,
            _ = shared.shutdown.notified() => break,
        }
    }
    info!(logger, "shutting down"; "connections" => conns.len());
    drop(clients);
    let _ = stop_tx.send(true);
    // Connections finish the batch in hand (its writes are answered by their deadline).
    let grace = shared.config.write_timeout + Duration::from_secs(1);
    let _ = tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    Ok(())
}

async fn accept(
    shared: &Arc<Shared>,
    conns: &mut JoinSet<()>,
    mut stream: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let stats = &shared.stats;
    stats.connections_received.fetch_add(1, Relaxed);
    if stats.connected_clients.load(Relaxed) >= shared.settings.maxclients.load(Relaxed) {
        stats.rejected_connections.fetch_add(1, Relaxed);
        let _ = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        return;
    }
    let password = shared.requirepass.is_set();
    if protected_refuses(&shared.config, peer.ip(), password) {
        stats.rejected_connections.fetch_add(1, Relaxed);
        let _ = stream.write_all(PROTECTED_MODE_DENIED.as_bytes()).await;
        return;
    }
    let slot = ClientSlot::take(shared);
    conns.spawn(crate::connection::serve(slot, stream, peer, stop));
}

/// Redis 7.0's words, byte for byte.
const PROTECTED_MODE_DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Protected mode (safe by default, as Redis): with no password, a node listening on an address
/// that is not loopback answers only loopback clients.
fn protected_refuses(config: &Config, peer: std::net::IpAddr, password: bool) -> bool {
    config.protected_mode && !config.addr.ip().is_loopback() && !peer.is_loopback() && !password
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

/// `--join`: ask a member to add this node, retrying with capped backoff until this node is in
/// the configuration. Gives up with an error after `JOIN_GIVE_UP`, or at once on a refusal that
/// retrying cannot fix (name taken): the node cannot become what it was started as.
async fn join_cluster(shared: Arc<Shared>, seed: SocketAddr) -> Result<(), StartError> {
    let logger = shared.logger.clone();
    let cfg = &shared.config;
    let args = MemberCall {
        password: cfg.requirepass.as_ref().map(|p| p.0.clone()),
        argv: vec![
            "JOIN".to_string(),
            cfg.name.clone(),
            cfg.advertise_raft_addr.to_string(),
            cfg.addr.to_string(),
        ],
    };
    let started = Instant::now();
    let mut backoff = Duration::from_millis(100);
    let mut asked_at: Option<Instant> = None;
    loop {
        if shared.raft.status().role != Role::Joining {
            info!(logger, "joined the cluster"; "seed" => %seed, "ms" => started.elapsed().as_millis() as u64);
            return Ok(());
        }
        if started.elapsed() > JOIN_GIVE_UP {
            return Err(StartError::JoinGaveUp { seed });
        }
        // Once accepted, give the leader time to add us before asking again.
        let due = asked_at.is_none_or(|t| t.elapsed() > Duration::from_secs(5));
        if due {
            match resp_call(seed, &args)
                .await
                .as_ref()
                .map(JoinAnswer::from_reply)
            {
                Ok(JoinAnswer::Accepted) => {
                    info!(logger, "join accepted, waiting to be added"; "seed" => %seed);
                    asked_at = Some(Instant::now());
                    backoff = Duration::from_millis(100);
                }
                Ok(JoinAnswer::Refused(reason)) => return Err(StartError::JoinRefused(reason)),
                Ok(JoinAnswer::NotYet(reply)) => {
                    warn!(logger, "join not accepted yet"; "seed" => %seed, "reply" => reply);
                }
                Err(e) => {
                    warn!(logger, "cannot reach join seed"; "seed" => %seed, "error" => %e);
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// A command for another member's client port, and the password to give first (the members of
/// a cluster share theirs).
struct MemberCall {
    password: Option<String>,
    argv: Vec<String>,
}

/// Sends one command to a Redis-protocol server and reads a status or error reply; with a
/// password, authenticates first, and a refused AUTH is the reply.
async fn resp_call(addr: SocketAddr, call: &MemberCall) -> std::io::Result<Reply> {
    let io = async {
        let mut s = TcpStream::connect(addr).await?;
        let auth = call
            .password
            .as_ref()
            .map(|p| ["AUTH".to_string(), p.clone()]);
        let mut req = String::new();
        for argv in auth.iter().map(|a| &a[..]).chain([&call.argv[..]]) {
            req.push_str(&format!("*{}\r\n", argv.len()));
            for a in argv {
                req.push_str(&format!("${}\r\n{}\r\n", a.len(), a));
            }
        }
        s.write_all(req.as_bytes()).await?;
        if auth.is_some() {
            let reply = read_status_line(&mut s).await?;
            if reply.is_error() {
                return Ok(reply);
            }
        }
        read_status_line(&mut s).await
    };
    tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no reply"))?
}

/// Reads one `+...` or `-...` reply line.
async fn read_status_line(s: &mut TcpStream) -> std::io::Result<Reply> {
    let mut line = Vec::new();
    loop {
        let b = s.read_u8().await?;
        if b == b'\n' {
            break;
        }
        if line.len() > 4096 {
            return Err(std::io::Error::other("reply too long"));
        }
        line.push(b);
    }
    let text = String::from_utf8_lossy(&line).trim_end().to_string();
    Ok(match text.chars().next() {
        Some('+') => Reply::status(text[1..].to_string()),
        Some('-') => Reply::error(text[1..].to_string()),
        _ => Reply::error(format!("unexpected reply {text}")),
    })
}

/// Resident set size of this process, for INFO memory.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_mode_answers_only_loopback_clients_without_a_password() {
        use clap::Parser;
        let mut cfg = crate::config::Args::try_parse_from(["kvd"])
            .unwrap()
            .validate()
            .unwrap();
        let lan: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        // Listening on loopback: nobody else can reach it anyway.
        assert!(!protected_refuses(&cfg, lan, false));
        cfg.addr = "0.0.0.0:6379".parse().unwrap();
        assert!(protected_refuses(&cfg, lan, false));
        assert!(!protected_refuses(&cfg, lo, false));
        assert!(!protected_refuses(&cfg, lan, true), "a password lifts it");
        cfg.protected_mode = false;
        assert!(!protected_refuses(&cfg, lan, false));
        assert!(PROTECTED_MODE_DENIED.starts_with("-DENIED Redis is running in protected mode"));
        assert!(PROTECTED_MODE_DENIED.ends_with("from the outside.\r\n"));
    }

    /// The lines an operator (and the test harness, which retries on "cannot listen") reads.
    #[test]
    fn start_errors_read_as_one_line() {
        let addr: SocketAddr = "127.0.0.1:6379".parse().unwrap();
        let e = StartError::Listen {
            what: "client",
            addr,
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert!(
            e.to_string()
                .starts_with("cannot listen for client connections on 127.0.0.1:6379: "),
            "{e}"
        );
        let e = StartError::JoinGaveUp { seed: addr };
        assert_eq!(
            e.to_string(),
            "could not join the cluster through 127.0.0.1:6379 within 600s"
        );
        let e = StartError::JoinRefused("node name 'a' is already used".into());
        assert_eq!(
            e.to_string(),
            "the cluster refused to add this node: node name 'a' is already used"
        );
        let e = StartError::from(raft::StartError::NoIdentity {
            dir: PathBuf::from("/d"),
        });
        assert_eq!(
            e.to_string(),
            "database in '/d' has raft state but no identity: refusing to start (corrupted?)"
        );
        for e in [
            e,
            StartError::DatabasePanicked(PathBuf::from("/d")),
            StartError::Database("x".into()),
        ] {
            assert_eq!(e.to_string().lines().count(), 1, "{e}");
        }
    }
}
