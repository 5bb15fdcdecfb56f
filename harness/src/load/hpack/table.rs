//! The decoder's dynamic table (RFC 7541 2.3): the entries' bytes in one ring buffer.
//!
//! Servers such as nginx add three or four fields to the table with every response and never
//! refer to them again, so the table churns at the request rate. A ring of bytes makes an
//! insert one copy and an eviction a pop, with no allocation or free per entry.

use std::collections::VecDeque;

/// Bytes RFC 7541 counts for each entry on top of its name and value.
const OVERHEAD: usize = 32;

/// One entry: where its name and value lie in the ring.
#[derive(Debug, Clone, Copy)]
struct Entry {
    start: usize,
    name: usize,
    value: usize,
}

/// A dynamic table of at most `max_allowed` bytes (RFC 7541 size: name + value + 32 each).
#[derive(Debug)]
pub(super) struct Table {
    /// Twice the largest allowed size: a new entry always fits whole at the write position or,
    /// wrapping, at the start (see [`Table::insert`]).
    ring: Box<[u8]>,
    /// Newest first, as HPACK indexes it.
    entries: VecDeque<Entry>,
    /// Where the next entry's bytes go.
    write: usize,
    /// The table's size as RFC 7541 counts it.
    size: usize,
    /// The size the encoder chose (≤ the allowed size).
    max: usize,
}

impl Table {
    /// An empty table that may grow to `max_allowed` bytes.
    pub(super) fn new(max_allowed: usize) -> Self {
        Self {
            ring: vec![0; 2 * max_allowed].into_boxed_slice(),
            entries: VecDeque::new(),
            write: 0,
            size: 0,
            max: max_allowed,
        }
    }

    /// Entry `i`, 0 the newest: its name and value.
    pub(super) fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let e = self.entries.get(i)?;
        let name_end = e.start + e.name;
        Some((
            &self.ring[e.start..name_end],
            &self.ring[name_end..name_end + e.value],
        ))
    }

    /// Number of entries.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Applies the encoder's size update (the caller checks it against the allowed size).
    pub(super) fn set_max(&mut self, max: usize) {
        self.max = max;
        self.evict(0);
    }

    /// Adds `name: value` as the newest entry, evicting the oldest to make room; an entry
    /// larger than the whole table empties it and is not added (RFC 7541 4.4).
    ///
    /// Why the bytes always fit: after eviction the live bytes and the new entry together take
    /// at most `max` ≤ half the ring. Unwrapped (live bytes in `[oldest, write)`), an entry that
    /// does not fit before the end goes to 0, and `oldest ≥ write - (max - len) > len`.
    /// Wrapped, the gap `[write, oldest)` is the ring less the live bytes and the tail skipped
    /// at the wrap, which is shorter than one entry (< `max`): at least `len`.
    pub(super) fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = name.len() + value.len() + OVERHEAD;
        self.evict(size);
        if size > self.max {
            return;
        }
        let len = name.len() + value.len();
        if self.write + len > self.ring.len() {
            self.write = 0;
        }
        let start = self.write;
        self.ring[start..start + name.len()].copy_from_slice(name);
        self.ring[start + name.len()..start + len].copy_from_slice(value);
        self.write = start + len;
        self.size += size;
        self.entries.push_front(Entry {
            start,
            name: name.len(),
            value: value.len(),
        });
    }

    /// Evicts the oldest entries until `room` more bytes fit, or the table is empty.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            match self.entries.pop_back() {
                Some(e) => self.size -= e.name + e.value + OVERHEAD,
                None => break,
            }
        }
        if self.entries.is_empty() {
            self.write = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a plain list of owned entries: the same entries, in the same order, after
        /// any sequence of inserts (small, large, over-size) and size updates.
        #[test]
        fn ring_holds_what_a_plain_list_holds(
            ops in proptest::collection::vec(
                prop_oneof![
                    4 => (0usize..40, 0usize..120, any::<u8>()).prop_map(|(n, v, b)| (n, v, b, None)),
                    1 => (0usize..300).prop_map(|m| (0, 0, 0, Some(m))),
                ],
                1..200,
            ),
        ) {
            let allowed = 256;
            let mut t = Table::new(allowed);
            let mut model: VecDeque<(Vec<u8>, Vec<u8>)> = VecDeque::new();
            let mut max = allowed;
            for (i, (n, v, b, resize)) in ops.into_iter().enumerate() {
                let model_size = |m: &VecDeque<(Vec<u8>, Vec<u8>)>| {
                    m.iter().map(|(n, v)| n.len() + v.len() + OVERHEAD).sum::<usize>()
                };
                if let Some(m) = resize {
                    max = m.min(allowed);
                    t.set_max(max);
                } else {
                    let name = vec![b; n];
                    let value: Vec<u8> = (0..v).map(|k| b.wrapping_add((k + i) as u8)).collect();
                    t.insert(&name, &value);
                    if n + v + OVERHEAD <= max {
                        model.push_front((name, value));
                    } else {
                        model.clear();
                    }
                }
                while model_size(&model) > max {
                    model.pop_back();
                }
                prop_assert_eq!(t.len(), model.len());
                for (k, (n, v)) in model.iter().enumerate() {
                    prop_assert_eq!(t.get(k), Some((n.as_slice(), v.as_slice())));
                }
            }
        }
    }
}
