//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH, as redis-server 7.0 has them, with EXEC
//! replicated as ONE raft entry so that every node applies the whole transaction atomically.
//!
//! The connection (`connection.rs`) does the queueing: after MULTI each command is checked
//! (unknown, arity, sizes) and answered `+QUEUED`, or answered with its error and the transaction
//! flagged so that EXEC answers EXECABORT. At EXEC, [`Plan::new`] sorts the queued commands:
//! - `Kind::Local` commands (PING, ECHO, SELECT, CLIENT ...) do not touch the keyspace: they run
//!   on the connection once the outcome is known (not at all if the transaction is aborted), and
//!   their replies take their places in the EXEC array. A SELECT changes the database of the
//!   commands after it, as in Redis: the plan computes that without running it.
//! - a write whose `prepare` refuses it (a syntax error, say) gets that error at its position,
//!   as Redis gives runtime errors inside EXEC's array;
//! - reads and the other writes go into the entry, each with its database.
//!
//! With at least one write, the entry is proposed like any write (followers forward it); apply
//! ([`apply_transaction`], on every node) checks the watched keys and runs the commands through
//! the registry against the one `WriteView`, so a read inside sees the writes before it.
//! Without writes, the same checks and reads run on the connection's node, on one `kv::Reader`
//! view (one `run` call: atomic), after a read barrier if the connection's reads need one.
//!
//! **The entry** is an argv every node decodes alike (numbers in decimal):
//!
//! ```text
//! exec <watch count> (<db> <key> <seen>)* <command count> (<db> <argc> <arg>...)*
//! ```
//!
//! `seen` is what WATCH saw: `m<modified>` (the key existed, last changed by entry `modified`)
//! or `a<index>` (it was absent in a view of this node's state at applied index `index` or
//! later). Clients cannot send this form: the connection intercepts EXEC, and `EXEC x` is
//! refused by its arity check (with Redis's EXECABORT wording). Decoding is total: a malformed
//! entry gives every node the same error reply.
//!
//! **WATCH** is safe on any node, however far behind: a key counts as unchanged only if it
//! provably is. Present then: it must be live now with the same `modified`. Absent then: it
//! must be absent now, its metadata row (even an expired one) must not be newer than `index`,
//! and no key of its database may have been removed since `index` (the database's
//! last-deletion index, `encoding::deleted_key`). A stale view can only make EXEC abort. The
//! price of one deletion index per database: a watched absent key also aborts when another key
//! of its database is deleted (or reaped by active expiry), the database is flushed after some
//! key of it was written since the WATCH, or it is swapped with another by SWAPDB (Redis would
//! not abort there). A FLUSHDB records its database's last write as the deletion
//! (`WriteView::clear_db`), so flushing keys older than the WATCH does not abort, as in Redis.

use std::collections::HashMap;

use bytes::Bytes;

use super::{
    Kind, Spec, apply_counted, is, lookup, lossy, parse_i64, run_read, unknown_command, wrong_arity,
};
use crate::kv::encoding::{DATABASES, meta_key};
use crate::kv::{ApplyCtx, KeyRead, Meta, ReadView, WriteView};
use crate::resp::{Protocol, Reply};
use crate::session::Session;
use crate::store::StoreError;

/// Largest transaction kvd queues, in argument bytes (the entry must fit one raft message).
pub const MAX_BYTES: usize = 32 * 1024 * 1024;
/// Most arguments in a queued transaction (the entry's own numbers included, roughly).
pub const MAX_ARGS: usize = 1 << 18;
/// Largest entry EXEC proposes, watched keys included: well within one raft message
/// (`transport::MAX_FRAME`) and the argument count a proposal may decode to.
const MAX_ENTRY_BYTES: usize = 48 * 1024 * 1024;
const MAX_ENTRY_ARGS: usize = 1 << 19;

const FLAGS: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];

/// The connection intercepts these four before dispatching; their table entries give COMMAND
/// and the arity checks.
pub const MULTI: Spec = Spec {
    name: "multi",
    arity: 1,
    kind: Kind::Local(intercepted),
    flags: FLAGS,
    keys: (0, 0, 0),
};

pub const EXEC: Spec = Spec {
    name: "exec",
    flags: &["noscript", "loading", "stale", "skip_slowlog"],
    ..MULTI
};

pub const DISCARD: Spec = Spec {
    name: "discard",
    ..MULTI
};

pub const WATCH: Spec = Spec {
    name: "watch",
    arity: -2,
    keys: (1, -1, 1),
    ..MULTI
};

/// UNWATCH runs like any local command: outside MULTI at once; inside, at EXEC, where the
/// watches have already been checked (and are forgotten anyway), so it only answers +OK.
pub const UNWATCH: Spec = Spec {
    name: "unwatch",
    kind: Kind::Local(|s, _| {
        s.watched.clear();
        Reply::ok()
    }),
    ..MULTI
};

fn intercepted(_: &mut Session, _: &[Bytes]) -> Reply {
    Reply::error("ERR transaction commands are handled by the connection")
}

/// True for the commands the connection handles itself (see `connection.rs`).
pub fn is_control(spec: &Spec) -> bool {
    matches!(spec.name, "multi" | "exec" | "discard" | "watch")
}

/// Commands that run at once even between MULTI and EXEC, as in Redis: QUIT closes the
/// connection, RESET discards the transaction and the watches (`Session::reset`).
pub fn runs_in_multi(spec: &Spec) -> bool {
    matches!(spec.name, "quit" | "reset")
}

/// Commands refused between MULTI and EXEC (flagging the transaction): kvd's cluster and
/// connection-mode commands, and DEBUG. (Redis's own refused ones, SAVE, SYNC, PSYNC,
/// SHUTDOWN, are not kvd commands.)
pub fn refused_in_multi(spec: &Spec) -> bool {
    matches!(
        spec.name,
        "join" | "leave" | "remove" | "consistency" | "debug" | "save" | "shutdown"
    )
}

pub fn not_allowed() -> Reply {
    Reply::error("ERR Command not allowed inside a transaction")
}

pub fn exec_abort() -> Reply {
    Reply::error("EXECABORT Transaction discarded because of previous errors.")
}

/// The commands queued between MULTI and EXEC (state of one connection).
#[derive(Default)]
pub struct Multi {
    pub queued: Vec<(&'static Spec, Vec<Bytes>)>,
    /// A command was refused while queueing: EXEC answers EXECABORT.
    pub failed: bool,
    pub bytes: usize,
    pub args: usize,
}

impl Multi {
    /// Queues a checked command, or refuses it (the caller flags the transaction) when the
    /// transaction would outgrow kvd's limits.
    pub fn queue(&mut self, spec: &'static Spec, argv: Vec<Bytes>) -> Result<(), Reply> {
        check_subcommand(spec, &argv)?;
        let bytes = argv.iter().map(Bytes::len).sum::<usize>();
        if self.bytes + bytes > MAX_BYTES || self.args + argv.len() + 2 > MAX_ARGS {
            return Err(Reply::error(format!(
                "ERR transaction exceeds kvd's limit of {MAX_BYTES} bytes or {MAX_ARGS} arguments"
            )));
        }
        self.bytes += bytes;
        self.args += argv.len() + 2;
        self.queued.push((spec, argv));
        Ok(())
    }
}

/// The subcommands of kvd's container commands, with Redis's arity for each: Redis 7 looks a
/// subcommand up (and checks its arity) before queueing it, so an unknown one or a wrong
/// count is refused at once, flagging the transaction. Other errors come at EXEC, from the
/// command itself. Keep in step with the commands' functions (`cmd::connection`,
/// `cmd::server`, `cmd::keys`, `cmd::scripting`, which checks SCRIPT's and FUNCTION's here too).
const SUBCOMMANDS: &[(&str, &[(&str, i32)])] = &[
    (
        "client",
        &[
            ("setname", 3),
            ("getname", 2),
            ("id", 2),
            ("setinfo", 4),
            ("info", 2),
        ],
    ),
    (
        "config",
        &[("get", -3), ("set", -4), ("resetstat", 2), ("rewrite", 2)],
    ),
    (
        "command",
        &[("count", 2), ("docs", -2), ("info", -2), ("list", -2)],
    ),
    (
        "acl",
        &[
            ("cat", -2),
            ("deluser", -3),
            ("dryrun", -4),
            ("genpass", -2),
            ("getuser", 3),
            ("help", 2),
            ("list", 2),
            ("load", 2),
            ("log", -2),
            ("save", 2),
            ("setuser", -3),
            ("users", 2),
            ("whoami", 2),
        ],
    ),
    (
        "script",
        &[
            ("debug", 3),
            ("exists", -3),
            ("flush", -2),
            ("help", 2),
            ("kill", 2),
            ("load", 3),
        ],
    ),
    (
        "function",
        &[
            ("delete", 3),
            ("dump", 2),
            ("flush", -2),
            ("help", 2),
            ("kill", 2),
            ("list", -2),
            ("load", -3),
            ("restore", -3),
            ("stats", 2),
        ],
    ),
    (
        "object",
        &[
            ("encoding", 3),
            ("freq", 3),
            ("idletime", 3),
            ("refcount", 3),
            ("help", 2),
        ],
    ),
];

/// Redis's queue-time check of a container command's subcommand (see `SUBCOMMANDS`).
pub(crate) fn check_subcommand(spec: &Spec, argv: &[Bytes]) -> Result<(), Reply> {
    let Some((_, subs)) = SUBCOMMANDS.iter().find(|(name, _)| *name == spec.name) else {
        return Ok(());
    };
    let Some(sub) = argv.get(1) else {
        return Ok(());
    };
    let Some((name, arity)) = subs.iter().find(|(name, _)| is(sub, name)) else {
        return Err(Reply::error(format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            lossy(sub, 128),
            spec.name.to_ascii_uppercase()
        )));
    };
    let (argc, arity) = (argv.len() as i64, i64::from(*arity));
    if (arity > 0 && argc != arity) || (arity < 0 && argc < -arity) {
        return Err(wrong_arity(&format!("{}|{name}", spec.name)));
    }
    Ok(())
}

/// What WATCH saw of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Live, last changed by the entry at this index.
    Modified(u64),
    /// Absent in a view at this applied index or later.
    Absent(u64),
}

impl Seen {
    /// What a view at applied index `applied` or later says of a key (its live metadata).
    pub fn of(meta: Option<&Meta>, applied: u64) -> Seen {
        match meta {
            Some(m) => Seen::Modified(m.modified),
            None => Seen::Absent(applied),
        }
    }

    fn encode(self) -> Bytes {
        Bytes::from(match self {
            Seen::Modified(m) => format!("m{m}"),
            Seen::Absent(at) => format!("a{at}"),
        })
    }

    fn decode(b: &[u8]) -> Option<Seen> {
        let (kind, digits) = b.split_first()?;
        let n = parse_u64(digits)?;
        match kind {
            b'm' => Some(Seen::Modified(n)),
            b'a' => Some(Seen::Absent(n)),
            _ => None,
        }
    }
}

/// What a view at applied index `applied` or later says of each key (for WATCH).
pub fn look(r: &dyn KeyRead, keys: &[Bytes], applied: u64) -> Result<Vec<Seen>, StoreError> {
    keys.iter()
        .map(|k| Ok(Seen::of(r.meta(k)?.as_ref(), applied)))
        .collect()
}

/// A connection's watched keys, by (database, key); a key watched again keeps what was seen
/// first, as in Redis.
pub type Watches = HashMap<(u8, Bytes), Seen>;

/// True if the watched key provably did not change since it was seen; `r` addresses the key's
/// database and decides expiry with its clock (the entry's, in apply).
pub fn watch_holds(r: &dyn KeyRead, key: &[u8], seen: Seen) -> Result<bool, StoreError> {
    match seen {
        Seen::Modified(m) => Ok(r.meta(key)?.is_some_and(|meta| meta.modified == m)),
        Seen::Absent(at) => {
            if let Some(raw) = r.raw(&meta_key(r.db(), key))? {
                let meta =
                    Meta::decode(&raw).map_err(|e| StoreError::corrupt("key metadata", e))?;
                // Live now, or created (and expired) since: changed.
                if !meta.expired(r.now_ms()) || meta.modified > at {
                    return Ok(false);
                }
            }
            Ok(r.last_deletion(r.db())? <= at)
        }
    }
}

/// One queued command's part in the EXEC reply.
enum Part {
    /// Runs on the connection once the transaction's outcome is known.
    Local(fn(&mut Session, &[Bytes]) -> Reply),
    /// Known already (a write refused by its `prepare`).
    Done(Reply),
    /// The next reply of the entry's (or the local read-only run's) array.
    Entry,
}

/// A transaction sorted at EXEC (see the module docs).
pub struct Plan {
    parts: Vec<(Part, Vec<Bytes>)>,
    commands: Vec<(u8, Vec<Bytes>)>,
    writes: bool,
}

impl Plan {
    /// Sorts the queued commands; `db` is the connection's database at EXEC.
    pub fn new(queued: Vec<(&'static Spec, Vec<Bytes>)>, mut db: u8) -> Plan {
        let mut plan = Plan {
            parts: Vec::with_capacity(queued.len()),
            commands: Vec::new(),
            writes: false,
        };
        for (spec, argv) in queued {
            match spec.kind {
                Kind::Local(f) => {
                    if spec.name == "select"
                        && let Some(to) = select_target(&argv)
                    {
                        db = to;
                    }
                    plan.parts.push((Part::Local(f), argv));
                }
                Kind::Read(_) => {
                    plan.commands.push((db, argv));
                    plan.parts.push((Part::Entry, Vec::new()));
                }
                Kind::Write { prepare, .. } => match prepare(argv) {
                    Err(reply) => plan.parts.push((Part::Done(reply), Vec::new())),
                    Ok(argv) => {
                        plan.commands.push((db, argv));
                        plan.parts.push((Part::Entry, Vec::new()));
                        plan.writes = true;
                    }
                },
            }
        }
        plan
    }

    /// True if the transaction must go through raft.
    pub fn has_writes(&self) -> bool {
        self.writes
    }

    /// The reads and writes, each with its database.
    pub fn commands(&self) -> &[(u8, Vec<Bytes>)] {
        &self.commands
    }

    /// The EXEC reply, from the outcome of the entry (or of the local read-only run): for an
    /// array, the local commands run now, in order, and every reply takes its place; anything
    /// else (the null array of an aborted transaction, an error) is the reply as it is, and the
    /// local commands do not run.
    pub fn finish(self, outcome: Reply, session: &mut Session) -> Finished {
        let items = match outcome {
            Reply::Array(items) if items.len() == self.commands.len() => items,
            Reply::Array(_) => {
                return Finished::Reply(Reply::error("ERR transaction reply of the wrong length"));
            }
            other => return Finished::Reply(other),
        };
        let mut items = items.into_iter();
        let replies: Vec<(Reply, Protocol)> = self
            .parts
            .into_iter()
            .map(|(part, argv)| {
                let reply = match part {
                    Part::Local(f) => f(session, &argv),
                    Part::Done(reply) => reply,
                    Part::Entry => items.next().unwrap_or(Reply::Nil),
                };
                (reply, session.protocol)
            })
            .collect();
        if replies.iter().all(|(_, p)| *p == session.protocol) {
            return Finished::Reply(Reply::Array(replies.into_iter().map(|(r, _)| r).collect()));
        }
        Finished::Mixed(replies)
    }
}

/// EXEC's reply.
pub enum Finished {
    /// Written in the connection's protocol.
    Reply(Reply),
    /// An array whose items are each written in the protocol in force once its command ran, as
    /// redis-server writes them when a HELLO inside the transaction switched protocols.
    Mixed(Vec<(Reply, Protocol)>),
}

/// The database `SELECT n` switches to, if it succeeds (the same checks as SELECT's own).
fn select_target(argv: &[Bytes]) -> Option<u8> {
    let n = parse_i64(argv.get(1)?)?;
    u8::try_from(n).ok().filter(|&db| db < DATABASES)
}

/// The entry's argv (format in the module docs), or the error EXEC answers if it would be too
/// large to replicate.
pub fn encode_entry(watches: &Watches, commands: &[(u8, Vec<Bytes>)]) -> Result<Vec<Bytes>, Reply> {
    let out = encode_unchecked(watches, commands);
    let bytes = out.iter().map(|a| a.len() + 4).sum::<usize>();
    if out.len() > MAX_ENTRY_ARGS || bytes > MAX_ENTRY_BYTES {
        return Err(Reply::error(format!(
            "ERR transaction too large to replicate ({} arguments, {bytes} bytes with its watched keys)",
            out.len()
        )));
    }
    Ok(out)
}

fn encode_unchecked(watches: &Watches, commands: &[(u8, Vec<Bytes>)]) -> Vec<Bytes> {
    let num = |n: usize| Bytes::from(n.to_string());
    let args = 3 + 3 * watches.len() + commands.iter().map(|(_, a)| 2 + a.len()).sum::<usize>();
    let mut out = Vec::with_capacity(args);
    out.push(Bytes::from_static(b"exec"));
    out.push(num(watches.len()));
    for ((db, key), seen) in watches {
        out.push(num(usize::from(*db)));
        out.push(key.clone());
        out.push(seen.encode());
    }
    out.push(num(commands.len()));
    for (db, argv) in commands {
        out.push(num(usize::from(*db)));
        out.push(num(argv.len()));
        out.extend(argv.iter().cloned());
    }
    out
}

/// A decoded entry; the commands are slices of the entry's argv.
#[derive(Debug, PartialEq, Eq)]
struct Entry<'a> {
    watches: Vec<(u8, Bytes, Seen)>,
    commands: Vec<(u8, &'a [Bytes])>,
}

/// Decodes an entry; every malformation is an error (with what was wrong), never a panic.
fn decode_entry(argv: &[Bytes]) -> Result<Entry<'_>, &'static str> {
    let mut c = Cursor { argv, at: 1 };
    let watch_count = c.count(3, "no watch count")?;
    let mut watches = Vec::with_capacity(watch_count);
    for _ in 0..watch_count {
        let db = c.db("truncated watch")?;
        let key = c.next("truncated watch")?.clone();
        let seen = Seen::decode(c.next("truncated watch")?).ok_or("bad watch state")?;
        watches.push((db, key, seen));
    }
    let command_count = c.count(3, "no command count")?;
    let mut commands = Vec::with_capacity(command_count);
    for _ in 0..command_count {
        let db = c.db("truncated command")?;
        let argc = c.count(1, "truncated command")?;
        if argc == 0 {
            return Err("empty command");
        }
        commands.push((db, &argv[c.at..c.at + argc]));
        c.at += argc;
    }
    if c.at != argv.len() {
        return Err("trailing arguments");
    }
    Ok(Entry { watches, commands })
}

/// Reads an entry's arguments in order.
struct Cursor<'a> {
    argv: &'a [Bytes],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn next(&mut self, what: &'static str) -> Result<&'a Bytes, &'static str> {
        let arg = self.argv.get(self.at).ok_or(what)?;
        self.at += 1;
        Ok(arg)
    }

    /// A count of items of at least `per` arguments each, which the arguments left can hold.
    fn count(&mut self, per: usize, what: &'static str) -> Result<usize, &'static str> {
        let n = parse_u64(self.next(what)?)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or("bad count")?;
        let left = self.argv.len() - self.at;
        match n.checked_mul(per) {
            Some(need) if need <= left => Ok(n),
            _ => Err("count beyond the entry"),
        }
    }

    fn db(&mut self, what: &'static str) -> Result<u8, &'static str> {
        parse_u64(self.next(what)?)
            .and_then(|n| u8::try_from(n).ok())
            .filter(|&db| db < DATABASES)
            .ok_or("bad database")
    }
}

/// Applies a transaction entry (on every node alike): a null array if a watched key changed,
/// else the array of every command's reply, errors included (nothing is rolled back, as in
/// Redis). Total: a malformed entry gives an error reply.
pub fn apply_transaction(
    view: &mut WriteView,
    ctx: &ApplyCtx,
    argv: &[Bytes],
) -> Result<Reply, StoreError> {
    let entry = match decode_entry(argv) {
        Ok(entry) => entry,
        Err(why) => {
            return Ok(Reply::error(format!(
                "ERR invalid transaction entry: {why}"
            )));
        }
    };
    for (db, key, seen) in &entry.watches {
        view.select_db(*db);
        if !watch_holds(view, key, *seen)? {
            return Ok(Reply::NilArray);
        }
    }
    let mut replies = Vec::with_capacity(entry.commands.len());
    for (db, argv) in entry.commands {
        view.select_db(db);
        replies.push(apply_command(view, ctx, argv)?);
    }
    Ok(Reply::Array(replies))
}

/// One command of a transaction entry, through the registry.
fn apply_command(
    view: &mut WriteView,
    ctx: &ApplyCtx,
    argv: &[Bytes],
) -> Result<Reply, StoreError> {
    let Some(spec) = argv.first().and_then(|n| lookup(n)) else {
        return Ok(unknown_command(argv));
    };
    if let Err(reply) = spec.check_arity(argv.len()) {
        return Ok(reply);
    }
    match spec.kind {
        // Membership changes must be entries of their own (the raft thread acts on them).
        Kind::Write { .. } if refused_in_multi(spec) => Ok(not_allowed()),
        Kind::Write { apply, .. } => apply_counted(apply, view, ctx, argv),
        Kind::Read(f) => run_read(f, view, argv),
        Kind::Local(_) => Ok(not_allowed()),
    }
}

/// A transaction without writes, on one consistent view of this node's state: the watches are
/// checked and the reads run as `apply_transaction` would.
pub fn run_read_only(
    view: &ReadView,
    watches: &Watches,
    commands: &[(u8, Vec<Bytes>)],
) -> Result<Reply, StoreError> {
    for ((db, key), seen) in watches {
        if !watch_holds(&view.in_db(*db), key, *seen)? {
            return Ok(Reply::NilArray);
        }
    }
    let mut replies = Vec::with_capacity(commands.len());
    for (db, argv) in commands {
        let spec = argv.first().and_then(|n| lookup(n));
        replies.push(match spec.map(|s| s.kind) {
            Some(Kind::Read(f)) => run_read(f, &view.in_db(*db), argv)?,
            _ => not_allowed(),
        });
    }
    Ok(Reply::Array(replies))
}

/// A strict unsigned decimal (no sign, no leading zeros).
fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    if !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use raft::eraftpb::ConfState;

    use super::*;
    use crate::kv::{Memtable, Reader};
    use crate::store::{self, Db};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn words(s: &str) -> Vec<Bytes> {
        s.split(' ').map(b).collect()
    }

    fn setup() -> (tempfile::TempDir, Db, Arc<Memtable>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = store::open(&dir.path().join("d"), 1 << 20).expect("open");
        (dir, db, Arc::new(Memtable::new()))
    }

    /// Applies `argv` (a plain command or a transaction entry) as entry `index` at time 1000,
    /// keeping the memtable; returns the reply.
    fn apply(db: &Db, mem: &Memtable, index: u64, argv: &[Bytes]) -> Reply {
        let txn = db.begin_write().expect("txn");
        let mut state = mem.write();
        let reply = {
            let mut view = WriteView::open(&txn, &mut state).expect("view");
            view.begin_entry(0, 1000, index);
            let conf = ConfState::default();
            let ctx = ApplyCtx {
                index,
                conf_state: &conf,
                local: false,
            };
            super::super::apply_write(&mut view, &ctx, 0, argv)
                .expect("storage")
                .0
        };
        txn.abort().expect("abort");
        reply
    }

    fn tx(watches: &[(u8, &str, Seen)], commands: &[(u8, &str)]) -> Vec<Bytes> {
        let w: Watches = watches.iter().map(|(d, k, s)| ((*d, b(k)), *s)).collect();
        let c: Vec<(u8, Vec<Bytes>)> = commands.iter().map(|(d, c)| (*d, words(c))).collect();
        encode_entry(&w, &c).expect("small entry")
    }

    fn watch(db: &Db, mem: &Arc<Memtable>, dbn: u8, key: &str, applied: u64) -> Seen {
        Reader::new(db, mem)
            .run(dbn, |v| {
                Ok(Seen::of(v.meta(key.as_bytes())?.as_ref(), applied))
            })
            .expect("read")
    }

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(b(s))
    }

    #[test]
    fn subcommands_are_checked_when_queued_as_redis_does() {
        let mut m = Multi::default();
        let mut queue = |s: &str| {
            let argv = words(s);
            m.queue(lookup(&argv[0]).expect("known"), argv)
        };
        for ok in [
            "client setname a",
            "CONFIG get x y",
            "command",
            "command info get",
            "ping a b",
        ] {
            assert_eq!(queue(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            queue("client foo"),
            Err(Reply::error(
                "ERR unknown subcommand 'foo'. Try CLIENT HELP."
            ))
        );
        assert_eq!(
            queue("config get"),
            Err(Reply::error(
                "ERR wrong number of arguments for 'config|get' command"
            ))
        );
        assert_eq!(
            queue("client GETNAME x"),
            Err(Reply::error(
                "ERR wrong number of arguments for 'client|getname' command"
            ))
        );
    }

    #[test]
    fn entries_too_large_to_replicate_are_refused() {
        let mut w = Watches::new();
        for i in 0..(MAX_ENTRY_ARGS / 3 + 1) {
            w.insert((0, Bytes::from(i.to_string())), Seen::Absent(1));
        }
        assert!(encode_entry(&w, &[]).is_err());
        let big = vec![(
            0,
            vec![b("set"), b("k"), Bytes::from(vec![0u8; MAX_ENTRY_BYTES])],
        )];
        assert!(encode_entry(&Watches::new(), &big).is_err());
    }

    #[test]
    fn entries_roundtrip() {
        let argv = tx(
            &[(3, "k", Seen::Modified(7)), (0, "", Seen::Absent(0))],
            &[(0, "set a 1"), (15, "get a")],
        );
        let e = decode_entry(&argv).expect("decodes");
        let mut watches = e.watches.clone();
        watches.sort_by_key(|w| w.0);
        assert_eq!(
            watches,
            vec![(0, b(""), Seen::Absent(0)), (3, b("k"), Seen::Modified(7))]
        );
        assert_eq!(
            e.commands,
            vec![(0, &words("set a 1")[..]), (15, &words("get a")[..])]
        );
        assert_eq!(decode_entry(&words("exec 0 0")).unwrap().commands, vec![]);
    }

    #[test]
    fn every_truncation_and_malformation_is_refused() {
        let argv = tx(
            &[(1, "w", Seen::Absent(9))],
            &[(0, "set a 1"), (2, "get a")],
        );
        for cut in 0..argv.len() {
            assert!(decode_entry(&argv[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = argv.clone();
        longer.push(b("x"));
        assert!(decode_entry(&longer).is_err());
        for bad in [
            "exec",
            "exec x 0",
            "exec -1 0",
            "exec 01 0 k m1 0",
            "exec 0 1 0 0",
            "exec 0 1 16 1 ping",
            "exec 0 1 0 5 get a",
            "exec 1 0 k m1 1",
            "exec 1 99 k m1 0",
            "exec 1 0 k z1 0",
            "exec 1 0 k m 0",
            "exec 1 0 k m-1 0",
            "exec 0 18446744073709551615 0 1 ping",
            "exec 6148914691236517206 0",
            "exec 0 1 0 18446744073709551615 get",
        ] {
            assert!(decode_entry(&words(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn apply_is_total_on_garbage() {
        let (_d, db, mem) = setup();
        let good = tx(
            &[(1, "w", Seen::Absent(9))],
            &[(0, "set a 1"), (2, "get a")],
        );
        let mut cases: Vec<Vec<Bytes>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
        // Every argument of a valid entry replaced by something hostile.
        for i in 1..good.len() {
            for junk in ["", "-1", "99999999999999999999", "\u{ff}", "0", "3", "exec"] {
                let mut c = good.clone();
                c[i] = b(junk);
                cases.push(c);
            }
        }
        cases.push(vec![
            Bytes::from_static(b"EXEC"),
            Bytes::from(vec![0xffu8; 3]),
        ]);
        // A transaction inside a transaction, and commands apply refuses.
        cases.push(tx(
            &[],
            &[
                (0, "exec 0 0"),
                (0, "ping"),
                (0, "join n 1.2.3.4:5"),
                (0, "nosuch"),
            ],
        ));
        for (i, argv) in cases.iter().enumerate() {
            let reply = crate::quiet_panics(|| apply(&db, &mem, 10 + i as u64, argv))
                .unwrap_or_else(|_| panic!("apply panicked on {argv:?}"));
            assert!(
                matches!(reply, Reply::Error(_) | Reply::Array(_) | Reply::NilArray),
                "{argv:?} gave {reply:?}"
            );
        }
        assert_eq!(
            apply(
                &db,
                &mem,
                99,
                &tx(&[], &[(0, "exec"), (0, "ping"), (0, "get")])
            ),
            Reply::Array(vec![
                not_allowed(),
                not_allowed(),
                Reply::error("ERR wrong number of arguments for 'get' command"),
            ])
        );
    }

    /// Applies an entry and keeps its effects (the memtable stays; the table is not written).
    fn commit(db: &Db, mem: &Memtable, index: u64, argv: &[Bytes]) -> Reply {
        let txn = db.begin_write().expect("txn");
        let mut state = mem.write();
        let reply = {
            let mut view = WriteView::open(&txn, &mut state).expect("view");
            view.begin_entry(0, 1000, index);
            let conf = ConfState::default();
            let ctx = ApplyCtx {
                index,
                conf_state: &conf,
                local: false,
            };
            super::super::apply_write(&mut view, &ctx, 0, argv)
                .expect("storage")
                .0
        };
        crate::kv::flush_into(&txn, &state).expect("flush");
        txn.commit().expect("commit");
        state.flushed();
        reply
    }

    #[test]
    fn commands_see_the_writes_before_them_in_their_databases() {
        let (_d, db, mem) = setup();
        let reply = commit(
            &db,
            &mem,
            5,
            &tx(
                &[],
                &[
                    (0, "set a 0"),
                    (1, "set a 1"),
                    (1, "get a"),
                    (0, "incr a"),
                    (0, "get a"),
                    (1, "incr nope x"),
                ],
            ),
        );
        assert_eq!(
            reply,
            Reply::Array(vec![
                Reply::ok(),
                Reply::ok(),
                bulk("1"),
                Reply::Integer(1),
                bulk("1"),
                Reply::error("ERR wrong number of arguments for 'incr' command"),
            ])
        );
        // A runtime error does not roll back the rest.
        let reply = commit(
            &db,
            &mem,
            6,
            &tx(&[], &[(0, "set s x"), (0, "incr s"), (0, "set t y")]),
        );
        assert_eq!(
            reply,
            Reply::Array(vec![
                Reply::ok(),
                Reply::error("ERR value is not an integer or out of range"),
                Reply::ok()
            ])
        );
        assert_eq!(
            commit(&db, &mem, 7, &tx(&[], &[(1, "get a"), (0, "get t")])),
            Reply::Array(vec![bulk("1"), bulk("y")])
        );
    }

    #[test]
    fn watches_abort_on_any_change_and_only_then() {
        let (_d, db, mem) = setup();
        commit(&db, &mem, 10, &words("set p 1"));
        let set_x = |n: u64, watches: &[(u8, &str, Seen)]| {
            commit(&db, &mem, n, &tx(watches, &[(0, "set x 1")]))
        };
        let committed = Reply::Array(vec![Reply::ok()]);
        // Present, unchanged: commits; changed (even to the same value): aborts.
        let p = watch(&db, &mem, 0, "p", 10);
        assert_eq!(p, Seen::Modified(10));
        assert_eq!(set_x(11, &[(0, "p", p)]), committed);
        commit(&db, &mem, 12, &words("set p 1"));
        assert_eq!(set_x(13, &[(0, "p", p)]), Reply::NilArray);
        // Present, then deleted: aborts.
        let p = watch(&db, &mem, 0, "p", 13);
        commit(&db, &mem, 14, &words("del p"));
        assert_eq!(set_x(15, &[(0, "p", p)]), Reply::NilArray);
        // Absent, unchanged (a key of another database deleted meanwhile): commits.
        let q = watch(&db, &mem, 0, "q", 15);
        assert_eq!(q, Seen::Absent(15));
        commit(&db, &mem, 16, &tx(&[], &[(1, "set o 1"), (1, "del o")]));
        assert_eq!(set_x(17, &[(0, "q", q)]), committed);
        // Absent, then created: aborts; created and deleted again: aborts.
        commit(&db, &mem, 18, &words("set q 1"));
        assert_eq!(set_x(19, &[(0, "q", q)]), Reply::NilArray);
        commit(&db, &mem, 20, &words("del q"));
        assert_eq!(set_x(21, &[(0, "q", q)]), Reply::NilArray);
        // A view recorded as older than it was only makes aborts more likely.
        assert_eq!(set_x(22, &[(0, "q", Seen::Absent(19))]), Reply::NilArray);
        assert_eq!(set_x(23, &[(0, "q", Seen::Absent(20))]), committed);
        // FLUSHDB: a watched present key aborts; an absent one does not (it was not among the
        // keys removed, as in Redis) unless some key of its database was written since its
        // WATCH (it may have been that key); other databases are untouched.
        commit(&db, &mem, 24, &words("set p 1"));
        let p = watch(&db, &mem, 0, "p", 24);
        let r = watch(&db, &mem, 0, "r", 24);
        let other = watch(&db, &mem, 2, "r", 24);
        commit(&db, &mem, 25, &words("flushdb"));
        assert_eq!(set_x(26, &[(0, "p", p)]), Reply::NilArray);
        assert_eq!(set_x(27, &[(0, "r", r)]), committed);
        assert_eq!(set_x(28, &[(2, "r", other)]), committed);
        commit(&db, &mem, 29, &words("flushall"));
        assert_eq!(set_x(30, &[(2, "r", other)]), committed);
        let r = watch(&db, &mem, 0, "r", 30);
        commit(&db, &mem, 31, &words("set r 1"));
        commit(&db, &mem, 32, &words("flushall"));
        assert_eq!(set_x(33, &[(0, "r", r)]), Reply::NilArray);
        // Database 0 last written at 33 (by set_x): a key watched absent then holds a flush.
        let s = watch(&db, &mem, 0, "s", 33);
        commit(&db, &mem, 34, &words("flushdb"));
        assert_eq!(set_x(35, &[(0, "s", s)]), committed);
    }

    #[test]
    fn watched_keys_that_expire_abort() {
        let (_d, db, mem) = setup();
        // Entry clock is 1000 in these tests: a key expiring at 1000 is gone in apply.
        let txn = db.begin_write().expect("txn");
        {
            let mut state = mem.write();
            {
                let mut view = WriteView::open(&txn, &mut state).expect("view");
                view.begin_entry(0, 900, 40);
                let mut m = Meta::string(b("v"), view.new_version(), 40);
                m.expire_at = Some(1000);
                view.put_meta(b"e", &m, None).expect("put");
                m.modified = 3;
                view.put_meta(b"old", &m, None).expect("put");
            }
            crate::kv::flush_into(&txn, &state).expect("flush");
        }
        txn.commit().expect("commit");
        mem.write().flushed();
        let committed = Reply::Array(vec![Reply::ok()]);
        // Seen live, expired by the entry's clock: aborts.
        let e = tx(&[(0, "e", Seen::Modified(40))], &[(0, "set x 1")]);
        assert_eq!(commit(&db, &mem, 41, &e), Reply::NilArray);
        // Seen absent (already expired then: its row is older than the view), still expired:
        // unchanged. Created after the view and expired since: changed.
        let old = tx(&[(0, "old", Seen::Absent(39))], &[(0, "set x 1")]);
        assert_eq!(commit(&db, &mem, 42, &old), committed);
        let newer = tx(&[(0, "e", Seen::Absent(39))], &[(0, "set x 1")]);
        assert_eq!(commit(&db, &mem, 43, &newer), Reply::NilArray);
    }

    #[test]
    fn read_only_transactions_run_on_one_view_with_the_same_rules() {
        let (_d, db, mem) = setup();
        commit(&db, &mem, 3, &tx(&[], &[(0, "set a 1"), (4, "set a 4")]));
        let mut watches = Watches::new();
        watches.insert((0, b("a")), watch(&db, &mem, 0, "a", 3));
        let commands = vec![
            (0, words("get a")),
            (4, words("get a")),
            (0, words("set a 2")),
        ];
        let run = |w: &Watches| {
            Reader::new(&db, &mem)
                .run(0, |v| run_read_only(v, w, &commands))
                .expect("read")
        };
        assert_eq!(
            run(&watches),
            Reply::Array(vec![bulk("1"), bulk("4"), not_allowed()])
        );
        commit(&db, &mem, 4, &words("set a 1"));
        assert_eq!(run(&watches), Reply::NilArray);
    }

    #[test]
    fn plans_route_commands_and_follow_select() {
        let q = |s: &str| {
            let argv = words(s);
            (lookup(&argv[0]).expect("known"), argv)
        };
        let plan = Plan::new(
            vec![
                q("get a"),
                q("select 3"),
                q("set a 1"),
                q("select 99"),
                q("set a 1 bad"),
                q("ping"),
                q("get a"),
            ],
            1,
        );
        assert!(plan.has_writes());
        assert_eq!(
            plan.commands(),
            &[
                (1, words("get a")),
                (3, words("set a 1")),
                (3, words("get a"))
            ]
        );
        let read_only = Plan::new(vec![q("get a"), q("ping")], 0);
        assert!(!read_only.has_writes());
    }
}
