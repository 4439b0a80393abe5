//! Snapshots of the state machine, streamed in chunks.
//!
//! raft-rs asks `Storage::snapshot` for a snapshot; ours opens a redb read transaction (a frozen,
//! consistent view at the applied index), registers it here and hands raft-rs only its id. When
//! the transport sees the resulting `MsgSnapshot`, it opens a dedicated connection and `send`
//! streams the tables from that read transaction in chunks of about 1 MiB: memory stays bounded
//! whatever the data size, and TCP flow control paces the reader.
//!
//! The receiver (`receive`) writes each chunk into the staging tables, checks the count and
//! checksum at the end, marks the staging complete, and only then hands the `MsgSnapshot` to the
//! raft thread, which swaps the staged tables in atomically when raft-rs accepts the snapshot.
//! The receiver acknowledges after that, and the leader reports the outcome to raft-rs.
//!
//! Stream after the handshake: frame(MsgSnapshot), then frames of records, then an end frame;
//! each frame is `u32 length ++ tag ++ body`.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use redb::{Durability, ReadTransaction, ReadableTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc as amsc, oneshot};

use super::Input;
use super::inbox::InputTx;
use super::wire::{MAX_FRAME, invalid};
use crate::store::{self, Db, KV, MEMBERS, RAFT_STATE, STAGED_KV, STAGED_MEMBERS, meta};

/// A registered snapshot not taken within this time is dropped (its read transaction pins pages).
const KEEP: Duration = Duration::from_secs(600);
/// At most this many registered snapshots at once.
const MAX_PENDING: usize = 4;
const CHUNK: usize = 1024 * 1024;
/// How long the receiver may take to install before the sender gives up.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

const TAG_KV: u8 = 1;
const TAG_MEMBERS: u8 = 2;
const TAG_END: u8 = 3;

struct Pending {
    txn: ReadTransaction,
    index: u64,
    created: Instant,
}

/// Snapshots handed to raft-rs and not yet streamed, by id.
#[derive(Clone, Default)]
pub struct SnapshotRegistry {
    inner: Arc<Mutex<(u64, HashMap<u64, Pending>)>>,
}

impl SnapshotRegistry {
    /// Keeps `txn` (a view at applied index `index`) for a later `take`; returns its id.
    pub fn register(&self, txn: ReadTransaction, index: u64, _term: u64) -> u64 {
        let mut g = lock(&self.inner);
        let (next, map) = &mut *g;
        map.retain(|_, p| p.created.elapsed() < KEEP);
        while map.len() >= MAX_PENDING {
            if let Some(oldest) = map.iter().min_by_key(|(_, p)| p.created).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        *next += 1;
        map.insert(
            *next,
            Pending {
                txn,
                index,
                created: Instant::now(),
            },
        );
        *next
    }

    fn take(&self, id: u64) -> Option<(ReadTransaction, u64)> {
        lock(&self.inner).1.remove(&id).map(|p| (p.txn, p.index))
    }
}

/// What a transfer moved.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub records: u64,
    pub bytes: u64,
}

/// FNV-1a over the record stream, checked at the end.
type Checksum = crate::fnv::Fnv1a;

/// Streams the registered snapshot named in `m` to a peer and waits for its acknowledgement.
pub async fn send(stream: TcpStream, m: Message, registry: &SnapshotRegistry) -> io::Result<Stats> {
    let id = snapshot_id(&m)?;
    let (txn, index) = registry
        .take(id)
        .ok_or_else(|| invalid("snapshot no longer registered"))?;
    if index != m.get_snapshot().get_metadata().index {
        return Err(invalid("registered snapshot does not match the message"));
    }
    let (mut rd, wr) = stream.into_split();
    let mut wr = BufWriter::with_capacity(256 * 1024, wr);
    let header = m.write_to_bytes().map_err(|e| invalid(&e.to_string()))?;
    write_frame(&mut wr, 0, &header).await?;

    // Reading redb blocks: a blocking task produces chunks into a small queue (bounded memory).
    let (tx, mut rx) = amsc::channel::<(u8, Vec<u8>)>(4);
    let producer = tokio::task::spawn_blocking(move || produce_chunks(txn, tx));
    while let Some((tag, chunk)) = rx.recv().await {
        write_frame(&mut wr, tag, &chunk).await?;
    }
    let stats = producer
        .await
        .map_err(|e| invalid(&e.to_string()))?
        .map_err(|e| invalid(&e.to_string()))?;
    wr.flush().await?;
    let ack = tokio::time::timeout(INSTALL_TIMEOUT, rd.read_u8())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no acknowledgement"))??;
    if ack != 0 {
        return Err(invalid("receiver rejected the snapshot"));
    }
    Ok(stats)
}

fn produce_chunks(
    txn: ReadTransaction,
    tx: amsc::Sender<(u8, Vec<u8>)>,
) -> Result<Stats, store::StoreError> {
    let mut stats = Stats::default();
    let mut sum = Checksum::new();
    let mut chunk = Vec::with_capacity(CHUNK + 1024);
    let push = |tag: u8, chunk: &mut Vec<u8>| -> bool {
        let full = std::mem::replace(chunk, Vec::with_capacity(CHUNK + 1024));
        tx.blocking_send((tag, full)).is_ok()
    };
    let kv = txn.open_table(KV)?;
    for row in kv.iter()? {
        let (k, v) = row?;
        put_record(&mut chunk, &mut sum, k.value(), v.value());
        stats.records += 1;
        stats.bytes += (k.value().len() + v.value().len()) as u64;
        if chunk.len() >= CHUNK && !push(TAG_KV, &mut chunk) {
            return Ok(stats);
        }
    }
    if !chunk.is_empty() && !push(TAG_KV, &mut chunk) {
        return Ok(stats);
    }
    let members = txn.open_table(MEMBERS)?;
    for row in members.iter()? {
        let (k, v) = row?;
        put_record(&mut chunk, &mut sum, k.value().as_bytes(), v.value());
        stats.records += 1;
    }
    if !chunk.is_empty() && !push(TAG_MEMBERS, &mut chunk) {
        return Ok(stats);
    }
    let mut end = stats.records.to_be_bytes().to_vec();
    end.extend_from_slice(&sum.finish().to_be_bytes());
    let _ = tx.blocking_send((TAG_END, end));
    Ok(stats)
}

fn put_record(chunk: &mut Vec<u8>, sum: &mut Checksum, k: &[u8], v: &[u8]) {
    let start = chunk.len();
    chunk.extend_from_slice(&(k.len() as u32).to_be_bytes());
    chunk.extend_from_slice(k);
    chunk.extend_from_slice(&(v.len() as u32).to_be_bytes());
    chunk.extend_from_slice(v);
    sum.feed(&chunk[start..]);
}

async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, tag: u8, body: &[u8]) -> io::Result<()> {
    w.write_u32((body.len() + 1) as u32).await?;
    w.write_u8(tag).await?;
    w.write_all(body).await
}

async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<u8> {
    let len = r.read_u32().await? as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(invalid("bad snapshot frame length"));
    }
    let tag = r.read_u8().await?;
    buf.clear();
    buf.resize(len - 1, 0);
    r.read_exact(buf).await?;
    Ok(tag)
}

fn snapshot_id(m: &Message) -> io::Result<u64> {
    let data = m.get_snapshot().get_data();
    if m.get_msg_type() != MessageType::MsgSnapshot || data.len() != 8 {
        return Err(invalid("not a kvd snapshot message"));
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(data);
    Ok(u64::from_be_bytes(b))
}

/// Receives a snapshot into the staging tables, then has the raft thread install it.
pub async fn receive(stream: TcpStream, db: &Db, me: u64, raft_tx: &InputTx) -> io::Result<Stats> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(256 * 1024, rd);
    let mut buf = Vec::new();
    if read_frame(&mut rd, &mut buf).await? != 0 {
        return Err(invalid("snapshot stream must start with its raft message"));
    }
    let m = Message::parse_from_bytes(&buf).map_err(|e| invalid(&e.to_string()))?;
    snapshot_id(&m)?;
    if m.to != me {
        return Err(invalid("snapshot addressed to another node"));
    }
    let (index, term) = {
        let md = m.get_snapshot().get_metadata();
        (md.index, md.term)
    };
    let db2 = db.clone();
    blocking(move || clear_staging(&db2)).await?;

    let mut stats = Stats::default();
    let mut sum = Checksum::new();
    loop {
        let tag = read_frame(&mut rd, &mut buf).await?;
        match tag {
            TAG_KV | TAG_MEMBERS => {
                let chunk = std::mem::take(&mut buf);
                let db2 = db.clone();
                let (chunk, n, bytes, s) =
                    blocking(move || stage_chunk(&db2, tag, chunk, sum)).await?;
                sum = s;
                buf = chunk;
                stats.records += n;
                stats.bytes += bytes;
            }
            TAG_END => {
                if buf.len() != 16 {
                    return Err(invalid("bad end of snapshot"));
                }
                let (count, check) = store::decode_pair("snapshot end", &buf)
                    .map_err(|e| invalid(&e.to_string()))?;
                if count != stats.records || check != sum.finish() {
                    return Err(invalid("snapshot checksum mismatch"));
                }
                break;
            }
            _ => return Err(invalid("unknown snapshot frame")),
        }
    }
    let db2 = db.clone();
    blocking(move || mark_staged(&db2, index, term)).await?;

    let (done, installed) = oneshot::channel();
    raft_tx
        .send(Input::InstallSnapshot {
            msg: Box::new(m),
            done,
        })
        .map_err(|_| invalid("raft loop stopped"))?;
    installed.await.map_err(|_| invalid("raft loop stopped"))?;
    wr.write_u8(0).await?;
    wr.flush().await?;
    Ok(stats)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, store::StoreError> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| invalid(&e.to_string()))?
        .map_err(|e| io::Error::other(e.to_string()))
}

fn clear_staging(db: &Db) -> Result<(), store::StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::None)?;
    store::clear_staged(&txn)?;
    txn.open_table(RAFT_STATE)?.remove(meta::STAGED)?;
    txn.commit()?;
    Ok(())
}

/// Writes one chunk's records into the staging tables (one short transaction, so the raft loop
/// is never kept waiting long for the database's single writer slot).
fn stage_chunk(
    db: &Db,
    tag: u8,
    chunk: Vec<u8>,
    mut sum: Checksum,
) -> Result<(Vec<u8>, u64, u64, Checksum), store::StoreError> {
    let bad = || store::StoreError::corrupt("snapshot chunk", "truncated record");
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::None)?;
    let (mut n, mut bytes) = (0u64, 0u64);
    {
        let mut kv = txn.open_table(STAGED_KV)?;
        let mut members = txn.open_table(STAGED_MEMBERS)?;
        let mut pos = 0usize;
        let take = |pos: &mut usize| -> Result<&[u8], store::StoreError> {
            let len_end = pos.checked_add(4).ok_or_else(bad)?;
            let len_bytes = chunk.get(*pos..len_end).ok_or_else(bad)?;
            let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]])
                as usize;
            let end = len_end.checked_add(len).ok_or_else(bad)?;
            let s = chunk.get(len_end..end).ok_or_else(bad)?;
            *pos = end;
            Ok(s)
        };
        while pos < chunk.len() {
            let start = pos;
            let k = take(&mut pos)?;
            let v = take(&mut pos)?;
            sum.feed(&chunk[start..pos]);
            if tag == TAG_KV {
                kv.insert(k, v)?;
            } else {
                let name = std::str::from_utf8(k).map_err(|_| bad())?;
                members.insert(name, v)?;
            }
            n += 1;
            bytes += (k.len() + v.len()) as u64;
        }
    }
    txn.commit()?;
    Ok((chunk, n, bytes, sum))
}

fn mark_staged(db: &Db, index: u64, term: u64) -> Result<(), store::StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::None)?;
    txn.open_table(RAFT_STATE)?
        .insert(meta::STAGED, store::encode_pair(index, term).as_slice())?;
    txn.commit()?;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
