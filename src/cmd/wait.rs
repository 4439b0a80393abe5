//! WAIT numreplicas timeout: how many replicas hold this connection's last write.
//!
//! A connection's last write is the raft index of the last entry it proposed that was applied
//! (`Session::last_write`, raised by the raft thread as each write is applied: see
//! `RaftHandle::propose_with`). "Replicas" are the members other than the leader, voters and
//! learners alike, whose log holds that index: the follower-side copies a Redis user counts.
//!
//! - **On the leader** the count is exact: raft-rs's `matched` index of each member
//!   (`MemberStatus::matched`, published after every step of the raft loop).
//! - **On a follower** the node cannot see the others' logs. It counts what it knows for sure:
//!   the write committed, so a quorum of voters holds it, the leader among them (quorum - 1
//!   followers), and this node holds it (it applied it). So WAIT on a follower may answer
//!   fewer than hold the write, never more; a client that needs the exact count asks the
//!   leader (ROLE / INFO raft name it). With no write yet, every member holds the empty log.
//!
//! As Redis: WAIT returns as soon as `numreplicas` hold the write, or at the timeout (ms, 0 =
//! forever) with the count then; CLIENT UNBLOCK ends it as at its timeout (or, with ERROR, with
//! the UNBLOCKED error); a client that disconnects ends it; inside MULTI it answers at once;
//! scripts may not call it (`noscript`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::{Kind, Spec, not_an_integer, parse_i64};
use crate::raft::status::{RaftStatus, Role};
use crate::resp::Reply;
use crate::server::Shared;
use crate::session::Session;

pub const WAIT: Spec = Spec {
    name: "wait",
    arity: 3,
    kind: Kind::Local(wait_now),
    flags: &["noscript"],
    keys: (0, 0, 0),
};

/// True for WAIT (the connection runs it with `execute`, outside MULTI).
pub fn is_wait(spec: &Spec) -> bool {
    spec.name == "wait"
}

/// How often a waiting WAIT looks at the published status again.
const POLL: Duration = Duration::from_millis(2);

/// (numreplicas, timeout in ms), with Redis's errors.
fn parse(argv: &[Bytes]) -> Result<(i64, u64), Reply> {
    let wanted = parse_i64(&argv[1]).ok_or_else(not_an_integer)?;
    let timeout = parse_i64(&argv[2])
        .ok_or_else(|| Reply::error("ERR timeout is not an integer or out of range"))?;
    let timeout = u64::try_from(timeout).map_err(|_| Reply::error("ERR timeout is negative"))?;
    Ok((wanted, timeout))
}

/// Inside MULTI: the count now, as Redis answers there.
fn wait_now(s: &mut Session, argv: &[Bytes]) -> Reply {
    match parse(argv) {
        Err(e) => e,
        Ok(_) => Reply::integer(holding(&s.shared.raft.status(), s.last_write.load(Relaxed))),
    }
}

/// Replicas known to hold log index `index` (see the module docs).
fn holding(status: &RaftStatus, index: u64) -> i64 {
    let others = status.members.iter().filter(|m| m.member.id != status.id);
    let count = if status.role == Role::Leader {
        others
            .filter(|m| m.matched.is_some_and(|at| at >= index))
            .count()
    } else if index == 0 {
        others
            .filter(|m| matches!(m.role, "voter" | "learner"))
            .count()
            .saturating_sub(1)
    } else {
        let voters = status.members.iter().filter(|m| m.role == "voter").count();
        let quorum_followers = (voters / 2 + 1).saturating_sub(1);
        let me = usize::from(status.applied >= index);
        quorum_followers.max(me)
    };
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// WAIT outside MULTI: polls the published status until enough replicas hold the write, the
/// timeout passes, CLIENT UNBLOCK ends it, or the client goes away.
pub async fn execute(
    shared: &Arc<Shared>,
    session: &Session,
    argv: &[Bytes],
    stream: &TcpStream,
) -> Reply {
    let (wanted, timeout_ms) = match parse(argv) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let (tx, unblocked) = oneshot::channel();
    *lock(&session.info.wait_unblock) = Some(tx);
    let reply = wait(shared, session, (wanted, timeout_ms), stream, unblocked).await;
    lock(&session.info.wait_unblock).take();
    reply
}

/// CLIENT UNBLOCK of client `id`: ends its WAIT, if it is in one; false if not.
pub fn unblock(shared: &Shared, id: u64, error: bool) -> bool {
    let client = shared.clients.all().into_iter().find(|c| c.id == id);
    let tx = client.and_then(|c| lock(&c.wait_unblock).take());
    tx.is_some_and(|tx| tx.send(error).is_ok())
}

/// Clients in WAIT now (counted in INFO's `blocked_clients`, as Redis counts them).
pub fn waiting_clients(shared: &Shared) -> usize {
    let clients = shared.clients.all();
    clients
        .iter()
        .filter(|c| lock(&c.wait_unblock).is_some())
        .count()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn wait(
    shared: &Arc<Shared>,
    session: &Session,
    (wanted, timeout_ms): (i64, u64),
    stream: &TcpStream,
    mut unblocked: oneshot::Receiver<bool>,
) -> Reply {
    let index = session.last_write.load(Relaxed);
    let deadline = (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms));
    let mut watch_peer = true;
    let mut probe = [0u8; 1];
    loop {
        let n = holding(&shared.raft.status(), index);
        if n >= wanted || deadline.is_some_and(|d| Instant::now() >= d) {
            return Reply::integer(n);
        }
        let nap = deadline.map_or(POLL, |d| {
            POLL.min(d.saturating_duration_since(Instant::now()))
        });
        tokio::select! {
            _ = tokio::time::sleep(nap) => {}
            how = &mut unblocked => {
                return match how {
                    Ok(true) => crate::blocking::unblocked_error(),
                    _ => Reply::integer(holding(&shared.raft.status(), index)),
                };
            }
            _ = session.info.kill.notified() => {
                session.info.kill.notify_one();
                return Reply::integer(holding(&shared.raft.status(), index));
            }
            seen = stream.peek(&mut probe), if watch_peer => match seen {
                Ok(0) | Err(_) => return Reply::integer(holding(&shared.raft.status(), index)),
                Ok(_) => watch_peer = false,
            },
        }
    }
}
