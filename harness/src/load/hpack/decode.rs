//! The client's HPACK decoder (RFC 7541) for response header blocks: static and dynamic
//! tables, integers, plain and Huffman-coded strings (`httlib-huffman`'s table-driven decoder).
//!
//! Written here because the decoders on the registry build their Huffman tree per string
//! (`loona-hpack` fills a hash map for every Huffman-coded value): against nginx, which codes
//! `date` and `server` that way, that was most of the client's CPU. Fields reach the caller as
//! borrowed slices; only strings put into the dynamic table are kept.

use std::collections::VecDeque;

use httlib_huffman::DecoderSpeed;

/// Why a header block could not be decoded (a connection error: COMPRESSION_ERROR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

/// A connection's response decoder: the dynamic table the server's encoder fills.
#[derive(Debug)]
pub struct Decoder {
    /// Newest first, as HPACK indexes it.
    table: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    /// The size the server's encoder may use (our SETTINGS_HEADER_TABLE_SIZE).
    max_allowed: usize,
    /// The size the encoder last chose (≤ `max_allowed`).
    max: usize,
    /// Scratch space for Huffman-decoded names and values.
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Decoder {
    /// A decoder whose dynamic table may grow to `max_allowed` bytes.
    pub fn new(max_allowed: usize) -> Self {
        Self {
            table: VecDeque::new(),
            size: 0,
            max_allowed,
            max: max_allowed,
            name: Vec::new(),
            value: Vec::new(),
        }
    }

    /// Decodes `block`, calling `field(name, value)` for each header field in order.
    pub fn decode(
        &mut self,
        mut block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), DecodeError> {
        let mut fields_seen = false;
        while let Some(&first) = block.first() {
            if first & 0x80 != 0 {
                let i = int(&mut block, 7)?;
                let (n, v) = self.entry(i)?;
                field(n, v);
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
                self.max = size;
                self.evict(0);
            } else {
                // Literal: with incremental indexing (01), without (0000) or never (0001).
                let (prefix, index) = if first & 0xC0 == 0x40 {
                    (6, true)
                } else {
                    (4, false)
                };
                let name_index = int(&mut block, prefix)?;
                let mut nbuf = std::mem::take(&mut self.name);
                let mut vbuf = std::mem::take(&mut self.value);
                let (n, v) = self.literal(&mut block, name_index, &mut nbuf, &mut vbuf)?;
                field(n, v);
                if index {
                    self.insert(n.to_vec(), v.to_vec());
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
        &self,
        block: &mut &'b [u8],
        name_index: usize,
        nbuf: &'x mut Vec<u8>,
        vbuf: &'x mut Vec<u8>,
    ) -> Result<(&'x [u8], &'x [u8]), DecodeError>
    where
        'b: 'x,
    {
        let name: &'x [u8] = if name_index == 0 {
            string(block, nbuf)?
        } else {
            nbuf.clear();
            nbuf.extend_from_slice(self.entry(name_index)?.0);
            nbuf
        };
        let value = string(block, vbuf)?;
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
            _ => self
                .table
                .get(i - 62)
                .map(|(n, v)| (n.as_slice(), v.as_slice()))
                .ok_or(DecodeError),
        }
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = name.len() + value.len() + 32;
        self.evict(size);
        // An entry larger than the table empties it and is not added (RFC 7541 4.4).
        if size <= self.max {
            self.size += size;
            self.table.push_front((name, value));
        }
    }

    /// Evicts the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            match self.table.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + 32,
                None => break,
            }
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

/// A string literal (RFC 7541 5.2): the bytes themselves, or Huffman-decoded into `buf`.
fn string<'b, 'x>(block: &mut &'b [u8], buf: &'x mut Vec<u8>) -> Result<&'x [u8], DecodeError>
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
    buf.clear();
    httlib_huffman::decode(s, buf, DecoderSpeed::FourBits).map_err(|_| DecodeError)?;
    Ok(buf)
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
}
