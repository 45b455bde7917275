//! How a record is kept in a block: MessagePack (the project's wire
//! format), its fields by position rather than by name.
//!
//! A block's records column is a BLOB: [`BLOCK_MAGIC`], then each record
//! as a 4-byte little-endian length and that many bytes, one MessagePack
//! array of the fields in [`CallRecord`]'s order (see [`encode`]). A
//! record is about a fifth of its JSON line (no field names), and encoding
//! it is a few copies rather than JSON's escaping and number formatting:
//! the records thread's cost per call was most of what call records cost.
//!
//! A decoder reads the fields it knows and skips any that follow, so a
//! later version may add fields at the end; a missing trailing field takes
//! its default. Blocks of JSON lines (schema 3 and before, a TEXT column)
//! are still read, see `sqlite.rs`.

use hearth_api::{CallRecord, LogLine, StartKind, Stream, Timing};
use rmp::Marker;

use crate::error::{RecordsError, Result};

/// First byte of a block of MessagePack records.
pub const BLOCK_MAGIC: u8 = 0xB1;

/// Fields of a record as written now.
const FIELDS: u32 = 24;

fn bad(what: impl std::fmt::Display) -> RecordsError {
    RecordsError::Corrupt(format!("a call record in a block: {what}"))
}

fn write_err<E: std::fmt::Debug>(e: E) -> RecordsError {
    RecordsError::Corrupt(format!("cannot encode a call record: {e:?}"))
}

fn start_code(kind: StartKind) -> u64 {
    match kind {
        StartKind::Warm => 0,
        StartKind::Generic => 1,
        StartKind::Fresh => 2,
    }
}

fn opt_str(out: &mut Vec<u8>, s: Option<&str>) -> Result<()> {
    match s {
        Some(s) => rmp::encode::write_str(out, s).map_err(write_err),
        None => rmp::encode::write_nil(out).map_err(write_err),
    }
}

fn opt_uint(out: &mut Vec<u8>, n: Option<u64>) -> Result<()> {
    match n {
        Some(n) => rmp::encode::write_uint(out, n)
            .map(|_| ())
            .map_err(write_err),
        None => rmp::encode::write_nil(out).map_err(write_err),
    }
}

/// Append `record` to `out` as one length-prefixed entry of a block;
/// returns the entry's size (its prefix included).
pub fn encode(record: &CallRecord, out: &mut Vec<u8>) -> Result<usize> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    let uint = |out: &mut Vec<u8>, n: u64| {
        rmp::encode::write_uint(out, n)
            .map(|_| ())
            .map_err(write_err)
    };
    let float = |out: &mut Vec<u8>, x: f64| rmp::encode::write_f64(out, x).map_err(write_err);
    let string = |out: &mut Vec<u8>, s: &str| rmp::encode::write_str(out, s).map_err(write_err);
    rmp::encode::write_array_len(out, FIELDS).map_err(write_err)?;
    // Always 9 bytes, at SEQ_AT: the writer sets it in place (records are
    // encoded before the store numbers them).
    rmp::encode::write_u64(out, record.seq).map_err(write_err)?;
    string(out, &record.request_id)?;
    opt_str(out, record.parent_id.as_deref())?;
    string(out, &record.function)?;
    uint(out, u64::from(record.version))?;
    string(out, &record.app)?;
    string(out, &record.caller)?;
    uint(out, record.started_at_ms)?;
    float(out, record.duration_ms)?;
    string(out, &record.outcome)?;
    string(out, &record.code)?;
    opt_str(out, record.reason.as_deref())?;
    opt_str(out, record.error.as_deref())?;
    uint(out, u64::from(record.status))?;
    let t = &record.timing;
    rmp::encode::write_array_len(out, 5).map_err(write_err)?;
    float(out, t.queue_ms)?;
    uint(out, start_code(t.start))?;
    float(out, t.spawn_ms)?;
    float(out, t.load_ms)?;
    float(out, t.run_ms)?;
    opt_uint(out, record.pid.map(u64::from))?;
    opt_uint(out, record.peak_memory_kb)?;
    match record.cpu_ms {
        Some(ms) => float(out, ms)?,
        None => rmp::encode::write_nil(out).map_err(write_err)?,
    }
    uint(out, record.bytes_in)?;
    uint(out, record.bytes_out)?;
    let lines = u32::try_from(record.log.len()).map_err(write_err)?;
    rmp::encode::write_array_len(out, lines).map_err(write_err)?;
    for line in &record.log {
        rmp::encode::write_array_len(out, 3).map_err(write_err)?;
        uint(out, u64::from(line.stream == Stream::Stderr))?;
        uint(out, line.time_ms)?;
        string(out, &line.text)?;
    }
    rmp::encode::write_bool(out, record.log_truncated).map_err(write_err)?;
    uint(out, record.log_dropped_bytes)?;
    rmp::encode::write_bool(out, record.log_unattributed).map_err(write_err)?;
    let len = u32::try_from(out.len() - at - 4).map_err(write_err)?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(out.len() - at)
}

/// Where an entry's seq is (after the 3 bytes of its array's header):
/// its marker, then 8 bytes big-endian.
const SEQ_AT: usize = 3;

/// Number an entry (as [`entries`] gives it, or as [`Batch`] holds it).
pub fn set_seq(entry: &mut [u8], seq: u64) -> Result<()> {
    match entry.get(..SEQ_AT + 9) {
        Some([0xdc, _, _, 0xcf, ..]) => {
            entry[SEQ_AT + 1..SEQ_AT + 9].copy_from_slice(&seq.to_be_bytes());
            Ok(())
        }
        _ => Err(bad("an entry without its fixed-width seq")),
    }
}

/// What the writer files an entry by, read without decoding it all.
pub struct Summary<'a> {
    pub seq: u64,
    pub request_id: &'a str,
    pub function: &'a str,
    pub version: u32,
    pub started_at_ms: u64,
    /// Its code is `ok`.
    pub ok: bool,
}

/// The first fields of an entry, up to its code.
pub fn summary(entry: &[u8]) -> Result<Summary<'_>> {
    let mut r = Reader { buf: entry };
    if r.array()? < 11 {
        return Err(bad("a record without its code"));
    }
    let seq = r.uint()?;
    let request_id = r.str()?;
    r.skip_opt_str()?; // parent_id
    let function = r.str()?;
    let version = u32::try_from(r.uint()?).map_err(bad)?;
    r.skip_str()?; // app
    r.skip_str()?; // caller
    let started_at_ms = r.uint()?;
    r.float()?; // duration_ms
    r.skip_str()?; // outcome
    let ok = r.str_is("ok")?;
    Ok(Summary {
        seq,
        request_id,
        function,
        version,
        started_at_ms,
        ok,
    })
}

/// Records encoded as they come, for one write: entries back to back,
/// each length-prefixed as in a block, their seq not given yet. Calls
/// encode into it on their own thread; the store's writer files its
/// entries into blocks by copying their bytes (no record is made, moved
/// or freed between the two).
#[derive(Debug, Default, Clone)]
pub struct Batch {
    bytes: Vec<u8>,
    count: usize,
    /// The functions of its records, each once (retention's size limit
    /// is checked for these after the batch is written).
    functions: Vec<String>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// A batch of `records` (tests, conversions).
    pub fn of(records: &[CallRecord]) -> Result<Batch> {
        let mut batch = Batch::new();
        for record in records {
            batch.push(record)?;
        }
        Ok(batch)
    }

    pub fn push(&mut self, record: &CallRecord) -> Result<()> {
        let at = self.bytes.len();
        if let Err(e) = encode(record, &mut self.bytes) {
            self.bytes.truncate(at);
            return Err(e);
        }
        self.counted(&record.function);
        Ok(())
    }

    /// Add an entry `encode` made (its length prefix included) of a
    /// record of `function`: a copy, for a record encoded elsewhere.
    pub fn push_encoded(&mut self, entry: &[u8], function: &str) {
        self.bytes.extend_from_slice(entry);
        self.counted(function);
    }

    /// Count the entry just added, a record of `function`.
    fn counted(&mut self, function: &str) {
        self.count += 1;
        if self.functions.last().map(String::as_str) != Some(function)
            && !self.functions.iter().any(|f| f == function)
        {
            self.functions.push(function.to_owned());
        }
    }

    /// The functions of its records, each once, in the order they came.
    pub fn functions(&self) -> &[String] {
        &self.functions
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes it can hold without growing.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Empty it, keeping its buffer.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.count = 0;
        self.functions.clear();
    }

    /// Its entries, each to be numbered and filed in turn.
    pub fn entries_mut(&mut self) -> EntriesMut<'_> {
        EntriesMut {
            rest: &mut self.bytes,
        }
    }
}

/// The entries of a [`Batch`], mutable (to set their seq).
pub struct EntriesMut<'a> {
    rest: &'a mut [u8],
}

impl<'a> Iterator for EntriesMut<'a> {
    type Item = Result<&'a mut [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        let Some((len, tail)) = rest.split_first_chunk_mut::<4>() else {
            return Some(Err(bad("a cut length")));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Some(Err(bad("a record longer than its batch")));
        }
        let (entry, tail) = tail.split_at_mut(len);
        self.rest = tail;
        Some(Ok(entry))
    }
}

/// The entries of a block's BLOB (after its magic byte), each as its
/// bytes without the length prefix, in order.
pub fn entries(blob: &[u8]) -> Result<Vec<&[u8]>> {
    let mut rest = match blob.split_first() {
        Some((&BLOCK_MAGIC, rest)) => rest,
        _ => return Err(bad("a block without its format byte")),
    };
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("a cut length"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(bad("a record longer than its block"));
        }
        let (entry, tail) = tail.split_at(len);
        out.push(entry);
        rest = tail;
    }
    Ok(out)
}

/// Reads one entry's fields in order.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn peek_nil(&mut self) -> bool {
        if self.buf.first() == Some(&0xc0) {
            self.buf = &self.buf[1..];
            true
        } else {
            false
        }
    }

    fn array(&mut self) -> Result<u32> {
        rmp::decode::read_array_len(&mut self.buf).map_err(|e| bad(format!("{e:?}")))
    }

    fn uint(&mut self) -> Result<u64> {
        rmp::decode::read_int(&mut self.buf).map_err(|e| bad(format!("{e:?}")))
    }

    fn float(&mut self) -> Result<f64> {
        match Marker::from_u8(self.buf.first().copied().unwrap_or(0xc1)) {
            Marker::F32 => rmp::decode::read_f32(&mut self.buf)
                .map(f64::from)
                .map_err(|e| bad(format!("{e:?}"))),
            Marker::F64 => rmp::decode::read_f64(&mut self.buf).map_err(|e| bad(format!("{e:?}"))),
            _ => self.uint().map(|n| n as f64),
        }
    }

    fn bool(&mut self) -> Result<bool> {
        rmp::decode::read_bool(&mut self.buf).map_err(|e| bad(format!("{e:?}")))
    }

    /// A string's bytes, not checked as UTF-8.
    fn str_bytes(&mut self) -> Result<&'a [u8]> {
        let len =
            rmp::decode::read_str_len(&mut self.buf).map_err(|e| bad(format!("{e:?}")))? as usize;
        if self.buf.len() < len {
            return Err(bad("a cut string"));
        }
        let (s, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(s)
    }

    fn str(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.str_bytes()?).map_err(bad)
    }

    /// Pass over a string without reading it.
    fn skip_str(&mut self) -> Result<()> {
        self.str_bytes().map(|_| ())
    }

    /// Pass over a string or nil.
    fn skip_opt_str(&mut self) -> Result<()> {
        if self.peek_nil() {
            Ok(())
        } else {
            self.skip_str()
        }
    }

    /// A string compared with `want` (its bytes: no UTF-8 check).
    fn str_is(&mut self, want: &str) -> Result<bool> {
        Ok(self.str_bytes()? == want.as_bytes())
    }

    fn opt_str(&mut self) -> Result<Option<&'a str>> {
        if self.peek_nil() {
            Ok(None)
        } else {
            self.str().map(Some)
        }
    }

    fn opt_uint(&mut self) -> Result<Option<u64>> {
        if self.peek_nil() {
            Ok(None)
        } else {
            self.uint().map(Some)
        }
    }
}

/// What retention and lookups need of an entry without decoding it all:
/// its seq and request id.
pub fn key(entry: &[u8]) -> Result<(u64, &str)> {
    let mut r = Reader { buf: entry };
    if r.array()? < 2 {
        return Err(bad("a record without its request id"));
    }
    Ok((r.uint()?, r.str()?))
}

/// Decode one entry (as [`entries`] gives it).
pub fn decode(entry: &[u8]) -> Result<CallRecord> {
    let mut r = Reader { buf: entry };
    let fields = r.array()?;
    let mut record = CallRecord::default();
    // Each field in turn while the entry has them; the rest keep their
    // defaults (an entry of an earlier, shorter layout).
    let mut left = fields;
    macro_rules! field {
        ($read:expr) => {
            if left > 0 {
                left -= 1;
                $read;
            }
        };
    }
    field!(record.seq = r.uint()?);
    field!(record.request_id = r.str()?.to_owned());
    field!(record.parent_id = r.opt_str()?.map(str::to_owned));
    field!(record.function = r.str()?.to_owned());
    field!(record.version = u32::try_from(r.uint()?).map_err(bad)?);
    field!(record.app = r.str()?.to_owned());
    field!(record.caller = r.str()?.to_owned());
    field!(record.started_at_ms = r.uint()?);
    field!(record.duration_ms = r.float()?);
    field!(record.outcome = r.str()?.to_owned());
    field!(record.code = r.str()?.to_owned());
    field!(record.reason = r.opt_str()?.map(str::to_owned));
    field!(record.error = r.opt_str()?.map(str::to_owned));
    field!(record.status = u16::try_from(r.uint()?).map_err(bad)?);
    field!({
        let n = r.array()?;
        let mut t = Timing::default();
        let mut vals = [0f64; 5];
        for (i, slot) in vals.iter_mut().enumerate().take(n as usize) {
            *slot = if i == 1 { r.uint()? as f64 } else { r.float()? };
        }
        for _ in 5..n {
            skip(&mut r.buf)?;
        }
        t.queue_ms = vals[0];
        t.start = match vals[1] as u64 {
            1 => StartKind::Generic,
            2 => StartKind::Fresh,
            _ => StartKind::Warm,
        };
        t.spawn_ms = vals[2];
        t.load_ms = vals[3];
        t.run_ms = vals[4];
        record.timing = t;
    });
    field!(record.pid = r.opt_uint()?.map(|p| p as u32));
    field!(record.peak_memory_kb = r.opt_uint()?);
    field!(record.cpu_ms = if r.peek_nil() { None } else { Some(r.float()?) });
    field!(record.bytes_in = r.uint()?);
    field!(record.bytes_out = r.uint()?);
    field!({
        let n = r.array()?;
        let mut log = Vec::with_capacity(n.min(4096) as usize);
        for _ in 0..n {
            let parts = r.array()?;
            if parts < 3 {
                return Err(bad("a log line without its text"));
            }
            let stream = if r.uint()? == 1 {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            let time_ms = r.uint()?;
            let text = r.str()?.to_owned();
            for _ in 3..parts {
                skip(&mut r.buf)?;
            }
            log.push(LogLine {
                stream,
                time_ms,
                text,
            });
        }
        record.log = log;
    });
    field!(record.log_truncated = r.bool()?);
    field!(record.log_dropped_bytes = r.uint()?);
    field!(record.log_unattributed = r.bool()?);
    // Fields a later version added.
    for _ in 0..left {
        skip(&mut r.buf)?;
    }
    Ok(record)
}

/// Pass over one MessagePack value of any kind (a field a later version
/// added).
fn skip(buf: &mut &[u8]) -> Result<()> {
    rmpv::decode::read_value_ref(buf)
        .map(|_| ())
        .map_err(|e| bad(format!("{e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> CallRecord {
        CallRecord {
            seq: 9_000_000_001,
            request_id: "h-0001-0000abcd".into(),
            parent_id: Some("h-0001-0000abcc".into()),
            function: "recommended-row".into(),
            version: 7,
            app: "home".into(),
            caller: "nested".into(),
            started_at_ms: 1_764_590_000_123,
            duration_ms: 1.234_567,
            outcome: "rejected".into(),
            code: "queue_full".into(),
            reason: Some("queue_full".into()),
            error: Some("the queue is full: \"quoted\"\nnext line".into()),
            status: 429,
            timing: Timing {
                queue_ms: 0.5,
                start: StartKind::Fresh,
                spawn_ms: 12.25,
                load_ms: 3.125,
                run_ms: 0.0625,
            },
            pid: Some(4242),
            peak_memory_kb: Some(65_536),
            cpu_ms: Some(0.75),
            bytes_in: 14,
            bytes_out: 1 << 40,
            log: vec![
                LogLine {
                    stream: Stream::Stdout,
                    time_ms: 1_764_590_000_124,
                    text: "héllo ✓".into(),
                },
                LogLine {
                    stream: Stream::Stderr,
                    time_ms: 1_764_590_000_125,
                    text: String::new(),
                },
            ],
            log_truncated: true,
            log_dropped_bytes: 77,
            log_unattributed: true,
        }
    }

    fn json(r: &CallRecord) -> String {
        serde_json::to_string(r).unwrap_or_default()
    }

    #[test]
    fn round_trips_every_field() -> Result<()> {
        for record in [full(), CallRecord::default()] {
            let mut blob = vec![BLOCK_MAGIC];
            let n = encode(&record, &mut blob)?;
            assert_eq!(n, blob.len() - 1);
            let got = entries(&blob)?;
            assert_eq!(got.len(), 1);
            assert_eq!(json(&decode(got[0])?), json(&record));
            let (seq, id) = key(got[0])?;
            assert_eq!((seq, id), (record.seq, record.request_id.as_str()));
        }
        Ok(())
    }

    #[test]
    fn a_batch_is_numbered_in_place_and_summed_up() -> Result<()> {
        let mut second = full();
        second.request_id = "h-2".into();
        second.code = "ok".into();
        let mut batch = Batch::of(&[full(), second])?;
        assert_eq!(batch.len(), 2);
        let mut seqs = Vec::new();
        for (i, entry) in batch.entries_mut().enumerate() {
            let entry = entry?;
            set_seq(entry, 40 + i as u64)?;
            let s = summary(entry)?;
            seqs.push((s.seq, s.request_id.to_owned(), s.ok));
            assert_eq!(
                (s.function, s.version, s.started_at_ms),
                ("recommended-row", 7, 1_764_590_000_123)
            );
            assert_eq!(decode(entry)?.seq, 40 + i as u64);
        }
        assert_eq!(
            seqs,
            [
                (40, "h-0001-0000abcd".to_owned(), false),
                (41, "h-2".to_owned(), true)
            ]
        );
        Ok(())
    }

    #[test]
    fn is_much_smaller_than_json() -> Result<()> {
        let mut record = full();
        record.log.clear();
        record.error = None;
        let mut blob = Vec::new();
        let n = encode(&record, &mut blob)?;
        let j = json(&record).len();
        assert!(n * 2 < j, "{n} bytes against {j} as JSON");
        Ok(())
    }

    #[test]
    fn reads_a_shorter_layout_and_skips_later_fields() -> Result<()> {
        // Three fields only: the rest default.
        let mut short = Vec::new();
        rmp::encode::write_array_len(&mut short, 3).map_err(write_err)?;
        rmp::encode::write_uint(&mut short, 5).map_err(write_err)?;
        rmp::encode::write_str(&mut short, "id-5").map_err(write_err)?;
        rmp::encode::write_nil(&mut short).map_err(write_err)?;
        let r = decode(&short)?;
        assert_eq!((r.seq, r.request_id.as_str(), r.status), (5, "id-5", 0));
        // A later layout with two more fields of any kind.
        let mut blob = Vec::new();
        encode(&full(), &mut blob)?;
        let mut longer = blob[4..].to_vec();
        assert_eq!(longer[0], 0xdc); // array 16: its length in the next two bytes
        longer[1..3].copy_from_slice(&((FIELDS + 2) as u16).to_be_bytes());
        rmp::encode::write_map_len(&mut longer, 1).map_err(write_err)?;
        rmp::encode::write_str(&mut longer, "k").map_err(write_err)?;
        rmp::encode::write_f64(&mut longer, 1.5).map_err(write_err)?;
        rmp::encode::write_bin(&mut longer, b"xyz").map_err(write_err)?;
        assert_eq!(json(&decode(&longer)?), json(&full()));
        Ok(())
    }

    #[test]
    fn refuses_damaged_blocks_with_a_clear_error() {
        let mut blob = vec![BLOCK_MAGIC];
        let _ = encode(&full(), &mut blob);
        let cut = &blob[..blob.len() - 3];
        let err = entries(cut).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("calls.db"), "{err}");
        assert!(entries(b"{\"seq\":1}").is_err());
        let e = entries(&blob).unwrap_or_default();
        assert!(decode(&e[0][..e[0].len() - 2]).is_err());
    }
}
