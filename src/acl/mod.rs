//! ACL users: what each may run, on which keys and channels, and how it authenticates.
//!
//! Users are replicated state: `ACL SETUSER` and `ACL DELUSER` are raft writes (`cmd::acl`),
//! applied on every node from the entry alone, and each user is one row of
//! `kv::encoding::FAMILY_ACL` (so users are in snapshots and survive restarts). The entry and
//! the row carry password hashes (SHA-256 hex, Redis's `#<hash>`), never a clear text password:
//! the node that takes the command hashes `>password` before proposing it.
//!
//! Connections cache their user (`Session::user`); apply raises [`Epoch`] after it changed a
//! user, and each connection then reloads its own from the state (closing if it was deleted or
//! disabled, as Redis disconnects such clients).
//!
//! The `default` user without a row is Redis's built-in one (`on nopass ~* &* +@all`). A node's
//! `requirepass` (flag or CONFIG SET) is node-local and replaces the default user's passwords on
//! that node, as Redis's `requirepass` sets the default user's password.

pub mod category;
mod table;

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::cmd::glob;
use category::{R, W};

/// What ACL rules know of one command or subcommand (one line of `table`).
#[derive(Clone, Copy, Debug)]
pub struct CommandAcl {
    /// `get`, or `config|get` for a subcommand.
    pub name: &'static str,
    pub categories: u32,
    /// What its keys need (`category::R`, `category::W`).
    pub keys: u8,
    pub container: bool,
}

fn entry(&(name, categories, keys, container): &'static (&str, u32, u8, bool)) -> CommandAcl {
    CommandAcl {
        name,
        categories,
        keys,
        container,
    }
}

/// Every command and subcommand ACL rules may name.
pub fn commands() -> impl Iterator<Item = CommandAcl> {
    table::COMMANDS
        .iter()
        .chain(table::KVD_COMMANDS.iter())
        .map(entry)
}

/// A command or subcommand by full name (lower case).
pub fn command(name: &str) -> Option<CommandAcl> {
    if let Ok(i) = table::COMMANDS.binary_search_by(|e| e.0.cmp(name)) {
        return Some(entry(&table::COMMANDS[i]));
    }
    table::KVD_COMMANDS.iter().find(|e| e.0 == name).map(entry)
}

/// The commands rules apply to one by one: every command without subcommands, and every
/// subcommand.
fn leaves() -> impl Iterator<Item = CommandAcl> {
    commands().filter(|c| !c.container)
}

/// The leaves `name` covers: itself, or a container's subcommands.
fn covered(name: &'static str) -> impl Iterator<Item = CommandAcl> {
    leaves().filter(move |c| {
        c.name == name
            || c.name
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('|'))
    })
}

/// The categories a container's subcommands have together (a plain command's own).
fn categories_of(name: &str) -> u32 {
    match command(name) {
        Some(c) if c.container => covered_by_name(name).fold(0, |a, c| a | c.categories),
        Some(c) => c.categories,
        None => 0,
    }
}

fn covered_by_name(name: &str) -> impl Iterator<Item = CommandAcl> + '_ {
    leaves().filter(move |c| {
        c.name
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('|'))
    })
}

/// One command rule of a selector, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    /// `+@cat` / `-@cat`.
    Category(bool, u32),
    /// `+cmd` / `-cmd` / `+cmd|sub` / `-cmd|sub`.
    Command(bool, &'static str),
    /// `+cmd|arg`: the command, only with that first argument.
    FirstArg(&'static str, String),
}

/// What a selector allows: commands, keys, channels. A user has its root selector and may
/// have more (`(...)`); a command runs if any of them allows all of it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Selector {
    /// `+@all` (true) or `-@all`: what the rules start from (and what commands unknown to the
    /// table get).
    all_commands: bool,
    rules: Vec<Rule>,
    allkeys: bool,
    /// Key patterns with what they allow (`R | W`).
    keys: Vec<(u8, Vec<u8>)>,
    allchannels: bool,
    channels: Vec<Vec<u8>>,
}

/// Why a command may not run, worst last (Redis reports the most relevant of its selectors).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Denied {
    Command(String),
    Key(Bytes),
    Channel(Bytes),
}

impl Denied {
    /// The error a refused command gets, in Redis's words.
    pub fn message(&self) -> String {
        match self {
            Denied::Command(name) => {
                format!("NOPERM this user has no permissions to run the '{name}' command")
            }
            Denied::Key(_) => {
                "NOPERM this user has no permissions to access one of the keys used as arguments"
                    .into()
            }
            Denied::Channel(_) => "NOPERM this user has no permissions to access one of the \
                                   channels used as arguments"
                .into(),
        }
    }

    /// The error `redis.call` raises for it inside a script.
    pub fn script_message(&self) -> &'static str {
        match self {
            Denied::Command(_) => {
                "ERR The user executing the script can't run this command or subcommand"
            }
            Denied::Key(_) => {
                "ERR The user executing the script can't access at least one of the keys \
                 mentioned in the command arguments"
            }
            Denied::Channel(_) => {
                "ERR The user executing the script can't publish to the channel mentioned in \
                 the command"
            }
        }
    }

    /// ACL DRYRUN's answer.
    pub fn dryrun(&self) -> String {
        match self {
            Denied::Command(name) => {
                format!("This user has no permissions to run the '{name}' command")
            }
            Denied::Key(k) => format!(
                "This user has no permissions to access the '{}' key",
                String::from_utf8_lossy(k)
            ),
            Denied::Channel(c) => format!(
                "This user has no permissions to access the '{}' channel",
                String::from_utf8_lossy(c)
            ),
        }
    }
}

/// A command line as the checks see it: its name (lower case), its keys and channels.
pub struct Call<'a> {
    pub name: &'a str,
    pub argv: &'a [Bytes],
    pub keys: Vec<Bytes>,
}

impl Selector {
    fn allows_leaf(&self, leaf: &CommandAcl) -> bool {
        let mut allowed = self.all_commands;
        for r in &self.rules {
            match r {
                Rule::Category(allow, bit) if leaf.categories & bit != 0 => allowed = *allow,
                Rule::Command(allow, name) if covers(name, leaf.name) => allowed = *allow,
                _ => {}
            }
        }
        allowed
    }

    /// Whether a rule naming commands would change anything: some leaf it names is not
    /// already as it asks.
    fn changes(&self, allow: bool, mut targets: impl Iterator<Item = CommandAcl>) -> bool {
        targets.any(|leaf| self.allows_leaf(&leaf) != allow)
    }

    fn check(&self, call: &Call) -> Result<(), Denied> {
        let (leaf_name, leaf) = resolve(call);
        let allowed = match &leaf {
            Some(leaf) => self.allows_leaf(leaf),
            None => self.all_commands,
        };
        let by_arg = || {
            call.argv.get(1).is_some_and(|a| {
                self.rules.iter().any(|r| {
                    matches!(r, Rule::FirstArg(c, arg) if *c == call.name
                        && a.eq_ignore_ascii_case(arg.as_bytes()))
                })
            })
        };
        if !allowed && !by_arg() {
            return Err(Denied::Command(leaf_name));
        }
        if !self.allkeys {
            let need = leaf.map_or(R | W, |l| l.keys);
            for k in &call.keys {
                let ok = self
                    .keys
                    .iter()
                    .any(|(perm, p)| perm & need == need && glob::matches(p, k, false));
                if !ok {
                    return Err(Denied::Key(k.clone()));
                }
            }
        }
        if !self.allchannels {
            let (channels, literal) = channels_of(call.name, call.argv);
            for c in channels {
                let ok = self.channels.iter().any(|p| {
                    if literal {
                        p[..] == c[..]
                    } else {
                        glob::matches(p, c, false)
                    }
                });
                if !ok {
                    return Err(Denied::Channel(c.clone()));
                }
            }
        }
        Ok(())
    }

    /// Applies one selector rule (`~pattern`, `+get`, ...).
    fn apply(&mut self, op: &[u8]) -> Result<(), String> {
        if op.is_empty() {
            // An empty rule changes nothing (Redis 7.0).
            return Ok(());
        }
        let text = String::from_utf8_lossy(op).to_ascii_lowercase();
        match text.as_str() {
            "allkeys" => return self.apply(b"~*"),
            "resetkeys" => {
                self.allkeys = false;
                self.keys.clear();
                return Ok(());
            }
            "allchannels" => return self.apply(b"&*"),
            "resetchannels" => {
                self.allchannels = false;
                self.channels.clear();
                return Ok(());
            }
            "allcommands" => return self.apply(b"+@all"),
            "nocommands" => return self.apply(b"-@all"),
            _ => {}
        }
        match op.first() {
            Some(b'~') | Some(b'%') => self.key_pattern(op),
            Some(b'&') => {
                if self.allchannels {
                    return Err(
                        "Adding a pattern after the * pattern (or the 'allchannels' \
                                flag) is not valid and does not have any effect. Try \
                                'resetchannels' to start with an empty list of channels"
                            .into(),
                    );
                }
                let p = &op[1..];
                if p == b"*" {
                    self.allchannels = true;
                    self.channels.clear();
                } else if !self.channels.iter().any(|c| c[..] == *p) {
                    self.channels.push(p.to_vec());
                }
                Ok(())
            }
            Some(b'+') | Some(b'-') => self.command_rule(op[0] == b'+', &text[1..]),
            _ => Err("Syntax error".into()),
        }
    }

    fn key_pattern(&mut self, op: &[u8]) -> Result<(), String> {
        let (perm, pattern) = if op[0] == b'~' {
            (R | W, &op[1..])
        } else {
            // Redis 7.0 takes `%R` without a `~` as the empty pattern.
            let tilde = op.iter().position(|&b| b == b'~').unwrap_or(op.len());
            let mut perm = 0;
            for &b in &op[1..tilde] {
                match b.to_ascii_uppercase() {
                    b'R' => perm |= R,
                    b'W' => perm |= W,
                    _ => return Err("Syntax error".into()),
                }
            }
            if perm == 0 {
                return Err("Syntax error".into());
            }
            (perm, op.get(tilde + 1..).unwrap_or_default())
        };
        if self.allkeys {
            return Err(
                "Adding a pattern after the * pattern (or the 'allkeys' flag) is not \
                        valid and does not have any effect. Try 'resetkeys' to start with an \
                        empty list of patterns"
                    .into(),
            );
        }
        if pattern == b"*" && perm == R | W {
            self.allkeys = true;
            self.keys.clear();
            return Ok(());
        }
        match self.keys.iter_mut().find(|(_, p)| p[..] == *pattern) {
            Some((p, _)) => *p |= perm,
            None => self.keys.push((perm, pattern.to_vec())),
        }
        Ok(())
    }

    fn command_rule(&mut self, allow: bool, name: &str) -> Result<(), String> {
        let unknown = || "Unknown command or category name in ACL".to_string();
        if let Some(cat) = name.strip_prefix('@') {
            if cat == "all" {
                self.all_commands = allow;
                self.rules.clear();
                return Ok(());
            }
            let bit = category::by_name(cat.as_bytes()).ok_or_else(unknown)?;
            self.rules.retain(|r| match r {
                Rule::Category(_, b) => *b != bit,
                Rule::Command(_, n) => categories_of(n) & bit == 0,
                Rule::FirstArg(n, _) => categories_of(n) & bit == 0,
            });
            if self.changes(allow, leaves().filter(|l| l.categories & bit != 0)) {
                self.rules.push(Rule::Category(allow, bit));
            }
            return Ok(());
        }
        let parts: Vec<&str> = name.split('|').collect();
        let target = match parts[..] {
            [cmd] => command(cmd).ok_or_else(unknown)?,
            [cmd, sub] => match command(&format!("{cmd}|{sub}")) {
                Some(c) => c,
                None => {
                    let c = command(cmd).ok_or_else(unknown)?;
                    if c.container || !allow || sub.is_empty() {
                        return Err(unknown());
                    }
                    if self.check_leaf_allowed(c.name) {
                        return Ok(());
                    }
                    let rule = Rule::FirstArg(c.name, sub.to_string());
                    if !self.rules.contains(&rule) {
                        self.rules.push(rule);
                    }
                    return Ok(());
                }
            },
            [cmd, sub, ..] => {
                if command(&format!("{cmd}|{sub}")).is_some() {
                    return Err("Allowing first-arg of a subcommand is not supported".into());
                }
                return Err(unknown());
            }
            [] => return Err(unknown()),
        };
        let tname = target.name;
        self.rules.retain(|r| match r {
            Rule::Command(_, n) | Rule::FirstArg(n, _) => !covers(tname, n),
            Rule::Category(..) => true,
        });
        if self.changes(allow, covered(tname)) {
            self.rules.push(Rule::Command(allow, tname));
        }
        Ok(())
    }

    fn check_leaf_allowed(&self, name: &'static str) -> bool {
        covered(name).all(|l| self.allows_leaf(&l))
    }

    /// The selector as ACL LIST writes it: keys, channels, commands.
    fn describe(&self, out: &mut Vec<String>) {
        out.extend(self.key_words());
        if self.allchannels {
            out.push("&*".into());
        } else {
            out.push("resetchannels".into());
            out.extend(self.channel_words());
        }
        out.push(self.commands());
    }

    fn key_words(&self) -> Vec<String> {
        if self.allkeys {
            return vec!["~*".into()];
        }
        self.keys
            .iter()
            .map(|(perm, p)| {
                let prefix = match *perm {
                    R => "%R~",
                    W => "%W~",
                    _ => "~",
                };
                format!("{prefix}{}", String::from_utf8_lossy(p))
            })
            .collect()
    }

    fn channel_words(&self) -> Vec<String> {
        if self.allchannels {
            return vec!["&*".into()];
        }
        self.channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect()
    }

    /// The command rules, as ACL GETUSER's `commands`.
    fn commands(&self) -> String {
        let mut s = String::from(if self.all_commands { "+@all" } else { "-@all" });
        for r in &self.rules {
            s.push(' ');
            match r {
                Rule::Category(allow, bit) => {
                    s.push(if *allow { '+' } else { '-' });
                    s.push_str(category::names(*bit).next().unwrap_or("@?"));
                }
                Rule::Command(allow, name) => {
                    s.push(if *allow { '+' } else { '-' });
                    s.push_str(name);
                }
                Rule::FirstArg(name, arg) => {
                    s.push('+');
                    s.push_str(name);
                    s.push('|');
                    s.push_str(arg);
                }
            }
        }
        s
    }

    /// The selector as ACL GETUSER shows it (commands, keys, channels).
    fn fields(&self) -> [(String, String); 3] {
        [
            ("commands".into(), self.commands()),
            ("keys".into(), self.key_words().join(" ")),
            ("channels".into(), self.channel_words().join(" ")),
        ]
    }
}

/// Whether rule name `rule` (a command, subcommand or container) covers command `name`.
fn covers(rule: &str, name: &str) -> bool {
    rule == name
        || name
            .strip_prefix(rule)
            .is_some_and(|rest| rest.starts_with('|'))
}

/// The leaf a command line runs (`config|get` for `CONFIG GET`) and its name for errors.
fn resolve(call: &Call) -> (String, Option<CommandAcl>) {
    let Some(cmd) = command(call.name) else {
        return (call.name.to_string(), None);
    };
    if cmd.container
        && let Some(sub) = call.argv.get(1)
    {
        let full = format!(
            "{}|{}",
            call.name,
            String::from_utf8_lossy(sub).to_ascii_lowercase()
        );
        if let Some(leaf) = command(&full) {
            return (full, Some(leaf));
        }
        // An unknown subcommand: the command answers it with its own error.
        return (
            full,
            Some(CommandAcl {
                categories: 0,
                ..cmd
            }),
        );
    }
    (cmd.name.to_string(), Some(cmd))
}

/// The channels a command line names, and whether they are patterns matched literally
/// (PSUBSCRIBE) rather than channels matched against patterns.
fn channels_of<'a>(name: &str, argv: &'a [Bytes]) -> (&'a [Bytes], bool) {
    let rest = argv.get(1..).unwrap_or(&[]);
    match name {
        "publish" | "spublish" => (&rest[..rest.len().min(1)], false),
        "subscribe" | "ssubscribe" => (rest, false),
        "psubscribe" => (rest, true),
        _ => (&[], false),
    }
}

/// A user: whether it may log in, with which passwords, and its selectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    /// `Some(true)`: sanitize-payload, `Some(false)`: skip-sanitize-payload.
    sanitize: Option<bool>,
    /// SHA-256 hex digests, in the order added.
    passwords: Vec<String>,
    root: Selector,
    selectors: Vec<Selector>,
}

/// Redis's reply to a failed ACL SETUSER rule.
pub fn setuser_error(op: &[u8], why: &str) -> String {
    format!(
        "ERR Error in ACL SETUSER modifier '{}': {why}",
        String::from_utf8_lossy(op)
    )
}

/// The SHA-256 hex digest of a password, as Redis keeps them.
pub fn hash_password(p: &[u8]) -> String {
    let d = Sha256::digest(p);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn valid_hash(h: &[u8]) -> bool {
    h.len() == 64
        && h.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

pub const DEFAULT_USER: &str = "default";

impl User {
    /// A user as ACL SETUSER creates it: off, no passwords, keys, channels or commands.
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            root: Selector::default(),
            selectors: Vec::new(),
        }
    }

    /// Redis's built-in default user: `on nopass ~* &* +@all`.
    pub fn builtin_default() -> User {
        let mut u = User::new(DEFAULT_USER);
        u.enabled = true;
        u.nopass = true;
        u.root.all_commands = true;
        u.root.allkeys = true;
        u.root.allchannels = true;
        u
    }

    /// Whether it may run anything (the check every command pays is then one test).
    pub fn unrestricted(&self) -> bool {
        let r = &self.root;
        r.all_commands && r.rules.is_empty() && r.allkeys && r.allchannels
    }

    /// Applies ACL SETUSER's rules in order, each as Redis applies it; an error leaves the
    /// user as it was (the caller works on a copy).
    pub fn apply_rules(&mut self, rules: &[Bytes]) -> Result<(), String> {
        for op in merge_selectors(rules)? {
            self.apply(&op).map_err(|why| setuser_error(&op, &why))?;
        }
        Ok(())
    }

    fn apply(&mut self, op: &[u8]) -> Result<(), String> {
        if op.is_empty() {
            // An empty rule changes nothing (Redis 7.0).
            return Ok(());
        }
        let lower = String::from_utf8_lossy(op).to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "sanitize-payload" => self.sanitize = Some(true),
            "skip-sanitize-payload" => self.sanitize = Some(false),
            "clearselectors" => self.selectors.clear(),
            "reset" => {
                *self = User::new(&self.name);
                self.sanitize = Some(true);
            }
            _ => match op.first() {
                Some(b'>') => self.add_hash(hash_password(&op[1..])),
                Some(b'#') => {
                    if !valid_hash(&op[1..]) {
                        return Err("The password hash must be exactly 64 characters and \
                                    contain only lowercase hexadecimal characters"
                            .into());
                    }
                    self.add_hash(String::from_utf8_lossy(&op[1..]).into_owned());
                }
                Some(b'<') => self.remove_hash(&hash_password(&op[1..]))?,
                Some(b'!') => {
                    if !valid_hash(&op[1..]) {
                        return Err("The password hash must be exactly 64 characters and \
                                    contain only lowercase hexadecimal characters"
                            .into());
                    }
                    self.remove_hash(&String::from_utf8_lossy(&op[1..]))?;
                }
                Some(b'(') if op.ends_with(b")") && op.len() >= 2 => {
                    let mut s = Selector::default();
                    for word in op[1..op.len() - 1]
                        .split(|&b| b == b' ')
                        .filter(|w| !w.is_empty())
                    {
                        s.apply(word)?;
                    }
                    self.selectors.push(s);
                }
                _ => self.root.apply(op)?,
            },
        }
        Ok(())
    }

    fn add_hash(&mut self, h: String) {
        self.nopass = false;
        if !self.passwords.contains(&h) {
            self.passwords.push(h);
        }
    }

    fn remove_hash(&mut self, h: &str) -> Result<(), String> {
        let before = self.passwords.len();
        self.passwords.retain(|p| p != h);
        if self.passwords.len() == before {
            return Err(
                "The password you are trying to remove from the user does not exist".into(),
            );
        }
        Ok(())
    }

    /// Whether `password` logs in as this user (`nopass`: any does). Compared by digest in
    /// constant time, as Redis does.
    pub fn accepts(&self, password: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let guess = hash_password(password);
        self.passwords.iter().fold(false, |ok, h| {
            ok | bool::from(h.as_bytes().ct_eq(guess.as_bytes()))
        })
    }

    /// Checks a command line against the user's selectors.
    pub fn check(&self, call: &Call) -> Result<(), Denied> {
        let mut worst = match self.root.check(call) {
            Ok(()) => return Ok(()),
            Err(d) => d,
        };
        for s in &self.selectors {
            match s.check(call) {
                Ok(()) => return Ok(()),
                Err(d) if d > worst => worst = d,
                Err(_) => {}
            }
        }
        Err(worst)
    }

    /// The user as ACL LIST shows it (without the leading `user name`).
    pub fn describe(&self) -> String {
        let mut out = vec![if self.enabled { "on" } else { "off" }.to_string()];
        if self.nopass {
            out.push("nopass".into());
        }
        match self.sanitize {
            Some(true) => out.push("sanitize-payload".into()),
            Some(false) => out.push("skip-sanitize-payload".into()),
            None => {}
        }
        out.extend(self.passwords.iter().map(|h| format!("#{h}")));
        self.root.describe(&mut out);
        for s in &self.selectors {
            let mut inner = Vec::new();
            s.describe(&mut inner);
            out.push(format!("({})", inner.join(" ")));
        }
        out.join(" ")
    }

    /// ACL GETUSER's flags.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize {
            Some(true) => f.push("sanitize-payload"),
            Some(false) => f.push("skip-sanitize-payload"),
            None => {}
        }
        f
    }

    pub fn passwords(&self) -> &[String] {
        &self.passwords
    }

    /// ACL GETUSER's commands, keys and channels of the root selector.
    pub fn root_fields(&self) -> [(String, String); 3] {
        self.root.fields()
    }

    /// ACL GETUSER's selectors.
    pub fn selector_fields(&self) -> Vec<[(String, String); 3]> {
        self.selectors.iter().map(Selector::fields).collect()
    }

    /// The row this user is stored as: its ACL LIST description, which [`User::decode`]
    /// reads back rule by rule.
    pub fn encode(&self) -> Bytes {
        Bytes::from(self.describe().into_bytes())
    }

    /// A user from its row. Rules are replayed as stored: a row this build cannot read gives
    /// `None` (the user is then treated as absent, never as allowed more).
    pub fn decode(name: &str, row: &[u8]) -> Option<User> {
        let mut u = User::new(name);
        let words = split_words(row);
        for op in merge_selectors(&words).ok()? {
            u.apply(&op).ok()?;
        }
        Some(u)
    }
}

fn split_words(row: &[u8]) -> Vec<Bytes> {
    row.split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .map(Bytes::copy_from_slice)
        .collect()
}

/// Joins a selector given over several arguments (`(~x*` `+get)`) into one, as Redis does.
fn merge_selectors(rules: &[Bytes]) -> Result<Vec<Bytes>, String> {
    let mut out = Vec::new();
    let mut open: Option<Vec<u8>> = None;
    for r in rules {
        match open.as_mut() {
            Some(buf) => {
                buf.push(b' ');
                buf.extend_from_slice(r);
                if r.ends_with(b")") {
                    out.push(Bytes::from(open.take().unwrap_or_default()));
                }
            }
            None if r.starts_with(b"(") && !r.ends_with(b")") => open = Some(r.to_vec()),
            None => out.push(r.clone()),
        }
    }
    if open.is_some() {
        return Err("ERR Unmatched parenthesis in acl selector starting at '('.".into());
    }
    Ok(out)
}

thread_local! {
    /// The user a script running on this thread runs as (see [`as_user`]).
    static SCRIPT_USER: std::cell::RefCell<Option<std::sync::Arc<User>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` (a script's run on the connection's node) with `user` as the user its
/// `redis.call`s and `redis.acl_check_cmd` are checked against. A script applied from an
/// entry runs with none: its client's node checked it in this first run, and apply must not
/// depend on who sent the entry.
pub fn as_user<R>(user: &std::sync::Arc<User>, f: impl FnOnce() -> R) -> R {
    if user.unrestricted() {
        return f();
    }
    let old = SCRIPT_USER.with(|u| u.replace(Some(user.clone())));
    let r = f();
    SCRIPT_USER.with(|u| *u.borrow_mut() = old);
    r
}

/// The user the script running on this thread runs as, if it is restricted.
pub fn script_user() -> Option<std::sync::Arc<User>> {
    SCRIPT_USER.with(|u| u.borrow().clone())
}

/// Raised by apply whenever it changed a user (or a snapshot replaced the state): each node's
/// connections reload their users once the change is visible (`published`).
pub struct Epoch {
    pending: AtomicBool,
    tx: tokio::sync::watch::Sender<u64>,
}

static EPOCH: LazyLock<Epoch> = LazyLock::new(|| Epoch {
    pending: AtomicBool::new(false),
    tx: tokio::sync::watch::channel(0).0,
});

/// Apply changed a user: connections reload theirs after this batch is visible.
pub fn changed() {
    EPOCH.pending.store(true, SeqCst);
}

/// The raft thread made an applied batch visible to readers: wakes the connections if a user
/// changed in it.
pub fn published() {
    if EPOCH.pending.swap(false, SeqCst) {
        EPOCH.tx.send_modify(|e| *e += 1);
    }
}

/// A snapshot replaced the state: every user may have changed.
pub fn replaced() {
    changed();
    published();
}

/// What a connection watches to learn that users changed.
pub fn subscribe() -> tokio::sync::watch::Receiver<u64> {
    EPOCH.tx.subscribe()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn user(rules: &[&str]) -> User {
        let mut u = User::new("t");
        u.apply_rules(&b(rules)).unwrap();
        u
    }

    fn cmds(rules: &[&str]) -> String {
        user(rules).root.commands()
    }

    #[test]
    fn table_is_sorted() {
        assert!(table::COMMANDS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn every_kvd_command_is_in_the_table() {
        for s in crate::cmd::TABLE {
            assert!(command(s.name).is_some(), "{}", s.name);
        }
    }

    #[test]
    fn command_rules_read_back_as_redis_writes_them() {
        // Each pair checked against redis-server 7.0.15.
        for (rules, want) in [
            ("+@read +get", "-@all +@read"),
            ("+get +@read", "-@all +@read"),
            ("-get", "-@all"),
            ("+@all +get", "+@all"),
            ("+@all -get -get", "+@all -get"),
            ("+@all -@read +get", "+@all -@read +get"),
            ("+@all -config|get", "+@all -config|get"),
            ("-config +config|get", "-@all +config|get"),
            ("+config|get -config", "-@all"),
            ("-@all +config|get -@admin", "-@all"),
            ("+@read -@read", "-@all"),
            ("+@all -@all +get", "-@all +get"),
            ("+get -@read +@read", "-@all +@read"),
            ("+config|get +config|set -config|get", "-@all +config|set"),
            (
                "+config -config|get +config|set",
                "-@all +config -config|get",
            ),
            ("+select|0 +select|1 +select|0", "-@all +select|0 +select|1"),
            ("+select|0 -@all +@connection", "-@all +@connection"),
            ("+@all +select|0", "+@all"),
            (
                "+@all ~* -@string +incr -debug +debug|digest",
                "+@all -@string +incr -debug +debug|digest",
            ),
        ] {
            let words: Vec<&str> = rules.split(' ').collect();
            assert_eq!(cmds(&words), want, "{rules}");
        }
    }

    #[test]
    fn setuser_errors_are_redis_texts() {
        let mut u = User::new("t");
        let err = |u: &mut User, r: &str| u.apply_rules(&b(&[r])).unwrap_err();
        assert_eq!(
            err(&mut u, "foo"),
            "ERR Error in ACL SETUSER modifier 'foo': Syntax error"
        );
        assert_eq!(
            err(&mut u, "-select|0"),
            "ERR Error in ACL SETUSER modifier '-select|0': Unknown command or category name in ACL"
        );
        assert!(err(&mut u, "+config|get|x").contains("first-arg of a subcommand"));
        assert!(err(&mut u, "#abc").contains("exactly 64 characters"));
        assert!(err(&mut u, "<nope").contains("does not exist"));
    }

    #[test]
    fn an_empty_rule_and_a_pattern_less_percent_rule_are_taken_as_redis_takes_them() {
        // redis-server 7.0.15: `ACL SETUSER y %R` is OK and lists `%R~`; `''` changes nothing.
        assert_eq!(user(&["%R", ""]).describe(), "off %R~ resetchannels -@all");
        assert_eq!(user(&["%W~"]).describe(), "off %W~ resetchannels -@all");
    }

    #[test]
    fn describe_and_decode_round_trip() {
        let u = user(&[
            "on",
            ">123",
            "~x*",
            "%R~r*",
            "&ch*",
            "+@scripting",
            "+set",
            "(~y*",
            "+get)",
        ]);
        assert_eq!(
            u.describe(),
            "on #a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3 ~x* %R~r* \
             resetchannels &ch* -@all +@scripting +set (~y* resetchannels -@all +get)"
        );
        assert_eq!(User::decode("t", &u.encode()), Some(u.clone()));
        assert!(u.accepts(b"123"));
        assert!(!u.accepts(b"12"));
        assert_eq!(User::builtin_default().describe(), "on nopass ~* &* +@all");
    }

    #[test]
    fn checks() {
        let u = user(&[
            "on",
            "nopass",
            "~x*",
            "+set",
            "+get",
            "+client|id",
            "&c*",
            "+publish",
        ]);
        let call = |name: &'static str, args: &[&str]| {
            let argv = b(args);
            let keys = if name == "set" || name == "get" {
                vec![argv[1].clone()]
            } else {
                vec![]
            };
            u.check(&Call {
                name,
                argv: &argv,
                keys,
            })
        };
        assert_eq!(call("get", &["get", "xa"]), Ok(()));
        assert_eq!(
            call("get", &["get", "ya"]),
            Err(Denied::Key(Bytes::from_static(b"ya")))
        );
        assert_eq!(
            call("hget", &["hget", "x", "f"]),
            Err(Denied::Command("hget".into()))
        );
        assert_eq!(call("client", &["client", "ID"]), Ok(()));
        assert_eq!(
            call("client", &["client", "LIST"]),
            Err(Denied::Command("client|list".into()))
        );
        assert_eq!(call("publish", &["publish", "cx", "m"]), Ok(()));
        assert!(call("publish", &["publish", "dx", "m"]).is_err());
    }
}
