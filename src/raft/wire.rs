//! The peer wire format, shared by the raft transport and the snapshot stream: the handshake
//! that opens every peer connection (cluster, sender, receiver, purpose), its verdict, and the
//! length-prefixed protobuf frames raft messages travel in.
//!
//! With a cluster secret, the handshake is followed by a challenge-response that proves both
//! sides know it, before anything else is read or sent (`challenge` on the accepting side,
//! `prove` on the dialing side):
//!
//! ```text
//! dialer   -> handshake (with a 16-byte nonce, flagged authenticated)
//! acceptor -> 0x02, nonce_a (16 bytes), HMAC-SHA256(secret, "kvd-acceptor" | handshake | nonce_a)
//! dialer   -> HMAC-SHA256(secret, "kvd-dialer" | handshake | nonce_a)
//! acceptor -> verdict (0x00 accepted, or 0x01 and a reason)
//! ```
//!
//! Both MACs cover both nonces (the dialer's is in the handshake), so no answer can be replayed
//! on another connection, and a dialer learns that its peer knows the secret before it sends a
//! raft message or a snapshot.

use std::io;

use bytes::{Buf, BufMut, BytesMut};
use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest frame accepted from a peer (raft messages are capped at 1 MiB of entries).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;
const MAGIC: &[u8; 4] = b"KVD2";
/// First byte from the acceptor when a challenge follows (a verdict starts with 0 or 1).
const CHALLENGE: u8 = 2;
const NONCE: usize = 16;
const MAC: usize = 32;

/// What a connection is for, sent in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Raft = 0,
    Snapshot = 1,
    /// Pub/Sub fan-out (see `pubsub::links`): published messages one way, receiver counts back.
    PubSub = 2,
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
    /// The dialer holds a cluster secret and expects to be challenged.
    pub authenticated: bool,
    /// Fresh per connection (see the module docs).
    pub nonce: [u8; NONCE],
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
        b.push(u8::from(self.authenticated));
        b.extend_from_slice(&self.nonce);
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
            2 => Purpose::PubSub,
            _ => return Err(invalid("unknown connection purpose")),
        };
        let authenticated = match r.read_u8().await? {
            0 => false,
            1 => true,
            _ => return Err(invalid("bad handshake flags")),
        };
        let mut nonce = [0u8; NONCE];
        r.read_exact(&mut nonce).await?;
        Ok(Handshake {
            cluster_name,
            cluster_id,
            from_id,
            from_name,
            from_addr,
            to_id,
            purpose,
            authenticated,
            nonce,
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
    let first = r.read_u8().await?;
    verdict_from(first, r).await
}

async fn verdict_from<R: AsyncReadExt + Unpin>(first: u8, r: &mut R) -> io::Result<()> {
    match first {
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

/// A message published on one node, as it travels to a peer on a `Purpose::PubSub` connection:
/// `u32 length (BE) ++ u8 sharded ++ u32 channel length ++ channel ++ message`. The peer answers
/// each, in order, with `u64 receivers (BE)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub sharded: bool,
    pub channel: bytes::Bytes,
    pub message: bytes::Bytes,
}

impl Published {
    /// The frame's size, or None when it exceeds `MAX_FRAME` (such a message stays local).
    pub fn frame_len(&self) -> Option<usize> {
        let body = 1 + 4 + self.channel.len() + self.message.len();
        (body <= MAX_FRAME).then_some(4 + body)
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        let body = 1 + 4 + self.channel.len() + self.message.len();
        buf.reserve(4 + body);
        buf.put_u32(body as u32);
        buf.put_u8(u8::from(self.sharded));
        buf.put_u32(self.channel.len() as u32);
        buf.extend_from_slice(&self.channel);
        buf.extend_from_slice(&self.message);
    }

    /// Reads one frame; Ok(None) at a clean end of stream.
    pub async fn read<R: AsyncReadExt + Unpin>(r: &mut R) -> io::Result<Option<Published>> {
        let len = match r.read_u32().await {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        };
        if !(5..=MAX_FRAME).contains(&len) {
            return Err(invalid("bad pub/sub frame length"));
        }
        let mut body = BytesMut::zeroed(len);
        r.read_exact(&mut body).await?;
        let sharded = match body[0] {
            0 => false,
            1 => true,
            _ => return Err(invalid("bad pub/sub frame flags")),
        };
        let clen = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        if clen > len - 5 {
            return Err(invalid("pub/sub channel overruns its frame"));
        }
        let mut body = body.freeze();
        let _ = body.split_to(5);
        let channel = body.split_to(clen);
        Ok(Some(Published {
            sharded,
            channel,
            message: body,
        }))
    }
}

/// The cluster secret as an HMAC-SHA256 key (a well-kept implementation, the `hmac` crate:
/// its `verify_slice` compares in constant time).
#[derive(Clone)]
pub struct ClusterKey(Vec<u8>);

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

impl ClusterKey {
    pub fn new(secret: &[u8]) -> Self {
        ClusterKey(secret.to_vec())
    }

    fn mac(&self, role: &[u8], handshake: &[u8], nonce: &[u8]) -> io::Result<HmacSha256> {
        use hmac::Mac;
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .map_err(|_| invalid("the cluster secret cannot be an HMAC key"))?;
        m.update(role);
        m.update(&(handshake.len() as u64).to_be_bytes());
        m.update(handshake);
        m.update(nonce);
        Ok(m)
    }

    pub(super) fn tag(&self, role: &[u8], handshake: &[u8], nonce: &[u8]) -> io::Result<[u8; MAC]> {
        use hmac::Mac;
        Ok(self
            .mac(role, handshake, nonce)?
            .finalize()
            .into_bytes()
            .into())
    }

    fn verify(&self, role: &[u8], handshake: &[u8], nonce: &[u8], tag: &[u8]) -> io::Result<bool> {
        use hmac::Mac;
        Ok(self.mac(role, handshake, nonce)?.verify_slice(tag).is_ok())
    }
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(hidden)")
    }
}

/// A fresh nonce.
pub fn nonce() -> [u8; NONCE] {
    let mut n = [0u8; NONCE];
    n[..8].copy_from_slice(&super::identity::random_u64().to_be_bytes());
    n[8..].copy_from_slice(&super::identity::random_u64().to_be_bytes());
    n
}

/// Acceptor side: challenges the dialer that sent `hs`. Ok(true) if it proved the secret.
pub async fn challenge<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    s: &mut S,
    key: &ClusterKey,
    hs: &Handshake,
) -> io::Result<bool> {
    let bytes = hs.encode();
    let ours = nonce();
    let mut out = Vec::with_capacity(1 + NONCE + MAC);
    out.push(CHALLENGE);
    out.extend_from_slice(&ours);
    out.extend_from_slice(&key.tag(b"kvd-acceptor", &bytes, &ours)?);
    s.write_all(&out).await?;
    let mut theirs = [0u8; MAC];
    s.read_exact(&mut theirs).await?;
    key.verify(b"kvd-dialer", &bytes, &ours, &theirs)
}

/// Dialer side, after sending `hs`: answers the acceptor's challenge once it has shown that it
/// knows the secret too; then the verdict follows as without a secret.
pub async fn prove<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    s: &mut S,
    key: &ClusterKey,
    hs: &Handshake,
) -> io::Result<()> {
    let first = s.read_u8().await?;
    if first != CHALLENGE {
        // A refusal (e.g. the peer has no cluster secret) comes as a verdict.
        verdict_from(first, s).await?;
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "peer did not challenge an authenticated handshake",
        ));
    }
    let mut theirs = [0u8; NONCE];
    s.read_exact(&mut theirs).await?;
    let mut tag = [0u8; MAC];
    s.read_exact(&mut tag).await?;
    let bytes = hs.encode();
    if !key.verify(b"kvd-acceptor", &bytes, &theirs, &tag)? {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "peer does not know the cluster secret",
        ));
    }
    s.write_all(&key.tag(b"kvd-dialer", &bytes, &theirs)?).await
}

/// Who this node's peers must be: the cluster name every handshake names, and the secret
/// they must prove, if the cluster has one.
#[derive(Clone, Debug)]
pub struct PeerAuth {
    pub cluster_name: String,
    pub key: Option<ClusterKey>,
}
