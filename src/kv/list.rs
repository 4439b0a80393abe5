//! Lists on member rows: one row per element, keyed by its position.
//!
//! A list is a metadata row (`encoding::Meta` of `KeyType::List`) whose body holds its `head`
//! and `tail` positions (two signed 64-bit integers, big-endian: 16 bytes), and one member row
//! per element, `encoding::member_key(db, key, version, pos)` → the element, where `pos` is
//! the element's position encoded so that rows sort by it ([`encode_pos`]: the sign bit
//! flipped, big-endian), as Apache Kvrocks lays lists out. The elements are the positions
//! `head..tail`, every one of them a row (the list is dense), so:
//! - `LLEN` is `tail - head` (no scan); a new list starts at `head = tail = 0`;
//! - a push at either end writes one row and moves `head` down or `tail` up; a pop reads and
//!   removes one row: O(log n);
//! - `LINDEX`/`LSET` of index i is one lookup of position `head + i` (or `tail + i` for
//!   i < 0): O(log n);
//! - `LRANGE` is one ordered scan of the positions asked for;
//! - `LINSERT` and `LREM` fill or open a gap by moving the rows on the shorter side of it
//!   (one row rewrite each), see [`List::insert`] and [`List::remove_positions`];
//! - `DEL`, overwriting and expiry replace only the metadata row (the version changes); the old
//!   rows are reclaimed by `crate::reclaim`, which treats every member row alike.
//!
//! Cutting many elements off the ends (LTRIM, a pop with a large count) removes the rows one
//! by one, unless fewer elements stay than go: then the survivors are copied to a fresh
//! version at the same positions and the old version's rows are left to `crate::reclaim`, so
//! the cost is O(min(removed, kept)) row writes (plus reading what a pop returns).
//!
//! [`List`] is one list being read or changed within one command, as `collection::Collection`
//! is for hashes and sets: `save` writes the metadata back once, or deletes the key when the
//! last element went, as Redis does.

use bytes::{BufMut, Bytes, BytesMut};

use super::encoding::{self, KeyType, Meta};
use super::view::{KeyRead, WriteView};
use crate::store::StoreError;

/// An end of a list: `Left` is the head (index 0), `Right` the tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Left,
    Right,
}

/// Rows read at once by walks that must not hold a whole list in memory (backward walks,
/// moves).
const CHUNK: i64 = 256;

/// Cutting more rows than this off the ends re-homes the survivors if they are fewer.
const CUT_REHOME_AT: u64 = 256;

/// A position as the member part of its row: order-preserving (sign bit flipped, big-endian).
pub fn encode_pos(pos: i64) -> [u8; 8] {
    ((pos as u64) ^ (1 << 63)).to_be_bytes()
}

/// The position a member part holds (`None` if it is not 8 bytes).
pub fn decode_pos(member: &[u8]) -> Option<i64> {
    let b: [u8; 8] = member.try_into().ok()?;
    Some((u64::from_be_bytes(b) ^ (1 << 63)) as i64)
}

fn bounds_body(head: i64, tail: i64) -> Bytes {
    let mut b = BytesMut::with_capacity(16);
    b.put_i64(head);
    b.put_i64(tail);
    b.freeze()
}

/// A list's `(head, tail)` from its metadata body.
pub fn bounds_of(meta: &Meta) -> Result<(i64, i64), StoreError> {
    let b = &meta.body[..];
    if b.len() != 16 {
        return Err(StoreError::corrupt("list bounds", "not 16 bytes"));
    }
    let head = i64::from_be_bytes(b[..8].try_into().unwrap_or_default());
    let tail = i64::from_be_bytes(b[8..].try_into().unwrap_or_default());
    if head > tail {
        return Err(StoreError::corrupt("list bounds", "head after tail"));
    }
    Ok((head, tail))
}

fn missing_row() -> StoreError {
    StoreError::corrupt("list", "an element row within the bounds is missing")
}

/// A list key within one command (see the module docs).
#[derive(Clone, Debug)]
pub struct List {
    key: Bytes,
    meta: Meta,
    head: i64,
    tail: i64,
    /// The metadata row as it was (false: the key is being created).
    existed: bool,
    old_expiry: Option<i64>,
    changed: bool,
}

impl List {
    /// An existing list, from its (live) metadata row; the caller has checked its type.
    pub fn from_meta(key: &[u8], meta: Meta) -> Result<List, StoreError> {
        let (head, tail) = bounds_of(&meta)?;
        Ok(List {
            key: Bytes::copy_from_slice(key),
            old_expiry: meta.expire_at,
            meta,
            head,
            tail,
            existed: true,
            changed: false,
        })
    }

    /// A new, empty incarnation of `key` with a fresh version; written only by `save`, and
    /// only if it got elements.
    pub fn create(w: &mut WriteView, key: &[u8]) -> List {
        let meta = Meta {
            kind: KeyType::List,
            expire_at: None,
            version: w.new_version(),
            modified: w.index(),
            body: bounds_body(0, 0),
        };
        List {
            key: Bytes::copy_from_slice(key),
            meta,
            head: 0,
            tail: 0,
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

    /// `(head, tail)`: the elements are the positions `head..tail`.
    pub fn bounds(&self) -> (i64, i64) {
        (self.head, self.tail)
    }

    pub fn len(&self) -> u64 {
        self.tail.wrapping_sub(self.head) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    fn row(&self, db: u8, pos: i64) -> Bytes {
        encoding::member_key(db, &self.key, self.meta.version, &encode_pos(pos))
    }

    /// The position of Redis index `index` (negative counts from the tail), if in the list.
    pub fn position(&self, index: i64) -> Option<i64> {
        let len = i128::from(self.len());
        let i = if index < 0 {
            len + i128::from(index)
        } else {
            i128::from(index)
        };
        (0..len)
            .contains(&i)
            .then(|| (i128::from(self.head) + i) as i64)
    }

    /// The element at `pos` (within the bounds): one lookup.
    pub fn at(&self, r: &dyn KeyRead, pos: i64) -> Result<Bytes, StoreError> {
        r.raw(&self.row(r.db(), pos))?.ok_or_else(missing_row)
    }

    /// The element at Redis index `index` (`None`: out of range).
    pub fn get(&self, r: &dyn KeyRead, index: i64) -> Result<Option<Bytes>, StoreError> {
        match self.position(index) {
            Some(pos) => Ok(Some(self.at(r, pos)?)),
            None => Ok(None),
        }
    }

    /// Replaces the element at Redis index `index`; false if out of range.
    pub fn set(&mut self, w: &mut WriteView, index: i64, value: Bytes) -> bool {
        let Some(pos) = self.position(index) else {
            return false;
        };
        w.put_raw(&self.row(w.db(), pos), value);
        self.changed = true;
        true
    }

    /// True if `n` more elements fit at `end` (positions are 64-bit: a list can grow by
    /// 2^63 elements at each end before this is false).
    pub fn has_room(&self, end: End, n: u64) -> bool {
        let Ok(n) = i64::try_from(n) else {
            return false;
        };
        match end {
            End::Left => self.head.checked_sub(n).is_some(),
            End::Right => self.tail.checked_add(n).is_some(),
        }
    }

    /// Adds an element at `end` (the caller checked `has_room`).
    pub fn push(&mut self, w: &mut WriteView, end: End, value: Bytes) -> Result<(), StoreError> {
        let overflow = || StoreError::corrupt("list", "position overflow");
        let pos = match end {
            End::Left => {
                self.head = self.head.checked_sub(1).ok_or_else(overflow)?;
                self.head
            }
            End::Right => {
                let pos = self.tail;
                self.tail = self.tail.checked_add(1).ok_or_else(overflow)?;
                pos
            }
        };
        w.put_raw(&self.row(w.db(), pos), value);
        self.changed = true;
        Ok(())
    }

    /// Removes and returns the element at `end` (`None` if the list is empty).
    pub fn pop(&mut self, w: &mut WriteView, end: End) -> Result<Option<Bytes>, StoreError> {
        Ok(self.pop_many(w, end, 1)?.pop())
    }

    /// Removes up to `count` elements at `end` and returns them in the order they were
    /// popped (from the head for `Left`, from the tail for `Right`).
    pub fn pop_many(
        &mut self,
        w: &mut WriteView,
        end: End,
        count: u64,
    ) -> Result<Vec<Bytes>, StoreError> {
        let n = count.min(self.len());
        if n == 0 {
            return Ok(Vec::new());
        }
        let (lo, hi) = match end {
            End::Left => (self.head, self.head.wrapping_add_unsigned(n)),
            End::Right => (self.tail.wrapping_sub_unsigned(n), self.tail),
        };
        let mut out = self.read(w, lo, hi)?;
        if end == End::Right {
            out.reverse();
        }
        match end {
            End::Left => self.cut(w, n, 0)?,
            End::Right => self.cut(w, 0, n)?,
        }
        Ok(out)
    }

    /// The elements at positions `lo..hi` (within the bounds), in order, by one scan.
    fn read(&self, r: &dyn KeyRead, lo: i64, hi: i64) -> Result<Vec<Bytes>, StoreError> {
        let want = usize::try_from(hi.wrapping_sub(lo) as u64).unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(want.min(1 << 16));
        self.scan(r, lo, hi, &mut |_, v| {
            out.push(Bytes::copy_from_slice(v));
            true
        })?;
        if out.len() != want {
            return Err(missing_row());
        }
        Ok(out)
    }

    /// Visits the elements at positions `lo..hi` in order with their positions; `f` returns
    /// false to stop. One ordered scan.
    pub fn scan(
        &self,
        r: &dyn KeyRead,
        lo: i64,
        hi: i64,
        f: &mut dyn FnMut(i64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let (lo, hi) = (lo.max(self.head), hi.min(self.tail));
        if lo >= hi {
            return Ok(());
        }
        let prefix = encoding::member_prefix(r.db(), &self.key, self.meta.version);
        let skip = prefix.len();
        let mut from = BytesMut::from(&prefix[..]);
        from.put_slice(&encode_pos(lo));
        let mut to = prefix;
        to.put_slice(&encode_pos(hi));
        let mut bad = false;
        r.scan_raw(&from, &to, &mut |k, v| match decode_pos(&k[skip..]) {
            Some(pos) => f(pos, v),
            None => {
                bad = true;
                false
            }
        })?;
        if bad {
            return Err(StoreError::corrupt("list", "element row of a bad position"));
        }
        Ok(())
    }

    /// Visits every element from `from` (`Left`: head to tail; `Right`: tail to head) with its
    /// position; `f` returns false to stop. Backward walks read `CHUNK` rows at a time.
    pub fn walk(
        &self,
        r: &dyn KeyRead,
        from: End,
        f: &mut dyn FnMut(i64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        if from == End::Left {
            return self.scan(r, self.head, self.tail, f);
        }
        let mut hi = self.tail;
        while hi > self.head {
            let lo = hi.saturating_sub(CHUNK).max(self.head);
            let mut rows = Vec::new();
            self.scan(r, lo, hi, &mut |pos, v| {
                rows.push((pos, Bytes::copy_from_slice(v)));
                true
            })?;
            for (pos, v) in rows.iter().rev() {
                if !f(*pos, v) {
                    return Ok(());
                }
            }
            hi = lo;
        }
        Ok(())
    }

    /// Moves the rows at positions `lo..hi` by `delta` (±1 or more), in the order that never
    /// overwrites a row not yet moved; `CHUNK` rows in memory at a time.
    fn shift(&self, w: &mut WriteView, lo: i64, hi: i64, delta: i64) -> Result<(), StoreError> {
        let db = w.db();
        let chunk = |w: &mut WriteView, a: i64, b: i64| -> Result<(), StoreError> {
            let rows = self.read(w, a, b)?;
            for (i, v) in rows.into_iter().enumerate() {
                w.put_raw(&self.row(db, a + i as i64 + delta), v);
            }
            Ok(())
        };
        if delta < 0 {
            let mut a = lo;
            while a < hi {
                let b = a.saturating_add(CHUNK).min(hi);
                chunk(w, a, b)?;
                a = b;
            }
        } else {
            let mut b = hi;
            while b > lo {
                let a = b.saturating_sub(CHUNK).max(lo);
                // Within one chunk, rows are all read before any is written.
                chunk(w, a, b)?;
                b = a;
            }
        }
        Ok(())
    }

    /// Inserts `value` so that it sits just before the element now at position `before`
    /// (`tail`: at the end), moving the rows on the shorter side of it by one; false if the
    /// list has no room for it. Costs min(elements before, elements after) row rewrites.
    pub fn insert(
        &mut self,
        w: &mut WriteView,
        before: i64,
        value: Bytes,
    ) -> Result<bool, StoreError> {
        let before = before.clamp(self.head, self.tail);
        let left = before.wrapping_sub(self.head) as u64;
        let right = self.tail.wrapping_sub(before) as u64;
        let go_left = match (self.has_room(End::Left, 1), self.has_room(End::Right, 1)) {
            (false, false) => return Ok(false),
            (true, false) => true,
            (false, true) => false,
            (true, true) => left < right,
        };
        if go_left {
            self.shift(w, self.head, before, -1)?;
            self.head -= 1;
            w.put_raw(&self.row(w.db(), before - 1), value);
        } else {
            self.shift(w, before, self.tail, 1)?;
            self.tail += 1;
            w.put_raw(&self.row(w.db(), before), value);
        }
        self.changed = true;
        Ok(true)
    }

    /// Removes the elements at `positions` (within the bounds, each once, in any order) and
    /// closes the gaps by moving the survivors on the cheaper side: those after the first
    /// removed one move toward the head, or those before the last removed one toward the tail,
    /// whichever are fewer. Costs that many row rewrites plus one delete per removed element.
    pub fn remove_positions(
        &mut self,
        w: &mut WriteView,
        positions: &mut [i64],
    ) -> Result<(), StoreError> {
        positions.sort_unstable();
        let k = positions.len() as i64;
        let (Some(&first), Some(&last)) = (positions.first(), positions.last()) else {
            return Ok(());
        };
        let move_right_part = i128::from(self.tail) - i128::from(first) - i128::from(k);
        let move_left_part = i128::from(last) - i128::from(self.head) - i128::from(k - 1);
        if move_right_part <= move_left_part {
            // Each run of survivors after removed position j moves toward the head by j + 1.
            for (j, &p) in positions.iter().enumerate() {
                let next = positions.get(j + 1).copied().unwrap_or(self.tail);
                self.shift(w, p + 1, next, -(j as i64 + 1))?;
            }
            for pos in self.tail - k..self.tail {
                w.delete_raw(&self.row(w.db(), pos))?;
            }
            self.tail -= k;
        } else {
            // Each run of survivors before removed position j moves toward the tail by k - j.
            for (j, &p) in positions.iter().enumerate().rev() {
                let prev = if j == 0 {
                    self.head
                } else {
                    positions[j - 1] + 1
                };
                self.shift(w, prev, p, k - j as i64)?;
            }
            for pos in self.head..self.head + k {
                w.delete_raw(&self.row(w.db(), pos))?;
            }
            self.head += k;
        }
        self.changed = true;
        Ok(())
    }

    /// Removes `left` elements at the head and `right` at the tail (at most all of them).
    pub fn cut(&mut self, w: &mut WriteView, left: u64, right: u64) -> Result<(), StoreError> {
        let len = self.len();
        let left = left.min(len);
        let right = right.min(len - left);
        let removed = left + right;
        if removed == 0 {
            return Ok(());
        }
        let new_head = self.head.wrapping_add_unsigned(left);
        let new_tail = self.tail.wrapping_sub_unsigned(right);
        self.changed = true;
        let kept = len - removed;
        if removed > CUT_REHOME_AT && kept < removed {
            // The survivors move to a fresh version; the old rows are reclaimed later.
            let rows = if kept > 0 {
                self.read(w, new_head, new_tail)?
            } else {
                Vec::new()
            };
            self.meta.version = w.new_version();
            let db = w.db();
            for (i, v) in rows.into_iter().enumerate() {
                w.put_raw(&self.row(db, new_head + i as i64), v);
            }
        } else {
            let db = w.db();
            for pos in (self.head..new_head).chain(new_tail..self.tail) {
                w.delete_raw(&self.row(db, pos))?;
            }
        }
        self.head = new_head;
        self.tail = new_tail;
        Ok(())
    }

    /// Writes the metadata back if anything changed (the bounds, `modified`; expiry kept). A
    /// list left empty is deleted, as Redis does; one created and left empty is never
    /// written. True if the key was deleted.
    pub fn save(mut self, w: &mut WriteView) -> Result<bool, StoreError> {
        if !self.changed {
            return Ok(false);
        }
        if self.is_empty() {
            if self.existed {
                w.delete(&self.key)?;
            }
            return Ok(self.existed);
        }
        self.meta.body = bounds_body(self.head, self.tail);
        self.meta.modified = w.index();
        w.put_meta(&self.key, &self.meta, self.old_expiry)?;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::kv::collection::find_orphans;
    use crate::kv::{Memtable, flush_into};
    use crate::store::{self, Db};

    fn setup() -> (tempfile::TempDir, Db, Arc<Memtable>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = store::open(&dir.path().join("d"), 1 << 20).expect("open");
        (dir, db, Arc::new(Memtable::new()))
    }

    /// Runs `f` as entry `index` of database 0, then flushes to the table if asked.
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
            txn.commit().expect("commit");
            state.flushed();
        } else {
            txn.commit().expect("commit");
        }
        r
    }

    fn open(w: &dyn KeyRead, key: &[u8]) -> Option<List> {
        w.meta(key)
            .unwrap()
            .map(|m| List::from_meta(key, m).unwrap())
    }

    fn items(r: &dyn KeyRead, l: &List) -> Vec<String> {
        let mut out = Vec::new();
        l.walk(r, End::Left, &mut |_, v| {
            out.push(String::from_utf8_lossy(v).into_owned());
            true
        })
        .unwrap();
        out
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// A list of `n` elements "0".."n-1" pushed on the right, saved as key `key`.
    fn make(w: &mut WriteView, key: &[u8], n: usize) {
        let mut l = List::create(w, key);
        for i in 0..n {
            l.push(w, End::Right, b(&i.to_string())).unwrap();
        }
        l.save(w).unwrap();
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn positions_sort_as_their_rows() {
        let ps = [i64::MIN, -300, -1, 0, 1, 255, 256, i64::MAX];
        let enc: Vec<[u8; 8]> = ps.iter().map(|&p| encode_pos(p)).collect();
        assert!(enc.windows(2).all(|w| w[0] < w[1]));
        for (&p, e) in ps.iter().zip(&enc) {
            assert_eq!(decode_pos(e), Some(p));
        }
        assert_eq!(decode_pos(b"short"), None);
    }

    #[test]
    fn pushes_pops_and_indexes_at_both_ends() {
        let (_d, db, mem) = setup();
        write(&db, &mem, 1, false, |w| {
            let mut l = List::create(w, b"l");
            for s in ["c", "b", "a"] {
                l.push(w, End::Left, b(s)).unwrap();
            }
            for s in ["d", "e"] {
                l.push(w, End::Right, b(s)).unwrap();
            }
            assert_eq!(l.bounds(), (-3, 2));
            l.save(w).unwrap();
            let mut l = open(w, b"l").unwrap();
            assert_eq!(items(w, &l), strs(&["a", "b", "c", "d", "e"]));
            assert_eq!(l.get(w, 0).unwrap(), Some(b("a")));
            assert_eq!(l.get(w, -1).unwrap(), Some(b("e")));
            assert_eq!(l.get(w, -5).unwrap(), Some(b("a")));
            assert_eq!(l.get(w, 5).unwrap(), None);
            assert_eq!(l.get(w, -6).unwrap(), None);
            assert_eq!(l.get(w, i64::MIN).unwrap(), None);
            assert!(l.set(w, 1, b("B")));
            assert!(!l.set(w, 9, b("x")));
            assert_eq!(l.pop(w, End::Left).unwrap(), Some(b("a")));
            assert_eq!(l.pop_many(w, End::Right, 2).unwrap(), vec![b("e"), b("d")]);
            assert_eq!(items(w, &l), strs(&["B", "c"]));
            let mut back = Vec::new();
            l.walk(w, End::Right, &mut |p, v| {
                back.push((p, v.to_vec()));
                true
            })
            .unwrap();
            assert_eq!(back, vec![(-1, b"c".to_vec()), (-2, b"B".to_vec())]);
            assert_eq!(l.pop_many(w, End::Left, 10).unwrap().len(), 2);
            assert!(l.save(w).unwrap(), "the last pop deletes the key");
            assert!(!w.exists(b"l").unwrap());
        });
    }

    #[test]
    fn backward_walks_cross_chunks_and_stop_early() {
        let (_d, db, mem) = setup();
        write(&db, &mem, 1, true, |w| make(w, b"l", 600));
        let mut r = crate::kv::Reader::new(&db, &mem);
        let seen = r
            .run(0, |v| {
                let l = open(v, b"l").unwrap();
                let mut seen = Vec::new();
                l.walk(v, End::Right, &mut |_, e| {
                    seen.push(String::from_utf8_lossy(e).into_owned());
                    seen.len() < 300
                })?;
                Ok(seen)
            })
            .unwrap();
        assert_eq!(seen.len(), 300);
        assert_eq!(seen[0], "599");
        assert_eq!(seen[299], "300");
    }

    #[test]
    fn inserts_move_the_shorter_side() {
        let (_d, db, mem) = setup();
        write(&db, &mem, 1, false, |w| {
            make(w, b"l", 6);
            let mut l = open(w, b"l").unwrap();
            // Before index 1: the head side (one row) moves.
            assert!(l.insert(w, l.position(1).unwrap(), b("x")).unwrap());
            assert_eq!(l.bounds(), (-1, 6));
            // Before index 5 of 7: the tail side moves.
            assert!(l.insert(w, l.position(5).unwrap(), b("y")).unwrap());
            assert_eq!(l.bounds(), (-1, 7));
            // At the very end.
            let tail = l.bounds().1;
            assert!(l.insert(w, tail, b("z")).unwrap());
            l.save(w).unwrap();
            let l = open(w, b"l").unwrap();
            assert_eq!(
                items(w, &l),
                strs(&["0", "x", "1", "2", "3", "y", "4", "5", "z"])
            );
        });
    }

    #[test]
    fn removals_close_their_gaps_from_either_side() {
        let (_d, db, mem) = setup();
        write(&db, &mem, 1, false, |w| {
            // Removed near the tail: the right part moves.
            make(w, b"a", 700);
            let mut l = open(w, b"a").unwrap();
            let (h, _) = l.bounds();
            let mut ps = vec![h + 699, h + 650, h + 651, h + 690];
            l.remove_positions(w, &mut ps).unwrap();
            assert_eq!(l.bounds(), (0, 696));
            l.save(w).unwrap();
            // Removed near the head: the left part moves.
            make(w, b"b", 700);
            let mut l = open(w, b"b").unwrap();
            let mut ps = vec![3, 0, 300, 10];
            l.remove_positions(w, &mut ps).unwrap();
            assert_eq!(l.bounds(), (4, 700));
            l.save(w).unwrap();
        });
        let mut r = crate::kv::Reader::new(&db, &mem);
        r.run(0, |v| {
            let a = items(v, &open(v, b"a").unwrap());
            let want: Vec<String> = (0..700)
                .filter(|i| ![650, 651, 690, 699].contains(i))
                .map(|i| i.to_string())
                .collect();
            assert_eq!(a, want);
            let b = items(v, &open(v, b"b").unwrap());
            let want: Vec<String> = (0..700)
                .filter(|i| ![0, 3, 10, 300].contains(i))
                .map(|i| i.to_string())
                .collect();
            assert_eq!(b, want);
            // No row outside the bounds is left behind.
            let (orphans, _) = find_orphans(v, &[encoding::FAMILY_MEMBER], 10_000, 10_000)?;
            assert!(orphans.is_empty());
            let prefix = encoding::member_prefix(0, b"b", open(v, b"b").unwrap().meta().version);
            let mut rows = 0;
            v.scan_raw(
                &prefix,
                &encoding::prefix_end(&prefix).unwrap(),
                &mut |_, _| {
                    rows += 1;
                    true
                },
            )?;
            assert_eq!(rows, 696);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_big_cut_rehomes_the_few_survivors_and_leaves_the_rest_to_reclaim() {
        let (_d, db, mem) = setup();
        write(&db, &mem, 1, true, |w| make(w, b"l", 1000));
        let old_version = write(&db, &mem, 2, true, |w| {
            let mut l = open(w, b"l").unwrap();
            let old = l.meta().version;
            l.cut(w, 500, 497).unwrap();
            assert_ne!(l.meta().version, old);
            l.save(w).unwrap();
            let l = open(w, b"l").unwrap();
            assert_eq!(items(w, &l), strs(&["500", "501", "502"]));
            assert_eq!(l.bounds(), (500, 503));
            old
        });
        let mut r = crate::kv::Reader::new(&db, &mem);
        let (orphans, _) = r
            .run(0, |v| {
                find_orphans(v, &[encoding::FAMILY_MEMBER], 10_000, 10_000)
            })
            .unwrap();
        assert_eq!(orphans.len(), 1000);
        assert!(orphans.iter().all(|k| {
            encoding::parse_member_key(k).is_some_and(|(_, _, v, _)| v == old_version)
        }));
        // A small cut deletes rows in place.
        write(&db, &mem, 3, false, |w| {
            let mut l = open(w, b"l").unwrap();
            let v = l.meta().version;
            l.cut(w, 1, 1).unwrap();
            assert_eq!(l.meta().version, v);
            l.save(w).unwrap();
            assert_eq!(items(w, &open(w, b"l").unwrap()), strs(&["501"]));
        });
    }

    #[test]
    fn damaged_bounds_are_an_error_not_a_panic() {
        let mut m = Meta {
            kind: KeyType::List,
            expire_at: None,
            version: 1,
            modified: 1,
            body: Bytes::from_static(b"short"),
        };
        assert!(List::from_meta(b"k", m.clone()).is_err());
        m.body = bounds_body(5, 4);
        assert!(List::from_meta(b"k", m.clone()).is_err());
        m.body = bounds_body(i64::MIN, i64::MAX);
        let l = List::from_meta(b"k", m).unwrap();
        assert_eq!(l.len(), u64::MAX);
        assert!(!l.has_room(End::Left, 1) && !l.has_room(End::Right, 1));
        assert_eq!(l.position(-1), Some(i64::MAX - 1));
    }
}
