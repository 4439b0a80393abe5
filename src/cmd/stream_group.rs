//! Stream consumer-group commands: XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM.
//!
//! A group, each of its consumers and each pending entry are rows (`kv::stream`), so acking
//! or claiming one entry touches a few rows whatever the size of the pending list. Every time
//! written (delivery times, consumers' seen-time, IDLE) is the applying entry's time
//! (`w.now_ms()`); XPENDING and XINFO, as reads, compute idle times with the node's clock.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::stream::{
    advance_read, check_sub, entry_reply, id_reply, open, parse_id, parse_read, range_start,
    sub_syntax_error,
};
use super::{CmdError, CmdResult, Kind, Spec, is, lossy, not_an_integer, parse_i64, syntax_error};
use crate::kv::stream::{Consumer, Group, Nack, Stream, StreamId};
use crate::kv::{ApplyCtx, KeyRead, WriteView};
use crate::resp::Reply;

/// One group being changed by one command, with the consumers it touched (written by `save`).
struct Touch {
    g: Group,
    consumers: BTreeMap<Bytes, Consumer>,
}

impl Touch {
    fn new(g: Group) -> Touch {
        Touch {
            g,
            consumers: BTreeMap::new(),
        }
    }

    /// The consumer `name`, loaded once per command (`None`: no such consumer).
    fn get(
        &mut self,
        r: &dyn KeyRead,
        s: &Stream,
        name: &[u8],
    ) -> Result<Option<&mut Consumer>, CmdError> {
        if !self.consumers.contains_key(name) {
            match s.consumer(r, &self.g.name, name)? {
                Some(c) => {
                    self.consumers.insert(Bytes::copy_from_slice(name), c);
                }
                None => return Ok(None),
            }
        }
        Ok(self.consumers.get_mut(name))
    }

    /// Looks a consumer up, refreshing its seen-time, or creates it (Redis's
    /// `streamLookupConsumer` then `streamCreateConsumer`); true if created.
    fn seen(&mut self, w: &mut WriteView, s: &Stream, name: &[u8]) -> Result<bool, CmdError> {
        let now = w.now_ms();
        if let Some(c) = self.get(w, s, name)? {
            c.seen_time = now;
            return Ok(false);
        }
        self.create(w, s, name);
        Ok(true)
    }

    fn create(&mut self, w: &mut WriteView, s: &Stream, name: &[u8]) {
        let c = Consumer {
            name: Bytes::copy_from_slice(name),
            seen_time: w.now_ms(),
            pel: 0,
        };
        self.consumers.insert(c.name.clone(), c);
        self.g.consumers += 1;
        w.notify('t', "xgroup-createconsumer", s.key());
    }

    fn add_pel(
        &mut self,
        r: &dyn KeyRead,
        s: &Stream,
        name: &[u8],
        delta: i64,
    ) -> Result<(), CmdError> {
        if let Some(c) = self.get(r, s, name)? {
            c.pel = c.pel.saturating_add_signed(delta);
        }
        Ok(())
    }

    /// Drops a pending entry from the group and its consumer.
    fn ack(
        &mut self,
        w: &mut WriteView,
        s: &Stream,
        id: StreamId,
        n: &Nack,
    ) -> Result<(), CmdError> {
        s.delete_nack(w, &self.g.name, id, &n.consumer)?;
        self.add_pel(w, s, &n.consumer, -1)?;
        self.g.pel = self.g.pel.saturating_sub(1);
        Ok(())
    }

    /// Gives the pending entry `id` (`old`: as it is, if it is) to `consumer` as `new`.
    fn assign(
        &mut self,
        w: &mut WriteView,
        s: &Stream,
        id: StreamId,
        old: Option<&Nack>,
        new: &Nack,
    ) -> Result<(), CmdError> {
        match old {
            Some(o) => {
                s.delete_consumer_pel(w, &self.g.name, id, &o.consumer)?;
                self.add_pel(w, s, &o.consumer, -1)?;
            }
            None => self.g.pel += 1,
        }
        s.put_nack(w, &self.g.name, id, new);
        self.add_pel(w, s, &new.consumer, 1)
    }

    fn save(self, w: &mut WriteView, s: &Stream) {
        s.put_group(w, &self.g);
        for c in self.consumers.values() {
            s.put_consumer(w, &self.g.name, c);
        }
    }
}

fn nogroup(key: &[u8], group: &[u8], tail: &str) -> Reply {
    Reply::error(format!(
        "NOGROUP No such key '{}' or consumer group '{}'{tail}",
        lossy(key, 1 << 20),
        lossy(group, 1 << 20)
    ))
}

pub const XGROUP: Spec = Spec {
    name: "xgroup",
    arity: -2,
    kind: Kind::Write {
        prepare: Ok,
        apply: xgroup,
    },
    flags: &[],
    keys: (2, 2, 1),
};

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

/// XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER|HELP, as Redis's `xgroupCommand`.
fn xgroup(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let sub = match check_sub(
        argv,
        "xgroup",
        &[
            ("create", -5),
            ("setid", -5),
            ("destroy", 4),
            ("createconsumer", 5),
            ("delconsumer", 5),
            ("help", 2),
        ],
    ) {
        Ok(s) => s,
        Err(e) => return Ok(e),
    };
    if sub == "help" {
        return Ok(Reply::Array(
            XGROUP_HELP.iter().map(|l| Reply::status(*l)).collect(),
        ));
    }
    let syntax = || sub_syntax_error(&argv[1], "XGROUP");
    let mut mkstream = false;
    let mut entries_read: i64 = -1;
    let mut i = 5;
    while i < argv.len() {
        if sub == "create" && is(&argv[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if (sub == "create" || sub == "setid")
            && is(&argv[i], "entriesread")
            && i + 1 < argv.len()
        {
            entries_read = parse_i64(&argv[i + 1]).ok_or_else(not_an_integer)?;
            if entries_read < 0 && entries_read != -1 {
                return Ok(Reply::error(
                    "ERR value for ENTRIESREAD must be positive or -1",
                ));
            }
            i += 2;
        } else {
            return Ok(syntax());
        }
    }
    let key = &argv[2];
    let name = &argv[3];
    let stream = open(w, key)?;
    let group = match &stream {
        Some(s) => s.group(w, name)?,
        None => None,
    };
    if !mkstream {
        if stream.is_none() {
            return Ok(Reply::error(
                "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
            ));
        }
        if group.is_none() && matches!(sub, "setid" | "createconsumer" | "delconsumer") {
            return Ok(Reply::error(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                lossy(name, 1 << 20),
                lossy(key, 1 << 20)
            )));
        }
    }
    let argc = argv.len();
    match sub {
        "create" if (5..=8).contains(&argc) => {
            let id = if argv[4].as_ref() == b"$" {
                stream.as_ref().map_or(StreamId::MIN, |s| s.c.last_id)
            } else {
                match parse_id(&argv[4], 0, true) {
                    Ok(id) => id,
                    Err(e) => return Ok(e),
                }
            };
            let mut s = match stream {
                Some(s) => s,
                None => Stream::create(w, key),
            };
            if group.is_some() {
                return Ok(Reply::error("BUSYGROUP Consumer Group name already exists"));
            }
            s.put_group(
                w,
                &Group {
                    name: name.clone(),
                    last_id: id,
                    entries_read,
                    pel: 0,
                    consumers: 0,
                },
            );
            s.c.groups += 1;
            s.save(w)?;
            w.notify('t', "xgroup-create", key);
            Ok(Reply::ok())
        }
        "setid" if argc == 5 || argc == 7 => {
            let (Some(s), Some(mut g)) = (stream, group) else {
                return Ok(syntax());
            };
            let id = if argv[4].as_ref() == b"$" {
                s.c.last_id
            } else {
                match parse_id(&argv[4], 0, false) {
                    Ok(id) => id,
                    Err(e) => return Ok(e),
                }
            };
            g.last_id = id;
            g.entries_read = entries_read;
            s.put_group(w, &g);
            w.notify('t', "xgroup-setid", key);
            Ok(Reply::ok())
        }
        "destroy" if argc == 4 => {
            let (Some(mut s), Some(g)) = (stream, group) else {
                return Ok(Reply::Integer(0));
            };
            s.delete_group(w, &g.name)?;
            s.c.groups = s.c.groups.saturating_sub(1);
            s.save(w)?;
            w.notify('t', "xgroup-destroy", key);
            Ok(Reply::Integer(1))
        }
        "createconsumer" if argc == 5 => {
            let (Some(s), Some(g)) = (stream, group) else {
                return Ok(syntax());
            };
            let mut t = Touch::new(g);
            if t.get(w, &s, &argv[4])?.is_some() {
                return Ok(Reply::Integer(0));
            }
            t.create(w, &s, &argv[4]);
            t.save(w, &s);
            Ok(Reply::Integer(1))
        }
        "delconsumer" if argc == 5 => {
            let (Some(s), Some(mut g)) = (stream, group) else {
                return Ok(syntax());
            };
            let Some(c) = s.consumer(w, &g.name, &argv[4])? else {
                return Ok(Reply::Integer(0));
            };
            let mut ids = Vec::new();
            s.consumer_pel_range(w, &g.name, &c.name, StreamId::MIN, &mut |id| {
                ids.push(id);
                true
            })?;
            for id in &ids {
                s.delete_nack(w, &g.name, *id, &c.name)?;
            }
            s.delete_consumer_row(w, &g.name, &c.name)?;
            g.pel = g.pel.saturating_sub(ids.len() as u64);
            g.consumers = g.consumers.saturating_sub(1);
            s.put_group(w, &g);
            w.notify('t', "xgroup-delconsumer", key);
            Ok(Reply::Integer(ids.len() as i64))
        }
        _ => Ok(syntax()),
    }
}

pub const XREADGROUP: Spec = Spec {
    name: "xreadgroup",
    arity: -7,
    kind: Kind::Write {
        prepare: Ok,
        apply: xreadgroup,
    },
    flags: &["blocking"],
    keys: (0, 0, 0),
};

/// XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS key... id...
fn xreadgroup(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let args = match parse_read(argv, true) {
        Ok(a) => a,
        Err(e) => return Ok(e),
    };
    let Some((group_name, consumer)) = args.group.clone() else {
        return Ok(syntax_error());
    };
    let keys = &argv[args.streams_at..args.streams_at + args.streams];
    let id_args = &argv[args.streams_at + args.streams..];
    // Everything is checked before anything changes.
    let mut plan = Vec::with_capacity(keys.len());
    for (key, arg) in keys.iter().zip(id_args) {
        let s = open(w, key)?;
        let g = match &s {
            Some(s) => s.group(w, &group_name)?,
            None => None,
        };
        let (Some(s), Some(g)) = (s, g) else {
            return Ok(nogroup(
                key,
                &group_name,
                " in XREADGROUP with GROUP option",
            ));
        };
        let from = match arg.as_ref() {
            b"$" => {
                return Ok(Reply::error(
                    "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
                ));
            }
            b">" => None,
            _ => match parse_id(arg, 0, true) {
                Ok(id) => Some(id),
                Err(e) => return Ok(e),
            },
        };
        plan.push((key, s, g, from));
    }
    let now = w.now_ms();
    let mut out = Vec::new();
    for (key, s, g, from) in plan {
        // Groups may repeat across keys only with the same key twice: reload to see changes.
        let g = s.group(w, &g.name)?.unwrap_or(g);
        let mut t = Touch::new(g);
        let entries = match from {
            Some(after) => {
                t.seen(w, &s, &consumer)?;
                // As Redis: the history starts after the given ID.
                let start = after.next().unwrap_or(StreamId::MAX);
                let mut ids = Vec::new();
                s.consumer_pel_range(w, &t.g.name, &consumer, start, &mut |id| {
                    ids.push(id);
                    args.count == 0 || (ids.len() as u64) < args.count
                })?;
                let mut entries = Vec::with_capacity(ids.len());
                for id in ids {
                    match s.entry(w, id)? {
                        Some(v) => {
                            entries.push(entry_reply(id, &v)?);
                            if let Some(mut n) = s.nack(w, &t.g.name, id)? {
                                n.delivery_time = now;
                                n.delivery_count += 1;
                                s.put_nack(w, &t.g.name, id, &n);
                            }
                        }
                        None => entries.push(Reply::Array(vec![id_reply(id), Reply::NilArray])),
                    }
                }
                entries
            }
            None => {
                let top = s.edge(w, true)?.map(|(id, _)| id);
                let Some(start) = top.filter(|&top| top > t.g.last_id).and(t.g.last_id.next())
                else {
                    continue;
                };
                t.seen(w, &s, &consumer)?;
                let mut found = Vec::new();
                s.range(w, start, StreamId::MAX, false, &mut |id, v| {
                    found.push((id, Bytes::copy_from_slice(v)));
                    args.count == 0 || (found.len() as u64) < args.count
                })?;
                let mut entries = Vec::with_capacity(found.len());
                for (id, v) in found {
                    if id > t.g.last_id {
                        t.g.entries_read = advance_read(&s.c, t.g.entries_read, id);
                        t.g.last_id = id;
                    }
                    entries.push(entry_reply(id, &v)?);
                    if !args.noack {
                        let old = s.nack(w, &t.g.name, id)?;
                        let new = Nack {
                            delivery_time: now,
                            delivery_count: 1,
                            consumer: consumer.clone(),
                        };
                        t.assign(w, &s, id, old.as_ref(), &new)?;
                    }
                }
                entries
            }
        };
        t.save(w, &s);
        out.push((Reply::Bulk(key.clone()), Reply::Array(entries)));
    }
    Ok(if out.is_empty() {
        Reply::NilArray
    } else {
        Reply::PairMap(out)
    })
}

pub const XACK: Spec = Spec {
    name: "xack",
    arity: -4,
    kind: Kind::Write {
        prepare: Ok,
        apply: xack,
    },
    flags: &["fast"],
    keys: (1, 1, 1),
};

fn xack(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let Some(s) = open(w, &argv[1])? else {
        return Ok(Reply::Integer(0));
    };
    let Some(g) = s.group(w, &argv[2])? else {
        return Ok(Reply::Integer(0));
    };
    let mut ids = Vec::with_capacity(argv.len() - 3);
    for a in &argv[3..] {
        match parse_id(a, 0, true) {
            Ok(id) => ids.push(id),
            Err(e) => return Ok(e),
        }
    }
    let mut t = Touch::new(g);
    let mut acked = 0;
    for id in ids {
        if let Some(n) = s.nack(w, &t.g.name, id)? {
            t.ack(w, &s, id, &n)?;
            acked += 1;
        }
    }
    if acked > 0 {
        t.save(w, &s);
    }
    Ok(Reply::Integer(acked))
}

pub const XPENDING: Spec = Spec {
    name: "xpending",
    arity: -3,
    kind: Kind::Read(xpending),
    flags: &[],
    keys: (1, 1, 1),
};

/// XPENDING key group [[IDLE ms] start end count [consumer]]
fn xpending(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let argc = argv.len();
    if argc != 3 && !(6..=9).contains(&argc) {
        return Ok(syntax_error());
    }
    let mut range = None;
    if argc >= 6 {
        let mut at = 3;
        let mut min_idle = 0;
        if is(&argv[3], "idle") {
            min_idle = parse_i64(&argv[4]).ok_or_else(not_an_integer)?;
            if argc < 8 {
                return Ok(syntax_error());
            }
            at += 2;
        }
        let Some(count_arg) = argv.get(at + 2) else {
            return Ok(syntax_error());
        };
        let count = parse_i64(count_arg).ok_or_else(not_an_integer)?.max(0);
        let start = match range_start(&argv[at]) {
            Ok(id) => id,
            Err(e) => return Ok(e),
        };
        let end = match super::stream::range_end(&argv[at + 1]) {
            Ok(id) => id,
            Err(e) => return Ok(e),
        };
        range = Some((min_idle, start, end, count as u64, argv.get(at + 3)));
    }
    let s = open(r, &argv[1])?;
    let g = match &s {
        Some(s) => s.group(r, &argv[2])?,
        None => None,
    };
    let (Some(s), Some(g)) = (s, g) else {
        return Ok(nogroup(&argv[1], &argv[2], ""));
    };
    let Some((min_idle, start, end, mut count, consumer)) = range else {
        let Some((first, last)) = s.pel_edges(r, &g.name)? else {
            return Ok(Reply::Array(vec![
                Reply::Integer(g.pel as i64),
                Reply::Nil,
                Reply::Nil,
                Reply::NilArray,
            ]));
        };
        let owners = s
            .consumers(r, &g.name)?
            .into_iter()
            .filter(|c| c.pel > 0)
            .map(|c| Reply::Array(vec![Reply::Bulk(c.name), Reply::bulk(c.pel.to_string())]))
            .collect();
        return Ok(Reply::Array(vec![
            Reply::Integer(g.pel as i64),
            id_reply(first),
            id_reply(last),
            Reply::Array(owners),
        ]));
    };
    let now = r.now_ms();
    let mut out = Vec::new();
    let mut visit = |id: StreamId, n: &Nack| {
        if count == 0 || id > end {
            return false;
        }
        if min_idle != 0 && now.saturating_sub(n.delivery_time) < min_idle {
            return true;
        }
        count -= 1;
        out.push(Reply::Array(vec![
            id_reply(id),
            Reply::Bulk(n.consumer.clone()),
            Reply::Integer(now.saturating_sub(n.delivery_time).max(0)),
            Reply::Integer(n.delivery_count as i64),
        ]));
        true
    };
    match consumer {
        Some(name) => {
            if s.consumer(r, &g.name, name)?.is_none() {
                return Ok(Reply::Array(Vec::new()));
            }
            let mut ids = Vec::new();
            s.consumer_pel_range(r, &g.name, name, start, &mut |id| {
                if id > end {
                    return false;
                }
                ids.push(id);
                true
            })?;
            for id in ids {
                if let Some(n) = s.nack(r, &g.name, id)?
                    && !visit(id, &n)
                {
                    break;
                }
            }
        }
        None => s.pel_range(r, &g.name, start, &mut |id, n| visit(id, &n))?,
    }
    Ok(Reply::Array(out))
}

pub const XCLAIM: Spec = Spec {
    name: "xclaim",
    arity: -6,
    kind: Kind::Write {
        prepare: Ok,
        apply: xclaim,
    },
    flags: &["fast"],
    keys: (1, 1, 1),
};

/// XCLAIM key group consumer min-idle id... [IDLE ms] [TIME ms] [RETRYCOUNT n] [FORCE]
/// [JUSTID] [LASTID id]. "Now" is the entry's time.
fn xclaim(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let s = open(w, &argv[1])?;
    let g = match &s {
        Some(s) => s.group(w, &argv[2])?,
        None => None,
    };
    let (Some(s), Some(g)) = (s, g) else {
        return Ok(nogroup(&argv[1], &argv[2], ""));
    };
    let bad = |what: &str| Reply::error(format!("ERR Invalid {what} argument for XCLAIM"));
    let Some(min_idle) = parse_i64(&argv[4]) else {
        return Ok(bad("min-idle-time"));
    };
    let min_idle = min_idle.max(0);
    let mut ids = Vec::new();
    let mut j = 5;
    while j < argv.len() {
        match parse_id(&argv[j], 0, true) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let now = w.now_ms();
    let (mut force, mut justid) = (false, false);
    let mut retry: i64 = -1;
    let mut delivery: i64 = -1;
    let mut last_id = StreamId::MIN;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let opt = &argv[j];
        if is(opt, "force") {
            force = true;
        } else if is(opt, "justid") {
            justid = true;
        } else if is(opt, "idle") && more > 0 {
            j += 1;
            let Some(idle) = parse_i64(&argv[j]) else {
                return Ok(bad("IDLE option"));
            };
            delivery = now.saturating_sub(idle);
        } else if is(opt, "time") && more > 0 {
            j += 1;
            let Some(t) = parse_i64(&argv[j]) else {
                return Ok(bad("TIME option"));
            };
            delivery = t;
        } else if is(opt, "retrycount") && more > 0 {
            j += 1;
            let Some(n) = parse_i64(&argv[j]) else {
                return Ok(bad("RETRYCOUNT option"));
            };
            retry = n;
        } else if is(opt, "lastid") && more > 0 {
            j += 1;
            last_id = match parse_id(&argv[j], 0, true) {
                Ok(id) => id,
                Err(e) => return Ok(e),
            };
        } else {
            return Ok(Reply::error(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                lossy(opt, 1 << 20)
            )));
        }
        j += 1;
    }
    let mut t = Touch::new(g);
    if last_id > t.g.last_id {
        t.g.last_id = last_id;
    }
    if delivery == -1 || delivery < 0 || delivery > now {
        delivery = now;
    }
    let consumer = argv[3].clone();
    let mut claimed_consumer = false;
    let mut out = Vec::new();
    for id in ids {
        let nack = s.nack(w, &t.g.name, id)?;
        let Some(entry) = s.entry(w, id)? else {
            if let Some(n) = nack {
                t.ack(w, &s, id, &n)?;
            }
            continue;
        };
        // FORCE creates the pending entry, owned by nobody yet (min-idle does not apply).
        let (old, base) = match nack {
            Some(n) => {
                if min_idle > 0 && now.saturating_sub(n.delivery_time) < min_idle {
                    continue;
                }
                let count = n.delivery_count;
                (Some(n), count)
            }
            None if force => (None, 1),
            None => continue,
        };
        if !claimed_consumer {
            t.seen(w, &s, &consumer)?;
            claimed_consumer = true;
        }
        let delivery_count = if retry >= 0 {
            retry as u64
        } else if !justid {
            base + 1
        } else {
            base
        };
        let new = Nack {
            delivery_time: delivery,
            delivery_count,
            consumer: consumer.clone(),
        };
        t.assign(w, &s, id, old.as_ref(), &new)?;
        out.push(if justid {
            id_reply(id)
        } else {
            entry_reply(id, &entry)?
        });
    }
    t.save(w, &s);
    Ok(Reply::Array(out))
}

pub const XAUTOCLAIM: Spec = Spec {
    name: "xautoclaim",
    arity: -6,
    kind: Kind::Write {
        prepare: Ok,
        apply: xautoclaim,
    },
    flags: &["fast"],
    keys: (1, 1, 1),
};

/// XAUTOCLAIM key group consumer min-idle start [COUNT n] [JUSTID]: the cursor, the claimed
/// entries, and the IDs of pending entries whose entry was gone (removed from the list).
fn xautoclaim(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let Some(min_idle) = parse_i64(&argv[4]) else {
        return Ok(Reply::error(
            "ERR Invalid min-idle-time argument for XAUTOCLAIM",
        ));
    };
    let min_idle = min_idle.max(0);
    let start = match range_start(&argv[5]) {
        Ok(id) => id,
        Err(e) => return Ok(e),
    };
    let mut count: u64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if is(&argv[j], "count") && more > 0 {
            let max = i64::MAX / 16;
            match parse_i64(&argv[j + 1]) {
                Some(n) if (1..=max).contains(&n) => count = n as u64,
                _ => return Ok(Reply::error("ERR COUNT must be > 0")),
            }
            j += 1;
        } else if is(&argv[j], "justid") {
            justid = true;
        } else {
            return Ok(syntax_error());
        }
        j += 1;
    }
    let s = open(w, &argv[1])?;
    let g = match &s {
        Some(s) => s.group(w, &argv[2])?,
        None => None,
    };
    let (Some(s), Some(g)) = (s, g) else {
        return Ok(nogroup(&argv[1], &argv[2], ""));
    };
    let now = w.now_ms();
    let consumer = argv[3].clone();
    let mut t = Touch::new(g);
    let mut attempts = count.saturating_mul(10);
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut have_consumer = false;
    let mut cursor = StreamId::MIN;
    let mut from = Some(start);
    // The pending list in batches (it changes as we go); stops when count or attempts run out.
    'outer: while let Some(at) = from {
        let mut batch = Vec::new();
        s.pel_range(w, &t.g.name, at, &mut |id, n| {
            batch.push((id, n));
            batch.len() < 256
        })?;
        let full = batch.len() == 256;
        from = batch.last().and_then(|(id, _)| id.next()).filter(|_| full);
        for (id, n) in batch {
            if attempts == 0 || count == 0 {
                cursor = id;
                break 'outer;
            }
            attempts -= 1;
            let Some(entry) = s.entry(w, id)? else {
                t.ack(w, &s, id, &n)?;
                deleted.push(id_reply(id));
                count -= 1;
                continue;
            };
            if min_idle > 0 && now.saturating_sub(n.delivery_time) < min_idle {
                continue;
            }
            if !have_consumer {
                t.seen(w, &s, &consumer)?;
                have_consumer = true;
            }
            let new = Nack {
                delivery_time: now,
                delivery_count: n.delivery_count + u64::from(!justid),
                consumer: consumer.clone(),
            };
            t.assign(w, &s, id, Some(&n), &new)?;
            claimed.push(if justid {
                id_reply(id)
            } else {
                entry_reply(id, &entry)?
            });
            count -= 1;
        }
    }
    t.save(w, &s);
    Ok(Reply::Array(vec![
        id_reply(cursor),
        Reply::Array(claimed),
        Reply::Array(deleted),
    ]))
}
