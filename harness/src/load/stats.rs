//! Latency histograms and counters: one `Stats` per worker per window, merged losslessly.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer, V2Serializer};

use crate::record::LatencySummary;

/// Highest latency recorded exactly (larger values are clamped): one hour in microseconds.
const MAX_MICROS: u64 = 3_600_000_000;

/// How a request ended, when it did not end with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// TCP connect or TLS handshake failed.
    Connect,
    /// No answer within the request timeout.
    Timeout,
    /// The peer reset or closed the connection mid-request.
    Reset,
    /// The answer was not valid HTTP/2/gRPC.
    Protocol,
    /// The server refused the stream unprocessed (HTTP/2 REFUSED_STREAM, or no stream
    /// allowed by its SETTINGS_MAX_CONCURRENT_STREAMS).
    Refused,
    /// Cancelled on purpose by a `cancel_after` behaviour.
    Cancelled,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Name used in windows and reports.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Refused => "refused",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Other => "other",
        }
    }
}

/// What a gRPC call adds to an exchange: its response messages and when the first arrived.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamStats {
    /// Response messages received.
    pub messages: u64,
    /// When the first response message was complete.
    pub first_at: Option<tokio::time::Instant>,
}

/// The result of one request as the engine records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP status code.
    Http(u16),
    /// A gRPC status code (0 = OK).
    Grpc(i32),
    /// No response.
    Error(ErrorKind),
}

/// Counters and histograms of one window (or a whole run, once merged).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency from the intended send time, µs.
    pub corrected: Histogram<u64>,
    /// Latency from the actual send time, µs.
    pub uncorrected: Histogram<u64>,
    /// Planned arrivals.
    pub planned: u64,
    /// Sent requests.
    pub sent: u64,
    /// Finished requests (any outcome).
    pub completed: u64,
    /// Dropped because the queue was full.
    pub dropped: u64,
    /// Body bytes read.
    pub bytes: u64,
    /// Responses by status class or gRPC code.
    pub status: BTreeMap<String, u64>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// gRPC: latency to the first response message, µs (from the intended send).
    pub first_message: Histogram<u64>,
    /// gRPC: calls and the response messages they received.
    pub streams: u64,
    /// gRPC: response messages received.
    pub messages: u64,
    // Fixed slots for the hot path; turned into the maps at window close.
    http_class: [u64; 6],
    error_kind: [u64; ERROR_KINDS],
    /// gRPC codes 0..=16, and one slot for any other code.
    grpc_code: [u64; GRPC_SLOTS],
}

/// Error kinds, one counter slot each (indexed by the enum's order).
const ERROR_KINDS: usize = 7;

/// Slots for the 17 defined gRPC codes plus one for the rest.
const GRPC_SLOTS: usize = 18;

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

fn histogram() -> Histogram<u64> {
    // 3 significant digits, 1 µs to 1 h: ~200 KB each at most, independent of run length.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid")
}

impl Stats {
    /// Empty stats.
    pub fn new() -> Self {
        Self {
            corrected: histogram(),
            uncorrected: histogram(),
            planned: 0,
            sent: 0,
            completed: 0,
            dropped: 0,
            bytes: 0,
            status: BTreeMap::new(),
            errors: BTreeMap::new(),
            first_message: histogram(),
            streams: 0,
            messages: 0,
            http_class: [0; 6],
            error_kind: [0; ERROR_KINDS],
            grpc_code: [0; GRPC_SLOTS],
        }
    }

    /// Records one finished request.
    pub fn record(
        &mut self,
        outcome: Outcome,
        corrected: Duration,
        uncorrected: Duration,
        bytes: u64,
    ) {
        self.completed += 1;
        self.bytes += bytes;
        match outcome {
            Outcome::Http(code) => self.http_class[(code / 100).min(5) as usize] += 1,
            Outcome::Grpc(code) => {
                self.grpc_code
                    [usize::try_from(code).map_or(GRPC_SLOTS - 1, |c| c.min(GRPC_SLOTS - 1))] += 1
            }
            Outcome::Error(kind) => self.error_kind[kind as usize] += 1,
        }
        if !matches!(outcome, Outcome::Error(_)) {
            self.corrected.saturating_record(micros(corrected));
            self.uncorrected.saturating_record(micros(uncorrected));
        }
    }

    /// Records one gRPC call's stream: its messages and the time to the first one.
    pub fn record_stream(&mut self, messages: u64, first: Option<Duration>) {
        self.streams += 1;
        self.messages += messages;
        if let Some(f) = first {
            self.first_message.saturating_record(micros(f));
        }
    }

    /// Moves the hot-path slots into the named maps.
    pub fn settle(&mut self) {
        for (class, n) in self.http_class.iter_mut().enumerate() {
            if *n > 0 {
                let name = if class == 0 {
                    "other".to_string()
                } else {
                    format!("{class}xx")
                };
                *self.status.entry(name).or_default() += *n;
                *n = 0;
            }
        }
        for (code, n) in self.grpc_code.iter_mut().enumerate() {
            if *n > 0 {
                *self
                    .status
                    .entry(grpc_code_name(code as i32).into())
                    .or_default() += *n;
                *n = 0;
            }
        }
        const KINDS: [ErrorKind; ERROR_KINDS] = [
            ErrorKind::Connect,
            ErrorKind::Timeout,
            ErrorKind::Reset,
            ErrorKind::Protocol,
            ErrorKind::Refused,
            ErrorKind::Cancelled,
            ErrorKind::Other,
        ];
        for (i, n) in self.error_kind.iter_mut().enumerate() {
            if *n > 0 {
                *self.errors.entry(KINDS[i].name().into()).or_default() += *n;
                *n = 0;
            }
        }
    }

    /// Adds `other` into `self` (exact: histograms add bucket by bucket).
    pub fn merge(&mut self, other: &Stats) {
        let _ = self.corrected.add(&other.corrected);
        let _ = self.uncorrected.add(&other.uncorrected);
        let _ = self.first_message.add(&other.first_message);
        self.streams += other.streams;
        self.messages += other.messages;
        self.planned += other.planned;
        self.sent += other.sent;
        self.completed += other.completed;
        self.dropped += other.dropped;
        self.bytes += other.bytes;
        for (k, v) in &other.status {
            *self.status.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for (a, b) in self.http_class.iter_mut().zip(other.http_class) {
            *a += b;
        }
        for (a, b) in self.error_kind.iter_mut().zip(other.error_kind) {
            *a += b;
        }
        for i in 0..GRPC_SLOTS {
            self.grpc_code[i] += other.grpc_code[i];
        }
    }

    /// Requests that failed: errors other than deliberate cancels, plus 5xx and non-OK gRPC.
    pub fn failed(&self) -> u64 {
        crate::record::failed_count(&self.status, &self.errors)
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_MICROS)
}

/// Percentiles of a µs histogram, in milliseconds.
pub fn summarize(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    let ms = |v: u64| v as f64 / 1000.0;
    LatencySummary {
        count: h.len(),
        mean: h.mean() / 1000.0,
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p95: ms(h.value_at_quantile(0.95)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
    }
}

/// Lossless HdrHistogram V2 encoding, base64 (as HdrHistogram's own log format uses).
pub fn encode(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    if V2Serializer::new().serialize(h, &mut buf).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// Decodes [`encode`]'s output.
pub fn decode(text: &str) -> Option<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    decode_bytes(
        &mut hdrhistogram::serialization::Deserializer::new(),
        &bytes,
    )
}

/// Decodes an uncompressed V2 histogram (what [`encode`] writes) whose header's payload
/// length matches the bytes there are: the deserializer allocates the length it reads, up to
/// 4 GiB for a corrupt header.
pub fn decode_bytes(
    de: &mut hdrhistogram::serialization::Deserializer,
    bytes: &[u8],
) -> Option<Histogram<u64>> {
    const V2_COOKIE: u32 = 0x1c84_9313;
    const HEADER: usize = 40;
    let word = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    if word(0)? != V2_COOKIE || word(4)? as usize != bytes.len().checked_sub(HEADER)? {
        return None;
    }
    de.deserialize(&mut &bytes[..]).ok()
}

/// The canonical name of a gRPC status code.
pub fn grpc_code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN_CODE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_whose_header_lies_is_not_decoded() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        h.record(1234).unwrap();
        let text = encode(&h);
        assert_eq!(decode(&text).unwrap().len(), 1);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .unwrap();
        let mut de = hdrhistogram::serialization::Deserializer::new();
        // A payload length of 4 GiB: the deserializer would allocate it before reading.
        let mut lying = bytes.clone();
        lying[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_bytes(&mut de, &lying).is_none());
        assert!(decode_bytes(&mut de, &bytes[..bytes.len() - 1]).is_none());
        assert!(decode_bytes(&mut de, &bytes[..3]).is_none());
        assert!(decode_bytes(&mut de, &bytes).is_some());
    }

    #[test]
    fn record_settle_merge_roundtrip() {
        let mut a = Stats::new();
        a.record(
            Outcome::Http(200),
            Duration::from_millis(5),
            Duration::from_millis(1),
            10,
        );
        a.record(
            Outcome::Http(503),
            Duration::from_millis(7),
            Duration::from_millis(2),
            0,
        );
        a.record(
            Outcome::Error(ErrorKind::Timeout),
            Duration::ZERO,
            Duration::ZERO,
            0,
        );
        a.record(
            Outcome::Error(ErrorKind::Cancelled),
            Duration::ZERO,
            Duration::ZERO,
            0,
        );
        a.settle();
        assert_eq!(a.status["2xx"], 1);
        assert_eq!(a.status["5xx"], 1);
        assert_eq!(a.errors["timeout"], 1);
        assert_eq!(a.failed(), 2);
        let mut b = Stats::new();
        b.merge(&a);
        b.merge(&a);
        assert_eq!(b.completed, 8);
        assert_eq!(b.corrected.len(), 4);
        let h = decode(&encode(&b.corrected)).unwrap();
        assert_eq!(h, b.corrected);
        let s = summarize(&b.corrected);
        assert!((s.max - 7.0).abs() < 0.01, "{s:?}");
    }
}
