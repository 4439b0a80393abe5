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
use crate::raft::membership::{self, JoinRefusal, Member, MemberState, node_id};
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
    let members = membership::load_all(w.members()?)?;
    Ok(match admit(&members, a) {
        Ok(Some(m)) => {
            membership::save(w.members()?, &m)?;
            Reply::ok()
        }
        Ok(None) => Reply::ok(),
        Err(refusal) => refusal_reply(&refusal),
    })
}

/// Decides a JOIN against the member list: the record to save (a new member, or a known one
/// whose client address was not known), nothing to do (a repeated JOIN), or why not.
fn admit(members: &[Member], a: JoinArgs) -> Result<Option<Member>, JoinRefusal> {
    if let Some(m) = members.iter().find(|m| m.name == a.name) {
        return match m.state {
            MemberState::Removed => Err(JoinRefusal::NameRemoved { name: a.name }),
            MemberState::Leaving => Err(JoinRefusal::Leaving { name: a.name }),
            MemberState::Active if m.raft_addr == a.raft_addr => Ok((m.client_addr.is_none()
                && a.client_addr.is_some())
            .then(|| Member {
                client_addr: a.client_addr,
                ..m.clone()
            })),
            MemberState::Active => Err(JoinRefusal::NameTaken {
                name: a.name,
                raft_addr: m.raft_addr,
            }),
        };
    }
    let id = node_id(&a.name);
    if let Some(m) = members.iter().find(|m| m.id == id) {
        return Err(JoinRefusal::IdCollision {
            name: a.name,
            other: m.name.clone(),
        });
    }
    if let Some(m) = members
        .iter()
        .find(|m| m.raft_addr == a.raft_addr && m.state != MemberState::Removed)
    {
        return Err(JoinRefusal::RaftAddrTaken {
            raft_addr: a.raft_addr,
            member: m.name.clone(),
        });
    }
    Ok(Some(Member {
        name: a.name,
        id,
        raft_addr: a.raft_addr,
        client_addr: a.client_addr,
        state: MemberState::Active,
    }))
}

/// The error code a permanent JOIN refusal travels under (to a client, and to a node started
/// with `--join`, which reads it back with `JoinAnswer::from_reply`). One that may pass later
/// travels as `TRYAGAIN`.
const JOIN_REFUSED: &str = "JOINREFUSED";

fn refusal_reply(r: &JoinRefusal) -> Reply {
    let code = if r.is_permanent() {
        JOIN_REFUSED
    } else {
        "TRYAGAIN"
    };
    Reply::error(format!("{code} {r}"))
}

/// A JOIN's reply as the node that asked to join reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum JoinAnswer {
    /// Recorded in the member list: the leader adds the node to the configuration next.
    Accepted,
    /// Refused for good (see `JoinRefusal::is_permanent`): asking again cannot help.
    Refused(String),
    /// Not now (no leader, a member of that name leaving, the asked node not in a cluster
    /// itself...): ask again later.
    NotYet(String),
}

impl JoinAnswer {
    pub fn from_reply(reply: &Reply) -> JoinAnswer {
        match reply {
            Reply::Status(_) => JoinAnswer::Accepted,
            Reply::Error(e) => match e.strip_prefix(JOIN_REFUSED) {
                Some(reason) if reason.starts_with(' ') => {
                    JoinAnswer::Refused(reason.trim_start().to_string())
                }
                _ => JoinAnswer::NotYet(e.to_string()),
            },
            other => JoinAnswer::NotYet(format!("{other:?}")),
        }
    }
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
    let members = membership::load_all(w.members()?)?;
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
            membership::save(w.members()?, &updated)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, port: u16, state: MemberState) -> Member {
        Member {
            name: name.into(),
            id: node_id(name),
            raft_addr: format!("127.0.0.1:{port}").parse().unwrap(),
            client_addr: None,
            state,
        }
    }

    fn args(name: &str, port: u16, client: Option<u16>) -> JoinArgs {
        JoinArgs {
            name: name.into(),
            raft_addr: format!("127.0.0.1:{port}").parse().unwrap(),
            client_addr: client.map(|p| format!("127.0.0.1:{p}").parse().unwrap()),
        }
    }

    #[test]
    fn admit_decides_every_case() {
        let members = vec![
            member("a", 1, MemberState::Active),
            member("gone", 2, MemberState::Removed),
            member("going", 3, MemberState::Leaving),
        ];
        let new = admit(&members, args("b", 9, Some(6379))).unwrap().unwrap();
        assert_eq!((new.name.as_str(), new.id), ("b", node_id("b")));
        assert_eq!(admit(&members, args("a", 1, None)), Ok(None));
        let updated = admit(&members, args("a", 1, Some(6380))).unwrap().unwrap();
        assert!(updated.client_addr.is_some());
        assert!(matches!(
            admit(&members, args("a", 5, None)),
            Err(JoinRefusal::NameTaken { .. })
        ));
        assert!(matches!(
            admit(&members, args("gone", 2, None)),
            Err(JoinRefusal::NameRemoved { .. })
        ));
        assert!(matches!(
            admit(&members, args("going", 3, None)),
            Err(JoinRefusal::Leaving { .. })
        ));
        assert!(matches!(
            admit(&members, args("c", 1, None)),
            Err(JoinRefusal::RaftAddrTaken { .. })
        ));
        // A removed member's address may be used again.
        assert!(admit(&members, args("c", 2, None)).unwrap().is_some());
    }

    #[test]
    fn refusals_cross_the_wire_as_what_they_are() {
        let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let refusals = [
            JoinRefusal::NameRemoved { name: "n".into() },
            JoinRefusal::NameTaken {
                name: "n".into(),
                raft_addr: addr,
            },
            JoinRefusal::IdCollision {
                name: "n".into(),
                other: "m".into(),
            },
            JoinRefusal::RaftAddrTaken {
                raft_addr: addr,
                member: "m".into(),
            },
        ];
        for r in refusals {
            assert!(r.is_permanent());
            assert_eq!(
                JoinAnswer::from_reply(&refusal_reply(&r)),
                JoinAnswer::Refused(r.to_string())
            );
        }
        let leaving = JoinRefusal::Leaving { name: "n".into() };
        assert_eq!(
            refusal_reply(&leaving),
            Reply::error("TRYAGAIN member 'n' is leaving the cluster")
        );
        assert!(matches!(
            JoinAnswer::from_reply(&refusal_reply(&leaving)),
            JoinAnswer::NotYet(_)
        ));
        assert_eq!(
            refusal_reply(&JoinRefusal::NameRemoved { name: "n".into() }),
            Reply::error(
                "JOINREFUSED node name 'n' belonged to a removed member and cannot be reused"
            )
        );
        assert_eq!(JoinAnswer::from_reply(&Reply::ok()), JoinAnswer::Accepted);
        for other in [
            "CLUSTERDOWN no raft leader: write not applied",
            "JOINREFUSEDX not the code",
            "ERR something else",
        ] {
            assert!(matches!(
                JoinAnswer::from_reply(&Reply::error(other)),
                JoinAnswer::NotYet(_)
            ));
        }
    }
}
