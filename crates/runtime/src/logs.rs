//! Container logs in the CRI format, and reading them back the way `kubectl logs` shows them.
//!
//! The shim writes one record per line: `<time> <stream> <tag> <content>\n`, the time in
//! RFC 3339 with nanoseconds, the stream `stdout` or `stderr`, the tag `F` for a full line
//! or `P` for part of one (a line longer than 16 KiB, or output cut off without a newline
//! when the container exits). When the file reaches its size limit it is renamed to
//! `<log>.1` (replacing the previous one) and a new file started. [`LogReader`] reads the
//! older file then the current one, so a reader sees everything still on disk, in order.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Datelike, Timelike, Utc};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::AsyncReadExt;
use tokio::io::unix::AsyncFd;

/// The longest line content a record holds; longer lines are split into `P` records.
pub const MAX_LINE: usize = 16 * 1024;

/// Which output of the container a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output (and all of a terminal's output).
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The stream's name in the log format.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One parsed log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// When the shim read the output.
    pub time: DateTime<Utc>,
    /// The stream it came from.
    pub stream: Stream,
    /// True for a `P` record: the line continues in the next record of the stream.
    pub partial: bool,
    /// The content, without the newline.
    pub content: Vec<u8>,
}

/// Formats a time as Go's `time.RFC3339Nano` does (what the kubelet prints): fractional
/// seconds without trailing zeros, none at all on a whole second.
pub fn format_time(time: DateTime<Utc>) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    );
    let nanos = time.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let digits = format!("{nanos:09}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Encodes one record, with its newline.
pub(crate) fn encode_record(
    time: DateTime<Utc>,
    stream: Stream,
    partial: bool,
    content: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 48);
    out.extend_from_slice(format_time(time).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(content);
    out.push(b'\n');
    out
}

/// Parses one record (without its newline); `None` if it is not in the CRI format.
pub fn parse_record(line: &[u8]) -> Option<LogRecord> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let time = DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    // The tag may carry more fields after ':' in later CRI versions; the first decides.
    let tag = parts.next()?;
    let partial = tag.split(|b| *b == b':').next()? == b"P";
    let content = parts.next().unwrap_or_default().to_vec();
    Some(LogRecord {
        time,
        stream,
        partial,
        content,
    })
}

/// What to read, as `kubectl logs` asks for it.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Keep reading as the container writes, until it has exited and all is read.
    pub follow: bool,
    /// Start with the last this many records (`--tail`); `None` for all.
    pub tail_lines: Option<u64>,
    /// Skip records older than this (`--since`, `--since-time`).
    pub since: Option<SystemTime>,
    /// Prefix each record with its time (`--timestamps`).
    pub timestamps: bool,
    /// Stop after this many bytes of output (`--limit-bytes`).
    pub limit_bytes: Option<u64>,
}

/// Renders one record as the kubelet prints it: the optional time, the content, and a
/// newline unless the record is partial.
pub fn render_record(record: &LogRecord, timestamps: bool, out: &mut Vec<u8>) {
    if timestamps {
        out.extend_from_slice(format_time(record.time).as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(&record.content);
    if !record.partial {
        out.push(b'\n');
    }
}

/// The path of the older file of a rotated log.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// Tells a following reader that no more output will come.
pub type DoneCheck = Box<dyn Fn() -> bool + Send + Sync>;

struct OpenLog {
    file: tokio::fs::File,
    dev: u64,
    ino: u64,
}

/// Reads a CRI log file and its rotated predecessor, yielding the bytes `kubectl logs`
/// prints. Made by `Runtime::logs` for a container, or by [`LogReader::open`] for any file.
pub struct LogReader {
    path: PathBuf,
    /// Files still to read after the current one, oldest first.
    queue: VecDeque<PathBuf>,
    current: Option<OpenLog>,
    /// Bytes read and not yet a whole record.
    pending: Vec<u8>,
    options: LogOptions,
    since: Option<DateTime<Utc>>,
    remaining: Option<u64>,
    done: DoneCheck,
    /// The done check said yes; one more pass over the file, then the end.
    last_pass: bool,
    finished: bool,
    watcher: Option<AsyncFd<OwnedFd>>,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// How often a follower looks for new data when no file event woke it.
const POLL: Duration = Duration::from_millis(250);

impl LogReader {
    /// Opens the log at `path` (and `<path>.1` before it). `done` is asked, when following,
    /// whether the writer has finished for good; once it says so the reader ends at the
    /// end of the data.
    pub fn open(path: &Path, options: LogOptions, done: DoneCheck) -> std::io::Result<LogReader> {
        let older = rotated_path(path);
        let mut files: Vec<PathBuf> = Vec::new();
        if older.exists() {
            files.push(older);
        }
        files.push(path.to_owned());
        let (first, offset) = match options.tail_lines {
            Some(n) => tail_start(&files, n)?,
            None => (0, 0),
        };
        let mut queue: VecDeque<PathBuf> = files.into_iter().skip(first).collect();
        let mut current = None;
        if let Some(file) = queue.front()
            && let Some(open) = open_log(file, offset)?
        {
            current = Some(open);
            queue.pop_front();
        }
        let reader = LogReader {
            path: path.to_owned(),
            queue,
            current,
            pending: Vec::new(),
            since: options.since.map(DateTime::<Utc>::from),
            remaining: options.limit_bytes,
            options,
            done,
            last_pass: false,
            finished: false,
            watcher: None,
        };
        Ok(reader)
    }

    /// The next chunk of output, or `None` at the end (with `follow`, once the writer is
    /// done and everything is read).
    pub async fn next(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if self.finished {
                return Ok(None);
            }
            let out = self.render_pending();
            if !out.is_empty() {
                return Ok(Some(out));
            }
            if self.finished {
                return Ok(None);
            }
            if let Some(open) = &mut self.current {
                let n = open.file.read(&mut buf).await?;
                if n > 0 {
                    self.pending.extend_from_slice(&buf[..n]);
                    continue;
                }
            }
            // At the end of the current file (or none is open yet).
            if let Some(next) = self.queue.front().cloned() {
                if let Some(open) = open_log(&next, 0)? {
                    self.queue.pop_front();
                    self.switch_to(open);
                    continue;
                }
                if !self.options.follow {
                    self.queue.pop_front();
                    continue;
                }
            } else if !self.options.follow {
                self.finished = true;
                continue;
            }
            // Following: the writer may have rotated the file we read to its end.
            if let Some(open) = open_log(&self.path, 0)? {
                let same = self
                    .current
                    .as_ref()
                    .is_some_and(|c| c.dev == open.dev && c.ino == open.ino);
                if !same {
                    self.switch_to(open);
                    continue;
                }
            }
            if self.last_pass {
                self.finished = true;
                continue;
            }
            if (self.done)() {
                self.last_pass = true;
                continue;
            }
            self.wait_for_change().await;
        }
    }

    fn switch_to(&mut self, open: OpenLog) {
        // Records are written whole, so a file ends at a record boundary; anything left is
        // a torn write and cannot be completed by the next file.
        self.pending.clear();
        self.current = Some(open);
    }

    /// Turns the whole records in `pending` into output, applying `since` and the byte
    /// limit.
    fn render_pending(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut consumed = 0;
        while let Some(pos) = self.pending[consumed..].iter().position(|b| *b == b'\n') {
            let line = &self.pending[consumed..consumed + pos];
            consumed += pos + 1;
            let Some(record) = parse_record(line) else {
                continue;
            };
            if self.since.is_some_and(|since| record.time < since) {
                continue;
            }
            render_record(&record, self.options.timestamps, &mut out);
            if out.len() >= 64 * 1024 {
                break;
            }
        }
        self.pending.drain(..consumed);
        if let Some(remaining) = &mut self.remaining {
            if out.len() as u64 >= *remaining {
                out.truncate(*remaining as usize);
                self.finished = true;
            }
            *remaining -= out.len() as u64;
        }
        out
    }

    async fn wait_for_change(&mut self) {
        if self.watcher.is_none() {
            self.watcher = self.watch().ok();
        }
        match &self.watcher {
            Some(watcher) => {
                if let Ok(Ok(mut guard)) = tokio::time::timeout(POLL, watcher.readable()).await {
                    // The events only wake us; what changed is found by reading the files.
                    let mut events = [0u8; 4096];
                    while nix::unistd::read(guard.get_inner(), &mut events).is_ok_and(|n| n > 0) {}
                    guard.clear_ready();
                }
            }
            None => tokio::time::sleep(POLL).await,
        }
    }

    fn watch(&self) -> std::io::Result<AsyncFd<OwnedFd>> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        inotify.add_watch(
            dir,
            AddWatchFlags::IN_MODIFY
                | AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_CLOSE_WRITE,
        )?;
        crate::fdio::register(OwnedFd::from(inotify))
    }
}

/// Opens a log file positioned at `offset`; `None` if it does not exist.
fn open_log(path: &Path, offset: u64) -> std::io::Result<Option<OpenLog>> {
    match std::fs::File::open(path) {
        Ok(mut file) => {
            let meta = file.metadata()?;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset))?;
            Ok(Some(OpenLog {
                file: tokio::fs::File::from_std(file),
                dev: meta.dev(),
                ino: meta.ino(),
            }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where the last `n` records of `files` (oldest first) begin: the file's index and offset.
fn tail_start(files: &[PathBuf], n: u64) -> std::io::Result<(usize, u64)> {
    if n == 0 {
        let last = files.len() - 1;
        let size = std::fs::metadata(&files[last])
            .map(|m| m.len())
            .unwrap_or(0);
        return Ok((last, size));
    }
    let mut need = n;
    for (i, file) in files.iter().enumerate().rev() {
        match scan_back(file, need)? {
            Ok(offset) => return Ok((i, offset)),
            Err(found) => need -= found,
        }
    }
    Ok((0, 0))
}

/// Scans `path` backwards for the start of its last `n` records: `Ok(offset)`, or
/// `Err(records in the file)` when it has fewer.
fn scan_back(path: &Path, n: u64) -> std::io::Result<Result<u64, u64>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Err(0)),
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    if size == 0 {
        return Ok(Err(0));
    }
    // The newline ending the last record does not start anything.
    let mut end = size;
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(size - 1))?;
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        end -= 1;
    }
    let mut count = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let len = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..len])?;
        for i in (0..len).rev() {
            if chunk[i] == b'\n' {
                count += 1;
                if count == n {
                    return Ok(Ok(start + i as u64 + 1));
                }
            }
        }
        end = start;
    }
    // The first record has no newline before it.
    if count + 1 >= n {
        Ok(Ok(0))
    } else {
        Ok(Err(count + 1))
    }
}

/// Writes the CRI log of one container, rotating it by size. Used by the shim.
pub(crate) struct LogWriter {
    path: PathBuf,
    max_bytes: u64,
    file: Option<std::fs::File>,
    size: u64,
}

impl LogWriter {
    pub(crate) fn open(path: &Path, max_bytes: u64) -> std::io::Result<LogWriter> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_owned(),
            max_bytes: if max_bytes == 0 { 10 << 20 } else { max_bytes },
            file: Some(file),
            size,
        })
    }

    /// Appends one record, rotating first if it would take the file past its limit.
    pub(crate) fn write(
        &mut self,
        time: DateTime<Utc>,
        stream: Stream,
        partial: bool,
        content: &[u8],
    ) -> std::io::Result<()> {
        use std::io::Write;
        let record = encode_record(time, stream, partial, content);
        if self.size > 0 && self.size + record.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        if let Some(file) = &mut self.file {
            // One write per record, so a reader never sees half of one unless it races
            // the write itself.
            file.write_all(&record)?;
            self.size += record.len() as u64;
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        std::fs::rename(&self.path, rotated_path(&self.path))?;
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.file = Some(file);
        self.size = 0;
        Ok(())
    }
}

/// Splits one stream's output into records: full lines, and `P` records for lines longer
/// than [`MAX_LINE`] or cut off at the end.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Feeds output; returns `(partial, content)` records now complete.
    pub(crate) fn push(&mut self, data: &[u8]) -> Vec<(bool, Vec<u8>)> {
        let mut out = Vec::new();
        self.buf.extend_from_slice(data);
        let mut start = 0;
        loop {
            let rest = &self.buf[start..];
            match rest.iter().position(|b| *b == b'\n') {
                Some(pos) if pos <= MAX_LINE => {
                    out.push((false, rest[..pos].to_vec()));
                    start += pos + 1;
                }
                _ if rest.len() >= MAX_LINE && rest.get(MAX_LINE) != Some(&b'\n') => {
                    out.push((true, rest[..MAX_LINE].to_vec()));
                    start += MAX_LINE;
                }
                _ => break,
            }
        }
        self.buf.drain(..start);
        out
    }

    /// The stream ended: what is left is a partial record.
    pub(crate) fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64, nanos: u32) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, nanos).unwrap()
    }

    #[test]
    fn times_print_like_go() {
        assert_eq!(
            format_time(t(1475713029, 669794202)),
            "2016-10-06T00:17:09.669794202Z"
        );
        assert_eq!(
            format_time(t(1475713029, 669000000)),
            "2016-10-06T00:17:09.669Z"
        );
        assert_eq!(format_time(t(1475713029, 0)), "2016-10-06T00:17:09Z");
    }

    #[test]
    fn records_round_trip() {
        let line = encode_record(t(1475713029, 669794202), Stream::Stderr, true, b"a b c");
        assert_eq!(line, b"2016-10-06T00:17:09.669794202Z stderr P a b c\n");
        let r = parse_record(&line[..line.len() - 1]).unwrap();
        assert_eq!(r.stream, Stream::Stderr);
        assert!(r.partial);
        assert_eq!(r.content, b"a b c");
        assert_eq!(r.time, t(1475713029, 669794202));
        assert!(parse_record(b"garbage").is_none());
        assert_eq!(
            parse_record(b"2016-10-06T00:17:09Z stdout F ")
                .unwrap()
                .content,
            b""
        );
    }

    #[test]
    fn splitter_cuts_long_and_unterminated_lines() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"ab"), vec![]);
        assert_eq!(
            s.push(b"c\nd\n\ne"),
            vec![
                (false, b"abc".to_vec()),
                (false, b"d".to_vec()),
                (false, b"".to_vec())
            ]
        );
        assert_eq!(s.finish(), Some(b"e".to_vec()));
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let mut data = long.clone();
        data.push(b'\n');
        let out = s.push(&data);
        assert_eq!(out.len(), 3);
        assert!(out[0].0 && out[1].0 && !out[2].0);
        assert_eq!(out[0].1.len(), MAX_LINE);
        assert_eq!(out[2].1.len(), 10);
        // Exactly MAX_LINE bytes and a newline is one full record.
        let mut exact = vec![b'y'; MAX_LINE];
        exact.push(b'\n');
        assert_eq!(s.push(&exact), vec![(false, vec![b'y'; MAX_LINE])]);
        assert_eq!(s.finish(), None);
    }

    fn write_log(dir: &Path, max: u64, lines: usize) -> PathBuf {
        let path = dir.join("c.log");
        let mut w = LogWriter::open(&path, max).unwrap();
        for i in 0..lines {
            w.write(
                t(1_700_000_000 + i as i64, 0),
                Stream::Stdout,
                false,
                format!("line {i}").as_bytes(),
            )
            .unwrap();
        }
        path
    }

    async fn read_all(path: &Path, options: LogOptions) -> String {
        let mut r = LogReader::open(path, options, Box::new(|| true)).unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = r.next().await.unwrap() {
            out.extend(chunk);
        }
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn reads_across_rotation_with_tail_since_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        // Each record is 43 bytes; 400 bytes hold 9, so 30 lines rotate several times and
        // the two files on disk hold the last 12 or so.
        let path = write_log(dir.path(), 400, 30);
        assert!(rotated_path(&path).exists());
        let all = read_all(&path, LogOptions::default()).await;
        let lines: Vec<&str> = all.lines().collect();
        assert!(lines.len() > 9, "{all}");
        assert_eq!(*lines.last().unwrap(), "line 29");
        let first: usize = lines[0].strip_prefix("line ").unwrap().parse().unwrap();
        for (k, l) in lines.iter().enumerate() {
            assert_eq!(*l, format!("line {}", first + k));
        }
        let tail = read_all(
            &path,
            LogOptions {
                tail_lines: Some(3),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(tail, "line 27\nline 28\nline 29\n");
        let tail = read_all(
            &path,
            LogOptions {
                tail_lines: Some(lines.len() as u64 - 1),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(tail.lines().count(), lines.len() - 1);
        assert_eq!(
            read_all(
                &path,
                LogOptions {
                    tail_lines: Some(0),
                    ..Default::default()
                }
            )
            .await,
            ""
        );
        assert_eq!(
            read_all(
                &path,
                LogOptions {
                    tail_lines: Some(1000),
                    ..Default::default()
                }
            )
            .await,
            all
        );
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_028);
        let recent = read_all(
            &path,
            LogOptions {
                since: Some(since),
                timestamps: true,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            recent,
            "2023-11-14T22:13:48Z line 28\n2023-11-14T22:13:49Z line 29\n"
        );
        let limited = read_all(
            &path,
            LogOptions {
                tail_lines: Some(2),
                limit_bytes: Some(10),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(limited, "line 28\nli");
    }

    #[tokio::test]
    async fn partial_records_join_without_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        let mut w = LogWriter::open(&path, 0).unwrap();
        w.write(t(1, 0), Stream::Stdout, true, b"abc").unwrap();
        w.write(t(2, 0), Stream::Stdout, false, b"def").unwrap();
        w.write(t(3, 0), Stream::Stderr, true, b"end").unwrap();
        assert_eq!(read_all(&path, LogOptions::default()).await, "abcdef\nend");
    }

    #[tokio::test]
    async fn follow_wakes_on_new_data_and_rotation_and_ends_when_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.log");
        let mut w = LogWriter::open(&path, 100).unwrap();
        w.write(t(1, 0), Stream::Stdout, false, b"one").unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let mut r = LogReader::open(
            &path,
            LogOptions {
                follow: true,
                ..Default::default()
            },
            Box::new(move || flag.load(std::sync::atomic::Ordering::SeqCst)),
        )
        .unwrap();
        assert_eq!(r.next().await.unwrap().unwrap(), b"one\n");
        let writer = tokio::spawn(async move {
            for i in 0..6 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                w.write(
                    t(2 + i, 0),
                    Stream::Stdout,
                    false,
                    format!("more {i}").as_bytes(),
                )
                .unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let started = std::time::Instant::now();
        let mut got = Vec::new();
        while let Some(chunk) = r.next().await.unwrap() {
            got.extend(chunk);
        }
        writer.await.unwrap();
        let text = String::from_utf8(got).unwrap();
        assert_eq!(
            text,
            (0..6).map(|i| format!("more {i}\n")).collect::<String>()
        );
        assert!(
            rotated_path(&path).exists(),
            "the writer rotated while the reader followed"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
