//! The pprof profile format (`profile.proto` of google/pprof), the fields a heap diff reads,
//! decoded with prost from the gzipped files Go's `net/http/pprof` and `jemalloc_pprof` serve.

use std::io::Read;

/// A profile: samples over call stacks, with the tables their ids point into.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    /// What each sample value measures (`inuse_space`/`bytes`, ...).
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    /// The samples.
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    /// Code locations.
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    /// Functions.
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Every string, referenced by index; entry 0 is "".
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    /// The sample type a viewer shows by default (a string index), 0 when unset.
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

/// A sample type: what and in which unit (string indexes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    /// Name, e.g. `inuse_space`.
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// Unit, e.g. `bytes`.
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// One sample: a call stack (leaf first) and one value per sample type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Location ids, the leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// Values, one per sample type.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
}

/// A code location: one address, possibly several functions inlined into each other.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    /// Id samples refer to.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Instruction address (what an unsymbolized profile has instead of lines).
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// Functions at this address, the innermost inlined one first.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

/// A function and line at a location.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    /// Function id.
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    /// Source line, 0 when unknown.
    #[prost(int64, tag = "2")]
    pub line: i64,
}

/// A function (string indexes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    /// Id lines refer to.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Readable name.
    #[prost(int64, tag = "2")]
    pub name: i64,
    /// Source file.
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

impl Profile {
    /// Decodes a profile, gzipped (as served) or not.
    pub fn decode_bytes(bytes: &[u8]) -> Result<Self, String> {
        let raw;
        let data = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .map_err(|e| format!("not a valid gzip stream: {e}"))?;
            raw = out;
            &raw[..]
        } else {
            bytes
        };
        <Self as prost::Message>::decode(data).map_err(|e| format!("not a pprof profile: {e}"))
    }

    /// String `i` of the table ("" when out of range).
    pub fn string(&self, i: i64) -> &str {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.string_table.get(i))
            .map_or("", |s| s.as_str())
    }
}
