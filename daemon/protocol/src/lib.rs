//! The daemon ↔ worker wire protocol: length-prefixed MessagePack frames with
//! named fields. The one definition is `shims/PROTOCOL.md`; this module is its
//! Rust side and `shims/protocol-vectors.json` holds the shared test vectors.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Protocol version spoken by this daemon (sent by workers in `ready`).
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest frame either side accepts (64 MiB).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("the worker closed its protocol pipe")]
    Closed,
    #[error("protocol pipe I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes is over the {MAX_FRAME} byte limit")]
    TooLarge(usize),
    #[error("cannot decode frame: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("cannot encode frame: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

/// Messages the daemon sends to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToWorker {
    Load {
        id: String,
        dir: String,
        entry: String,
        function: String,
        version: u32,
        timeout_ms: u64,
        memory_mb: u64,
        /// The function's environment, set by the shim before the import.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        env: std::collections::BTreeMap<String, String>,
        /// Drop to this user and group before importing the code (a
        /// generic worker started as root; see PROTOCOL.md).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gid: Option<u32>,
        /// The worker's private temporary directory (TMPDIR).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tmp: Option<String>,
    },
    Invoke {
        id: String,
        deadline_ms: u64,
        payload: rmpv::Value,
    },
    Ping {
        id: String,
    },
    Cancel {
        id: String,
    },
    CallResult {
        id: String,
        ok: bool,
        value: rmpv::Value,
        error: Option<CallError>,
    },
    Shutdown {
        id: String,
    },
}

/// Messages a worker sends to the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FromWorker {
    Ready {
        protocol: u32,
        runtime: String,
        runtime_version: String,
        pid: u32,
    },
    Loaded {
        id: String,
        load_ms: f64,
    },
    Result {
        id: String,
        value: rmpv::Value,
    },
    Error {
        id: String,
        kind: String,
        message: String,
        traceback: String,
        /// The function's own error code, when its handler raised hearth's
        /// error with a valid one (PROTOCOL.md, "Error codes").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    Pong {
        id: String,
    },
    Call {
        id: String,
        parent: String,
        function: String,
        payload: rmpv::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alias: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
}

/// Why a nested call failed: the `error` of a `call_result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallError {
    /// An error code of the API (`function_error`, `timeout`, ...) or a
    /// nested-call one (`recursion`, `chain_too_deep`, `budget_exhausted`,
    /// `deadline_exceeded`).
    pub code: String,
    pub message: String,
    pub function: String,
    /// The callee's version that ran, when one did.
    pub version: Option<u32>,
    /// The nested call's own request id, when it got one.
    pub request_id: Option<String>,
    /// Refused before it was dispatched: the caller's code may retry.
    pub retryable: bool,
    /// With `function_error`: the callee's exception type and traceback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

/// Encode a message as a whole frame: 4-byte big-endian length, then the map.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, ProtocolError> {
    let mut buf = vec![0u8; 4];
    rmp_serde::encode::write_named(&mut buf, message)?;
    let len = buf.len() - 4;
    if len > MAX_FRAME {
        return Err(ProtocolError::TooLarge(len));
    }
    let prefix = u32::try_from(len).map_err(|_| ProtocolError::TooLarge(len))?;
    buf[..4].copy_from_slice(&prefix.to_be_bytes());
    Ok(buf)
}

/// Decode a frame body (without its length prefix).
pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ProtocolError> {
    Ok(rmp_serde::from_slice(body)?)
}

/// Read one frame body from `reader`; `Closed` on a clean end of file.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    let mut prefix = [0u8; 4];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(ProtocolError::Closed)
        }
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(ProtocolError::TooLarge(len));
    }
    buf.clear();
    buf.resize(len, 0);
    match reader.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ProtocolError::Closed),
        Err(e) => Err(e.into()),
    }
}

/// Write a whole encoded frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &[u8],
) -> Result<(), ProtocolError> {
    match writer.write_all(frame).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ProtocolError::Closed),
        Err(e) => Err(e.into()),
    }
}

/// Turn a JSON document into the MessagePack value sent as a payload.
pub fn json_to_value(json: &[u8]) -> Result<rmpv::Value, serde_json::Error> {
    serde_json::from_slice(json)
}

/// Turn a MessagePack value into JSON, by the rules in PROTOCOL.md ("Values").
pub fn value_to_json(value: &rmpv::Value) -> serde_json::Value {
    use rmpv::Value as V;
    use serde_json::Value as J;
    match value {
        V::Nil => J::Null,
        V::Boolean(b) => J::Bool(*b),
        V::Integer(i) => {
            if let Some(u) = i.as_u64() {
                J::from(u)
            } else if let Some(s) = i.as_i64() {
                J::from(s)
            } else {
                J::Null
            }
        }
        V::F32(f) => float_to_json(f64::from(*f)),
        V::F64(f) => float_to_json(*f),
        V::String(s) => match s.as_str() {
            Some(text) => J::String(text.to_owned()),
            None => J::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        },
        V::Binary(bytes) => J::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        V::Array(items) => J::Array(items.iter().map(value_to_json).collect()),
        V::Map(entries) => {
            let mut map = serde_json::Map::with_capacity(entries.len());
            for (k, v) in entries {
                let key = match k {
                    V::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                    other => value_to_json(other).to_string(),
                };
                map.insert(key, value_to_json(v));
            }
            J::Object(map)
        }
        V::Ext(kind, data) => serde_json::json!({
            "ext": kind,
            "data": base64::engine::general_purpose::STANDARD.encode(data),
        }),
    }
}

fn float_to_json(f: f64) -> serde_json::Value {
    serde_json::Number::from_f64(f)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_has_big_endian_length_prefix() {
        let frame = encode(&ToWorker::Ping { id: "r1".into() }).expect("encode");
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len, frame.len() - 4);
        let back: ToWorker = decode(&frame[4..]).expect("decode");
        assert_eq!(back, ToWorker::Ping { id: "r1".into() });
    }

    #[test]
    fn json_round_trip_keeps_types() {
        let json =
            br#"{"a":[1,-2,18446744073709551615,-9223372036854775808,1.5,"x",null,true],"b":{}}"#;
        let value = json_to_value(json).expect("json");
        let back = value_to_json(&value);
        let expected: serde_json::Value = serde_json::from_slice(json).expect("json");
        assert_eq!(back, expected);
    }

    #[test]
    fn binary_and_odd_keys_become_json() {
        let value = rmpv::Value::Map(vec![
            (rmpv::Value::from(1), rmpv::Value::Binary(vec![0, 1, 2])),
            (rmpv::Value::from(true), rmpv::Value::F64(f64::NAN)),
        ]);
        assert_eq!(
            value_to_json(&value),
            serde_json::json!({"1": "AAEC", "true": null})
        );
    }

    #[tokio::test]
    async fn reading_a_truncated_frame_reports_closed() {
        let frame = encode(&ToWorker::Ping { id: "r1".into() }).expect("encode");
        let mut short = &frame[..frame.len() - 1];
        let mut buf = Vec::new();
        assert!(matches!(
            read_frame(&mut short, &mut buf).await,
            Err(ProtocolError::Closed)
        ));
    }

    #[tokio::test]
    async fn oversized_length_is_refused() {
        let mut bytes: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        let mut buf = Vec::new();
        assert!(matches!(
            read_frame(&mut bytes, &mut buf).await,
            Err(ProtocolError::TooLarge(_))
        ));
    }
}
