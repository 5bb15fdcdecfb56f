//! Property test of the client's HPACK encoding (`load::hpack`): header blocks built by our
//! [`Encoder`] and [`literal`] decode, with an independent decoder (loona-hpack, which the
//! client uses for responses), to the same headers in the same order. Random request kinds
//! repeat across blocks, so later blocks reference dynamic-table entries (and cached blocks)
//! that earlier ones inserted; random table-size changes from the server start the table over.

use loona_hpack::Decoder;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;

use leakgate::load::hpack::{Encoder, Field, index, literal};

/// Whole static-table entries (RFC 7541 Appendix A) a [`Field::Static`] may name.
const WHOLE: &[(u8, &str, &str)] = &[
    (2, ":method", "GET"),
    (index::METHOD_POST, ":method", "POST"),
    (4, ":path", "/"),
    (index::SCHEME_HTTP, ":scheme", "http"),
    (index::SCHEME_HTTPS, ":scheme", "https"),
    (8, ":status", "200"),
    (16, "accept-encoding", "gzip, deflate"),
];

/// Static-table names a field may refer to by index.
const NAMES: &[(u8, &str)] = &[
    (index::AUTHORITY, ":authority"),
    (index::PATH, ":path"),
    (19, "accept"),
    (28, "content-length"),
    (index::CONTENT_TYPE, "content-type"),
    (58, "user-agent"),
];

/// The characters of an HTTP token, lower case.
const TOKEN: &[char] = &[
    'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's',
    't', 'u', 'v', 'w', 'x', 'y', 'z', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '!', '#',
    '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~',
];

/// Table sizes a server may announce (SETTINGS_HEADER_TABLE_SIZE), the default among them.
const LIMITS: &[u32] = &[0, 40, 100, 256, 1024, 4096, 8192];

/// A header name: a lower-case token.
fn name() -> impl Strategy<Value = String> {
    proptest::collection::vec(select(TOKEN), 1..16).prop_map(|c| c.into_iter().collect())
}

/// A header value: visible ASCII and spaces, empty included; now and then long enough that
/// the table fills or the entry never fits.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![8 => "[ -~]{0,24}", 1 => "[ -~]{0,1200}"]
}

/// One fixed field of a request kind.
fn field() -> impl Strategy<Value = Field> {
    let pair = |name: &str, value: String, name_index| Field::Pair {
        name: name.as_bytes().to_vec(),
        value: value.into_bytes(),
        name_index,
    };
    prop_oneof![
        1 => select(WHOLE).prop_map(|(i, _, _)| Field::Static(i)),
        2 => (select(NAMES), value()).prop_map(move |((i, n), v)| pair(n, v, Some(i))),
        4 => (name(), value()).prop_map(move |(n, v)| pair(&n, v, None)),
    ]
}

/// A per-call field, written with [`literal`] after the kind's block: (static name index,
/// name, value).
fn extra() -> impl Strategy<Value = (Option<u8>, String, String)> {
    prop_oneof![
        3 => (name(), value()).prop_map(|(n, v)| (None, n, v)),
        1 => (select(NAMES), value()).prop_map(|((i, n), v)| (Some(i), n.to_string(), v)),
    ]
}

/// What happens on the connection, in order.
#[derive(Debug, Clone)]
enum Step {
    /// A call of kind `kind` (modulo the number of kinds) with these per-call fields.
    Call {
        kind: usize,
        extra: Vec<(Option<u8>, String, String)>,
    },
    /// The server announces a dynamic table size.
    Limit(u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (0..8usize, proptest::collection::vec(extra(), 0..3))
            .prop_map(|(kind, extra)| Step::Call { kind, extra }),
        1 => select(LIMITS).prop_map(Step::Limit),
    ]
}

/// The header a field stands for.
fn expected(f: &Field) -> (Vec<u8>, Vec<u8>) {
    match f {
        Field::Static(i) => {
            let (_, n, v) = WHOLE.iter().find(|w| w.0 == *i).expect("a listed entry");
            (n.as_bytes().to_vec(), v.as_bytes().to_vec())
        }
        Field::Pair { name, value, .. } => (name.clone(), value.clone()),
    }
}

/// `cases` per property, no regression files written into the tree.
fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn encoded_blocks_decode_to_the_same_headers_in_order(
        kinds in proptest::collection::vec(proptest::collection::vec(field(), 1..8), 1..5),
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let mut enc = Encoder::default();
        let mut dec = Decoder::new();
        dec.set_max_allowed_table_size(4096);
        for (at, step) in steps.iter().enumerate() {
            let (kind, extra) = match step {
                Step::Limit(max) => {
                    enc.set_limit(*max);
                    dec.set_max_allowed_table_size(*max as usize);
                    continue;
                }
                Step::Call { kind, extra } => (kind % kinds.len(), extra),
            };
            let mut block = Vec::new();
            enc.block(kind, &kinds[kind], &mut block);
            let mut want: Vec<_> = kinds[kind].iter().map(expected).collect();
            for (name_index, name, value) in extra {
                literal(&mut block, *name_index, name.as_bytes(), value.as_bytes());
                want.push((name.clone().into_bytes(), value.clone().into_bytes()));
            }
            let got = dec.decode(&block);
            prop_assert!(got.is_ok(), "step {}: {:?}", at, got);
            prop_assert_eq!(got.unwrap(), want, "step {}", at);
        }
    }
}
