//! Client threads for a nemesis run. Register clients SET unique values to, and linearizably GET,
//! a few keys; append clients APPEND unique tokens to one key. Every op goes into the checker's
//! history with the outcome the reply implies ([`Fate`]); append clients also keep a ledger of
//! which tokens were acknowledged, refused or left unknown, for the token invariants.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::checker::{Kind, Recorder};
use crate::nemesis::client::{Client, Fate, Reply};
use crate::nemesis::rng::Rng;

/// Client socket timeout: longer than the server's write timeout (2 s in these tests) so a
/// definite reply normally arrives, short enough that a paused node costs little.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
/// Past this many bytes the APPEND key is read less often, in proportion: the history keeps
/// every value read, so the bytes read must grow with a run's length, not with its square (a
/// 300 s run read ~1 MB values thousands of times and took 24 GB). Runs of the default length
/// stay below it, at one read in seven ops of an APPEND client.
const LOG_READ_BYTES: u64 = 128 * 1024;

/// Whether an APPEND client's next single op reads the key (else it appends), given the
/// key's length as the client last saw it.
fn reads_log(rng: &mut Rng, len: u64) -> bool {
    let per_million = 150_000 * LOG_READ_BYTES / len.max(LOG_READ_BYTES);
    (rng.below(1_000_000) as u64) < per_million
}

/// What one client does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Register,
    Append,
}

/// What all the clients of a run share.
#[derive(Clone)]
pub struct Shared {
    pub recorder: Recorder,
    pub addrs: Arc<Mutex<Vec<String>>>,
    pub stop: Arc<AtomicBool>,
    pub keys: Arc<Vec<String>>,
    pub log_key: String,
}

/// Counts of what one client (or a whole run) saw.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Error replies kvd does not document for these commands (each is suspicious).
    pub unexpected: Vec<String>,
    pub reconnects: usize,
    /// Why ops failed or were left unknown: the first words of the reply or I/O error.
    pub reasons: BTreeMap<String, usize>,
}

/// The first words of an error reply or I/O error, to count them by kind.
fn reason(why: &str) -> String {
    let words: Vec<&str> = why.split_whitespace().take(4).collect();
    words.join(" ")
}

impl Tally {
    pub fn add(&mut self, o: &Tally) {
        self.ok += o.ok;
        self.failed += o.failed;
        self.unknown += o.unknown;
        self.unexpected.extend(o.unexpected.iter().cloned());
        self.reconnects += o.reconnects;
        for (k, n) in &o.reasons {
            *self.reasons.entry(k.clone()).or_default() += n;
        }
    }
}

/// The fate of every token an append client sent.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub acked: Vec<String>,
    pub failed: Vec<String>,
    pub unknown: Vec<String>,
}

impl Ledger {
    pub fn add(&mut self, o: &Ledger) {
        self.acked.extend(o.acked.iter().cloned());
        self.failed.extend(o.failed.iter().cloned());
        self.unknown.extend(o.unknown.iter().cloned());
    }

    /// Checks a final value made of `token,` pieces: every acknowledged token exactly once,
    /// an unknown one at most once, a refused one never, nothing that was never sent, no token
    /// twice. Returns the violations.
    pub fn violations(&self, value: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(value);
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for t in text.split(',').filter(|t| !t.is_empty()) {
            *seen.entry(t).or_default() += 1;
        }
        let mut out = Vec::new();
        let strip = |t: &String| t.trim_end_matches(',').to_string();
        let mut sent = std::collections::HashSet::new();
        for t in self.acked.iter().map(strip) {
            match seen.get(t.as_str()).copied().unwrap_or(0) {
                1 => {}
                0 => out.push(format!("acknowledged token {t} is lost")),
                n => out.push(format!("acknowledged token {t} appears {n} times")),
            }
            sent.insert(t);
        }
        for t in self.unknown.iter().map(strip) {
            let n = seen.get(t.as_str()).copied().unwrap_or(0);
            if n > 1 {
                out.push(format!("token {t} with unknown outcome appears {n} times"));
            }
            sent.insert(t);
        }
        for t in self.failed.iter().map(strip) {
            let n = seen.get(t.as_str()).copied().unwrap_or(0);
            if n > 0 {
                out.push(format!(
                    "token {t} whose APPEND was refused (-CLUSTERDOWN/-TRYAGAIN) appears {n} times"
                ));
            }
            sent.insert(t);
        }
        for t in seen.keys() {
            if !sent.contains(*t) {
                out.push(format!("token {t} was never sent"));
            }
        }
        out
    }
}

/// What a client thread hands back.
pub struct ClientResult {
    pub tally: Tally,
    pub ledger: Ledger,
}

/// Starts client `id`.
pub fn spawn(id: usize, role: Role, mut rng: Rng, shared: Shared) -> JoinHandle<ClientResult> {
    std::thread::Builder::new()
        .name(format!("client-{id}"))
        .spawn(move || run_client(id, role, &mut rng, &shared))
        .expect("spawn client")
}

fn pick_addr(rng: &mut Rng, addrs: &Mutex<Vec<String>>) -> Option<String> {
    let addrs = addrs.lock().unwrap_or_else(PoisonError::into_inner);
    (!addrs.is_empty()).then(|| rng.pick(&addrs).clone())
}

/// A connection to a random member in linearizable read mode, or None (after a short pause).
pub fn connect(rng: &mut Rng, addrs: &Mutex<Vec<String>>, tally: &mut Tally) -> Option<Client> {
    let addr = pick_addr(rng, addrs)?;
    tally.reconnects += 1;
    let mut c = Client::connect(&addr, Duration::from_secs(1), CLIENT_TIMEOUT).ok();
    if let Some(con) = c.as_mut() {
        match con.call(&["CONSISTENCY", "LINEARIZABLE"]) {
            Ok(Reply::Status(s)) if s == "OK" => {}
            Ok(other) => {
                tally
                    .unexpected
                    .push(format!("CONSISTENCY LINEARIZABLE on {addr} -> {other:?}"));
                c = None;
            }
            Err(_) => c = None,
        }
    }
    if c.is_none() {
        std::thread::sleep(rng.millis(20, 100));
    }
    c
}

fn run_client(id: usize, role: Role, rng: &mut Rng, sh: &Shared) -> ClientResult {
    let mut tally = Tally::default();
    let mut ledger = Ledger::default();
    let mut con: Option<Client> = None;
    let mut seq = 0u64;
    // The APPEND key's length, as this client last saw it.
    let mut log_len = 0u64;
    while !sh.stop.load(Ordering::Relaxed) {
        let Some(c) = con.as_mut() else {
            con = connect(rng, &sh.addrs, &mut tally);
            continue;
        };
        // Mostly one op; sometimes a pipeline of writes, which kvd proposes together (one
        // raft batch, one fsync) and must still answer one by one, in order.
        let batch_len = if rng.chance(25) { rng.range(2, 5) } else { 1 };
        let mut batch = Vec::new();
        for _ in 0..batch_len {
            seq += 1;
            let write = batch_len > 1
                || match role {
                    Role::Append => !reads_log(rng, log_len),
                    Role::Register => rng.chance(50),
                };
            let (key, kind) = match role {
                Role::Register if write => (
                    rng.pick(&sh.keys).clone(),
                    Kind::Set(format!("c{id}-{seq}").into_bytes()),
                ),
                Role::Register => (rng.pick(&sh.keys).clone(), Kind::Get),
                Role::Append if write => (
                    sh.log_key.clone(),
                    Kind::Append(format!("c{id}-{seq},").into_bytes()),
                ),
                Role::Append => (sh.log_key.clone(), Kind::Get),
            };
            let argv: Vec<Vec<u8>> = match &kind {
                // One write in ten is RESTORE ... REPLACE of the same string: for the checker
                // the same op as SET (value written, TTL cleared, +OK).
                Kind::Set(v) if rng.chance(10) => vec![
                    b"RESTORE".to_vec(),
                    key.clone().into_bytes(),
                    b"0".to_vec(),
                    string_payload(v),
                    b"REPLACE".to_vec(),
                ],
                Kind::Set(v) => vec![b"SET".to_vec(), key.clone().into_bytes(), v.clone()],
                Kind::Append(v) => vec![b"APPEND".to_vec(), key.clone().into_bytes(), v.clone()],
                _ => vec![b"GET".to_vec(), key.clone().into_bytes()],
            };
            batch.push((key, kind, argv));
        }
        let mut pendings: Vec<_> = batch
            .iter()
            .map(|(key, kind, _)| Some(sh.recorder.invoke(id, key.as_bytes(), kind.clone())))
            .collect();
        let cmds: Vec<Vec<Vec<u8>>> = batch.iter().map(|b| b.2.clone()).collect();
        let mut broken = c.send_pipeline(&cmds).err();
        let mut drop_con = false;
        for (n, (_, kind, argv)) in batch.into_iter().enumerate() {
            let pending = pendings[n].take().expect("resolved once");
            let result = match &broken {
                Some(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                None => c.read_reply(),
            };
            if let Err(e) = &result {
                broken.get_or_insert(std::io::Error::new(e.kind(), e.to_string()));
            }
            let token = match &kind {
                Kind::Append(v) => Some(String::from_utf8_lossy(v).into_owned()),
                _ => None,
            };
            match (Fate::of(result), &kind) {
                (Fate::Done(Reply::Status(s)), Kind::Set(_)) if s == "OK" => {
                    pending.ok();
                    tally.ok += 1;
                }
                (Fate::Done(Reply::Bulk(v)), Kind::Get) => {
                    if role == Role::Append {
                        log_len = v.as_ref().map_or(0, |v| v.len() as u64);
                    }
                    pending.value(v);
                    tally.ok += 1;
                }
                (Fate::Done(Reply::Int(n)), Kind::Append(_)) => {
                    log_len = n.max(0) as u64;
                    pending.int(n);
                    tally.ok += 1;
                    ledger.acked.extend(token);
                }
                (Fate::Done(other), _) => {
                    pending.unknown();
                    tally.unknown += 1;
                    ledger.unknown.extend(token);
                    tally
                        .unexpected
                        .push(format!("{argv:?} on {} -> {other:?}", c.addr));
                    drop_con = true;
                }
                (Fate::Failed(why), _) => {
                    *tally.reasons.entry(reason(&why)).or_default() += 1;
                    pending.failed();
                    tally.failed += 1;
                    ledger.failed.extend(token);
                    // Maybe a removed node, or a minority: try elsewhere.
                    drop_con = true;
                }
                (Fate::Unknown { why, unexpected }, _) => {
                    *tally.reasons.entry(reason(&why)).or_default() += 1;
                    pending.unknown();
                    tally.unknown += 1;
                    ledger.unknown.extend(token);
                    if unexpected {
                        tally
                            .unexpected
                            .push(format!("{argv:?} on {} -> {why}", c.addr));
                    }
                    drop_con |= unexpected;
                }
            }
        }
        if drop_con || broken.is_some() {
            con = None;
        }
    }
    ClientResult { tally, ledger }
}

/// The DUMP payload of a string shorter than 64 bytes (type 0, length, bytes, RDB version 10,
/// CRC-64/Jones of all that).
fn string_payload(v: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8, v.len() as u8];
    p.extend_from_slice(v);
    p.extend_from_slice(&[10, 0]);
    let mut crc = 0u64;
    for &b in &p {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x95ac_9329_ac4b_c9b5
            } else {
                crc >> 1
            };
        }
    }
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

/// Reads `key` linearizably from any member until one answers (within `timeout`), recording
/// each attempt as client `id`.
pub fn final_read(
    rng: &mut Rng,
    sh: &Shared,
    id: usize,
    key: &str,
    timeout: Duration,
) -> Option<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let Some(mut c) = connect(rng, &sh.addrs, &mut tally) else {
            continue;
        };
        let pending = sh.recorder.invoke(id, key.as_bytes(), Kind::Get);
        match c.call(&["GET", key]) {
            Ok(Reply::Bulk(v)) => {
                pending.value(v.clone());
                return Some(v.unwrap_or_default());
            }
            Ok(Reply::Error(_)) => pending.failed(),
            _ => pending.unknown(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// `history` without the APPENDs to `key` whose outcome is unknown and whose token is not in
/// the key's final value: such an APPEND never took effect (nothing else writes that key, so an
/// applied token stays), and dropping an op that never happened does not change whether the
/// rest is linearizable. Each unknown APPEND left in costs the checker a lot: it could take
/// effect at any moment after its invoke.
pub fn without_unapplied_appends(
    history: &crate::checker::History,
    key: &str,
    final_value: &[u8],
) -> crate::checker::History {
    let text = String::from_utf8_lossy(final_value);
    let ops = history
        .ops()
        .iter()
        .filter(|op| match &op.kind {
            Kind::Append(token) if op.is_unknown() && op.key == key.as_bytes() => {
                let token = String::from_utf8_lossy(token);
                text.split(',')
                    .any(|t| !t.is_empty() && token.trim_end_matches(',') == t)
            }
            _ => true,
        })
        .cloned()
        .collect();
    crate::checker::History::new(ops)
}
