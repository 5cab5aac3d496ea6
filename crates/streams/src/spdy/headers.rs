//! SPDY/3 header blocks: the name/value layout and its zlib compression.
//!
//! Every header block on a connection goes through one zlib stream per
//! direction, preset with SPDY's dictionary and sync-flushed after each
//! block, so a block can only be decompressed after all blocks before it on
//! the same connection, in wire order, and every block must be decompressed
//! even when its frame is then ignored.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::FrameError;
use super::dictionary::DICTIONARY;

/// The largest header block accepted after decompression; kubectl's are a
/// few dozen bytes, so anything near this is an attack on memory.
const MAX_BLOCK: usize = 256 * 1024;
/// The most name/value pairs a block may claim.
const MAX_PAIRS: usize = 1024;

/// A decoded header block: lowercase names, each once, in wire order. A name
/// with several values keeps them joined by NUL, as SPDY writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Headers(Vec<(String, String)>);

impl Headers {
    /// An empty block (what a SYN_REPLY of ours carries).
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds `value` under `name`, after any value the name already has.
    #[cfg(test)]
    pub(crate) fn with(mut self, name: &str, value: &str) -> Self {
        let name = name.to_ascii_lowercase();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push('\0');
                v.push_str(value);
            }
            None => self.0.push((name, value.to_owned())),
        }
        self
    }

    /// The first value of `name` (lowercase).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.split('\0').next())
    }

    /// The uncompressed block: a 32-bit count, then each name and value
    /// with a 32-bit length before it.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            4 + self
                .0
                .iter()
                .map(|(n, v)| 8 + n.len() + v.len())
                .sum::<usize>(),
        );
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for (name, value) in &self.0 {
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// Parses an uncompressed block. Names are lowercased (Go's framer
    /// does the same after complaining); an empty or repeated name, a
    /// length past the end, bytes left over or text that is not UTF-8 are
    /// errors.
    pub(crate) fn decode(block: &[u8]) -> Result<Self, FrameError> {
        let mut rest = block;
        let count = take_u32(&mut rest)? as usize;
        if count > MAX_PAIRS {
            return Err(bad(format!("{count} headers claimed")));
        }
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(count);
        for _ in 0..count {
            let name = take_string(&mut rest, "name")?.to_ascii_lowercase();
            if name.is_empty() {
                return Err(bad("empty header name".into()));
            }
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(bad(format!("header {name:?} repeated")));
            }
            let value = take_string(&mut rest, "value")?;
            pairs.push((name, value));
        }
        if !rest.is_empty() {
            return Err(bad(format!("{} bytes after the last header", rest.len())));
        }
        Ok(Self(pairs))
    }
}

fn bad(detail: String) -> FrameError {
    FrameError::HeaderBlock(detail)
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, FrameError> {
    let Some((head, tail)) = rest.split_first_chunk::<4>() else {
        return Err(bad("block ends inside a length".into()));
    };
    *rest = tail;
    Ok(u32::from_be_bytes(*head))
}

fn take_string(rest: &mut &[u8], what: &str) -> Result<String, FrameError> {
    let len = take_u32(rest)? as usize;
    if len > rest.len() {
        return Err(bad(format!("{what} of {len} bytes runs past the block")));
    }
    let (text, tail) = rest.split_at(len);
    *rest = tail;
    String::from_utf8(text.to_vec()).map_err(|_| bad(format!("{what} is not UTF-8")))
}

/// The compressing half: one per connection, for the blocks we send.
pub(crate) struct HeaderDeflater {
    z: Compress,
}

impl HeaderDeflater {
    pub(crate) fn new() -> Self {
        let mut z = Compress::new(Compression::default(), true);
        // A fresh deflate stream accepts a preset dictionary before any
        // input; the zlib header then names it by its Adler-32.
        z.set_dictionary(DICTIONARY)
            .expect("a fresh deflate stream takes a dictionary");
        Self { z }
    }

    /// Compresses one block and sync-flushes, so the peer can decode it
    /// without waiting for the next.
    pub(crate) fn compress(&mut self, block: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(block.len() / 2 + 64);
        let mut consumed = 0;
        loop {
            let before = self.z.total_in();
            self.z
                .compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| FrameError::Compression(e.to_string()))?;
            consumed += (self.z.total_in() - before) as usize;
            // Done when all input is in and the flush did not stop for want
            // of room.
            if consumed == block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

/// The decompressing half: one per connection, for the blocks we receive.
pub(crate) struct HeaderInflater {
    z: Decompress,
}

impl HeaderInflater {
    pub(crate) fn new() -> Self {
        Self {
            z: Decompress::new(true),
        }
    }

    /// Decompresses the whole compressed block of one frame.
    pub(crate) fn decompress(&mut self, input: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let mut consumed = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity());
            }
            let (in_before, out_before) = (self.z.total_in(), self.z.total_out());
            let result = self
                .z
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync);
            let eaten = (self.z.total_in() - in_before) as usize;
            let produced = self.z.total_out() - out_before;
            consumed += eaten;
            match result {
                Ok(Status::StreamEnd) => {
                    // The peer ended its zlib stream: this block is complete,
                    // and any later one will fail, as it should.
                    if consumed != input.len() {
                        return Err(FrameError::Compression(
                            "data after the end of the compressed stream".into(),
                        ));
                    }
                    return Ok(out);
                }
                Ok(_) => {}
                Err(e) => {
                    let Some(wanted) = e.needs_dictionary() else {
                        return Err(FrameError::Compression(e.to_string()));
                    };
                    // The zlib header asks for a dictionary; SPDY has one.
                    let id = self
                        .z
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| FrameError::Compression(e.to_string()))?;
                    if wanted != id {
                        return Err(FrameError::Compression(format!(
                            "stream wants dictionary {wanted:#x}, spdy's is {id:#x}"
                        )));
                    }
                    continue;
                }
            }
            if out.len() > MAX_BLOCK {
                return Err(bad(format!("block over {MAX_BLOCK} bytes")));
            }
            // Done when all input is in and inflate stopped with room to
            // spare, so nothing is held back.
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if eaten == 0 && produced == 0 {
                return Err(FrameError::Compression(
                    "compressed block is truncated".into(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_round_trip_keeps_order_and_multi_values() {
        let headers = Headers::new()
            .with("streamtype", "data")
            .with("Port", "8080")
            .with("requestid", "0")
            .with("port", "9090");
        assert_eq!(headers.get("port"), Some("8080"));
        let block = headers.encode();
        assert_eq!(Headers::decode(&block).unwrap(), headers);
    }

    #[test]
    fn block_layout_is_lengths_then_bytes() {
        let block = Headers::new().with("a", "bc").encode();
        assert_eq!(block, b"\0\0\0\x01\0\0\0\x01a\0\0\0\x02bc");
        assert_eq!(Headers::new().encode(), b"\0\0\0\0");
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for block in [
            &b"\0\0"[..],
            b"\0\0\0\x01\0\0\0\x05ab",
            b"\0\0\0\x01\0\0\0\x00\0\0\0\0",
            b"\0\0\0\x02\0\0\0\x01a\0\0\0\0\0\0\0\x01a\0\0\0\0",
            b"\0\0\0\0x",
            b"\0\0\0\x01\0\0\0\x01\xff\0\0\0\0",
            b"\xff\xff\xff\xff",
        ] {
            assert!(Headers::decode(block).is_err(), "{block:?}");
        }
    }

    #[test]
    fn uppercase_names_are_lowered() {
        let block = b"\0\0\0\x01\0\0\0\x04Port\0\0\0\x0280";
        assert_eq!(Headers::decode(block).unwrap().get("port"), Some("80"));
    }

    #[test]
    fn one_context_per_direction_across_blocks() {
        let mut deflater = HeaderDeflater::new();
        let mut inflater = HeaderInflater::new();
        let blocks: Vec<Vec<u8>> = (0..50)
            .map(|i| {
                Headers::new()
                    .with("streamtype", if i % 2 == 0 { "error" } else { "data" })
                    .with("port", &(8000 + i).to_string())
                    .with("requestid", &i.to_string())
                    .encode()
            })
            .collect();
        let compressed: Vec<Vec<u8>> = blocks
            .iter()
            .map(|b| deflater.compress(b).unwrap())
            .collect();
        // Later blocks reuse what earlier ones said: they get smaller.
        assert!(compressed[10].len() < compressed[0].len());
        // Each block ends with the sync flush marker.
        for c in &compressed {
            assert!(c.ends_with(&[0, 0, 0xff, 0xff]), "{c:x?}");
        }
        for (block, c) in blocks.iter().zip(&compressed) {
            assert_eq!(&inflater.decompress(c).unwrap(), block);
        }
    }

    #[test]
    fn the_first_block_names_spdys_dictionary() {
        let c = HeaderDeflater::new()
            .compress(&Headers::new().encode())
            .unwrap();
        // CMF/FLG with FDICT set, then the dictionary's Adler-32.
        assert_eq!(c[0], 0x78);
        assert_ne!(c[1] & 0x20, 0);
        assert_eq!(&c[2..6], &[0xe3, 0xc6, 0xa7, 0xc2]);
        assert_eq!(adler32(DICTIONARY), 0xe3c6_a7c2);
    }

    #[test]
    fn large_blocks_round_trip() {
        let value: String = (0..100_000)
            .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
            .collect();
        let block = Headers::new().with("big", &value).encode();
        let c = HeaderDeflater::new().compress(&block).unwrap();
        assert_eq!(HeaderInflater::new().decompress(&c).unwrap(), block);
    }

    #[test]
    fn garbage_is_a_compression_error() {
        let mut inflater = HeaderInflater::new();
        assert!(matches!(
            inflater.decompress(b"\x12\x34\x56\x78garbage"),
            Err(FrameError::Compression(_))
        ));
    }

    #[test]
    fn a_bomb_is_refused() {
        let block = vec![0u8; 4 * 1024 * 1024];
        let c = HeaderDeflater::new().compress(&block).unwrap();
        assert!(c.len() < 16 * 1024);
        assert!(HeaderInflater::new().decompress(&c).is_err());
    }

    /// Python's zlib, an implementation independent of ours, decodes what
    /// we compress and we decode what it compresses, across several blocks
    /// of one stream each way, as SPDY uses them.
    #[test]
    fn interoperates_with_pythons_zlib() {
        const SCRIPT: &str = r#"
import json, sys, zlib
job = json.load(sys.stdin)
d = bytes.fromhex(job["dictionary"])
inflate = zlib.decompressobj(zdict=d)
decoded = [inflate.decompress(bytes.fromhex(b)).hex() for b in job["ours"]]
deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, d)
theirs = [(deflate.compress(bytes.fromhex(b)) + deflate.flush(zlib.Z_SYNC_FLUSH)).hex() for b in job["plain"]]
print(json.dumps({"decoded": decoded, "theirs": theirs}))
"#;
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let unhex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let plain: Vec<Vec<u8>> = (0..20)
            .map(|i| {
                Headers::new()
                    .with(
                        "streamtype",
                        ["error", "stdin", "stdout", "stderr", "data"][i % 5],
                    )
                    .with("port", &(8000 + i).to_string())
                    .with("requestid", &i.to_string())
                    .encode()
            })
            .collect();
        let mut deflater = HeaderDeflater::new();
        let ours: Vec<String> = plain
            .iter()
            .map(|b| hex(&deflater.compress(b).unwrap()))
            .collect();
        let job = serde_json::json!({
            "dictionary": hex(DICTIONARY),
            "ours": ours,
            "plain": plain.iter().map(|b| hex(b)).collect::<Vec<_>>(),
        });
        let python = ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|p| !p.starts_with('/') || std::path::Path::new(p).exists())
            .unwrap();
        let mut child = std::process::Command::new(python)
            .args(["-c", SCRIPT])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(job.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let decoded: Vec<Vec<u8>> = answer["decoded"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| unhex(v.as_str().unwrap()))
            .collect();
        assert_eq!(decoded, plain, "python decodes our blocks");
        let mut inflater = HeaderInflater::new();
        for (theirs, want) in answer["theirs"].as_array().unwrap().iter().zip(&plain) {
            assert_eq!(
                &inflater
                    .decompress(&unhex(theirs.as_str().unwrap()))
                    .unwrap(),
                want
            );
        }
    }

    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }
}
