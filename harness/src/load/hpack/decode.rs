//! The client's HPACK decoder (RFC 7541) for response header blocks: static and dynamic
//! tables, integers, plain and Huffman-coded strings (`httlib-huffman`'s table-driven decoder).
//!
//! Written here because the decoders on the registry build their Huffman tree per string
//! (`loona-hpack` fills a hash map for every Huffman-coded value): against nginx, which codes
//! `date` and `server` that way, that was most of the client's CPU. Fields reach the caller as
//! borrowed slices; only strings put into the dynamic table are kept.

use httlib_huffman::DecoderSpeed;

use super::table::Table;

/// Why a header block could not be decoded (a connection error: COMPRESSION_ERROR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

/// A connection's response decoder: the dynamic table the server's encoder fills.
#[derive(Debug)]
pub struct Decoder {
    /// The dynamic table the server's encoder fills.
    table: Table,
    /// The size the server's encoder may use (our SETTINGS_HEADER_TABLE_SIZE).
    max_allowed: usize,
    /// Scratch space for Huffman-decoded names and values.
    name: Vec<u8>,
    value: Vec<u8>,
    /// The last Huffman-coded strings and what they decoded to (see [`Memo`]).
    memo: Memo,
}

/// Huffman-coded strings seen lately and their decoded bytes. Servers send the same coded
/// values again and again (nginx adds `server`, `date`, `content-type` and the like to the
/// dynamic table with every response, so they must be decoded to keep the table's size): a
/// match here is a short comparison instead of a decode.
#[derive(Debug, Default)]
struct Memo {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    next: usize,
}

/// Strings the memo keeps: a few responses' worth of fields.
const MEMO: usize = 16;

impl Memo {
    /// `coded` decoded into `buf`, from the memo or by decoding it (then kept).
    fn decode<'x>(&mut self, coded: &[u8], buf: &'x mut Vec<u8>) -> Result<&'x [u8], DecodeError> {
        buf.clear();
        if let Some((_, plain)) = self.entries.iter().find(|(c, _)| c == coded) {
            buf.extend_from_slice(plain);
            return Ok(buf);
        }
        httlib_huffman::decode(coded, buf, DecoderSpeed::FiveBits).map_err(|_| DecodeError)?;
        if self.entries.len() < MEMO {
            self.entries.push((coded.to_vec(), buf.clone()));
        } else {
            let (c, p) = &mut self.entries[self.next];
            c.clear();
            c.extend_from_slice(coded);
            p.clear();
            p.extend_from_slice(buf);
            self.next = (self.next + 1) % MEMO;
        }
        Ok(buf)
    }
}

impl Decoder {
    /// A decoder whose dynamic table may grow to `max_allowed` bytes.
    pub fn new(max_allowed: usize) -> Self {
        Self {
            table: Table::new(max_allowed),
            max_allowed,
            name: Vec::new(),
            value: Vec::new(),
            memo: Memo::default(),
        }
    }

    /// Decodes `block`, calling `field(name, value)` for each header field in order.
    pub fn decode(
        &mut self,
        block: &[u8],
        field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), DecodeError> {
        self.decode_some(block, |_| true, field)
    }

    /// Decodes `block`, calling `field(name, value)` for the header fields whose name is
    /// `wanted`. The value of a field the table does not keep and the caller does not want is
    /// skipped undecoded: servers Huffman-code `date`, `server` and the like, and decoding them
    /// cost a client that reads only `:status` a tenth of its time against nginx.
    pub fn decode_some(
        &mut self,
        mut block: &[u8],
        wanted: impl Fn(&[u8]) -> bool,
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), DecodeError> {
        let mut fields_seen = false;
        while let Some(&first) = block.first() {
            if first & 0x80 != 0 {
                let i = int(&mut block, 7)?;
                let (n, v) = self.entry(i)?;
                if wanted(n) {
                    field(n, v);
                }
                fields_seen = true;
            } else if first & 0xE0 == 0x20 {
                // A table size update may only open a block (RFC 7541 4.2).
                if fields_seen {
                    return Err(DecodeError);
                }
                let size = int(&mut block, 5)?;
                if size > self.max_allowed {
                    return Err(DecodeError);
                }
                self.table.set_max(size);
            } else {
                // Literal: with incremental indexing (01), without (0000) or never (0001).
                let (prefix, index) = if first & 0xC0 == 0x40 {
                    (6, true)
                } else {
                    (4, false)
                };
                let name_index = int(&mut block, prefix)?;
                if !index && name_index != 0 && !wanted(self.entry(name_index)?.0) {
                    skip_string(&mut block)?;
                    fields_seen = true;
                    continue;
                }
                let mut nbuf = std::mem::take(&mut self.name);
                let mut vbuf = std::mem::take(&mut self.value);
                let (n, v) = self.literal(&mut block, name_index, &mut nbuf, &mut vbuf)?;
                if wanted(n) {
                    field(n, v);
                }
                if index {
                    self.table.insert(n, v);
                }
                self.name = nbuf;
                self.value = vbuf;
                fields_seen = true;
            }
        }
        Ok(())
    }

    /// A literal's name (by index, or a string) and value; Huffman-coded strings are decoded
    /// into the scratch buffers.
    fn literal<'b, 'x>(
        &mut self,
        block: &mut &'b [u8],
        name_index: usize,
        nbuf: &'x mut Vec<u8>,
        vbuf: &'x mut Vec<u8>,
    ) -> Result<(&'x [u8], &'x [u8]), DecodeError>
    where
        'b: 'x,
    {
        let name: &'x [u8] = match name_index {
            0 => string(block, nbuf, &mut self.memo)?,
            1..=61 => STATIC[name_index - 1].0.as_bytes(),
            // A dynamic entry's name is copied: inserting the field may evict that entry.
            _ => {
                nbuf.clear();
                nbuf.extend_from_slice(self.entry(name_index)?.0);
                nbuf
            }
        };
        let value = string(block, vbuf, &mut self.memo)?;
        Ok((name, value))
    }

    /// Entry `i` of the static table, then the dynamic one (1-based).
    fn entry(&self, i: usize) -> Result<(&[u8], &[u8]), DecodeError> {
        match i {
            0 => Err(DecodeError),
            1..=61 => {
                let (n, v) = STATIC[i - 1];
                Ok((n.as_bytes(), v.as_bytes()))
            }
            _ => self.table.get(i - 62).ok_or(DecodeError),
        }
    }
}

/// An HPACK integer on an `n`-bit prefix (RFC 7541 5.1); bounded so it cannot overflow.
fn int(block: &mut &[u8], n: u32) -> Result<usize, DecodeError> {
    let (&first, mut rest) = block.split_first().ok_or(DecodeError)?;
    let max = (1usize << n) - 1;
    let mut v = usize::from(first) & max;
    if v == max {
        let mut shift = 0;
        loop {
            let (&b, r) = rest.split_first().ok_or(DecodeError)?;
            rest = r;
            // Four continuation bytes carry 28 bits: more than any table or length here.
            if shift > 21 {
                return Err(DecodeError);
            }
            v += usize::from(b & 0x7F) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    *block = rest;
    Ok(v)
}

/// Steps over a string literal without decoding it.
fn skip_string(block: &mut &[u8]) -> Result<(), DecodeError> {
    let len = int(block, 7)?;
    *block = block.get(len..).ok_or(DecodeError)?;
    Ok(())
}

/// A string literal (RFC 7541 5.2): the bytes themselves, or Huffman-decoded into `buf`.
fn string<'b, 'x>(
    block: &mut &'b [u8],
    buf: &'x mut Vec<u8>,
    memo: &mut Memo,
) -> Result<&'x [u8], DecodeError>
where
    'b: 'x,
{
    let huffman = block.first().ok_or(DecodeError)? & 0x80 != 0;
    let len = int(block, 7)?;
    if block.len() < len {
        return Err(DecodeError);
    }
    let (s, rest) = block.split_at(len);
    *block = rest;
    if !huffman {
        return Ok(s);
    }
    memo.decode(s, buf)
}

/// The static table (RFC 7541 Appendix A).
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes with ours; panics on error.
    fn ours(d: &mut Decoder, block: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        d.decode(block, |n, v| out.push((n.to_vec(), v.to_vec())))
            .unwrap();
        out
    }

    #[test]
    fn agrees_with_an_independent_encoder_across_blocks_with_huffman_and_eviction() {
        // loona-hpack's encoder indexes every field and Huffman-codes where shorter: several
        // blocks through a 256-byte table exercise insertion, references and eviction.
        let mut enc = loona_hpack::Encoder::new();
        let mut ref_dec = loona_hpack::Decoder::new();
        let mut dec = Decoder::new(4096);
        for round in 0..40u32 {
            let date = format!(
                "Mon, 30 Nov 2026 19:{:02}:{:02} GMT",
                round / 60,
                round % 60
            );
            let len = (round * 37).to_string();
            let fields: Vec<(&[u8], &[u8])> = vec![
                (b":status", if round % 3 == 0 { b"404" } else { b"200" }),
                (b"server", b"nginx/1.22.1"),
                (b"date", date.as_bytes()),
                (b"content-length", len.as_bytes()),
                (b"x-custom-header", b"a value with spaces & symbols ~!"),
            ];
            let block = enc.encode(fields.iter().copied());
            let want = ref_dec.decode(&block).unwrap();
            assert_eq!(ours(&mut dec, &block), want, "round {round}");
        }
    }

    #[test]
    fn bad_blocks_are_errors_not_panics() {
        let mut d = Decoder::new(4096);
        for block in [
            &[0x80][..],                                 // index 0
            &[0xBF],                                     // index 62, empty dynamic table
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], // integer overflow
            &[0x40, 0x05, b'a'],                         // string shorter than its length
            &[0x3F, 0xE1, 0x7F],                         // size update above our limit
            &[0x82, 0x20],                               // size update after a field
            &[0x40, 0x81, 0xFF, 0x00],                   // Huffman string with EOS
        ] {
            assert_eq!(d.decode(block, |_, _| {}), Err(DecodeError), "{block:?}");
        }
    }

    #[test]
    fn unwanted_values_are_skipped_and_the_table_stays_in_step() {
        let mut block = Vec::new();
        // server: nginx, without indexing (name 54 of the static table); then :status 200.
        crate::load::hpack::literal(&mut block, Some(54), b"server", b"nginx");
        block.push(0x88);
        // x-kept: 1, with incremental indexing (kept, so decoded even though not wanted);
        // grpc-status: 5 without indexing, its name a string.
        block.extend_from_slice(&[0x40, 6]);
        block.extend_from_slice(b"x-kept");
        block.extend_from_slice(&[1, b'1']);
        crate::load::hpack::literal(&mut block, None, b"grpc-status", b"5");
        // The kept entry, referenced: index 62.
        block.push(0x80 | 62);
        let wanted = |n: &[u8]| n == b":status" || n == b"grpc-status" || n == b"x-kept";
        let mut d = Decoder::new(4096);
        let mut got = Vec::new();
        d.decode_some(&block, wanted, |n, v| got.push((n.to_vec(), v.to_vec())))
            .unwrap();
        let want: Vec<(Vec<u8>, Vec<u8>)> = [
            (":status", "200"),
            ("x-kept", "1"),
            ("grpc-status", "5"),
            ("x-kept", "1"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        assert_eq!(got, want);
        // A skipped value shorter than its length is still an error.
        let mut d = Decoder::new(4096);
        assert_eq!(
            d.decode_some(&[0x0F, 39, 0x05, b'a'], |n| n == b":status", |_, _| {}),
            Err(DecodeError)
        );
    }
}
