//! The shared protocol vectors (shims/protocol-vectors.json), on the Rust
//! side: every frame decodes to its meaning, and encoding the meaning gives
//! the same bytes.

use hearth::protocol::{self, FromWorker, ToWorker};

#[derive(serde::Deserialize)]
struct Vectors {
    protocol: u32,
    vectors: Vec<Vector>,
}

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    direction: String,
    hex: String,
    message: serde_json::Value,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn load() -> Vectors {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/shims/protocol-vectors.json");
    let text = std::fs::read_to_string(path).expect("vectors file");
    serde_json::from_str(&text).expect("vectors JSON")
}

#[test]
fn every_vector_decodes_to_its_meaning_and_encodes_to_its_bytes() {
    let v = load();
    assert_eq!(v.protocol, protocol::PROTOCOL_VERSION);
    assert!(v.vectors.len() >= 10, "too few vectors");
    let mut types = std::collections::HashSet::new();
    for vector in &v.vectors {
        let frame = unhex(&vector.hex);
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len, frame.len() - 4, "{}: length prefix", vector.name);
        let body = &frame[4..];
        let (meaning, encoded) = match vector.direction.as_str() {
            "daemon_to_worker" => {
                let m: ToWorker =
                    protocol::decode(body).unwrap_or_else(|e| panic!("{}: {e}", vector.name));
                (
                    serde_json::to_value(&m).expect("json"),
                    protocol::encode(&m).expect("encode"),
                )
            }
            "worker_to_daemon" => {
                let m: FromWorker =
                    protocol::decode(body).unwrap_or_else(|e| panic!("{}: {e}", vector.name));
                (
                    serde_json::to_value(&m).expect("json"),
                    protocol::encode(&m).expect("encode"),
                )
            }
            other => panic!("{}: unknown direction {other}", vector.name),
        };
        assert_eq!(meaning, vector.message, "{}: decoded meaning", vector.name);
        assert_eq!(
            encoded, frame,
            "{}: Rust encoding differs from the vector",
            vector.name
        );
        types.insert(vector.message["t"].as_str().unwrap_or("").to_owned());
    }
    for t in [
        "ready",
        "load",
        "loaded",
        "invoke",
        "result",
        "error",
        "ping",
        "pong",
        "cancel",
        "call",
        "call_result",
        "shutdown",
    ] {
        assert!(types.contains(t), "no vector for message type {t}");
    }
}

#[test]
fn unknown_keys_are_ignored_when_decoding() {
    // {"t":"pong","id":"p1","later":true}
    let body = [
        0x83, 0xa1, b't', 0xa4, b'p', b'o', b'n', b'g', 0xa2, b'i', b'd', 0xa2, b'p', b'1', 0xa5,
        b'l', b'a', b't', b'e', b'r', 0xc3,
    ];
    let m: FromWorker = protocol::decode(&body).expect("decode");
    assert_eq!(m, FromWorker::Pong { id: "p1".into() });
}
