//! The client's HPACK encoding (RFC 7541): static-table references, plain literals, and an
//! encoder that puts a call's fixed fields into the server's dynamic table once; `decode`
//! reads the server's responses.

pub mod decode;
mod table;

/// HPACK static table indexes the client uses.
pub mod index {
    /// `:authority`.
    pub const AUTHORITY: u8 = 1;
    /// `:method: GET` (a whole field; its name for other methods).
    pub const METHOD_GET: u8 = 2;
    /// `:method: POST` (a whole field).
    pub const METHOD_POST: u8 = 3;
    /// `:path`.
    pub const PATH: u8 = 4;
    /// `:scheme: http` (a whole field).
    pub const SCHEME_HTTP: u8 = 6;
    /// `:scheme: https` (a whole field).
    pub const SCHEME_HTTPS: u8 = 7;
    /// `content-type`.
    pub const CONTENT_TYPE: u8 = 31;
}

/// Appends an indexed field (a whole static-table entry).
pub fn indexed(out: &mut Vec<u8>, index: u8) {
    indexed_usize(out, usize::from(index));
}

/// Appends a literal field without indexing: the name by static index when given, else as a
/// string; the value as a plain (not Huffman-coded) string.
pub fn literal(out: &mut Vec<u8>, name_index: Option<u8>, name: &[u8], value: &[u8]) {
    literal_as(out, 0x00, 4, name_index, name, value);
}

/// A literal field of the representation whose leading bits are `high`, its name index on an
/// `n`-bit prefix (RFC 7541 6.2).
fn literal_as(
    out: &mut Vec<u8>,
    high: u8,
    n: u32,
    name_index: Option<u8>,
    name: &[u8],
    value: &[u8],
) {
    match name_index {
        Some(i) => int(out, high, n, usize::from(i)),
        None => {
            out.push(high);
            string(out, name);
        }
    }
    string(out, value);
}

/// One fixed request field, as the HPACK [`Encoder`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A whole static-table entry (`:method: POST`, `:scheme: http`).
    Static(u8),
    /// A name and value; the name by static index when the table has it.
    Pair {
        /// Lower-case name.
        name: Vec<u8>,
        /// Value.
        value: Vec<u8>,
        /// The name's static-table index.
        name_index: Option<u8>,
    },
}

/// Dynamic table size the encoder uses at most: the HTTP/2 default, which every server accepts
/// until it says otherwise.
const TABLE: usize = 4096;

/// The client's HPACK encoder. A fixed field goes into the server's dynamic table the first
/// time it is sent and is referenced by index after, so a call's fixed fields shrink to a
/// byte each and the server decodes no strings for them. Nothing is ever evicted, so the block
/// built for a request kind stays valid until the table grows, and is reused until then.
#[derive(Debug)]
pub struct Encoder {
    /// Entries we inserted, oldest first.
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Their HPACK size (name + value + 32 each).
    size: usize,
    /// The table size the server's decoder allows (the default until it says otherwise).
    limit: usize,
    /// Size updates to signal at the start of the next block.
    updates: Vec<usize>,
    /// Blocks per request kind, valid while the table does not change.
    cache: Vec<Option<Vec<u8>>>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            size: 0,
            limit: TABLE,
            updates: Vec::new(),
            cache: Vec::new(),
        }
    }
}

impl Encoder {
    /// The server's SETTINGS_HEADER_TABLE_SIZE, applied from the next block on (the SETTINGS
    /// acknowledgement is queued before it).
    pub fn set_limit(&mut self, max: u32) {
        let max = (max as usize).min(TABLE);
        if max == self.limit {
            return;
        }
        // Start over in a table of the new size: signalled as an emptying, then the new size.
        self.entries.clear();
        self.size = 0;
        self.cache.clear();
        self.updates = vec![0, max];
        self.limit = max;
    }

    /// Appends the block of request kind `kind`, whose fixed fields are `fields`.
    pub fn block(&mut self, kind: usize, fields: &[Field], out: &mut Vec<u8>) {
        for u in self.updates.drain(..) {
            int(out, 0x20, 5, u);
        }
        if let Some(Some(b)) = self.cache.get(kind) {
            out.extend_from_slice(b);
            return;
        }
        let start = out.len();
        let before = self.entries.len();
        for f in fields {
            match f {
                Field::Static(i) => indexed(out, *i),
                Field::Pair {
                    name,
                    value,
                    name_index,
                } => self.pair(name, value, *name_index, out),
            }
        }
        if self.entries.len() != before {
            // Indexes of older entries moved: every block built before is stale.
            self.cache.clear();
            return;
        }
        if self.cache.len() <= kind {
            self.cache.resize(kind + 1, None);
        }
        self.cache[kind] = Some(out[start..].to_vec());
    }

    fn pair(&mut self, name: &[u8], value: &[u8], name_index: Option<u8>, out: &mut Vec<u8>) {
        if let Some(pos) = self
            .entries
            .iter()
            .position(|(n, v)| n == name && v == value)
        {
            // The newest entry is index 62, right after the 61 static ones.
            indexed_usize(out, 62 + self.entries.len() - 1 - pos);
            return;
        }
        let entry = name.len() + value.len() + 32;
        if self.size + entry > self.limit {
            literal(out, name_index, name, value);
            return;
        }
        // Literal with incremental indexing.
        literal_as(out, 0x40, 6, name_index, name, value);
        self.entries.push((name.to_vec(), value.to_vec()));
        self.size += entry;
    }
}

fn indexed_usize(out: &mut Vec<u8>, index: usize) {
    int(out, 0x80, 7, index);
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    int(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// An HPACK integer with an `n`-bit prefix; `high` holds the representation's leading bits.
fn int(out: &mut Vec<u8>, high: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(high | v as u8);
        return;
    }
    out.push(high | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(block: &[u8]) -> Vec<(String, String)> {
        let mut d = loona_hpack::Decoder::new();
        d.decode(block)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    #[test]
    fn literal_blocks_decode_with_a_real_hpack_decoder() {
        let mut b = Vec::new();
        indexed(&mut b, index::METHOD_POST);
        indexed(&mut b, index::SCHEME_HTTP);
        literal(&mut b, Some(index::PATH), b"", b"/a.B/C");
        literal(&mut b, Some(index::AUTHORITY), b"", b"127.0.0.1:1");
        literal(&mut b, None, b"te", b"trailers");
        let long = "v".repeat(300);
        literal(&mut b, None, b"x-long", long.as_bytes());
        let got = decode(&b);
        let want: Vec<(String, String)> = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/a.B/C"),
            (":authority", "127.0.0.1:1"),
            ("te", "trailers"),
            ("x-long", long.as_str()),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    fn pair(name: &str, value: &str, name_index: Option<u8>) -> Field {
        Field::Pair {
            name: name.into(),
            value: value.into(),
            name_index,
        }
    }

    #[test]
    fn encoder_indexes_fixed_fields_once_and_a_real_decoder_agrees() {
        let a = vec![
            Field::Static(index::METHOD_POST),
            pair(":path", "/a.B/C", Some(index::PATH)),
            pair("te", "trailers", None),
        ];
        let b = vec![
            Field::Static(index::METHOD_POST),
            pair(":path", "/a.B/D", Some(index::PATH)),
            pair("te", "trailers", None),
            pair("x-big", &"v".repeat(5000), None),
        ];
        let mut enc = Encoder::default();
        let mut dec = loona_hpack::Decoder::new();
        let mut sizes = Vec::new();
        for (round, kind) in [0, 0, 1, 1, 0, 0, 1].into_iter().enumerate() {
            if round == 5 {
                // The server shrinks its table: the encoder starts over and still agrees.
                enc.set_limit(100);
                dec.set_max_allowed_table_size(100);
            }
            let fields = if kind == 0 { &a } else { &b };
            let mut block = Vec::new();
            enc.block(kind, fields, &mut block);
            sizes.push(block.len());
            let got: Vec<(Vec<u8>, Vec<u8>)> = dec.decode(&block).unwrap();
            let want: Vec<(Vec<u8>, Vec<u8>)> = fields
                .iter()
                .map(|f| match f {
                    Field::Static(_) => (b":method".to_vec(), b"POST".to_vec()),
                    Field::Pair { name, value, .. } => (name.clone(), value.clone()),
                })
                .collect();
            assert_eq!(got, want, "round {round}");
        }
        // Indexed after the first round: one byte per field.
        assert_eq!(sizes[1], 3);
        // The 5 000-byte value never fits the table and stays a literal; the rest is indexed.
        assert!(sizes[3] > 5000 && sizes[3] < sizes[2], "{sizes:?}");
        // After the shrink, nothing fits any more (100 bytes): literals again.
        assert!(sizes[5] > sizes[1], "{sizes:?}");
    }
}
