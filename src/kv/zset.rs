//! Sorted sets on two row orders, as Apache Kvrocks lays them out.
//!
//! A sorted set is a metadata row (`encoding::Meta` of `KeyType::ZSet`; its body is the member
//! count, u64 BE, then one byte of flags: bit 0 set once the set would be a skiplist in Redis)
//! and two rows per member, both carrying the incarnation's `version`:
//! - a **member row** `02 db len key version member` → the score (f64 bits, u64 BE): one
//!   lookup for ZSCORE, and the member-ordered range ZRANGEBYLEX walks;
//! - a **score row** `05 db len key version score member` → empty, where the score is 8 bytes
//!   that sort as the numbers do (`encoding::score_bits`): members in (score, member) order,
//!   Redis's order, so a score range is one seek and one ordered scan, either way.
//!
//! Adding or rescoring a member is a lookup and at most three row writes. There is no rank
//! index: a rank costs a walk from the nearer end (see `rank`), as the docs say. DEL,
//! overwrite and expiry replace only the metadata row; both families' old rows are reclaimed by
//! `crate::reclaim`.

use bytes::{BufMut, Bytes, BytesMut};

use super::encoding::{self, KeyType, Meta};
use super::view::{KeyRead, WriteView};
use crate::store::StoreError;

/// Redis's default `zset-max-listpack-entries` and `zset-max-listpack-value`: a sorted set
/// bigger than either is a skiplist in Redis (and stays one), which OBJECT ENCODING reports.
/// Constants, not node settings: the flag is replicated state.
pub const LISTPACK_ENTRIES: u64 = 128;
pub const LISTPACK_VALUE: usize = 64;

const FLAG_SKIPLIST: u8 = 1;

/// One sorted set within one command: its metadata, count and flags, whether it changed.
#[derive(Clone, Debug)]
pub struct ZSet {
    key: Bytes,
    meta: Meta,
    len: u64,
    flags: u8,
    existed: bool,
    old_expiry: Option<i64>,
    changed: bool,
}

/// (count, flags) of a sorted set's metadata body.
fn parse_body(meta: &Meta) -> Result<(u64, u8), StoreError> {
    let b = &meta.body;
    if b.len() != 9 {
        return Err(StoreError::corrupt("sorted set body", "not 9 bytes"));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&b[..8]);
    Ok((u64::from_be_bytes(n), b[8]))
}

fn body(len: u64, flags: u8) -> Bytes {
    let mut out = BytesMut::with_capacity(9);
    out.put_u64(len);
    out.put_u8(flags);
    out.freeze()
}

/// A member row's value: the exact score.
fn score_value(score: f64) -> Bytes {
    Bytes::copy_from_slice(&score.to_bits().to_be_bytes())
}

fn parse_score_value(v: &[u8]) -> Result<f64, StoreError> {
    let b: [u8; 8] = v
        .try_into()
        .map_err(|_| StoreError::corrupt("sorted set score", "not 8 bytes"))?;
    Ok(f64::from_bits(u64::from_be_bytes(b)))
}

/// Whether a sorted set with this metadata is a skiplist for OBJECT ENCODING.
pub fn is_skiplist(meta: &Meta) -> bool {
    meta.body.get(8).is_some_and(|f| f & FLAG_SKIPLIST != 0)
}

/// The count in a sorted set's metadata (0 if it is not one).
pub fn count_of(meta: &Meta) -> u64 {
    parse_body(meta).map_or(0, |(n, _)| n)
}

/// One end of a score range: the score and whether it is excluded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreBound {
    pub score: f64,
    pub exclusive: bool,
}

impl ScoreBound {
    /// Whether `s` is at or above this bound taken as a minimum.
    pub fn below(&self, s: f64) -> bool {
        if self.exclusive {
            s > self.score
        } else {
            s >= self.score
        }
    }

    /// Whether `s` is at or below this bound taken as a maximum.
    pub fn above(&self, s: f64) -> bool {
        if self.exclusive {
            s < self.score
        } else {
            s <= self.score
        }
    }
}

impl ZSet {
    /// An existing sorted set, from its live metadata row (the caller checked the type).
    pub fn from_meta(key: &[u8], meta: Meta) -> Result<ZSet, StoreError> {
        let (len, flags) = parse_body(&meta)?;
        Ok(ZSet {
            key: Bytes::copy_from_slice(key),
            len,
            flags,
            old_expiry: meta.expire_at,
            meta,
            existed: true,
            changed: false,
        })
    }

    /// A new, empty incarnation of `key`, written by `save` only if it got members.
    pub fn create(w: &mut WriteView, key: &[u8]) -> ZSet {
        let meta = Meta {
            kind: KeyType::ZSet,
            expire_at: None,
            version: w.new_version(),
            modified: w.index(),
            body: body(0, 0),
        };
        ZSet {
            key: Bytes::copy_from_slice(key),
            meta,
            len: 0,
            flags: 0,
            existed: false,
            old_expiry: None,
            changed: false,
        }
    }

    pub fn key(&self) -> &Bytes {
        &self.key
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    pub fn version(&self) -> u64 {
        self.meta.version
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Marks the set a skiplist from now on (Redis never converts one back in place).
    pub fn set_skiplist(&mut self) {
        if self.flags & FLAG_SKIPLIST == 0 {
            self.flags |= FLAG_SKIPLIST;
            self.changed = true;
        }
    }

    fn member_row(&self, db: u8, member: &[u8]) -> Bytes {
        encoding::member_key(db, &self.key, self.meta.version, member)
    }

    fn score_row(&self, db: u8, score: f64, member: &[u8]) -> Bytes {
        encoding::score_key(db, &self.key, self.meta.version, score, member)
    }

    /// A member's score (`None`: not a member). One lookup.
    pub fn score(&self, r: &dyn KeyRead, member: &[u8]) -> Result<Option<f64>, StoreError> {
        match r.raw(&self.member_row(r.db(), member))? {
            Some(v) => Ok(Some(parse_score_value(&v)?)),
            None => Ok(None),
        }
    }

    /// Sets a member's score; returns its old score (`None`: it is new). The caller never
    /// passes NaN.
    pub fn insert(
        &mut self,
        w: &mut WriteView,
        member: &[u8],
        score: f64,
    ) -> Result<Option<f64>, StoreError> {
        let old = self.score(w, member)?;
        self.rescore(w, member, old, score);
        Ok(old)
    }

    /// `insert` for a caller that has just read the member's score (`old`, `None`: not a
    /// member): saves the second lookup, and deletes the old score row without looking for it
    /// (a member row always has its score row).
    pub fn rescore(&mut self, w: &mut WriteView, member: &[u8], old: Option<f64>, score: f64) {
        let db = w.db();
        if let Some(o) = old {
            if o.to_bits() == score.to_bits() {
                return;
            }
            w.delete_present(&self.score_row(db, o, member));
        } else {
            self.len += 1;
            if self.len > LISTPACK_ENTRIES || member.len() > LISTPACK_VALUE {
                self.flags |= FLAG_SKIPLIST;
            }
        }
        w.put_raw(&self.member_row(db, member), score_value(score));
        w.put_raw(&self.score_row(db, score, member), Bytes::new());
        self.changed = true;
    }

    /// Removes a member; its score if it was one.
    pub fn remove(&mut self, w: &mut WriteView, member: &[u8]) -> Result<Option<f64>, StoreError> {
        let db = w.db();
        let Some(old) = self.score(w, member)? else {
            return Ok(None);
        };
        w.delete_raw(&self.member_row(db, member))?;
        w.delete_raw(&self.score_row(db, old, member))?;
        self.len = self.len.saturating_sub(1);
        self.changed = true;
        Ok(Some(old))
    }

    /// Writes the metadata back if anything changed (count, flags, `modified`; expiry kept).
    /// A set left empty is deleted, as Redis does. True if the key was deleted.
    pub fn save(mut self, w: &mut WriteView) -> Result<bool, StoreError> {
        if !self.changed {
            return Ok(false);
        }
        if self.len == 0 {
            if self.existed {
                w.delete(&self.key)?;
            }
            return Ok(self.existed);
        }
        self.meta.body = body(self.len, self.flags);
        self.meta.modified = w.index();
        w.put_meta(&self.key, &self.meta, self.old_expiry)?;
        Ok(false)
    }

    /// Visits members in (score, member) order, ascending or (`rev`) descending, with their
    /// scores, starting at `start` (ascending: the first score ≥ it; descending: the last ≤ it,
    /// `None`: from the end); `f` returns false to stop. One seek and one ordered scan.
    pub fn scan_scores(
        &self,
        r: &dyn KeyRead,
        start: Option<f64>,
        rev: bool,
        f: &mut dyn FnMut(f64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let prefix = encoding::score_prefix(r.db(), &self.key, self.meta.version);
        let end = encoding::prefix_end(&prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
        let skip = prefix.len();
        let mut failed = None;
        let mut visit = |k: &[u8], _: &[u8]| {
            let Some(bits) = k.get(skip..skip + 8) else {
                failed = Some(StoreError::corrupt("sorted set score row", "short"));
                return false;
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(bits);
            f(
                encoding::score_from_bits(u64::from_be_bytes(b)),
                &k[skip + 8..],
            )
        };
        let mut at = BytesMut::from(&prefix[..]);
        if rev {
            let hi = match start.map(encoding::score_bits) {
                None => end,
                Some(bits) => match bits.checked_add(1) {
                    Some(next) => {
                        at.put_u64(next);
                        at.to_vec()
                    }
                    None => end,
                },
            };
            r.scan_raw_rev(&prefix, &hi, &mut visit)?;
        } else {
            if let Some(s) = start {
                at.put_u64(encoding::score_bits(s));
            }
            r.scan_raw(&at, &end, &mut visit)?;
        }
        failed.map_or(Ok(()), Err)
    }

    /// Visits members in member-byte order (descending if `rev`) with their scores, from
    /// `from` (ascending: the first ≥ it; descending: the last ≤ it, `None`: the end).
    pub fn scan_members(
        &self,
        r: &dyn KeyRead,
        from: Option<&[u8]>,
        rev: bool,
        f: &mut dyn FnMut(&[u8], f64) -> bool,
    ) -> Result<(), StoreError> {
        let prefix = encoding::member_prefix(r.db(), &self.key, self.meta.version);
        let end = encoding::prefix_end(&prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
        let skip = prefix.len();
        let mut failed = None;
        let mut visit = |k: &[u8], v: &[u8]| match parse_score_value(v) {
            Ok(s) => f(&k[skip..], s),
            Err(e) => {
                failed = Some(e);
                false
            }
        };
        let mut at = BytesMut::from(&prefix[..]);
        if rev {
            let hi = match from {
                None => end,
                Some(m) => {
                    // Past `m` itself: `m` followed by a zero byte is the next member.
                    at.put_slice(m);
                    at.put_u8(0);
                    at.to_vec()
                }
            };
            r.scan_raw_rev(&prefix, &hi, &mut visit)?;
        } else {
            at.put_slice(from.unwrap_or(b""));
            r.scan_raw(&at, &end, &mut visit)?;
        }
        failed.map_or(Ok(()), Err)
    }

    /// The members at ranks `start..=end` (0-based, ascending, or descending from the top if
    /// `rev`; the caller clamps them to the set), walking from the nearer end of the set: a
    /// rank costs min(rank, len - rank) steps, there being no rank index.
    pub fn by_rank(
        &self,
        r: &dyn KeyRead,
        start: u64,
        end: u64,
        rev: bool,
    ) -> Result<Vec<(Bytes, f64)>, StoreError> {
        let want = end.saturating_sub(start).saturating_add(1);
        let mut out = Vec::with_capacity(usize::try_from(want.min(1 << 16)).unwrap_or(0));
        let from_near_end = start > self.len.saturating_sub(end.saturating_add(1));
        let (walk_rev, skip) = if from_near_end {
            (!rev, self.len.saturating_sub(end.saturating_add(1)))
        } else {
            (rev, start)
        };
        let mut seen = 0u64;
        self.scan_scores(r, None, walk_rev, &mut |s, m| {
            if seen >= skip {
                out.push((Bytes::copy_from_slice(m), s));
            }
            seen += 1;
            (out.len() as u64) < want
        })?;
        if from_near_end {
            out.reverse();
        }
        Ok(out)
    }

    /// A member's 0-based rank in ascending order (`None`: not a member), counted from the
    /// nearer end: the member's score decides which end is nearer only roughly, so this walks
    /// from the bottom up to the member, or from the top down, whichever reaches it first
    /// (both walks advance in step).
    pub fn rank(&self, r: &dyn KeyRead, member: &[u8]) -> Result<Option<u64>, StoreError> {
        let Some(score) = self.score(r, member)? else {
            return Ok(None);
        };
        let target = encoding::score_key(r.db(), &self.key, self.meta.version, score, member);
        let prefix = encoding::score_prefix(r.db(), &self.key, self.meta.version);
        let end = encoding::prefix_end(&prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
        // Rows below the member, counted upwards, and rows above it, counted downwards, in
        // chunks of growing size so the nearer end wins after about twice its distance.
        let mut chunk = 64u64;
        let mut below_from = prefix.to_vec();
        let mut above_to = end.clone();
        let mut below = 0u64;
        let mut above = 0u64;
        loop {
            let mut done = false;
            let mut n = 0u64;
            let mut next = None;
            r.scan_raw(&below_from, &target, &mut |k, _| {
                if n == chunk {
                    next = Some(k.to_vec());
                    return false;
                }
                n += 1;
                true
            })?;
            below += n;
            match next {
                Some(k) => below_from = k,
                None => done = true,
            }
            if done {
                return Ok(Some(below));
            }
            let mut n = 0u64;
            let mut next = None;
            let mut lo = target.to_vec();
            lo.push(0);
            r.scan_raw_rev(&lo, &above_to, &mut |k, _| {
                if n == chunk {
                    next = Some(k.to_vec());
                    return false;
                }
                n += 1;
                true
            })?;
            above += n;
            match next {
                // The upper bound is exclusive: the row not yet counted is the new end.
                Some(mut k) => {
                    k.push(0);
                    above_to = k;
                }
                None => return Ok(Some(self.len.saturating_sub(above + 1))),
            }
            chunk = chunk.saturating_mul(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::kv::{Memtable, flush_into};
    use crate::store::{self, Db};

    fn setup() -> (tempfile::TempDir, Db, Arc<Memtable>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = store::open(&dir.path().join("d"), 1 << 20).expect("open");
        (dir, db, Arc::new(Memtable::new()))
    }

    /// Runs `f` as entry `index` of database 0, flushing the memtable to the table if asked.
    fn write<R>(
        db: &Db,
        mem: &Memtable,
        index: u64,
        flush: bool,
        f: impl FnOnce(&mut WriteView) -> R,
    ) -> R {
        let txn = db.begin_write().expect("txn");
        let mut state = mem.write();
        let r = {
            let mut view = WriteView::open(&txn, &mut state).expect("view");
            view.begin_entry(0, 1000, index);
            f(&mut view)
        };
        if flush {
            flush_into(&txn, &state).expect("flush");
        }
        txn.commit().expect("commit");
        if flush {
            state.flushed();
        }
        r
    }

    fn open(w: &WriteView, key: &[u8]) -> ZSet {
        ZSet::from_meta(key, w.meta(key).unwrap().unwrap()).unwrap()
    }

    fn by_score(w: &dyn KeyRead, z: &ZSet, start: Option<f64>, rev: bool) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        z.scan_scores(w, start, rev, &mut |s, m| {
            out.push((String::from_utf8_lossy(m).into_owned(), s));
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn both_orders_follow_inserts_rescores_and_removes() {
        let (_d, db, mem) = setup();
        write(&db, &mem, 1, true, |w| {
            let mut z = ZSet::create(w, b"z");
            assert_eq!(z.insert(w, b"b", 2.0).unwrap(), None);
            assert_eq!(z.insert(w, b"a", 2.0).unwrap(), None);
            assert_eq!(z.insert(w, b"c", f64::NEG_INFINITY).unwrap(), None);
            z.save(w).unwrap();
        });
        write(&db, &mem, 2, false, |w| {
            let mut z = open(w, b"z");
            assert_eq!(z.insert(w, b"c", 5.0).unwrap(), Some(f64::NEG_INFINITY));
            assert_eq!(z.remove(w, b"a").unwrap(), Some(2.0));
            assert_eq!(z.remove(w, b"a").unwrap(), None);
            z.insert(w, b"d", -1.0).unwrap();
            assert_eq!(z.len(), 3);
            z.save(w).unwrap();
            let z = open(w, b"z");
            let all = by_score(w, &z, None, false);
            assert_eq!(
                all,
                [("d".into(), -1.0), ("b".into(), 2.0), ("c".into(), 5.0)]
            );
            assert_eq!(by_score(w, &z, Some(2.0), false).len(), 2);
            let rev = by_score(w, &z, Some(2.0), true);
            assert_eq!(rev, [("b".into(), 2.0), ("d".into(), -1.0)]);
            assert_eq!(z.score(w, b"c").unwrap(), Some(5.0));
            assert_eq!(count_of(z.meta()), 3);
            assert!(!is_skiplist(z.meta()));
        });
    }

    #[test]
    fn ranks_count_from_either_end_across_the_memtable_and_the_table() {
        let (_d, db, mem) = setup();
        let n = 700u64;
        write(&db, &mem, 1, true, |w| {
            let mut z = ZSet::create(w, b"z");
            for i in 0..n / 2 {
                z.insert(w, format!("m{i:04}").as_bytes(), (i % 50) as f64)
                    .unwrap();
            }
            z.save(w).unwrap();
        });
        write(&db, &mem, 2, false, |w| {
            let mut z = open(w, b"z");
            for i in n / 2..n {
                z.insert(w, format!("m{i:04}").as_bytes(), (i % 50) as f64)
                    .unwrap();
            }
            z.save(w).unwrap();
            let z = open(w, b"z");
            assert!(is_skiplist(z.meta()), "more than 128 members");
            let order = by_score(w, &z, None, false);
            assert_eq!(order.len() as u64, n);
            for (rank, (m, _)) in order.iter().enumerate().step_by(13) {
                assert_eq!(z.rank(w, m.as_bytes()).unwrap(), Some(rank as u64), "{m}");
            }
            assert_eq!(
                z.rank(w, order[n as usize - 1].0.as_bytes()).unwrap(),
                Some(n - 1)
            );
            assert_eq!(z.rank(w, b"nope").unwrap(), None);
            for (a, b) in [(0, 4), (3, 3), (690, 699), (400, 420)] {
                let got = z.by_rank(w, a, b, false).unwrap();
                let names: Vec<_> = got.iter().map(|(m, _)| m.to_vec()).collect();
                let want: Vec<_> = order[a as usize..=b as usize]
                    .iter()
                    .map(|(m, _)| m.as_bytes().to_vec())
                    .collect();
                assert_eq!(names, want, "{a}..={b}");
                let rev = z.by_rank(w, a, b, true).unwrap();
                let want_rev: Vec<_> = order[(n - 1 - b) as usize..=(n - 1 - a) as usize]
                    .iter()
                    .rev()
                    .map(|(m, _)| m.as_bytes().to_vec())
                    .collect();
                let names: Vec<_> = rev.iter().map(|(m, _)| m.to_vec()).collect();
                assert_eq!(names, want_rev, "rev {a}..={b}");
            }
        });
    }

    #[test]
    fn member_order_scans_resume_both_ways() {
        let (_d, db, mem) = setup();
        write(&db, &mem, 1, false, |w| {
            let mut z = ZSet::create(w, b"z");
            for m in ["a", "b", "c", "d"] {
                z.insert(w, m.as_bytes(), 0.0).unwrap();
            }
            z.save(w).unwrap();
            let z = open(w, b"z");
            let walk = |from: Option<&[u8]>, rev: bool| {
                let mut out = String::new();
                z.scan_members(w, from, rev, &mut |m, _| {
                    out.push_str(std::str::from_utf8(m).unwrap());
                    true
                })
                .unwrap();
                out
            };
            assert_eq!(walk(None, false), "abcd");
            assert_eq!(walk(Some(b"b"), false), "bcd");
            assert_eq!(walk(Some(b"bb"), false), "cd");
            assert_eq!(walk(None, true), "dcba");
            assert_eq!(walk(Some(b"c"), true), "cba");
            assert_eq!(walk(Some(b"bb"), true), "ba");
        });
    }
}
