//! Cluster commands: JOIN and LEAVE (replicated changes to the member list), CLUSTER and ROLE
//! (this node's view of the members).
//!
//! JOIN and LEAVE only change the member list; the leader then changes the raft configuration
//! to match, one step at a time (see `raft::membership`). Both can be sent to any member: like
//! every write, the proposal is forwarded to the leader.

use bytes::Bytes;

use super::{Kind, Spec, is, lossy};
use crate::config::{check_name, parse_addr};
use crate::kv::{ApplyCtx, WriteView};
use crate::raft::membership::{self, Member, MemberState, node_id};
use crate::resp::Reply;
use crate::session::Session;

pub const JOIN: Spec = Spec {
    name: "join",
    arity: -3,
    kind: Kind::Write {
        prepare: prepare_join,
        apply: join,
    },
    flags: &["admin"],
    keys: (0, 0, 0),
};

struct JoinArgs {
    name: String,
    raft_addr: std::net::SocketAddr,
    client_addr: Option<std::net::SocketAddr>,
}

fn parse_join(argv: &[Bytes]) -> Result<JoinArgs, Reply> {
    if argv.len() > 4 {
        return Err(super::wrong_arity("join"));
    }
    fn text(b: &Bytes) -> Result<&str, Reply> {
        std::str::from_utf8(b).map_err(|_| Reply::error("ERR invalid argument"))
    }
    let name = text(&argv[1])?.to_string();
    check_name(&name).map_err(|e| Reply::error(format!("ERR {e}")))?;
    let raft_addr = parse_addr("raft address", text(&argv[2])?)
        .map_err(|e| Reply::error(format!("ERR {e}")))?;
    let client_addr = match argv.get(3) {
        Some(a) => Some(
            parse_addr("client address", text(a)?).map_err(|e| Reply::error(format!("ERR {e}")))?,
        ),
        None => None,
    };
    Ok(JoinArgs {
        name,
        raft_addr,
        client_addr,
    })
}

fn prepare_join(argv: Vec<Bytes>) -> Result<Vec<Bytes>, Reply> {
    parse_join(&argv)?;
    Ok(argv)
}

/// JOIN name raft-addr [client-addr]: admits a new member. Repeating a JOIN for a member with
/// the same address is a no-op (`--join` retries); any other reuse of a name is refused, and so
/// is the name of a removed member.
fn join(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> super::CmdResult {
    let a = match parse_join(argv) {
        Ok(a) => a,
        Err(e) => return Ok(e),
    };
    let members = membership::load_all(&w.members)?;
    if let Some(m) = members.iter().find(|m| m.name == a.name) {
        return Ok(match m.state {
            MemberState::Removed => Reply::error(format!(
                "ERR node name '{}' belonged to a removed member and cannot be reused",
                a.name
            )),
            MemberState::Leaving => {
                Reply::error(format!("ERR member '{}' is leaving the cluster", a.name))
            }
            MemberState::Active if m.raft_addr == a.raft_addr => {
                if m.client_addr.is_none() && a.client_addr.is_some() {
                    let updated = Member {
                        client_addr: a.client_addr,
                        ..m.clone()
                    };
                    membership::save(&mut w.members, &updated)?;
                }
                Reply::ok()
            }
            MemberState::Active => Reply::error(format!(
                "ERR node name '{}' is already used by another member ({})",
                a.name, m.raft_addr
            )),
        });
    }
    let id = node_id(&a.name);
    if let Some(m) = members.iter().find(|m| m.id == id) {
        return Ok(Reply::error(format!(
            "ERR node name '{}' maps to the same raft id as member '{}': choose another name",
            a.name, m.name
        )));
    }
    if let Some(m) = members
        .iter()
        .find(|m| m.raft_addr == a.raft_addr && m.state != MemberState::Removed)
    {
        return Ok(Reply::error(format!(
            "ERR raft address {} is already used by member '{}'",
            a.raft_addr, m.name
        )));
    }
    let m = Member {
        name: a.name,
        id,
        raft_addr: a.raft_addr,
        client_addr: a.client_addr,
        state: MemberState::Active,
    };
    membership::save(&mut w.members, &m)?;
    Ok(Reply::ok())
}

pub const LEAVE: Spec = Spec {
    name: "leave",
    arity: 2,
    kind: Kind::Write {
        prepare: Ok,
        apply: leave,
    },
    flags: &["admin"],
    keys: (0, 0, 0),
};

/// REMOVE is LEAVE under the name some operators reach for first.
pub const REMOVE: Spec = Spec {
    name: "remove",
    ..LEAVE
};

/// LEAVE name: marks a member for removal; the leader takes it out of the configuration (handing
/// leadership over first if it is the one leaving).
fn leave(w: &mut WriteView, ctx: &ApplyCtx, argv: &[Bytes]) -> super::CmdResult {
    let name = lossy(&argv[1], 64);
    let members = membership::load_all(&w.members)?;
    let Some(m) = members.iter().find(|m| m.name == name) else {
        return Ok(Reply::error(format!("ERR no member named '{name}'")));
    };
    match m.state {
        MemberState::Removed => Ok(Reply::error(format!(
            "ERR member '{name}' was already removed"
        ))),
        MemberState::Leaving => Ok(Reply::ok()),
        MemberState::Active => {
            let voters = &ctx.conf_state.voters;
            let other_voters = voters.iter().filter(|&&v| v != m.id).count();
            if other_voters == 0 {
                return Ok(Reply::error(
                    "ERR cannot remove the last voter of the cluster",
                ));
            }
            // Not in the configuration yet (still joining): nothing to take out of it. If an
            // add is already in flight, the leader removes the node again once it lands.
            let in_conf = voters.contains(&m.id) || ctx.conf_state.learners.contains(&m.id);
            let updated = Member {
                state: if in_conf {
                    MemberState::Leaving
                } else {
                    MemberState::Removed
                },
                ..m.clone()
            };
            membership::save(&mut w.members, &updated)?;
            Ok(Reply::ok())
        }
    }
}

pub const CLUSTER: Spec = Spec {
    name: "cluster",
    arity: -2,
    kind: Kind::Local(cluster),
    flags: &["stale"],
    keys: (0, 0, 0),
};

/// CLUSTER MEMBERS | INFO | MYID | LEADER: this node's view, in forms a script can parse.
fn cluster(s: &mut Session, argv: &[Bytes]) -> Reply {
    let st = s.shared.raft.fresh_status();
    let sub = &argv[1];
    if argv.len() != 2 {
        return super::wrong_arity(&format!("cluster|{}", lossy(sub, 32).to_ascii_lowercase()));
    }
    if is(sub, "members") || is(sub, "nodes") {
        Reply::bulk(st.member_lines())
    } else if is(sub, "info") {
        Reply::bulk(st.info_lines())
    } else if is(sub, "myid") {
        Reply::bulk(st.name.clone())
    } else if is(sub, "leader") {
        match st.leader() {
            Some(l) => Reply::bulk(l.member.name.clone()),
            None => Reply::Nil,
        }
    } else {
        Reply::error(format!(
            "ERR unknown subcommand '{}'. Try CLUSTER MEMBERS, INFO, MYID or LEADER.",
            lossy(sub, 128)
        ))
    }
}

pub const ROLE: Spec = Spec {
    name: "role",
    arity: 1,
    kind: Kind::Local(role),
    flags: &["fast", "stale"],
    keys: (0, 0, 0),
};

/// Redis's ROLE shape: the leader answers like a master listing its replicas with their match
/// index; others like a replica naming the leader.
fn role(s: &mut Session, _: &[Bytes]) -> Reply {
    let st = s.shared.raft.fresh_status();
    if st.is_leader() {
        let replicas = st
            .members
            .iter()
            .filter(|m| m.member.id != st.id && m.member.state != MemberState::Removed)
            .map(|m| {
                let addr = m.member.client_addr.unwrap_or(m.member.raft_addr);
                Reply::Array(vec![
                    Reply::bulk(addr.ip().to_string()),
                    Reply::bulk(addr.port().to_string()),
                    Reply::bulk(m.matched.unwrap_or(0).to_string()),
                ])
            })
            .collect();
        return Reply::Array(vec![
            Reply::bulk("master"),
            Reply::Integer(st.applied as i64),
            Reply::Array(replicas),
        ]);
    }
    let (ip, port, state) = match st.leader_client_addr() {
        Some(a) => (a.ip().to_string(), a.port() as i64, "connected"),
        None => (String::new(), 0, "connect"),
    };
    Reply::Array(vec![
        Reply::bulk("slave"),
        Reply::bulk(ip),
        Reply::Integer(port),
        Reply::bulk(state),
        Reply::Integer(st.applied as i64),
    ])
}
