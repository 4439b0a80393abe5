//! ACL: users as replicated state (see `crate::acl`). SETUSER and DELUSER are raft writes; the
//! other subcommands read this node's applied state (or, queued in MULTI, the apply's), and
//! WHOAMI, GENPASS and LOG answer from the connection and the node.

use bytes::Bytes;

use super::{CmdResult, Kind, Spec, is, lookup, lossy, wrong_arity};
use crate::acl::{self, Call, DEFAULT_USER, User, category};
use crate::kv::{ApplyCtx, KeyRead, WriteView, encoding};
use crate::resp::Reply;
use crate::session::Session;
use crate::store::StoreError;

pub const ACL: Spec = Spec {
    name: "acl",
    arity: -2,
    kind: Kind::Write {
        prepare,
        apply: apply_acl,
    },
    flags: &["noscript", "loading", "stale"],
    keys: (0, 0, 0),
};

const HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Prints this help.",
];

/// Whether this ACL command line is a replicated write (SETUSER, DELUSER); the others are
/// answered on the node (`local`).
pub fn is_write(argv: &[Bytes]) -> bool {
    argv.get(1)
        .is_some_and(|s| is(s, "setuser") || is(s, "deluser"))
}

/// SETUSER's passwords become hashes here, so neither the entry nor the row holds one in
/// clear text.
fn prepare(argv: Vec<Bytes>) -> Result<Vec<Bytes>, Reply> {
    super::transactions::check_subcommand(&ACL, &argv)?;
    if is(&argv[1], "setuser") {
        let name = &argv[2];
        if name.iter().any(|&b| b == b' ' || b == 0) {
            return Err(Reply::error(
                "ERR Usernames can't contain spaces or null characters",
            ));
        }
        let mut out = argv[..3].to_vec();
        for rule in &argv[3..] {
            out.push(match rule.first() {
                Some(b'>') => Bytes::from(format!("#{}", acl::hash_password(&rule[1..]))),
                Some(b'<') => Bytes::from(format!("!{}", acl::hash_password(&rule[1..]))),
                _ => rule.clone(),
            });
        }
        // What fails on any user fails here, before it is proposed.
        User::new("check").apply_rules(&out[3..]).or_else(|e| {
            if e.contains("does not exist") {
                Ok(())
            } else {
                Err(Reply::error(e))
            }
        })?;
        return Ok(out);
    }
    Ok(argv)
}

fn apply_acl(w: &mut WriteView, ctx: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    if let Err(e) = super::transactions::check_subcommand(&ACL, argv) {
        return Ok(e);
    }
    let sub = &argv[1];
    if is(sub, "setuser") {
        let name = String::from_utf8_lossy(&argv[2]).into_owned();
        let mut user = load(&*w, &name)?.unwrap_or_else(|| User::new(&name));
        if let Err(e) = user.apply_rules(&argv[3..]) {
            return Ok(Reply::error(e));
        }
        w.put_raw(&encoding::acl_user_key(name.as_bytes()), user.encode());
        acl::changed();
        return Ok(Reply::ok());
    }
    if is(sub, "deluser") {
        if argv[2..].iter().any(|n| &n[..] == DEFAULT_USER.as_bytes()) {
            return Ok(Reply::error("ERR The 'default' user cannot be removed"));
        }
        let mut deleted = 0;
        for name in &argv[2..] {
            if w.delete_raw(&encoding::acl_user_key(name))? {
                deleted += 1;
            }
        }
        if deleted > 0 {
            acl::changed();
        }
        return Ok(Reply::Integer(deleted));
    }
    if is(sub, "genpass") {
        // In a transaction: from the entry, so every node answers alike.
        let seed = ctx.index.to_be_bytes();
        return Ok(genpass(argv, &seed));
    }
    read(&*w, argv, None)
}

/// A user from the replicated state (`default` without a row: Redis's built-in one).
pub fn load(r: &dyn KeyRead, name: &str) -> Result<Option<User>, StoreError> {
    match r.raw(&encoding::acl_user_key(name.as_bytes()))? {
        Some(row) => Ok(User::decode(name, &row)),
        None if name == DEFAULT_USER => Ok(Some(User::builtin_default())),
        None => Ok(None),
    }
}

/// Every user, by name.
fn users(r: &dyn KeyRead) -> Result<Vec<User>, StoreError> {
    let (lo, hi) = encoding::ACL_USERS;
    let mut out = Vec::new();
    let mut has_default = false;
    r.scan_raw(&lo, &hi, &mut |k, v| {
        let name = String::from_utf8_lossy(&k[2..]).into_owned();
        has_default |= name == DEFAULT_USER;
        if let Some(u) = User::decode(&name, v) {
            out.push(u);
        }
        true
    })?;
    if !has_default {
        out.push(User::builtin_default());
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The subcommands that read users; `s`: the connection asking, when there is one.
fn read(r: &dyn KeyRead, argv: &[Bytes], s: Option<&Session>) -> CmdResult {
    let sub = &argv[1];
    if is(sub, "getuser") {
        let name = String::from_utf8_lossy(&argv[2]);
        let Some(u) = load(r, &name)? else {
            return Ok(Reply::Nil);
        };
        return Ok(getuser(&u));
    }
    if is(sub, "list") {
        return Ok(Reply::Array(
            users(r)?
                .iter()
                .map(|u| Reply::bulk(format!("user {} {}", u.name, u.describe())))
                .collect(),
        ));
    }
    if is(sub, "users") {
        return Ok(Reply::Array(
            users(r)?.into_iter().map(|u| Reply::bulk(u.name)).collect(),
        ));
    }
    if is(sub, "dryrun") {
        let name = String::from_utf8_lossy(&argv[2]);
        let Some(u) = load(r, &name)? else {
            return Ok(Reply::error(format!("ERR User '{name}' not found")));
        };
        let line = &argv[3..];
        let Some(spec) = lookup(&line[0]) else {
            return Ok(Reply::error(format!(
                "ERR Command '{}' not found",
                lossy(&line[0], 128)
            )));
        };
        if spec.check_arity(line.len()).is_err() {
            return Ok(wrong_arity(spec.name));
        }
        return Ok(match u.check(&call(spec, line)) {
            Ok(()) => Reply::ok(),
            Err(d) => Reply::bulk(d.dryrun()),
        });
    }
    if is(sub, "cat") {
        return Ok(cat(argv));
    }
    if is(sub, "help") {
        return Ok(Reply::Array(
            HELP.iter().map(|l| Reply::status(*l)).collect(),
        ));
    }
    if is(sub, "whoami") {
        return Ok(Reply::bulk(
            s.map_or(DEFAULT_USER.to_string(), |s| s.user.name.clone()),
        ));
    }
    if is(sub, "log") {
        return Ok(log(argv));
    }
    if is(sub, "load") || is(sub, "save") {
        return Ok(Reply::error(
            "ERR This Redis instance is not configured to use an ACL file. You may want to \
             specify users via the ACL SETUSER command and then issue a CONFIG REWRITE \
             (assuming you have a Redis configuration file set) in order to store users in \
             the Redis configuration.",
        ));
    }
    Ok(Reply::error(format!(
        "ERR unknown subcommand '{}'. Try ACL HELP.",
        lossy(sub, 128)
    )))
}

/// ACL LOG: kvd keeps no log of refusals yet; the reply has Redis's shape.
fn log(argv: &[Bytes]) -> Reply {
    match argv.get(2) {
        None => Reply::Array(vec![]),
        Some(a) if is(a, "reset") && argv.len() == 3 => Reply::ok(),
        Some(a) if argv.len() == 3 && super::parse_i64(a).is_some_and(|n| n >= 0) => {
            Reply::Array(vec![])
        }
        Some(_) if argv.len() == 3 => Reply::error("ERR value is out of range, must be positive"),
        Some(_) => Reply::error(
            "ERR unknown subcommand or wrong number of arguments for 'LOG'. Try ACL HELP.",
        ),
    }
}

fn cat(argv: &[Bytes]) -> Reply {
    match argv.len() {
        2 => Reply::Array(
            category::NAMES
                .iter()
                .map(|(n, _)| Reply::bulk(*n))
                .collect(),
        ),
        3 => {
            let Some(bit) = category::by_name(&argv[2]) else {
                return Reply::error(format!("ERR Unknown category '{}'", lossy(&argv[2], 128)));
            };
            Reply::Array(
                acl::commands()
                    .filter(|c| !c.container && c.categories & bit != 0)
                    .map(|c| Reply::bulk(c.name))
                    .collect(),
            )
        }
        _ => Reply::error(
            "ERR unknown subcommand or wrong number of arguments for 'CAT'. Try ACL HELP.",
        ),
    }
}

fn genpass(argv: &[Bytes], seed: &[u8]) -> Reply {
    let bits = match argv.get(2) {
        None => 256,
        Some(a) => match super::parse_i64(a) {
            Some(n) if (1..=4096).contains(&n) => n as usize,
            _ => {
                return Reply::error(
                    "ERR ACL GENPASS argument must be the number of bits for the output \
                     password, a positive number up to 4096",
                );
            }
        },
    };
    let chars = bits.div_ceil(4);
    let mut out = String::new();
    let mut block = 0u64;
    while out.len() < chars {
        let mut h = <sha2::Sha256 as sha2::Digest>::new();
        sha2::Digest::update(&mut h, seed);
        sha2::Digest::update(&mut h, block.to_be_bytes());
        let d = sha2::Digest::finalize(h);
        for b in d {
            out.push_str(&format!("{b:02x}"));
        }
        block += 1;
    }
    out.truncate(chars);
    Reply::bulk(out)
}

fn getuser(u: &User) -> Reply {
    let [commands, keys, channels] = u.root_fields();
    let field = |(k, v): (String, String)| (Reply::bulk(k), Reply::bulk(v));
    Reply::map([
        (
            Reply::bulk("flags"),
            Reply::Set(u.flags().into_iter().map(Reply::bulk).collect()),
        ),
        (
            Reply::bulk("passwords"),
            Reply::Array(
                u.passwords()
                    .iter()
                    .map(|p| Reply::bulk(p.clone()))
                    .collect(),
            ),
        ),
        field(commands),
        field(keys),
        field(channels),
        (
            Reply::bulk("selectors"),
            Reply::Array(
                u.selector_fields()
                    .into_iter()
                    .map(|fs| Reply::map(fs.map(field)))
                    .collect(),
            ),
        ),
    ])
}

/// The ACL subcommands a connection answers on its node.
pub fn local(s: &mut Session, argv: &[Bytes]) -> Reply {
    if let Err(e) = super::transactions::check_subcommand(&ACL, argv) {
        return e;
    }
    if is(&argv[1], "genpass") {
        let mut seed = [0u8; 32];
        if std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed))
            .is_err()
        {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            seed[..16].copy_from_slice(&t.to_be_bytes());
        }
        return genpass(argv, &seed);
    }
    let shared = s.shared.clone();
    let mut reader = crate::kv::Reader::new(&shared.db, shared.raft.memtable());
    match reader.run(0, |v| super::settle(read(v, argv, Some(s)))) {
        Ok(r) => r,
        Err(e) => super::storage_error(e),
    }
}

/// The command line as the ACL checks see it.
pub fn call<'a>(spec: &'a Spec, argv: &'a [Bytes]) -> Call<'a> {
    Call {
        name: spec.name,
        argv,
        keys: super::server::keys_of(spec, argv),
    }
}

/// The user `name` as this node's applied state has it (`None`: no such user, or the state
/// could not be read).
pub fn current_user(shared: &crate::server::Shared, name: &str) -> Option<User> {
    let mut reader = crate::kv::Reader::new(&shared.db, shared.raft.memtable());
    reader.run(0, |v| load(v, name)).ok().flatten()
}

/// `redis.acl_check_cmd(...)`: whether the script's user may run the command line (a known
/// command, checked by the caller).
pub fn script_allows(argv: &[Bytes]) -> bool {
    let Some(user) = acl::script_user() else {
        return true;
    };
    match argv.first().and_then(|n| lookup(n)) {
        Some(spec) => user.check(&call(spec, argv)).is_ok(),
        None => false,
    }
}

/// kvd's own entry for a script a restricted user sends: `acl-as user eval ...`. Apply runs
/// the script as that user, as the replicated state has the user at that entry, so every node
/// checks its `redis.call`s alike (a node-local user would not be deterministic).
pub const AS_USER: Spec = Spec {
    name: "acl-as",
    arity: -3,
    kind: Kind::Write {
        prepare: Ok,
        apply: apply_as_user,
    },
    flags: &[],
    keys: (0, 0, 0),
};

/// The entry proposing script `argv` for `user` (see [`AS_USER`]).
pub fn as_user_argv(user: &str, argv: Vec<Bytes>) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(argv.len() + 2);
    out.push(Bytes::from_static(b"acl-as"));
    out.push(Bytes::copy_from_slice(user.as_bytes()));
    out.extend(argv);
    out
}

fn apply_as_user(w: &mut WriteView, ctx: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&argv[1]).into_owned();
    let inner = &argv[2..];
    let user = match load(&*w, &name)? {
        Some(u) if u.enabled => std::sync::Arc::new(u),
        _ => return Ok(Reply::error(format!("ERR User '{name}' not found"))),
    };
    let Some(spec) = lookup(&inner[0]).filter(|s| super::scripting::runs_locally_first(s)) else {
        return Ok(super::unknown_command(inner));
    };
    if let Err(e) = spec.check_arity(inner.len()) {
        return Ok(e);
    }
    if let Err(d) = user.check(&call(spec, inner)) {
        return Ok(Reply::error(d.message()));
    }
    let Kind::Write { apply, .. } = spec.kind else {
        return Ok(Reply::error("ERR not a write command"));
    };
    Ok(acl::as_user(&user, || {
        super::apply_counted(apply, w, ctx, inner)
    })?)
}
