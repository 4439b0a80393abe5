//! What a normal raft entry carries: who proposed it, under which id and term, when (the
//! proposer's wall clock), for which database, and the command.
//!
//! The replicated operation is the command's argument vector itself (like Redis's replication
//! stream): every node applies it through the same command table, so every node computes the same
//! reply, and the node that proposed it answers its client from its own apply.
//!
//! `term` is the proposer's term when it proposed. An entry is applied only if it was appended by
//! the leader of that same term (`entry.term == proposal.term`); otherwise it is skipped on every
//! node. This fencing makes the outcome of a proposal definite: once a node applies any entry of a
//! later term, a pending proposal from an earlier term can never take effect, so it can be proposed
//! again without any risk of being applied twice.
//!
//! `time_ms` is the only clock apply ever sees (design.md "Determinism"): the state machine's
//! "now" is the highest entry time applied so far, the same on every node.
//!
//! Format (integers big-endian): version 2: `02 origin u64, request_id u64, term u64,
//! time_ms i64, db u8, argc u32, (len u32, bytes)*`, then optional tagged trailers: `63 conn
//! u64` names the proposing connection (`conn`, on the `origin` node). Version 1 (kvd 0.1,
//! still in the logs of data dirs it wrote) has no time and no database: it reads as time 0,
//! database 0.
//!
//! Trailers are metadata apply never uses for state: a decoder skips what follows the
//! arguments if it does not know the tag, and kvd builds before trailers read the arguments
//! and stop, so entries with and without them apply alike on every node.

use bytes::Bytes;

const VERSION: u8 = 2;
const VERSION_1: u8 = 1;
/// Trailer tag: the proposing connection's id.
const TRAILER_CONN: u8 = b'c';
/// Upper bound on arguments in a decoded entry, so a corrupt length cannot allocate wildly.
const MAX_ARGS: usize = 1 << 20;

/// The payload of a normal raft entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Raft id of the node whose client is waiting (0 for entries nobody waits on).
    pub origin: u64,
    /// Unique per origin (a per-boot random base plus a counter), matched against its waiters.
    pub request_id: u64,
    /// The proposer's raft term at proposal time (see the module docs).
    pub term: u64,
    /// The proposer's wall clock when it proposed, in unix ms.
    pub time_ms: i64,
    /// The database the command addresses (SELECT); checked in apply.
    pub db: u8,
    /// The command, name first, as the client sent it (or as rewritten before proposing).
    pub argv: Vec<Bytes>,
    /// The connection of `origin` that proposed it, when it matters to that node (CLIENT
    /// TRACKING NOLOOP); 0 otherwise. Not replicated state: apply hands it to the origin's
    /// listeners only.
    pub conn: u64,
}

/// Why an entry's payload could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("unknown proposal version {0}")]
    Version(u8),
    #[error("truncated proposal")]
    Truncated,
    #[error("too many arguments in proposal")]
    TooManyArgs,
}

impl Proposal {
    pub fn encode(&self) -> Vec<u8> {
        let size = 1 + 8 * 4 + 1 + 4 + self.argv.iter().map(|a| 4 + a.len()).sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.push(VERSION);
        out.extend_from_slice(&self.origin.to_be_bytes());
        out.extend_from_slice(&self.request_id.to_be_bytes());
        out.extend_from_slice(&self.term.to_be_bytes());
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        out.push(self.db);
        out.extend_from_slice(&(self.argv.len() as u32).to_be_bytes());
        for a in &self.argv {
            out.extend_from_slice(&(a.len() as u32).to_be_bytes());
            out.extend_from_slice(a);
        }
        if self.conn != 0 {
            out.push(TRAILER_CONN);
            out.extend_from_slice(&self.conn.to_be_bytes());
        }
        out
    }

    /// Decodes a payload; `data` is the entry's `Bytes`, so arguments are zero-copy slices of it.
    pub fn decode(data: &Bytes) -> Result<Proposal, DecodeError> {
        let mut r = Reader { data, pos: 0 };
        let version = r.take(1)?[0];
        if version != VERSION && version != VERSION_1 {
            return Err(DecodeError::Version(version));
        }
        let origin = r.u64()?;
        let request_id = r.u64()?;
        let term = r.u64()?;
        let (time_ms, db) = if version == VERSION {
            (r.u64()? as i64, r.take(1)?[0])
        } else {
            (0, 0)
        };
        let n = r.u32()? as usize;
        if n > MAX_ARGS {
            return Err(DecodeError::TooManyArgs);
        }
        let mut argv = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let len = r.u32()? as usize;
            argv.push(r.bytes(len)?);
        }
        // Trailers: known tags are read, the first unknown one ends them (a later version's).
        let mut conn = 0;
        while let Ok(&[tag]) = r.take(1) {
            match tag {
                TRAILER_CONN => conn = r.u64().unwrap_or(0),
                _ => break,
            }
        }
        Ok(Proposal {
            origin,
            request_id,
            term,
            time_ms,
            db,
            argv,
            conn,
        })
    }
}

struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        if end > self.data.len() {
            return Err(DecodeError::Truncated);
        }
        let b = self.data.slice(self.pos..end);
        self.pos = end;
        Ok(b)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let p = Proposal {
            origin: 7,
            request_id: u64::MAX - 3,
            term: 42,
            time_ms: -17,
            db: 15,
            argv: vec![
                Bytes::from_static(b"SET"),
                Bytes::from_static(b"k"),
                Bytes::new(),
            ],
            conn: 0,
        };
        let enc = Bytes::from(p.encode());
        assert_eq!(Proposal::decode(&enc).unwrap(), p);
        let with_conn = Proposal { conn: 99, ..p };
        let enc = Bytes::from(with_conn.encode());
        assert_eq!(Proposal::decode(&enc).unwrap(), with_conn);
    }

    #[test]
    fn the_connection_trailer_is_ignored_by_what_reads_only_the_arguments() {
        let p = Proposal {
            origin: 1,
            request_id: 2,
            term: 3,
            time_ms: 4,
            db: 0,
            argv: vec![Bytes::from_static(b"SET"), Bytes::from_static(b"k")],
            conn: 0,
        };
        let plain = p.encode();
        let tagged = Proposal {
            conn: 7,
            ..p.clone()
        }
        .encode();
        // Without a connection, the bytes are what kvd wrote before trailers existed.
        assert_eq!(&tagged[..plain.len()], &plain[..]);
        assert_eq!(tagged.len(), plain.len() + 9);
        // An unknown trailer (a later version's) is skipped, and so is a cut one.
        let mut unknown = plain.clone();
        unknown.extend_from_slice(b"zwhatever");
        assert_eq!(Proposal::decode(&Bytes::from(unknown)).unwrap(), p);
        let mut cut = plain.clone();
        cut.extend_from_slice(&[TRAILER_CONN, 0, 1]);
        assert_eq!(Proposal::decode(&Bytes::from(cut)).unwrap(), p);
    }

    #[test]
    fn version_1_entries_read_as_time_0_database_0() {
        let mut v1 = vec![VERSION_1];
        for n in [5u64, 6, 7] {
            v1.extend_from_slice(&n.to_be_bytes());
        }
        v1.extend_from_slice(&1u32.to_be_bytes());
        v1.extend_from_slice(&4u32.to_be_bytes());
        v1.extend_from_slice(b"INCR");
        let p = Proposal::decode(&Bytes::from(v1)).unwrap();
        assert_eq!((p.origin, p.request_id, p.term, p.conn), (5, 6, 7, 0));
        assert_eq!((p.time_ms, p.db), (0, 0));
        assert_eq!(p.argv, vec![Bytes::from_static(b"INCR")]);
    }

    #[test]
    fn truncated_and_bad_versions_are_errors_not_panics() {
        let p = Proposal {
            origin: 1,
            request_id: 2,
            term: 3,
            time_ms: 1_700_000_000_000,
            db: 1,
            argv: vec![Bytes::from_static(b"GET"), Bytes::from_static(b"key")],
            conn: 0,
        };
        let enc = p.encode();
        for cut in 0..enc.len() {
            assert!(Proposal::decode(&Bytes::copy_from_slice(&enc[..cut])).is_err());
        }
        let mut bad = enc.clone();
        bad[0] = 9;
        assert_eq!(
            Proposal::decode(&Bytes::from(bad)),
            Err(DecodeError::Version(9))
        );
        let mut huge = enc[..34].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            Proposal::decode(&Bytes::from(huge)),
            Err(DecodeError::TooManyArgs)
        );
    }
}
