//! How the typed keyspace is laid out in the one ordered `kv` table (format version 2; format 1
//! had no `expires` rows and is migrated at open, `store::migrate_format_1`).
//!
//! Every Redis key has one **metadata row**; a collection's members are **member rows** of their
//! own beside it, so one member's read or write is one B-tree lookup and a range is one ordered
//! scan (the design Apache Kvrocks uses on RocksDB). Table keys start with a family byte:
//!
//! | family | table key | value |
//! |---|---|---|
//! | `0x00` count | `00 db` | keys in `db` as of the last memtable flush (u64 BE), kept by `flush` |
//! | `0x00` clock | `00 ff` | the state machine's clock: the highest entry time applied (i64 BE) |
//! | `0x00` db map | `00 f0` | [`DbMap`]: the physical database of each logical one (SELECT's number), 16 bytes; absent: the identity. SWAPDB swaps two of its bytes |
//! | `0x00` expires | `00 20+db` | keys in `db` with an expiry as of the last memtable flush (u64 BE), kept by `flush` (INFO keyspace `expires=`) |
//! | `0x00` deleted | `00 10+db` | index of the last entry that removed a key's metadata row in `db` (or, for FLUSHDB, the `written` index below at that point), u64 BE: what WATCH of an absent key compares with |
//! | `0x00` written | `00 30+db` | index of the last entry that wrote a key's metadata row in `db`, u64 BE: no key of `db` was created or changed after it (what FLUSHDB records as its deletion) |
//! | `0x01` meta | `01 db key` | [`Meta`]: type, expiry, version, last change, then the type's body |
//! | `0x02` member | `02 db len(key) u32 key version u64 member` | the member's value (a hash field's value; empty for a set member) |
//! | `0x03` expiry | `03 db at_ms i64 key` | empty: a database's keys by expiry time, for active expiry |
//! | `0x04` scan | `04 db fnv64(key) key` | empty: a database's keys in hash order, for SCAN cursors and RANDOMKEY |
//! | `0x05` score | `05 db len(key) u32 key version u64 score(8, order-preserving) member` | empty: a sorted set's members in score order (`kv::zset`) |
//! | `0x06` stream | `06 db len(key) u32 key version u64 kind rest` | a stream's consumer groups, consumers and pending entries (`kv::stream`) |
//! | `0x07` function | `07 'L' name`, `07 'F' function` | FUNCTION libraries' code, and which library registered each function (not per database: FLUSHALL keeps them) |
//! | `0x08` acl | `08 'U' name` | an ACL user (`crate::acl`): its rules as ACL LIST writes them, passwords as SHA-256 hashes (not per database: FLUSHALL keeps them) |
//!
//! A string's value is the body of its metadata row (one lookup for GET). A collection's body
//! holds its counters (size, list head and tail...): for a hash (`KeyType::Hash`) and a set
//! (`KeyType::Set`), the member count, u64 BE (`kv::collection`). A collection's `version` is
//! fresh when the key is created and `modified` is the index of every change. Its member rows
//! carry its `version`, so
//! deleting or overwriting the key writes one metadata row (O(1)) and the older version's rows
//! become unreachable, to be reclaimed in the background (`crate::reclaim`: the leader proposes
//! `rows-reap` entries). When a collection's last member goes, its key is deleted (as Redis).
//! Versions are unique per incarnation:
//! the applying entry's index times 2^20 plus a counter within the entry.
//!
//! All integers are big-endian so that rows sort by them; expiry times are stored with the sign
//! bit flipped so negative times sort first.

use bytes::{BufMut, Bytes, BytesMut};

/// The on-disk format this build writes; stored in `RAFT_STATE` (`store::meta::FORMAT`).
pub const FORMAT: u64 = 2;

/// Number of databases (`SELECT 0..15`), as Redis's default. A constant, not a node setting:
/// every node must agree on it, since apply checks it.
pub const DATABASES: u8 = 16;

pub const FAMILY_SYSTEM: u8 = 0x00;
pub const FAMILY_META: u8 = 0x01;
pub const FAMILY_MEMBER: u8 = 0x02;
pub const FAMILY_EXPIRY: u8 = 0x03;
pub const FAMILY_SCAN: u8 = 0x04;
pub const FAMILY_SCORE: u8 = 0x05;
/// A stream's consumer-group rows (`kv::stream`): laid out as member rows, under their own
/// family so a stream's entries (its member rows) stay one ordered range.
pub const FAMILY_STREAM: u8 = 0x06;

/// Function libraries (FUNCTION LOAD): `07 'L' name` -> the library's code, and `07 'F'
/// function` -> the name of the library that registered it. Not per database, so FLUSHALL
/// keeps them, as Redis does; in snapshots like every row of the table.
pub const FAMILY_FUNCTION: u8 = 0x07;

/// ACL users (ACL SETUSER): `08 'U' name` -> the user's rules (`crate::acl::User::encode`).
/// Not per database; in snapshots like every row of the table.
pub const FAMILY_ACL: u8 = 0x08;

/// The row of ACL user `name`.
pub fn acl_user_key(name: &[u8]) -> Vec<u8> {
    let mut k = vec![FAMILY_ACL, b'U'];
    k.extend_from_slice(name);
    k
}

/// The range of every ACL user's row.
pub const ACL_USERS: ([u8; 2], [u8; 2]) = ([FAMILY_ACL, b'U'], [FAMILY_ACL, b'V']);

/// The row of library `name`.
pub fn library_key(name: &[u8]) -> Vec<u8> {
    let mut k = vec![FAMILY_FUNCTION, b'L'];
    k.extend_from_slice(name);
    k
}

/// The row naming the library of function `name`.
pub fn function_key(name: &[u8]) -> Vec<u8> {
    let mut k = vec![FAMILY_FUNCTION, b'F'];
    k.extend_from_slice(name);
    k
}

/// The families holding rows of a database (all emptied by FLUSHDB).
pub const DB_FAMILIES: [u8; 6] = [
    FAMILY_META,
    FAMILY_MEMBER,
    FAMILY_EXPIRY,
    FAMILY_SCAN,
    FAMILY_SCORE,
    FAMILY_STREAM,
];

/// The families of rows that belong to one incarnation of a collection (carry its version):
/// what `crate::reclaim` reclaims.
pub const OWNED_FAMILIES: [u8; 3] = [FAMILY_MEMBER, FAMILY_SCORE, FAMILY_STREAM];

/// The prefix every stream row (`FAMILY_STREAM`) of one incarnation of a key shares.
pub fn stream_prefix(db: u8, key: &[u8], version: u64) -> BytesMut {
    let mut out = member_prefix(db, key, version);
    out[0] = FAMILY_STREAM;
    out
}

/// System row: which physical database each logical one is (see [`DbMap`]).
pub const DB_MAP_KEY: [u8; 2] = [FAMILY_SYSTEM, 0xf0];

/// Which physical database (the byte after the family in every row of user data) each logical
/// database (the number a client SELECTs) is. SWAPDB swaps two entries: O(1), no row moves.
/// Replicated state (the `DB_MAP_KEY` row, in snapshots like every row), so every node maps
/// alike; reads map with the state they read, apply with the state it applies to.
///
/// Packed as 16 nibbles (nibble `l` = the physical database of logical `l`), so a node can
/// cache it in one atomic word. Everything below the command layer (views, rows, counts, the
/// memtable's cleared bits, active expiry) speaks physical databases; sessions, entries and
/// events speak logical ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DbMap(u64);

impl DbMap {
    pub const IDENTITY: DbMap = DbMap(0xfedc_ba98_7654_3210);

    /// The physical database of logical `db` (a number past the last database maps to itself:
    /// callers check the range).
    pub fn physical(self, db: u8) -> u8 {
        if db < DATABASES {
            ((self.0 >> (4 * u32::from(db))) & 0xf) as u8
        } else {
            db
        }
    }

    /// The logical database whose data physical database `db` holds.
    pub fn logical(self, db: u8) -> u8 {
        (0..DATABASES)
            .find(|&l| self.physical(l) == db)
            .unwrap_or(db)
    }

    /// The map with logical databases `a` and `b` exchanged.
    pub fn swapped(self, a: u8, b: u8) -> DbMap {
        if a >= DATABASES || b >= DATABASES {
            return self;
        }
        let (pa, pb) = (u64::from(self.physical(a)), u64::from(self.physical(b)));
        let (sa, sb) = (4 * u32::from(a), 4 * u32::from(b));
        let cleared = self.0 & !(0xf << sa) & !(0xf << sb);
        DbMap(cleared | (pb << sa) | (pa << sb))
    }

    /// The packed form, for a node's cache (see `from_packed`).
    pub fn packed(self) -> u64 {
        self.0
    }

    /// A packed map, if it is one (a permutation of the databases).
    pub fn from_packed(packed: u64) -> Option<DbMap> {
        let map = DbMap(packed);
        let mut seen = 0u32;
        for l in 0..DATABASES {
            seen |= 1 << map.physical(l);
        }
        (seen == (1u32 << DATABASES) - 1).then_some(map)
    }

    /// The row's value: physical database of logical 0, 1, ... 15.
    pub fn encode(self) -> [u8; DATABASES as usize] {
        let mut out = [0u8; DATABASES as usize];
        for (l, b) in out.iter_mut().enumerate() {
            *b = self.physical(l as u8);
        }
        out
    }

    /// Decodes the row's value; `None` if it is not a permutation of the databases.
    pub fn decode(raw: &[u8]) -> Option<DbMap> {
        if raw.len() != DATABASES as usize || raw.iter().any(|&b| b >= DATABASES) {
            return None;
        }
        let packed = raw
            .iter()
            .enumerate()
            .fold(0u64, |acc, (l, &p)| acc | (u64::from(p) << (4 * l)));
        DbMap::from_packed(packed)
    }
}

/// System row: the applied clock (see `StateMachine`'s `now`).
pub const CLOCK_KEY: [u8; 2] = [FAMILY_SYSTEM, 0xff];

/// Table key of database `db`'s last-deletion index (see the table above). Like the other
/// system rows it is replicated state but not user data: DIGEST does not cover it.
pub fn deleted_key(db: u8) -> [u8; 2] {
    [FAMILY_SYSTEM, 0x10u8.saturating_add(db)]
}

/// Table key of database `db`'s last-write index (see the table above): replicated state, not
/// user data, like the deletion index.
pub fn written_key(db: u8) -> [u8; 2] {
    [FAMILY_SYSTEM, 0x30u8.saturating_add(db)]
}

/// Table key of database `db`'s count of keys with an expiry (see the table above).
pub fn expires_key(db: u8) -> [u8; 2] {
    [FAMILY_SYSTEM, 0x20u8.saturating_add(db)]
}

/// Whether an encoded metadata row carries an expiry (its flags byte; no full decode).
pub fn meta_has_expiry(raw: &[u8]) -> bool {
    raw.get(2).is_some_and(|f| f & FLAG_EXPIRY != 0)
}

/// The Redis type of a key, as stored in its metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum KeyType {
    String = 0,
    Hash = 1,
    List = 2,
    Set = 3,
    ZSet = 4,
    Stream = 5,
}

impl KeyType {
    fn from_u8(b: u8) -> Option<KeyType> {
        Some(match b {
            0 => KeyType::String,
            1 => KeyType::Hash,
            2 => KeyType::List,
            3 => KeyType::Set,
            4 => KeyType::ZSet,
            5 => KeyType::Stream,
            _ => return None,
        })
    }

    /// The name TYPE replies with.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::String => "string",
            KeyType::Hash => "hash",
            KeyType::List => "list",
            KeyType::Set => "set",
            KeyType::ZSet => "zset",
            KeyType::Stream => "stream",
        }
    }
}

/// A key's metadata row, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub kind: KeyType,
    /// Absolute expiry in unix ms; the key is gone once the clock reaches it.
    pub expire_at: Option<i64>,
    /// The incarnation its member rows carry.
    pub version: u64,
    /// Index of the entry that last changed the key (for WATCH).
    pub modified: u64,
    /// A string's value, or a collection's counters.
    pub body: Bytes,
}

/// Header: format byte, type, flags, version, modified, [expiry].
const META_VERSION: u8 = 1;
const FLAG_EXPIRY: u8 = 1;
const HEADER: usize = 3 + 8 + 8;

impl Meta {
    pub fn string(value: Bytes, version: u64, modified: u64) -> Meta {
        Meta {
            kind: KeyType::String,
            expire_at: None,
            version,
            modified,
            body: value,
        }
    }

    /// True if the key no longer exists at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expire_at.is_some_and(|at| at <= now_ms)
    }

    pub fn encode(&self) -> Bytes {
        let expiry = self.expire_at.is_some();
        let mut out = BytesMut::with_capacity(HEADER + 8 * expiry as usize + self.body.len());
        out.put_u8(META_VERSION);
        out.put_u8(self.kind as u8);
        out.put_u8(if expiry { FLAG_EXPIRY } else { 0 });
        out.put_u64(self.version);
        out.put_u64(self.modified);
        if let Some(at) = self.expire_at {
            out.put_i64(at);
        }
        out.put_slice(&self.body);
        out.freeze()
    }

    /// Decodes a metadata row; `raw` is shared, so the body is a zero-copy slice of it.
    pub fn decode(raw: &Bytes) -> Result<Meta, String> {
        if raw.len() < HEADER {
            return Err(format!("metadata row of {} bytes", raw.len()));
        }
        if raw[0] != META_VERSION {
            return Err(format!("metadata row version {}", raw[0]));
        }
        let kind = KeyType::from_u8(raw[1]).ok_or_else(|| format!("key type {}", raw[1]))?;
        let flags = raw[2];
        let version = be_u64(&raw[3..11]);
        let modified = be_u64(&raw[11..19]);
        let (expire_at, body_at) = if flags & FLAG_EXPIRY != 0 {
            let end = HEADER + 8;
            if raw.len() < end {
                return Err("truncated expiry".into());
            }
            (Some(be_u64(&raw[HEADER..end]) as i64), end)
        } else {
            (None, HEADER)
        };
        Ok(Meta {
            kind,
            expire_at,
            version,
            modified,
            body: raw.slice(body_at..),
        })
    }

    /// Reads only the header fields that decide whether the key is visible and its type,
    /// without copying the body (for EXISTS, TYPE, counting).
    pub fn peek(raw: &[u8]) -> Result<(KeyType, Option<i64>), String> {
        if raw.len() < HEADER || raw[0] != META_VERSION {
            return Err("bad metadata row".into());
        }
        let kind = KeyType::from_u8(raw[1]).ok_or_else(|| format!("key type {}", raw[1]))?;
        let expiry = if raw[2] & FLAG_EXPIRY != 0 {
            let b = raw.get(HEADER..HEADER + 8).ok_or("truncated expiry")?;
            Some(be_u64(b) as i64)
        } else {
            None
        };
        Ok((kind, expiry))
    }
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Table key of a key's metadata row.
pub fn meta_key(db: u8, key: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + key.len());
    out.put_u8(FAMILY_META);
    out.put_u8(db);
    out.put_slice(key);
    out.freeze()
}

/// The first table key of `db`'s rows of `family`, and the first one past them.
pub fn db_range(family: u8, db: u8) -> ([u8; 2], [u8; 2]) {
    let end = match db.checked_add(1) {
        Some(next) => [family, next],
        None => [family + 1, 0],
    };
    ([family, db], end)
}

/// The user key of a metadata row's table key, if it is one of `db`'s.
pub fn user_key(db: u8, table_key: &[u8]) -> Option<&[u8]> {
    match table_key {
        [FAMILY_META, d, rest @ ..] if *d == db => Some(rest),
        _ => None,
    }
}

/// The prefix every member row of one incarnation of a key shares.
pub fn member_prefix(db: u8, key: &[u8], version: u64) -> BytesMut {
    let mut out = BytesMut::with_capacity(2 + 4 + key.len() + 8 + 16);
    out.put_u8(FAMILY_MEMBER);
    out.put_u8(db);
    out.put_u32(u32::try_from(key.len()).unwrap_or(u32::MAX));
    out.put_slice(key);
    out.put_u64(version);
    out
}

/// Table key of one member row.
pub fn member_key(db: u8, key: &[u8], version: u64, member: &[u8]) -> Bytes {
    let mut out = member_prefix(db, key, version);
    out.put_slice(member);
    out.freeze()
}

/// The first table key past every member row that starts with `prefix` (`None`: nothing
/// sorts after them, the prefix being all `ff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Splits a member row's table key into (db, key, version, member).
pub fn parse_member_key(table_key: &[u8]) -> Option<(u8, &[u8], u64, &[u8])> {
    let [FAMILY_MEMBER, db, rest @ ..] = table_key else {
        return None;
    };
    let len = usize::try_from(be_u32(rest.get(..4)?)).ok()?;
    let rest = &rest[4..];
    let key = rest.get(..len)?;
    let version = be_u64(rest.get(len..len + 8)?);
    Some((*db, key, version, &rest[len + 8..]))
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

/// Table key of a key's row in the expiry index (`03 db at key`). `at` is stored with its sign
/// bit flipped, so rows sort by time, negative times first.
pub fn expiry_key(db: u8, at: i64, key: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + 8 + key.len());
    out.put_u8(FAMILY_EXPIRY);
    out.put_u8(db);
    out.put_u64(flip(at));
    out.put_slice(key);
    out.freeze()
}

/// The range of `db`'s expiry index rows for times up to and including `upto`.
pub fn expiry_range(db: u8, upto: i64) -> ([u8; 2], [u8; 10]) {
    let mut hi = [0u8; 10];
    hi[0] = FAMILY_EXPIRY;
    hi[1] = db;
    match flip(upto).checked_add(1) {
        Some(next) => hi[2..].copy_from_slice(&next.to_be_bytes()),
        // Every time is at most i64::MAX: the end of the database's rows.
        None => {
            let (_, end) = db_range(FAMILY_EXPIRY, db);
            hi = [end[0], end[1], 0, 0, 0, 0, 0, 0, 0, 0];
        }
    }
    ([FAMILY_EXPIRY, db], hi)
}

/// Splits an expiry index row's table key into (db, at, key).
pub fn parse_expiry_key(table_key: &[u8]) -> Option<(u8, i64, &[u8])> {
    match table_key {
        [FAMILY_EXPIRY, db, rest @ ..] if rest.len() >= 8 => {
            let at = flip(be_u64(&rest[..8]) as i64) as i64;
            Some((*db, at, &rest[8..]))
        }
        _ => None,
    }
}

/// The position of a key in SCAN order: FNV-1a 64 of its name. SCAN's integer cursor is such a
/// position (the next one to visit), so a cursor means the same on every node and across
/// memtable flushes. Rows of this family are kept by `flush_into` (exactly: a row exists for
/// every key in the table), keys not yet flushed are merged in by the scan itself.
pub fn scan_hash(key: &[u8]) -> u64 {
    crate::fnv::Fnv1a::hash(key)
}

/// Table key of a key's SCAN-order row (`04 db hash key`).
pub fn scan_key(db: u8, key: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + 8 + key.len());
    out.put_u8(FAMILY_SCAN);
    out.put_u8(db);
    out.put_u64(scan_hash(key));
    out.put_slice(key);
    out.freeze()
}

/// The first SCAN-order row at or after position `from` in `db`.
pub fn scan_from(db: u8, from: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = FAMILY_SCAN;
    k[1] = db;
    k[2..].copy_from_slice(&from.to_be_bytes());
    k
}

/// Splits a SCAN-order row's table key into (hash, key).
pub fn parse_scan_key(table_key: &[u8]) -> Option<(u64, &[u8])> {
    match table_key {
        [FAMILY_SCAN, _, rest @ ..] if rest.len() >= 8 => Some((be_u64(&rest[..8]), &rest[8..])),
        _ => None,
    }
}

/// i64 to u64 (and back, as `flip(x as i64) as i64`) with the order preserved.
fn flip(at: i64) -> u64 {
    (at as u64) ^ (1 << 63)
}

/// Table key of a database's key count.
pub fn count_key(db: u8) -> [u8; 2] {
    [FAMILY_SYSTEM, db]
}

/// The database a row of user data belongs to (the byte after the family).
pub fn db_of(table_key: &[u8]) -> Option<u8> {
    match table_key {
        [
            FAMILY_META | FAMILY_MEMBER | FAMILY_EXPIRY | FAMILY_SCAN | FAMILY_SCORE
            | FAMILY_STREAM,
            db,
            ..,
        ] => Some(*db),
        _ => None,
    }
}

/// Rows of user data (what DIGEST covers): metadata, member and score rows.
pub fn is_user_row(table_key: &[u8]) -> bool {
    matches!(
        table_key.first(),
        Some(&(FAMILY_META | FAMILY_MEMBER | FAMILY_SCORE | FAMILY_STREAM))
    )
}

/// The prefix every score row of one incarnation of a sorted set shares (`05 db len key
/// version`); a score row goes on with [`score_bits`] of the score and the member.
pub fn score_prefix(db: u8, key: &[u8], version: u64) -> BytesMut {
    let mut out = BytesMut::with_capacity(2 + 4 + key.len() + 8 + 8 + 16);
    out.put_u8(FAMILY_SCORE);
    out.put_u8(db);
    out.put_u32(u32::try_from(key.len()).unwrap_or(u32::MAX));
    out.put_slice(key);
    out.put_u64(version);
    out
}

/// Table key of one score row.
pub fn score_key(db: u8, key: &[u8], version: u64, score: f64, member: &[u8]) -> Bytes {
    let mut out = score_prefix(db, key, version);
    out.put_u64(score_bits(score));
    out.put_slice(member);
    out.freeze()
}

/// A score as 8 bytes that sort as the numbers do (-inf first, +inf last): the sign bit
/// flipped for positive numbers, every bit for negative ones. -0 is stored as 0, so members
/// of score 0 and -0 (equal, to Redis) sort by member together. NaN is never stored.
pub fn score_bits(score: f64) -> u64 {
    let bits = if score == 0.0 { 0 } else { score.to_bits() };
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// The inverse of [`score_bits`].
pub fn score_from_bits(bits: u64) -> f64 {
    f64::from_bits(if bits >> 63 == 1 {
        bits & !(1 << 63)
    } else {
        !bits
    })
}

/// Splits a member row's or score row's table key into (db, key, version): the incarnation
/// that owns it.
pub fn parse_owned_key(table_key: &[u8]) -> Option<(u8, &[u8], u64)> {
    match table_key.first() {
        Some(&FAMILY_MEMBER) => parse_member_key(table_key).map(|(d, k, v, _)| (d, k, v)),
        Some(&(FAMILY_SCORE | FAMILY_STREAM)) => {
            let rest = table_key.get(2..)?;
            let len = usize::try_from(be_u32(rest.get(..4)?)).ok()?;
            let key = rest.get(4..4 + len)?;
            let version = be_u64(rest.get(4 + len..4 + len + 8)?);
            Some((table_key[1], key, version))
        }
        _ => None,
    }
}

/// The prefix of the rows of `family` (member or score) one incarnation owns.
pub fn owned_prefix(family: u8, db: u8, key: &[u8], version: u64) -> BytesMut {
    if family == FAMILY_SCORE {
        score_prefix(db, key, version)
    } else if family == FAMILY_STREAM {
        stream_prefix(db, key, version)
    } else {
        member_prefix(db, key, version)
    }
}

/// The first version an entry at `index` may hand out; `VERSIONS_PER_ENTRY` follow it.
pub fn first_version(index: u64) -> u64 {
    index.saturating_mul(VERSIONS_PER_ENTRY)
}

/// New incarnations one entry can create (a transaction of many commands still fits).
pub const VERSIONS_PER_ENTRY: u64 = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_roundtrips_with_and_without_expiry() {
        let mut m = Meta::string(Bytes::from_static(b"hello"), 7, 9);
        let raw = m.encode();
        assert_eq!(Meta::decode(&raw).unwrap(), m);
        assert_eq!(Meta::peek(&raw).unwrap(), (KeyType::String, None));
        m.expire_at = Some(-5);
        m.kind = KeyType::ZSet;
        let raw = m.encode();
        assert_eq!(Meta::decode(&raw).unwrap(), m);
        assert_eq!(Meta::peek(&raw).unwrap(), (KeyType::ZSet, Some(-5)));
        assert!(m.expired(-5) && !m.expired(-6));
    }

    #[test]
    fn damaged_meta_is_an_error_not_a_panic() {
        let raw = Meta::string(Bytes::from_static(b"v"), 1, 1).encode();
        for cut in 0..HEADER {
            assert!(Meta::decode(&raw.slice(..cut)).is_err());
            assert!(Meta::peek(&raw[..cut]).is_err());
        }
        let mut bad = raw.to_vec();
        bad[1] = 99;
        assert!(Meta::decode(&Bytes::from(bad)).is_err());
        let mut flagged = raw[..HEADER].to_vec();
        flagged[2] = FLAG_EXPIRY;
        assert!(Meta::decode(&Bytes::from(flagged.clone())).is_err());
        assert!(Meta::peek(&flagged).is_err());
    }

    #[test]
    fn expiry_rows_sort_by_time_and_parse_back() {
        let times = [i64::MIN, -5, 0, 7, 1_700_000_000_000, i64::MAX];
        let keys: Vec<Bytes> = times.iter().map(|&t| expiry_key(2, t, b"k")).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (&t, k) in times.iter().zip(&keys) {
            assert_eq!(parse_expiry_key(k), Some((2, t, &b"k"[..])));
        }
        let (lo, hi) = expiry_range(2, 7);
        let due: Vec<_> = keys
            .iter()
            .filter(|k| k.as_ref() >= &lo[..] && k.as_ref() < &hi[..])
            .collect();
        assert_eq!(due.len(), 4);
        let (lo, hi) = expiry_range(2, i64::MAX);
        assert!(
            keys.iter()
                .all(|k| k.as_ref() >= &lo[..] && k.as_ref() < &hi[..])
        );
        assert!(expiry_key(3, i64::MIN, b"").as_ref() >= &hi[..]);
        assert_eq!(parse_expiry_key(&[FAMILY_EXPIRY, 1, 2]), None);
    }

    #[test]
    fn rows_of_a_database_sort_together_and_apart_from_others() {
        let (lo, hi) = db_range(FAMILY_META, 3);
        let k = meta_key(3, b"\xff\xffkey");
        assert!(k.as_ref() >= &lo[..] && k.as_ref() < &hi[..]);
        assert!(meta_key(4, b"").as_ref() >= &hi[..]);
        assert!(meta_key(2, b"\xff").as_ref() < &lo[..]);
        assert_eq!(user_key(3, &k), Some(&b"\xff\xffkey"[..]));
        assert_eq!(user_key(2, &k), None);
        assert_eq!(db_of(&k), Some(3));
        // Members of one incarnation are contiguous, ordered by member, and a key that is a
        // prefix of another cannot mix with it (the length comes first).
        let a = member_key(0, b"ab", 5, b"x");
        let b = member_key(0, b"ab", 5, b"y");
        let other = member_key(0, b"abc", 5, b"a");
        let prefix = member_prefix(0, b"ab", 5);
        assert!(a < b && a.starts_with(&prefix) && !other.starts_with(&prefix));
        assert!(!is_user_row(&count_key(0)) && !is_user_row(&CLOCK_KEY) && is_user_row(&a));
        // System rows of every database stay apart from each other.
        let mut system: Vec<[u8; 2]> = (0..DATABASES)
            .flat_map(|d| [count_key(d), deleted_key(d), expires_key(d), written_key(d)])
            .chain([CLOCK_KEY, DB_MAP_KEY])
            .collect();
        system.sort();
        system.dedup();
        assert_eq!(system.len(), 4 * DATABASES as usize + 2);
        assert!(!is_user_row(&deleted_key(3)) && db_of(&deleted_key(3)).is_none());
    }

    #[test]
    fn db_map_swaps_two_databases_and_roundtrips() {
        let id = DbMap::IDENTITY;
        assert!((0..DATABASES).all(|d| id.physical(d) == d && id.logical(d) == d));
        let m = id.swapped(0, 3);
        assert_eq!((m.physical(0), m.physical(3), m.physical(1)), (3, 0, 1));
        assert_eq!((m.logical(3), m.logical(0)), (0, 3));
        assert_eq!(m.swapped(3, 0), id);
        assert_eq!(m.swapped(5, 5), m);
        assert_eq!(m.swapped(0, 16), m, "out of range: unchanged");
        let m2 = m.swapped(3, 15);
        assert_eq!(
            (m2.physical(3), m2.physical(15), m2.physical(0)),
            (15, 0, 3)
        );
        assert_eq!(DbMap::decode(&m2.encode()), Some(m2));
        assert_eq!(DbMap::from_packed(m2.packed()), Some(m2));
        assert_eq!(DbMap::from_packed(u64::MAX), None);
        let mut bad = m2.encode();
        bad[1] = bad[2];
        assert_eq!(DbMap::decode(&bad), None, "not a permutation");
        assert_eq!(DbMap::decode(&bad[..15]), None);
        bad[1] = 16;
        assert_eq!(DbMap::decode(&bad), None);
        assert_eq!(id.physical(16), 16);
        assert!(!is_user_row(&DB_MAP_KEY) && db_of(&DB_MAP_KEY).is_none());
    }

    #[test]
    fn score_rows_sort_by_score_then_member_and_parse_back() {
        let scores = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -f64::MIN_POSITIVE,
            0.0,
            f64::MIN_POSITIVE,
            1.0,
            1.5,
            1e300,
            f64::INFINITY,
        ];
        let rows: Vec<Bytes> = scores
            .iter()
            .map(|&s| score_key(1, b"z", 9, s, b"m"))
            .collect();
        assert!(rows.windows(2).all(|w| w[0] < w[1]));
        for &s in &scores {
            assert_eq!(score_from_bits(score_bits(s)), s);
        }
        assert_eq!(score_bits(-0.0), score_bits(0.0));
        assert!(score_key(1, b"z", 9, 1.0, b"a") < score_key(1, b"z", 9, 1.0, b"b"));
        assert_eq!(parse_owned_key(&rows[3]), Some((1, &b"z"[..], 9)));
        assert_eq!(
            parse_owned_key(&member_key(2, b"k", 4, b"x")),
            Some((2, &b"k"[..], 4))
        );
        assert_eq!(parse_owned_key(&[FAMILY_SCORE, 1, 0, 0]), None);
        assert!(rows[0].starts_with(&owned_prefix(FAMILY_SCORE, 1, b"z", 9)));
        assert!(is_user_row(&rows[0]) && db_of(&rows[0]) == Some(1));
    }
}
