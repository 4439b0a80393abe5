//! The peer wire format, shared by the raft transport and the snapshot stream: the handshake
//! that opens every peer connection (cluster, sender, receiver, purpose), its verdict, and the
//! length-prefixed protobuf frames raft messages travel in.

use std::io;

use bytes::{Buf, BufMut, BytesMut};
use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest frame accepted from a peer (raft messages are capped at 1 MiB of entries).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;
const MAGIC: &[u8; 4] = b"KVD1";

/// What a connection is for, sent in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Raft = 0,
    Snapshot = 1,
}

/// The first bytes on every peer connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    pub cluster_name: String,
    pub cluster_id: u64,
    pub from_id: u64,
    pub from_name: String,
    pub from_addr: String,
    pub to_id: u64,
    pub purpose: Purpose,
}

impl Handshake {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(MAGIC);
        put_str(&mut b, &self.cluster_name);
        b.extend_from_slice(&self.cluster_id.to_be_bytes());
        b.extend_from_slice(&self.from_id.to_be_bytes());
        put_str(&mut b, &self.from_name);
        put_str(&mut b, &self.from_addr);
        b.extend_from_slice(&self.to_id.to_be_bytes());
        b.push(self.purpose as u8);
        b
    }

    pub async fn read<R: AsyncReadExt + Unpin>(r: &mut R) -> io::Result<Handshake> {
        let mut magic = [0u8; 4];
        r.read_exact(&mut magic).await?;
        if &magic != MAGIC {
            return Err(invalid("not a kvd peer (bad magic)"));
        }
        let cluster_name = read_str(r).await?;
        let cluster_id = r.read_u64().await?;
        let from_id = r.read_u64().await?;
        let from_name = read_str(r).await?;
        let from_addr = read_str(r).await?;
        let to_id = r.read_u64().await?;
        let purpose = match r.read_u8().await? {
            0 => Purpose::Raft,
            1 => Purpose::Snapshot,
            _ => return Err(invalid("unknown connection purpose")),
        };
        Ok(Handshake {
            cluster_name,
            cluster_id,
            from_id,
            from_name,
            from_addr,
            to_id,
            purpose,
        })
    }
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    let s = &s.as_bytes()[..s.len().min(255)];
    b.push(s.len() as u8);
    b.extend_from_slice(s);
}

async fn read_str<R: AsyncReadExt + Unpin>(r: &mut R) -> io::Result<String> {
    let n = r.read_u8().await? as usize;
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf).await?;
    String::from_utf8(buf).map_err(|_| invalid("handshake string is not UTF-8"))
}

pub fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// The handshake answer: 0 = accepted, anything else = refused with a reason.
pub async fn write_verdict<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    refusal: Option<&str>,
) -> io::Result<()> {
    let mut b = Vec::new();
    match refusal {
        None => b.push(0),
        Some(r) => {
            b.push(1);
            put_str(&mut b, r);
        }
    }
    w.write_all(&b).await
}

pub async fn read_verdict<R: AsyncReadExt + Unpin>(r: &mut R) -> io::Result<()> {
    match r.read_u8().await? {
        0 => Ok(()),
        _ => {
            let reason = read_str(r).await.unwrap_or_default();
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("peer refused connection: {reason}"),
            ))
        }
    }
}

/// Appends one length-prefixed message; returns its encoded size.
pub fn encode_frame(buf: &mut BytesMut, m: &Message) -> usize {
    let size = m.compute_size() as usize;
    buf.reserve(4 + size);
    buf.put_u32(size as u32);
    let start = buf.len();
    buf.resize(start + size, 0);
    let mut out = protobuf::CodedOutputStream::bytes(&mut buf[start..]);
    if m.write_to_with_cached_sizes(&mut out).is_err() || out.flush().is_err() {
        // Cannot happen for a message we just sized; drop it rather than send garbage.
        buf.truncate(start - 4);
        return 0;
    }
    let _ = buf.remaining();
    4 + size
}
