//! The write-ahead log of the embedded store.
//!
//! Every batch of writes becomes one frame, made durable before the writes
//! are acknowledged. The log is a directory of segment files named
//! `{first_lsn:020}.wal`, each written full of real zero bytes and synced
//! before its first frame goes in. Appending therefore never changes a
//! file's size or allocates a block, so making a frame durable flushes data
//! alone and no file-system metadata.
//!
//! A frame goes out as one `pwrite` on a second descriptor of the active
//! segment, opened with `O_DIRECT | O_DSYNC`: the write bypasses the page
//! cache and is durable when it returns, with no `fdatasync` after it.
//! Measured here (`wal_append_latency`, the two alternating in one run) a
//! 300-byte append's median is 150-210 µs this way against 165-235 µs for a
//! buffered `pwrite` and `fdatasync`: 7-11% (15-25 µs) less, and its p90
//! 6-10% less (appending to a growing or sparse file cost 300-450 µs).
//!
//! Direct writes must cover whole 512-byte sectors, from a buffer aligned in
//! memory, so every frame starts on a sector boundary and is padded with
//! zeros to the next one: an append then writes only sectors no earlier
//! frame occupies, and never rewrites an acknowledged frame's bytes (a
//! buffered write rewrote the whole 4 KiB page around it). A disk whose
//! physical sectors are 4096 bytes still rewrites the physical sector around
//! a 512-byte write inside itself; that is the disk's to make safe, as it was
//! for the page writes before.
//!
//! Where the file system refuses direct writes (`EINVAL` when the
//! descriptor is opened, as on ramfs, or when the first sector is written
//! through it, as on a disk with 4096-byte logical sectors), or the options
//! turn them off, an append is one buffered `pwrite` then `fdatasync`
//! instead. The format is the same either way.
//!
//! # On-disk format
//!
//! All integers are little-endian. A segment starts with a 64-byte header:
//!
//! | bytes  | field                                          |
//! |--------|------------------------------------------------|
//! | 0..8   | magic `GANTRYWL`                               |
//! | 8..12  | format version, 2                              |
//! | 12..16 | reserved, zero                                 |
//! | 16..24 | lsn of the segment's first frame               |
//! | 24..60 | reserved, zero                                 |
//! | 60..64 | CRC32C of bytes 0..60                          |
//!
//! Zeros follow up to offset 512, where the first frame starts. Every frame
//! starts on a 512-byte boundary:
//!
//! | bytes  | field                                             |
//! |--------|---------------------------------------------------|
//! | 0..4   | magic `0x4D52_4657` (`WFRM`)                      |
//! | 4..8   | payload length                                    |
//! | 8..16  | lsn (log sequence number)                         |
//! | 16..20 | CRC32C of the payload                             |
//! | 20..24 | CRC32C of bytes 0..20 of this header              |
//! | 24..   | payload, then zeros to the next 512-byte boundary |
//!
//! Lsns start at 1 and are contiguous across frames and segments. The rest of
//! a segment after its last frame is zeros, so the log ends at the first
//! all-zero frame header.
//!
//! # Recovery
//!
//! A crash can only tear the frame that was being appended, and only in the
//! last segment: every earlier frame was synced before the next was written,
//! and a segment is complete and synced before it gets its final name. So
//! recovery keeps every whole frame, drops a damaged frame at the end of the
//! last segment (zeroing what is left of it, so that it can never be mistaken
//! for a frame later), and refuses with [`StoreError::Corrupt`] anything a
//! crash cannot explain: a damaged frame that valid frames follow, damage in
//! a segment that is not the last, a foreign or damaged segment header, or a
//! gap in the lsns.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::error::StoreError;

/// The first bytes of every segment file.
const SEGMENT_MAGIC: [u8; 8] = *b"GANTRYWL";

/// The segment format this code writes and reads. Version 1 padded frames
/// to 8 bytes only; it was never released.
const FORMAT_VERSION: u32 = 2;

/// Length of the segment header; zeros follow it up to [`FIRST_FRAME_AT`].
const SEGMENT_HEADER_LEN: usize = 64;

/// Offset of the header CRC inside the segment header.
const SEGMENT_CRC_AT: usize = SEGMENT_HEADER_LEN - 4;

/// The first four bytes of every frame (`WFRM` in little-endian order). Not
/// zero, so a written frame header is never all zeros.
const FRAME_MAGIC: u32 = 0x4D52_4657;

/// Length of a frame header.
const FRAME_HEADER_LEN: usize = 24;

/// Offset of the header CRC inside a frame header.
const FRAME_CRC_AT: usize = FRAME_HEADER_LEN - 4;

/// Frames start on multiples of this, the sector size direct writes are
/// made of: an append then writes whole sectors of its own and never one an
/// earlier frame occupies. Recovery also looks for frame headers only at
/// these positions.
const FRAME_ALIGN: usize = 512;

/// Where a segment's first frame starts: the header's sector is its own.
const FIRST_FRAME_AT: usize = FRAME_ALIGN;

/// The memory alignment of the buffer frames are written from. Direct writes
/// need the logical block size (512 here); a page suits every disk.
const BUF_ALIGN: usize = 4096;

/// The frame buffer's first size; it grows for bigger frames and stays so.
const INITIAL_BUF: usize = 64 << 10;

/// Segment sizes are multiples of this, a page on every machine we run on.
const SEGMENT_GRANULE: u64 = 4096;

/// Segments are written in chunks of this many zero bytes.
const ZERO_CHUNK: usize = 1 << 20;

/// The standard segment size unless the options say otherwise.
const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;

/// The name of the spare segment the background thread prepares.
const SPARE_NAME: &str = "spare.wal.tmp";

/// How the write-ahead log is laid out on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WalOptions {
    /// Size of a standard segment file in bytes, a multiple of 4096 and at
    /// least 4096. A frame too big for it gets a segment of its own.
    pub segment_size: u64,
    /// Append through an `O_DIRECT | O_DSYNC` descriptor where the file
    /// system allows it; `false` always uses a buffered `pwrite` and
    /// `fdatasync`.
    pub direct_io: bool,
}

impl Default for WalOptions {
    /// 64 MiB segments: big enough that rollovers are rare, small enough
    /// that checkpointed segments are released soon. Direct writes, because
    /// they make the flush cheaper.
    fn default() -> Self {
        WalOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
            direct_io: true,
        }
    }
}

/// A frame found in the log at open, to be replayed by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecoveredFrame {
    /// The frame's log sequence number.
    pub lsn: u64,
    /// The bytes appended.
    pub payload: Vec<u8>,
}

/// The write-ahead log: a directory of preallocated segments, appended to by
/// the store's writer thread alone.
pub(crate) struct Wal {
    /// The log's directory.
    dir: PathBuf,
    /// The options it was opened with.
    opts: WalOptions,
    /// Every segment on disk, oldest first; the last is the active one.
    segments: VecDeque<SegmentEntry>,
    /// The segment appends go to; `None` only while the log has no segment.
    active: Option<ActiveSegment>,
    /// The lsn the next frame gets.
    next_lsn: u64,
    /// Set after a failed write or sync: the message every later append
    /// returns, because the state of the file is then unknown.
    poisoned: Option<String>,
    /// Whether new active segments get a direct descriptor: the options ask
    /// for it and the file system has not refused it yet.
    direct_io: bool,
    /// Reused buffer in which a frame is assembled before its one `pwrite`,
    /// aligned as direct writes need.
    buf: AlignedBuf,
    /// The background thread keeping a spare segment ready, if it started.
    spare: Option<SpareMaker>,
    /// Segments prepared synchronously, for tests that check the spare is
    /// used.
    #[cfg(test)]
    sync_prepares: u64,
    /// The segment and byte range of every frame write, for tests that
    /// check an append never touches an earlier frame's sectors.
    #[cfg(test)]
    frame_writes: Vec<(u64, Range<u64>)>,
    /// A failure a test has armed for the next write or sync.
    #[cfg(test)]
    fault: Option<FaultPoint>,
}

/// One segment file of the log.
#[derive(Debug)]
struct SegmentEntry {
    /// The lsn of its first frame, also its name.
    first_lsn: u64,
    /// Its path.
    path: PathBuf,
}

/// The segment being appended to.
struct ActiveSegment {
    /// Open for buffered reading and writing.
    file: File,
    /// The same file opened with `O_DIRECT | O_DSYNC`, through which frames
    /// are written; `None` where the file system refuses direct writes (or
    /// the options turn them off), and frames go through `file` and are
    /// flushed with `fdatasync`.
    direct: Option<File>,
    /// Its path, for errors.
    path: PathBuf,
    /// The lsn of its first frame.
    first_lsn: u64,
    /// Its size, fixed when it was prepared.
    len: u64,
    /// Where the next frame goes.
    write_pos: u64,
}

/// The IO steps of an append a test can make fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultPoint {
    /// The `pwrite` of a frame.
    Write,
    /// Making it durable: the `fdatasync` after a buffered write, or the
    /// synchronous part of a direct write, failing after the bytes went out.
    Sync,
}

impl Wal {
    /// Opens (creating `dir` if missing) the log. Returns every frame with
    /// lsn > `after_lsn` in order.
    ///
    /// `after_lsn` is the last frame already checkpointed elsewhere (0 =
    /// none). The next append gets lsn = max(last recovered lsn, after_lsn) + 1.
    /// A directory without segments is a new log starting after `after_lsn`;
    /// a log that ends before `after_lsn` has lost frames and is refused.
    pub(crate) fn open(
        dir: &Path,
        after_lsn: u64,
        opts: WalOptions,
    ) -> Result<(Wal, Vec<RecoveredFrame>), StoreError> {
        Self::open_with(dir, after_lsn, opts, true)
    }

    /// [`Wal::open`], with or without the background thread that prepares
    /// spare segments (tests turn it off to make rollovers deterministic).
    fn open_with(
        dir: &Path,
        after_lsn: u64,
        opts: WalOptions,
        spare_ahead: bool,
    ) -> Result<(Wal, Vec<RecoveredFrame>), StoreError> {
        if opts.segment_size < SEGMENT_GRANULE || !opts.segment_size.is_multiple_of(SEGMENT_GRANULE)
        {
            return Err(StoreError::Invalid(format!(
                "write-ahead log segment size {} for {} is not a positive multiple of {SEGMENT_GRANULE}",
                opts.segment_size,
                dir.display()
            )));
        }
        if after_lsn == u64::MAX {
            return Err(StoreError::Invalid(format!(
                "checkpointed lsn {after_lsn} for write-ahead log {} leaves no room for more",
                dir.display()
            )));
        }
        ensure_dir(dir)?;
        let names = list_segments(dir)?;

        let mut segments = VecDeque::with_capacity(names.len());
        let mut frames = Vec::new();
        let mut active = None;
        // The lsn the next frame must have, and the segment that set it, for
        // the messages about gaps.
        let mut expected: Option<(u64, PathBuf)> = None;
        for (i, (first_lsn, path)) in names.iter().enumerate() {
            let is_last = i + 1 == names.len();
            let mut recovered = recover_segment(path, *first_lsn, is_last)?;
            match &expected {
                None if *first_lsn > after_lsn + 1 => {
                    return Err(corrupt(
                        path,
                        format!(
                            "the oldest segment starts at lsn {first_lsn} but only lsns through \
                             {after_lsn} are checkpointed; lsns {} to {} are missing",
                            after_lsn + 1,
                            first_lsn - 1
                        ),
                    ));
                }
                Some((next, prev)) if first_lsn != next => {
                    return Err(corrupt(
                        path,
                        format!(
                            "segment starts at lsn {first_lsn} but the previous segment {} ends \
                             before lsn {next}",
                            prev.display()
                        ),
                    ));
                }
                _ => {}
            }
            expected = Some((recovered.next_lsn, path.clone()));
            frames.extend(
                std::mem::take(&mut recovered.frames)
                    .into_iter()
                    .filter(|frame| frame.lsn > after_lsn),
            );
            segments.push_back(SegmentEntry {
                first_lsn: *first_lsn,
                path: path.clone(),
            });
            if is_last {
                active = Some(recovered);
            }
        }

        let next_lsn = match (&expected, &active) {
            (Some((next, _)), Some(last)) => {
                if *next <= after_lsn {
                    return Err(corrupt(
                        &last.path,
                        format!(
                            "the log ends at lsn {} but lsns through {after_lsn} are \
                             checkpointed; newer segments are missing",
                            next - 1
                        ),
                    ));
                }
                *next
            }
            _ => after_lsn + 1,
        };

        // Only now, with every segment checked, change anything on disk: wipe
        // what a torn append left behind, so that no stale bytes can ever be
        // read as a frame once new frames are written before them.
        let mut direct_io = opts.direct_io;
        let mut buf = AlignedBuf::new(INITIAL_BUF);
        let active = match active {
            Some(last) => Some(last.into_active(&mut direct_io, &mut buf)?),
            None => None,
        };

        let spare = if spare_ahead {
            SpareMaker::start(dir)
        } else {
            None
        };
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            opts,
            segments,
            active,
            next_lsn,
            poisoned: None,
            direct_io,
            buf,
            spare,
            #[cfg(test)]
            sync_prepares: 0,
            #[cfg(test)]
            frame_writes: Vec::new(),
            #[cfg(test)]
            fault: None,
        };
        wal.request_spare();
        Ok((wal, frames))
    }

    /// Appends one frame with one direct, synchronous `pwrite` (or a
    /// buffered one and `fdatasync`); the frame is durable when this returns
    /// `Ok`. Returns its lsn.
    pub(crate) fn append(&mut self, payload: &[u8]) -> Result<u64, StoreError> {
        if let Some(message) = &self.poisoned {
            return Err(StoreError::Closed(message.clone()));
        }
        let Ok(payload_len) = u32::try_from(payload.len()) else {
            return Err(StoreError::Invalid(format!(
                "frame of {} bytes is too large for write-ahead log {}",
                payload.len(),
                self.dir.display()
            )));
        };
        let frame_len = frame_len(payload_len) as u64;
        let fits = self
            .active
            .as_ref()
            .is_some_and(|active| active.write_pos + frame_len <= active.len);
        if !fits {
            // A failed rollover has written nothing to the log and consumed
            // no lsn, so the log stays usable (after a full disk is freed).
            self.roll_over(frame_len)?;
        }

        let lsn = self.next_lsn;
        encode_frame(self.buf.prepare(frame_len as usize), lsn, payload);
        let written = self.injected(FaultPoint::Write).and_then(|()| {
            let active = self.active()?;
            // `write_all_at` issues a single `pwrite` for the whole frame and
            // only loops if the kernel writes less (or is interrupted). The
            // frame starts and ends on sector boundaries and the buffer is
            // aligned, so a direct write takes it as it is.
            let file = active.direct.as_ref().unwrap_or(&active.file);
            file.write_all_at(self.buf.as_slice(), active.write_pos)
        });
        let synced = written.and_then(|()| {
            self.injected(FaultPoint::Sync)?;
            let active = self.active()?;
            // A direct write is durable when it returns (`O_DSYNC`); a
            // buffered one only sits in the page cache until the flush.
            match active.direct {
                Some(_) => Ok(()),
                None => active.file.sync_data(),
            }
        });
        if let Err(err) = synced {
            // After a failed write or fsync the kernel may have dropped dirty
            // pages or marked them clean, and a failed direct write may have
            // reached some sectors and not others, so what is on disk is
            // unknown: writing on could acknowledge frames that are not
            // durable.
            let path = self
                .active
                .as_ref()
                .map_or_else(|| self.dir.clone(), |a| a.path.clone());
            self.poison(&path, &err);
            return Err(StoreError::io(path, err));
        }
        if let Some(active) = self.active.as_mut() {
            #[cfg(test)]
            self.frame_writes.push((
                active.first_lsn,
                active.write_pos..active.write_pos + frame_len,
            ));
            active.write_pos += frame_len;
        }
        self.next_lsn += 1;
        Ok(lsn)
    }

    /// Frames through `lsn` are safely checkpointed: deletes the segment
    /// files holding only such frames, oldest first, never the active one.
    pub(crate) fn release_through(&mut self, lsn: u64) -> Result<(), StoreError> {
        if lsn >= self.next_lsn {
            return Err(StoreError::Invalid(format!(
                "cannot release write-ahead log {} through lsn {lsn}: only lsns below {} exist",
                self.dir.display(),
                self.next_lsn
            )));
        }
        // A segment that is not the last ends just before the next one
        // starts, since lsns are contiguous.
        while self.segments.len() > 1 && self.segments[1].first_lsn - 1 <= lsn {
            // Forget the segment only once its file is gone, so that a failed
            // removal is retried by the next release.
            let oldest = &self.segments[0].path;
            fs::remove_file(oldest).map_err(|e| StoreError::io(oldest, e))?;
            self.segments.pop_front();
            // Sync the directory after each removal, so that a crash can only
            // leave a contiguous run of the newest segments and never a hole.
            sync_dir(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?;
        }
        Ok(())
    }

    /// The lsn the next appended frame gets.
    #[cfg(test)]
    pub(crate) fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// The log's directory.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether appends to the active segment go through a direct descriptor.
    #[cfg(test)]
    fn writes_direct(&self) -> bool {
        self.active.as_ref().is_some_and(|a| a.direct.is_some())
    }

    /// The active segment, which exists whenever a frame is being written.
    fn active(&self) -> io::Result<&ActiveSegment> {
        self.active
            .as_ref()
            .ok_or_else(|| io::Error::other("write-ahead log has no active segment"))
    }

    /// Makes every later append fail, naming the file and the first error.
    fn poison(&mut self, path: &Path, err: &io::Error) {
        self.poisoned = Some(format!(
            "write-ahead log {} failed earlier: {err}; restart the store",
            path.display()
        ));
    }

    /// Starts a new active segment for a frame of `frame_len` bytes, with the
    /// next lsn as its first.
    fn roll_over(&mut self, frame_len: u64) -> Result<(), StoreError> {
        let first_lsn = self.next_lsn;
        let standard = self.opts.segment_size;
        let needed = FIRST_FRAME_AT as u64 + frame_len;
        let size = if needed <= standard {
            standard
        } else {
            needed.div_ceil(SEGMENT_GRANULE) * SEGMENT_GRANULE
        };
        let final_path = segment_path(&self.dir, first_lsn);

        // A spare on its way is waited for rather than raced: writing a
        // second segment beside it would take no less time and would need
        // twice the free space, so a nearly full disk would fail the one
        // and then, once the other had given up, succeed by chance.
        let spare = if size == standard {
            self.spare.as_mut().and_then(SpareMaker::wait_take)
        } else {
            None
        };
        let zeroed = match spare {
            Some(spare) => spare,
            None => {
                #[cfg(test)]
                {
                    self.sync_prepares += 1;
                }
                let tmp = self.dir.join(format!("{first_lsn:020}.wal.tmp"));
                write_zeroed(&tmp, size, None)?
            }
        };
        // The file is zeros; give it its header, durable before the name
        // that makes it count.
        let direct = match self.write_segment_header(&zeroed, first_lsn) {
            Ok(direct) => direct,
            Err(err) => {
                let _ = fs::remove_file(&zeroed.path);
                return Err(StoreError::io(&zeroed.path, err));
            }
        };
        // The rename is atomic: the segment either exists complete under its
        // name or not at all. It replaces an active segment that has the same
        // first lsn, which can only be one holding no frame yet.
        if let Err(err) = fs::rename(&zeroed.path, &final_path) {
            let _ = fs::remove_file(&zeroed.path);
            return Err(StoreError::io(&final_path, err));
        }
        if let Err(err) = sync_dir(&self.dir) {
            // Whether the new name is durable is now unknown; appending on
            // could put frames where a crash would lose them.
            self.poison(&final_path, &err);
            return Err(StoreError::io(&self.dir, err));
        }

        if self
            .active
            .as_ref()
            .is_some_and(|active| active.first_lsn == first_lsn)
        {
            self.segments.pop_back();
        }
        self.segments.push_back(SegmentEntry {
            first_lsn,
            path: final_path.clone(),
        });
        self.active = Some(ActiveSegment {
            file: zeroed.file,
            direct,
            path: final_path,
            first_lsn,
            len: size,
            write_pos: FIRST_FRAME_AT as u64,
        });
        self.request_spare();
        Ok(())
    }

    /// Writes and makes durable the header of the zero-filled segment that
    /// is to start at `first_lsn`. Where direct writes are wanted, the header
    /// goes out as the segment's first sector through a new direct
    /// descriptor, which is returned for the frames: that one write both
    /// proves the file system takes direct writes and makes the header
    /// durable. Otherwise it is a buffered write and `fdatasync`.
    fn write_segment_header(
        &mut self,
        zeroed: &ZeroedFile,
        first_lsn: u64,
    ) -> io::Result<Option<File>> {
        let header = encode_segment_header(first_lsn);
        if self.direct_io {
            let mut sector = [0u8; FIRST_FRAME_AT];
            sector[..SEGMENT_HEADER_LEN].copy_from_slice(&header);
            match open_direct(&zeroed.path, 0, &sector, &mut self.buf)? {
                Some(direct) => return Ok(Some(direct)),
                None => {
                    self.direct_io = false;
                    log_direct_refused(&self.dir);
                }
            }
        }
        zeroed.file.write_all_at(&header, 0)?;
        zeroed.file.sync_data()?;
        Ok(None)
    }

    /// Asks the background thread for a spare segment if none is on its way.
    fn request_spare(&mut self) {
        let size = self.opts.segment_size;
        if let Some(spare) = self.spare.as_mut() {
            spare.request(size);
        }
    }

    /// Returns the failure a test armed for `point`, once.
    #[cfg(test)]
    fn injected(&mut self, point: FaultPoint) -> io::Result<()> {
        if self.fault == Some(point) {
            self.fault = None;
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }

    /// Outside tests nothing is ever injected.
    #[cfg(not(test))]
    #[inline(always)]
    fn injected(&mut self, _point: FaultPoint) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Wal {
    /// Stops the spare thread and removes its unused spare.
    fn drop(&mut self) {
        if let Some(spare) = self.spare.take() {
            spare.shutdown();
        }
    }
}

/// A file of zeros, synced, under a temporary name.
struct ZeroedFile {
    /// Open for reading and writing.
    file: File,
    /// Its temporary path.
    path: PathBuf,
}

/// Writes `size` zero bytes into a new file at `path`, in chunks of 1 MiB,
/// and syncs it. On any failure (a full disk, or `cancel` being set) removes
/// the partial file.
fn write_zeroed(
    path: &Path,
    size: u64,
    cancel: Option<&AtomicBool>,
) -> Result<ZeroedFile, StoreError> {
    match create_zeroed(path, size, cancel) {
        Ok(file) => Ok(ZeroedFile {
            file,
            path: path.to_path_buf(),
        }),
        Err(err) => {
            let _ = fs::remove_file(path);
            Err(StoreError::io(path, err))
        }
    }
}

/// The IO of [`write_zeroed`], leaving the clean-up to it.
fn create_zeroed(path: &Path, size: u64, cancel: Option<&AtomicBool>) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let chunk = vec![0u8; ZERO_CHUNK];
    let mut at = 0u64;
    while at < size {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "preparing the segment was cancelled",
            ));
        }
        let n = (size - at).min(ZERO_CHUNK as u64) as usize;
        file.write_all(&chunk[..n])?;
        at += n as u64;
    }
    // Real zeros, synced: later appends then overwrite allocated blocks and
    // change no metadata, so their `fdatasync` flushes data alone.
    file.sync_data()?;
    Ok(file)
}

/// Writes zeros over `range` of `file` and syncs it.
fn zero_range(file: &File, range: Range<u64>) -> io::Result<()> {
    let zeros = vec![0u8; ZERO_CHUNK];
    let mut at = range.start;
    while at < range.end {
        let n = (range.end - at).min(ZERO_CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_data()
}

/// Opens `path` for direct, synchronous writes and writes `sector` (a
/// multiple of 512 bytes) at `at` through the new descriptor, which both
/// puts it on disk and proves that the file system takes direct writes as
/// the log makes them. Returns `None` if it does not: `EINVAL` from the open
/// (no direct I/O at all) or from the write (offset, length or buffer not
/// aligned as it needs, as on a disk with 4096-byte logical sectors), both
/// refused before anything is written.
///
/// Whatever the page cache holds of the file must already be on disk: the
/// kernel flushes and drops the cached pages a direct write covers, but a
/// dirty page written back later would undo it. A file system that takes
/// `O_DIRECT` but quietly buffers the write (tmpfs, ext4 journalling data)
/// still honours `O_DSYNC`, so a write through the descriptor is durable
/// when it returns either way.
fn open_direct(
    path: &Path,
    at: u64,
    sector: &[u8],
    buf: &mut AlignedBuf,
) -> io::Result<Option<File>> {
    let opened = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(path);
    let direct = match opened {
        Ok(direct) => direct,
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
        Err(err) => return Err(err),
    };
    buf.prepare(sector.len()).copy_from_slice(sector);
    match direct.write_all_at(buf.as_slice(), at) {
        Ok(()) => Ok(Some(direct)),
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Says, once per log, that appends fall back to buffered writes.
fn log_direct_refused(dir: &Path) {
    tracing::info!(
        "write-ahead log {}: the file system refuses direct writes; appending with buffered \
         writes and fdatasync",
        dir.display()
    );
}

/// A reusable byte buffer whose contents start at a multiple of
/// [`BUF_ALIGN`] in memory, as direct writes need. Safe code cannot ask the
/// allocator for alignment, so the buffer allocates [`BUF_ALIGN`] bytes more
/// than it holds and uses the part that starts on an aligned address. A
/// `Vec` moves its heap memory only when it grows, and this one never does
/// (a bigger buffer replaces it), so the offset stays right.
struct AlignedBuf {
    /// The allocation, over-sized by [`BUF_ALIGN`].
    storage: Vec<u8>,
    /// Where the aligned part starts in `storage`.
    start: usize,
    /// How many bytes of the aligned part are in use.
    len: usize,
}

impl AlignedBuf {
    /// A buffer that holds `capacity` bytes before it has to grow.
    fn new(capacity: usize) -> AlignedBuf {
        let storage = vec![0u8; capacity + BUF_ALIGN];
        let start = storage.as_ptr().addr().next_multiple_of(BUF_ALIGN) - storage.as_ptr().addr();
        AlignedBuf {
            storage,
            start,
            len: 0,
        }
    }

    /// Makes the buffer `len` bytes long, reallocating only if it never was
    /// that long before, and returns them to be filled (their contents are
    /// left over from earlier use).
    fn prepare(&mut self, len: usize) -> &mut [u8] {
        if self.start + len > self.storage.len() {
            *self = AlignedBuf::new(len.next_power_of_two());
        }
        self.len = len;
        &mut self.storage[self.start..self.start + len]
    }

    /// The bytes in use, starting at an aligned address.
    fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

/// The background thread that keeps one zero-filled spare segment ready, so
/// that a rollover usually costs a header write and a rename rather than
/// writing a whole segment of zeros while a write waits.
struct SpareMaker {
    /// Sizes of spares to prepare; dropped to stop the thread.
    requests: Option<Sender<u64>>,
    /// Prepared spares, or why preparing one failed.
    results: Receiver<Result<ZeroedFile, StoreError>>,
    /// Tells the thread to give up on the spare it is writing.
    cancel: Arc<AtomicBool>,
    /// The thread, joined at shutdown.
    thread: Option<JoinHandle<()>>,
    /// A spare was requested and its result not yet received.
    outstanding: bool,
    /// A spare received and not yet used.
    ready: Option<ZeroedFile>,
}

impl SpareMaker {
    /// Starts the thread for the log in `dir`; `None` if it cannot start, in
    /// which case every segment is prepared when it is needed.
    fn start(dir: &Path) -> Option<SpareMaker> {
        let (request_tx, request_rx) = crossbeam_channel::unbounded::<u64>();
        let (result_tx, result_rx) = crossbeam_channel::unbounded();
        let cancel = Arc::new(AtomicBool::new(false));
        let path = dir.join(SPARE_NAME);
        let thread_cancel = Arc::clone(&cancel);
        let spawned = std::thread::Builder::new()
            .name("wal-spare".into())
            .spawn(move || {
                for size in request_rx {
                    let result = write_zeroed(&path, size, Some(&thread_cancel));
                    if let Err(unsent) = result_tx.send(result) {
                        if let Ok(spare) = unsent.0 {
                            let _ = fs::remove_file(&spare.path);
                        }
                        break;
                    }
                }
            });
        match spawned {
            Ok(thread) => Some(SpareMaker {
                requests: Some(request_tx),
                results: result_rx,
                cancel,
                thread: Some(thread),
                outstanding: false,
                ready: None,
            }),
            Err(err) => {
                tracing::warn!(
                    "cannot start the spare segment thread for write-ahead log {}: {err}",
                    dir.display()
                );
                None
            }
        }
    }

    /// Requests a spare of `size` bytes unless one is ready or on its way.
    fn request(&mut self, size: u64) {
        if self.outstanding || self.ready.is_some() {
            return;
        }
        if let Some(requests) = &self.requests {
            self.outstanding = requests.send(size).is_ok();
        }
    }

    /// Takes the spare, first waiting for the one on its way if any; `None`
    /// if there is none or preparing it failed.
    fn wait_take(&mut self) -> Option<ZeroedFile> {
        self.wait();
        self.ready.take()
    }

    /// Blocks until the outstanding spare is ready or has failed; says
    /// whether one is ready.
    fn wait(&mut self) -> bool {
        if self.outstanding {
            match self.results.recv() {
                Ok(result) => self.receive(result),
                Err(_) => self.outstanding = false,
            }
        }
        self.ready.is_some()
    }

    /// Keeps a prepared spare; a failure is only logged, because the
    /// rollover that needs a segment will prepare one itself and report
    /// the error if it fails again.
    fn receive(&mut self, result: Result<ZeroedFile, StoreError>) {
        self.outstanding = false;
        match result {
            Ok(spare) => self.ready = Some(spare),
            Err(err) => tracing::warn!("cannot prepare a spare write-ahead log segment: {err}"),
        }
    }

    /// Stops the thread, waits for it, and removes any unused spare.
    fn shutdown(mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        for spare in self.results.try_iter().flatten() {
            let _ = fs::remove_file(&spare.path);
        }
        if let Some(spare) = self.ready.take() {
            let _ = fs::remove_file(&spare.path);
        }
    }
}

/// The path of the segment whose first frame has `first_lsn`.
fn segment_path(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(format!("{first_lsn:020}.wal"))
}

/// Makes `dir` durable: creates it and any missing parents, syncing the
/// directory that holds each one created, so that a crash cannot lose the
/// directory together with the frames in it.
fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at {
        if path.as_os_str().is_empty() || path.exists() {
            break;
        }
        missing.push(path);
        at = path.parent();
    }
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    for created in missing.iter().rev() {
        let parent = match created.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        sync_dir(parent).map_err(|e| StoreError::io(parent, e))?;
    }
    Ok(())
}

/// Makes the directory's entries durable (created, renamed, removed files).
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Lists the segments in `dir` by first lsn, oldest first, and deletes the
/// temporary files an interrupted segment preparation left.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut segments = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let path = entry.path();
        // Names that are not UTF-8 are not ours.
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.ends_with(".tmp") {
            // A segment being prepared, never renamed; it holds no frame.
            fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
            continue;
        }
        let Some(stem) = name.strip_suffix(".wal") else {
            continue;
        };
        let first_lsn = (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
            .then(|| stem.parse::<u64>().ok())
            .flatten()
            .filter(|lsn| *lsn > 0);
        let Some(first_lsn) = first_lsn else {
            return Err(corrupt(
                &path,
                "file in the write-ahead log directory is not named <20-digit first lsn>.wal",
            ));
        };
        let file_type = entry.file_type().map_err(|e| StoreError::io(&path, e))?;
        if !file_type.is_file() {
            return Err(corrupt(
                &path,
                "write-ahead log segment is not a regular file",
            ));
        }
        segments.push((first_lsn, path));
    }
    segments.sort();
    Ok(segments)
}

/// A segment read and checked at open.
struct RecoveredSegment {
    /// The segment file, writable if it is the last.
    file: File,
    /// Its path.
    path: PathBuf,
    /// The lsn its header names.
    first_lsn: u64,
    /// Its size.
    len: u64,
    /// Its frames.
    frames: Vec<RecoveredFrame>,
    /// The lsn after its last frame.
    next_lsn: u64,
    /// Where its frames end.
    end: u64,
    /// The end of the leftover bytes of a torn append, to be zeroed from
    /// `end` before anything is appended.
    dirty_to: Option<u64>,
}

impl RecoveredSegment {
    /// Makes this last segment the active one, first zeroing and syncing
    /// what a torn append left after the log's end, then, if `direct_io` is
    /// set and the segment has room for a frame, opening its direct
    /// descriptor (clearing `direct_io` if the file system refuses).
    fn into_active(
        self,
        direct_io: &mut bool,
        buf: &mut AlignedBuf,
    ) -> Result<ActiveSegment, StoreError> {
        // Buffered, and synced before any direct write, so that no dirty
        // page of the zeroing is left to be written back over a frame.
        if let Some(dirty_to) = self.dirty_to {
            zero_range(&self.file, self.end..dirty_to)
                .map_err(|e| StoreError::io(&self.path, e))?;
        }
        // The sector at the log's end is zeros now; writing it again as
        // zeros is the harmless write that proves direct writes work. A full
        // segment needs no descriptor: the next append rolls over.
        let mut direct = None;
        if *direct_io && self.end + FRAME_ALIGN as u64 <= self.len {
            direct = open_direct(&self.path, self.end, &[0u8; FRAME_ALIGN], buf)
                .map_err(|e| StoreError::io(&self.path, e))?;
            if direct.is_none() {
                *direct_io = false;
                log_direct_refused(self.path.parent().unwrap_or(&self.path));
            }
        }
        Ok(ActiveSegment {
            file: self.file,
            direct,
            path: self.path,
            first_lsn: self.first_lsn,
            len: self.len,
            write_pos: self.end,
        })
    }
}

/// Reads and checks one segment: its header, its frames, and what follows
/// them. Only the last segment may end in a torn frame.
fn recover_segment(
    path: &Path,
    name_lsn: u64,
    is_last: bool,
) -> Result<RecoveredSegment, StoreError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(is_last)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| StoreError::io(path, e))?;
    let first_lsn = decode_segment_header(&bytes).map_err(|detail| corrupt(path, detail))?;
    if first_lsn != name_lsn {
        return Err(corrupt(
            path,
            format!("file name says first lsn {name_lsn} but the segment header says {first_lsn}"),
        ));
    }
    if !bytes.len().is_multiple_of(FRAME_ALIGN) {
        return Err(corrupt(
            path,
            format!(
                "segment is {} bytes, not a multiple of {FRAME_ALIGN}",
                bytes.len()
            ),
        ));
    }
    if let Some(i) = bytes[SEGMENT_HEADER_LEN..FIRST_FRAME_AT]
        .iter()
        .position(|b| *b != 0)
    {
        return Err(corrupt(
            path,
            format!(
                "non-zero byte at offset {} between the segment header and the first frame",
                SEGMENT_HEADER_LEN + i
            ),
        ));
    }
    let scan = scan_frames(&bytes, first_lsn);
    let dirty_to = judge_end(&bytes, &scan, is_last).map_err(|detail| corrupt(path, detail))?;
    if let Some(damage) = &scan.damage {
        tracing::warn!(
            "write-ahead log {}: dropping the torn frame at offset {} ({}); the log ends at lsn {}",
            path.display(),
            damage.offset,
            damage.reason,
            scan.next_lsn - 1
        );
    } else if dirty_to.is_some() {
        tracing::warn!(
            "write-ahead log {}: clearing the remains of a torn frame after offset {}",
            path.display(),
            scan.end
        );
    }
    let frames = scan
        .frames
        .iter()
        .map(|(lsn, range)| RecoveredFrame {
            lsn: *lsn,
            payload: bytes[range.clone()].to_vec(),
        })
        .collect();
    Ok(RecoveredSegment {
        file,
        path: path.to_path_buf(),
        first_lsn,
        len: bytes.len() as u64,
        frames,
        next_lsn: scan.next_lsn,
        end: scan.end as u64,
        dirty_to: dirty_to.map(|to| to as u64),
    })
}

/// Builds a [`StoreError::Corrupt`] for `path`.
fn corrupt(path: &Path, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// The segment header for a segment starting at `first_lsn`.
fn encode_segment_header(first_lsn: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&header[..SEGMENT_CRC_AT]);
    header[SEGMENT_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Checks a segment's header and returns its first lsn, or says what is
/// wrong with it.
fn decode_segment_header(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() < SEGMENT_HEADER_LEN {
        return Err(format!(
            "file is {} bytes, shorter than a write-ahead log segment header",
            bytes.len()
        ));
    }
    let header = &bytes[..SEGMENT_HEADER_LEN];
    if header[0..8] != SEGMENT_MAGIC {
        return Err("not a write-ahead log segment (bad magic)".into());
    }
    if crc32c::crc32c(&header[..SEGMENT_CRC_AT]) != le_u32(&header[SEGMENT_CRC_AT..]) {
        return Err("segment header is damaged (checksum mismatch)".into());
    }
    let version = le_u32(&header[8..12]);
    if version != FORMAT_VERSION {
        return Err(format!(
            "unknown write-ahead log format version {version} (this build reads version {FORMAT_VERSION})"
        ));
    }
    if header[12..16]
        .iter()
        .chain(&header[24..SEGMENT_CRC_AT])
        .any(|b| *b != 0)
    {
        return Err("segment header has reserved bytes set by an unknown writer".into());
    }
    Ok(le_u64(&header[16..24]))
}

/// The bytes a frame with a payload of `payload_len` bytes takes, padding
/// included.
fn frame_len(payload_len: u32) -> usize {
    (FRAME_HEADER_LEN + payload_len as usize).next_multiple_of(FRAME_ALIGN)
}

/// Assembles the frame for `payload` with `lsn` into `buf`, which is
/// exactly [`frame_len`] long, padding included.
fn encode_frame(buf: &mut [u8], lsn: u64, payload: &[u8]) {
    let mut header = [0u8; FRAME_HEADER_LEN];
    header[0..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
    header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[8..16].copy_from_slice(&lsn.to_le_bytes());
    header[16..20].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let crc = crc32c::crc32c(&header[..FRAME_CRC_AT]);
    header[FRAME_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    let (head, rest) = buf.split_at_mut(FRAME_HEADER_LEN);
    let (body, padding) = rest.split_at_mut(payload.len());
    head.copy_from_slice(&header);
    body.copy_from_slice(payload);
    // The buffer is reused, so the padding holds an earlier frame's bytes.
    padding.fill(0);
}

/// A frame header that passed its magic and checksum.
struct FrameHeader {
    /// Length of the payload.
    payload_len: u32,
    /// The frame's lsn.
    lsn: u64,
    /// Checksum of the payload.
    payload_crc: u32,
}

/// Decodes the frame header at the start of `bytes` (at least
/// [`FRAME_HEADER_LEN`] long), or says why it is not one.
fn decode_frame_header(bytes: &[u8]) -> Result<FrameHeader, &'static str> {
    if le_u32(&bytes[0..4]) != FRAME_MAGIC {
        return Err("bad frame magic");
    }
    if crc32c::crc32c(&bytes[..FRAME_CRC_AT]) != le_u32(&bytes[FRAME_CRC_AT..FRAME_HEADER_LEN]) {
        return Err("bad frame header checksum");
    }
    Ok(FrameHeader {
        payload_len: le_u32(&bytes[4..8]),
        lsn: le_u64(&bytes[8..16]),
        payload_crc: le_u32(&bytes[16..20]),
    })
}

/// What reading a segment's frames in order found.
struct FrameScan {
    /// Lsn and payload range of each valid frame, in order.
    frames: Vec<(u64, Range<usize>)>,
    /// The lsn after the last valid frame.
    next_lsn: u64,
    /// Offset just after the last valid frame, where the log ends.
    end: usize,
    /// The frame at `end`, if it is neither a valid frame nor zeros.
    damage: Option<Damage>,
}

/// A frame that is not the valid next frame.
struct Damage {
    /// Where it starts (the scan's `end`).
    offset: usize,
    /// What is wrong with it.
    reason: String,
    /// Its lsn, if its header is intact.
    header_lsn: Option<u64>,
    /// Where to look for later frames: past the frame if its header is
    /// intact and its extent fits (its payload bytes are data, not headers),
    /// else at the next frame boundary after its start.
    resume: usize,
}

/// Reads the frames of a segment that starts at `first_lsn`, in order,
/// until the first all-zero frame header, the end of the segment, or a frame
/// that is not the valid next one.
fn scan_frames(bytes: &[u8], first_lsn: u64) -> FrameScan {
    let mut frames = Vec::new();
    let mut next_lsn = first_lsn;
    let mut pos = FIRST_FRAME_AT;
    let damage = loop {
        if pos + FRAME_HEADER_LEN > bytes.len() {
            break None;
        }
        let raw = &bytes[pos..pos + FRAME_HEADER_LEN];
        if raw.iter().all(|b| *b == 0) {
            break None;
        }
        let damaged = |reason: String, header_lsn: Option<u64>, resume: usize| Damage {
            offset: pos,
            reason,
            header_lsn,
            resume,
        };
        let header = match decode_frame_header(raw) {
            Ok(header) => header,
            Err(reason) => break Some(damaged(reason.into(), None, pos + FRAME_ALIGN)),
        };
        if header.lsn != next_lsn {
            break Some(damaged(
                format!("lsn {} where {next_lsn} was expected", header.lsn),
                Some(header.lsn),
                pos + FRAME_ALIGN,
            ));
        }
        let len = frame_len(header.payload_len);
        if pos + len > bytes.len() {
            break Some(damaged(
                format!(
                    "payload of {} bytes runs past the end of the segment",
                    header.payload_len
                ),
                Some(header.lsn),
                pos + FRAME_ALIGN,
            ));
        }
        let payload = pos + FRAME_HEADER_LEN..pos + FRAME_HEADER_LEN + header.payload_len as usize;
        if crc32c::crc32c(&bytes[payload.clone()]) != header.payload_crc {
            break Some(damaged(
                "bad payload checksum".into(),
                Some(header.lsn),
                pos + len,
            ));
        }
        if bytes[payload.end..pos + len].iter().any(|b| *b != 0) {
            break Some(damaged(
                "non-zero padding".into(),
                Some(header.lsn),
                pos + len,
            ));
        }
        frames.push((header.lsn, payload));
        next_lsn += 1;
        pos += len;
    };
    FrameScan {
        frames,
        next_lsn,
        end: pos,
        damage,
    }
}

/// Decides whether what follows a segment's valid frames is allowed, and
/// returns the end of the bytes to zero after them (`None` if all zero), or
/// the reason the segment is corrupt.
///
/// A segment that is not the last must be zeros after its frames. The last
/// may hold the remains of the one append a crash interrupted, but then no
/// valid frame with a greater lsn can follow: that would mean the damage is
/// in the middle of the log, and dropping it would lose acknowledged frames.
fn judge_end(bytes: &[u8], scan: &FrameScan, is_last: bool) -> Result<Option<usize>, String> {
    let end = scan.end;
    if !is_last {
        if let Some(damage) = &scan.damage {
            return Err(format!(
                "damaged frame at offset {} ({}) in a segment that is not the last",
                damage.offset, damage.reason
            ));
        }
        if let Some(i) = bytes[end..].iter().position(|b| *b != 0) {
            return Err(format!(
                "non-zero bytes at offset {} after the last frame (which ends at offset {end}) \
                 in a segment that is not the last",
                end + i
            ));
        }
        return Ok(None);
    }
    let resume = match &scan.damage {
        Some(damage) => {
            if let Some(lsn) = damage.header_lsn.filter(|lsn| *lsn > scan.next_lsn) {
                return Err(format!(
                    "frame at offset {} has lsn {lsn} where {} was expected",
                    damage.offset, scan.next_lsn
                ));
            }
            damage.resume
        }
        None => end + FRAME_ALIGN,
    };
    if let Some((offset, lsn)) = find_later_frame(bytes, resume, scan.next_lsn) {
        return Err(match &scan.damage {
            Some(damage) => format!(
                "damaged frame at offset {} ({}) is followed by a valid frame with lsn {lsn} at \
                 offset {offset}",
                damage.offset, damage.reason
            ),
            None => format!(
                "the log ends at offset {end} but a valid frame with lsn {lsn} follows at \
                 offset {offset}"
            ),
        });
    }
    Ok(bytes[end..]
        .iter()
        .rposition(|b| *b != 0)
        .map(|i| end + i + 1))
}

/// Finds a valid frame header with lsn at least `min_lsn` at an aligned
/// offset from `from` on; returns its offset and lsn.
fn find_later_frame(bytes: &[u8], from: usize, min_lsn: u64) -> Option<(usize, u64)> {
    let magic = FRAME_MAGIC.to_le_bytes();
    let mut pos = from.next_multiple_of(FRAME_ALIGN);
    while pos + FRAME_HEADER_LEN <= bytes.len() {
        if bytes[pos..pos + 4] == magic
            && let Ok(header) = decode_frame_header(&bytes[pos..pos + FRAME_HEADER_LEN])
            && header.lsn >= min_lsn
        {
            return Some((pos, header.lsn));
        }
        pos += FRAME_ALIGN;
    }
    None
}

/// Reads a little-endian `u32` from the first 4 bytes of `bytes`.
fn le_u32(bytes: &[u8]) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(raw)
}

/// Reads a little-endian `u64` from the first 8 bytes of `bytes`.
fn le_u64(bytes: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use rand::{Rng, SeedableRng};

    /// Small segments, so that tests roll over often.
    const SMALL: u64 = 4096;

    /// Options with segments of `segment_size` bytes, writing directly
    /// where the file system allows.
    fn opts(segment_size: u64) -> WalOptions {
        WalOptions {
            segment_size,
            direct_io: true,
        }
    }

    /// Options with segments of `segment_size` bytes, never writing
    /// directly.
    fn buffered(segment_size: u64) -> WalOptions {
        WalOptions {
            segment_size,
            direct_io: false,
        }
    }

    /// The payload tests append as frame `lsn`: recognisable, of varying
    /// length (sometimes empty), so that padding and rollovers vary.
    fn payload(lsn: u64) -> Vec<u8> {
        let len = (lsn * 37 % 301) as usize;
        (0..len).map(|i| (lsn as usize * 31 + i) as u8).collect()
    }

    /// Opens the log, failing the test on error.
    fn open(dir: &Path, after_lsn: u64, segment_size: u64) -> (Wal, Vec<RecoveredFrame>) {
        match Wal::open(dir, after_lsn, opts(segment_size)) {
            Ok(opened) => opened,
            Err(err) => panic!("opening {}: {err}", dir.display()),
        }
    }

    /// Opens the log without the spare thread, failing the test on error.
    fn open_plain(dir: &Path, after_lsn: u64, segment_size: u64) -> (Wal, Vec<RecoveredFrame>) {
        match Wal::open_with(dir, after_lsn, opts(segment_size), false) {
            Ok(opened) => opened,
            Err(err) => panic!("opening {}: {err}", dir.display()),
        }
    }

    /// Opens the log expecting an error.
    fn open_err(dir: &Path, after_lsn: u64, segment_size: u64) -> StoreError {
        match Wal::open_with(dir, after_lsn, opts(segment_size), false) {
            Ok((wal, frames)) => panic!(
                "opening {} succeeded with {} frames, next lsn {}",
                dir.display(),
                frames.len(),
                wal.next_lsn()
            ),
            Err(err) => err,
        }
    }

    /// Asserts `err` is `Corrupt` about `file` and its message has `needle`.
    fn assert_corrupt(err: &StoreError, file: &Path, needle: &str) {
        match err {
            StoreError::Corrupt { path, .. } => assert_eq!(path, file, "{err}"),
            other => panic!("expected corrupt, got {other}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&file.display().to_string()) && message.contains(needle),
            "message {message:?} should name {} and say {needle:?}",
            file.display()
        );
    }

    /// Appends the standard payloads for lsns `from..=to`.
    fn append_range(wal: &mut Wal, from: u64, to: u64) {
        for lsn in from..=to {
            assert_eq!(wal.append(&payload(lsn)).unwrap(), lsn);
        }
    }

    /// Asserts `frames` are the standard payloads for lsns `from..=to`.
    fn assert_frames(frames: &[RecoveredFrame], from: u64, to: u64) {
        let lsns: Vec<u64> = frames.iter().map(|f| f.lsn).collect();
        assert_eq!(lsns, (from..=to).collect::<Vec<_>>());
        for frame in frames {
            assert_eq!(
                frame.payload,
                payload(frame.lsn),
                "payload of lsn {}",
                frame.lsn
            );
        }
    }

    /// The segment files in `dir`, oldest first.
    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .collect();
        files.sort();
        files
    }

    /// The temporary files in `dir`.
    fn tmp_files(dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
            .collect()
    }

    /// The offset of each frame in a segment's bytes, with its length.
    fn frame_offsets(bytes: &[u8]) -> Vec<(usize, usize)> {
        let mut pos = FIRST_FRAME_AT;
        let mut out = Vec::new();
        while pos + FRAME_HEADER_LEN <= bytes.len()
            && bytes[pos..pos + FRAME_HEADER_LEN].iter().any(|b| *b != 0)
        {
            let len = frame_len(le_u32(&bytes[pos + 4..pos + 8]));
            out.push((pos, len));
            pos += len;
        }
        out
    }

    #[test]
    fn wal_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wal");
        let (mut wal, frames) = open(&dir, 0, 1 << 20);
        assert!(frames.is_empty());
        assert_eq!(wal.next_lsn(), 1);
        assert_eq!(wal.dir(), dir);
        append_range(&mut wal, 1, 200);
        assert_eq!(wal.next_lsn(), 201);
        drop(wal);

        let (wal, frames) = open(&dir, 0, 1 << 20);
        assert_frames(&frames, 1, 200);
        assert_eq!(wal.next_lsn(), 201);
        assert_eq!(segment_files(&dir).len(), 1);
        // The segment was preallocated in full, not grown by appends.
        let len = fs::metadata(&segment_files(&dir)[0]).unwrap().len();
        assert_eq!(len, 1 << 20);
    }

    #[test]
    fn wal_reopen_and_continue() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut wal, _) = open(dir, 0, SMALL);
        append_range(&mut wal, 1, 30);
        drop(wal);
        for round in 0..3u64 {
            let first = 31 + round * 20;
            let (mut wal, frames) = open(dir, 0, SMALL);
            assert_frames(&frames, 1, first - 1);
            assert_eq!(wal.next_lsn(), first);
            append_range(&mut wal, first, first + 19);
        }
        // Only frames after the checkpointed lsn come back.
        let (wal, frames) = open(dir, 75, SMALL);
        assert_frames(&frames, 76, 90);
        assert_eq!(wal.next_lsn(), 91);
        drop(wal);
        let (wal, frames) = open(dir, 90, SMALL);
        assert!(frames.is_empty());
        assert_eq!(wal.next_lsn(), 91);
    }

    #[test]
    fn wal_fresh_directory_starts_after_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/wal");
        let (mut wal, frames) = open(&dir, 41, SMALL);
        assert!(frames.is_empty());
        assert_eq!(wal.append(b"x").unwrap(), 42);
        drop(wal);
        assert_eq!(
            segment_files(&dir),
            vec![dir.join("00000000000000000042.wal")]
        );
        let (_, frames) = open(&dir, 41, SMALL);
        assert_eq!(
            frames,
            vec![RecoveredFrame {
                lsn: 42,
                payload: b"x".to_vec()
            }]
        );
    }

    #[test]
    fn wal_rejects_bad_options() {
        let tmp = tempfile::tempdir().unwrap();
        for size in [0, 100, 4097, 6000] {
            assert!(matches!(
                Wal::open(tmp.path(), 0, opts(size)),
                Err(StoreError::Invalid(_))
            ));
        }
        assert!(matches!(
            Wal::open(tmp.path(), u64::MAX, opts(SMALL)),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn wal_rollover_tiny_segments_and_oversized_frames() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut wal, _) = open_plain(dir, 0, SMALL);
        let mut expected = Vec::new();
        let sizes = [
            100usize, 3000, 3560, 3561, 3000, 10_000, 0, 50, 100_000, 7, 1,
        ];
        for (i, size) in sizes.iter().enumerate() {
            let data: Vec<u8> = (0..*size).map(|j| (i * 7 + j) as u8).collect();
            let lsn = wal.append(&data).unwrap();
            assert_eq!(lsn, i as u64 + 1);
            expected.push(RecoveredFrame { lsn, payload: data });
        }
        drop(wal);

        // A standard segment has 3584 bytes for frames after its header's
        // sector. Frames 1-2 (512 and 3072 bytes on disk) fill the first
        // exactly; 3 (3584) fills the next alone; 4 (4096) is too big for a
        // standard segment and gets one of 8 KiB, where 5 (3072) still
        // fits; 6 gets 12 KiB, shared with 7 and 8; 9 gets its own, shared
        // with 10 and 11.
        let files = segment_files(dir);
        let firsts: Vec<PathBuf> = [1, 3, 4, 6, 9].map(|lsn| segment_path(dir, lsn)).into();
        assert_eq!(files, firsts);
        let lens: Vec<u64> = files
            .iter()
            .map(|f| fs::metadata(f).unwrap().len())
            .collect();
        assert_eq!(lens[..4], [4096, 4096, 8192, 12288]);
        // The 100 000-byte frame (lsn 9) got a segment of its own, sized to fit.
        let big = dir.join("00000000000000000009.wal");
        let len = fs::metadata(&big).unwrap().len();
        let needed = (FIRST_FRAME_AT + FRAME_HEADER_LEN + 100_000) as u64;
        assert!((needed..needed + SEGMENT_GRANULE).contains(&len), "{len}");
        // Every frame starts on a sector boundary.
        for file in &files {
            let bytes = fs::read(file).unwrap();
            let offsets = frame_offsets(&bytes);
            assert!(!offsets.is_empty());
            assert_eq!(offsets[0].0, FIRST_FRAME_AT);
            assert!(
                offsets
                    .iter()
                    .all(|(at, len)| at % 512 == 0 && len % 512 == 0)
            );
        }

        let (mut wal, frames) = open_plain(dir, 0, SMALL);
        assert_eq!(frames, expected);
        assert_eq!(wal.append(b"after").unwrap(), sizes.len() as u64 + 1);
    }

    #[test]
    fn wal_rollover_uses_the_spare() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut wal, _) = open(dir, 0, SMALL);
        assert!(wal.spare.as_mut().unwrap().wait());
        assert!(dir.join(SPARE_NAME).exists());
        // The first segment comes from the spare, and so does every later
        // one as long as the spare is ready when needed.
        let mut lsn = 1;
        for _ in 0..5 {
            assert!(wal.spare.as_mut().unwrap().wait());
            let segments = wal.segments.len();
            while wal.segments.len() == segments {
                assert_eq!(wal.append(&[7u8; 500]).unwrap(), lsn);
                lsn += 1;
            }
        }
        assert_eq!(wal.sync_prepares, 0);
        drop(wal);
        // Dropping the log removes its unused spare.
        assert!(tmp_files(dir).is_empty(), "{:?}", tmp_files(dir));
        let (_, frames) = open(dir, 0, SMALL);
        assert_eq!(frames.len() as u64, lsn - 1);
    }

    #[test]
    fn wal_release_through() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut wal, _) = open(dir, 0, SMALL);
        append_range(&mut wal, 1, 120);
        let firsts: Vec<u64> = wal.segments.iter().map(|s| s.first_lsn).collect();
        assert!(firsts.len() >= 5, "{firsts:?}");

        // Releasing through the last frame of the second segment removes the
        // first two, and nothing before that removes the second.
        wal.release_through(firsts[2] - 2).unwrap();
        assert_eq!(segment_files(dir)[0], segment_path(dir, firsts[1]));
        wal.release_through(firsts[2] - 1).unwrap();
        assert_eq!(segment_files(dir)[0], segment_path(dir, firsts[2]));
        assert!(matches!(
            wal.release_through(121),
            Err(StoreError::Invalid(_))
        ));
        // Even with everything checkpointed the active segment stays.
        wal.release_through(120).unwrap();
        let last = *firsts.last().unwrap();
        assert_eq!(segment_files(dir), vec![segment_path(dir, last)]);
        drop(wal);

        let (mut wal, frames) = open(dir, 120, SMALL);
        assert!(frames.is_empty());
        append_range(&mut wal, 121, 130);
        drop(wal);
        let (_, frames) = open(dir, 125, SMALL);
        assert_frames(&frames, 126, 130);
        // The log no longer holds what comes after an older checkpoint.
        let err = open_err(dir, last - 2, SMALL);
        assert_corrupt(&err, &segment_path(dir, last), "missing");
    }

    #[test]
    fn wal_release_partial_checkpoint_then_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut wal, _) = open(dir, 0, SMALL);
        append_range(&mut wal, 1, 60);
        let second = wal.segments[1].first_lsn;
        wal.release_through(second + 1).unwrap();
        drop(wal);
        let (_, frames) = open(dir, second + 1, SMALL);
        assert_frames(&frames, second + 2, 60);
    }

    /// How a torn append is simulated.
    #[derive(Clone, Copy, Debug)]
    enum Tear {
        /// Only the first bytes reached the disk; the rest is still zeros.
        Zeros,
        /// The rest is garbage.
        Garbage,
    }

    /// A log whose last segment ends in frame `last_lsn`, not full, and the
    /// bytes of that segment.
    fn pristine_log(dir: &Path, last_lsn: u64, segment_size: u64) -> (PathBuf, Vec<u8>) {
        let (mut wal, _) = open_plain(dir, 0, segment_size);
        append_range(&mut wal, 1, last_lsn);
        drop(wal);
        let last = segment_files(dir).pop().unwrap();
        let bytes = fs::read(&last).unwrap();
        (last, bytes)
    }

    #[test]
    fn wal_torn_tail_at_every_offset() {
        let tmp = tempfile::tempdir().unwrap();
        let template = tmp.path().join("template");
        // Several segments of 8 KiB (15 frames of one sector each); the last
        // holds seven, the last of them lsn 52 with a 118-byte payload (24 +
        // 118 bytes, padded to one 512-byte sector on disk). The segment has
        // room after it, so the appends after recovery overwrite what
        // recovery zeroed.
        let (last_path, pristine) = pristine_log(&template, 52, 8192);
        let offsets = frame_offsets(&pristine);
        let (torn_at, torn_len) = *offsets.last().unwrap();
        assert_eq!(torn_len, 512);
        assert_eq!(offsets.len(), 7);
        let first_in_last: u64 = last_path
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(first_in_last > 1 && offsets.len() > 1);
        let others: Vec<(PathBuf, Vec<u8>)> = segment_files(&template)
            .into_iter()
            .filter(|p| *p != last_path)
            .map(|p| {
                let bytes = fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();

        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut cases = 0;
        for tear in [Tear::Zeros, Tear::Garbage] {
            for keep in 0..torn_len {
                let case = tmp.path().join(format!("{tear:?}-{keep}"));
                fs::create_dir(&case).unwrap();
                for (path, bytes) in &others {
                    fs::write(case.join(path.file_name().unwrap()), bytes).unwrap();
                }
                let mut bytes = pristine.clone();
                let torn = torn_at + keep..torn_at + torn_len;
                match tear {
                    Tear::Zeros => bytes[torn.clone()].fill(0),
                    Tear::Garbage => rng.fill(&mut bytes[torn.clone()]),
                }
                let intact = bytes[torn.clone()] == pristine[torn];
                let seg = case.join(last_path.file_name().unwrap());
                fs::write(&seg, &bytes).unwrap();

                let last_kept = if intact { 52 } else { 51 };
                let (mut wal, frames) = open_plain(&case, 0, 8192);
                assert_frames(&frames, 1, last_kept);
                assert_eq!(wal.next_lsn(), last_kept + 1, "{tear:?} keeping {keep}");
                // The torn frame's remains were wiped.
                let after = fs::read(&seg).unwrap();
                if !intact {
                    assert!(after[torn_at..].iter().all(|b| *b == 0), "{tear:?} {keep}");
                }
                append_range(&mut wal, last_kept + 1, last_kept + 2);
                assert_eq!(wal.segments.len(), others.len() + 1);
                drop(wal);
                let (_, frames) = open_plain(&case, 0, 8192);
                assert_frames(&frames, 1, last_kept + 2);
                fs::remove_dir_all(&case).unwrap();
                cases += 1;
            }
        }
        assert_eq!(cases, 2 * torn_len);
    }

    #[test]
    fn wal_torn_first_frame_of_a_new_segment() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut wal, _) = open_plain(dir, 0, SMALL);
        append_range(&mut wal, 1, 20);
        let first = wal.segments.back().unwrap().first_lsn;
        // Append until a new segment holds exactly one frame.
        let mut lsn = 21;
        while wal.segments.back().unwrap().first_lsn == first {
            wal.append(&payload(lsn)).unwrap();
            lsn += 1;
        }
        let last = wal.next_lsn() - 1;
        let seg = wal.segments.back().unwrap().path.clone();
        drop(wal);
        let mut bytes = fs::read(&seg).unwrap();
        bytes[FIRST_FRAME_AT + 3] ^= 0x10;
        fs::write(&seg, &bytes).unwrap();
        let (mut wal, frames) = open_plain(dir, 0, SMALL);
        assert_frames(&frames, 1, last - 1);
        append_range(&mut wal, last, last + 3);
        drop(wal);
        let (_, frames) = open_plain(dir, 0, SMALL);
        assert_frames(&frames, 1, last + 3);
    }

    #[test]
    fn wal_empty_active_segment_is_reused_or_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut wal, _) = open_plain(dir, 0, SMALL);
        append_range(&mut wal, 1, 10);
        drop(wal);
        // A crash right after a rollover leaves a segment with no frame.
        fs::write(segment_path(dir, 11), {
            let mut bytes = vec![0u8; SMALL as usize];
            bytes[..SEGMENT_HEADER_LEN].copy_from_slice(&encode_segment_header(11));
            bytes
        })
        .unwrap();
        let (mut wal, frames) = open_plain(dir, 0, SMALL);
        assert_frames(&frames, 1, 10);
        // A frame too big for it replaces it with one that fits.
        assert_eq!(wal.append(&[9u8; 5000]).unwrap(), 11);
        assert_eq!(wal.append(b"twelve").unwrap(), 12);
        drop(wal);
        let (_, frames) = open_plain(dir, 0, SMALL);
        assert_eq!(frames.len(), 12);
        assert_eq!(frames[10].payload, vec![9u8; 5000]);
        assert_eq!(frames[11].payload, b"twelve");
    }

    #[test]
    fn wal_flipped_bit_in_a_middle_frame_is_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let (last, pristine) = pristine_log(&tmp.path().join("template"), 8, 8192);
        let offsets = frame_offsets(&pristine);
        let (at, _) = offsets[3];
        // One flip in the payload, one in the header, each followed by
        // four valid frames.
        for flip in [at + FRAME_HEADER_LEN + 5, at + 9] {
            let dir = tmp.path().join(format!("flip-{flip}"));
            fs::create_dir(&dir).unwrap();
            let seg = dir.join(last.file_name().unwrap());
            let mut bytes = pristine.clone();
            bytes[flip] ^= 0x04;
            fs::write(&seg, &bytes).unwrap();
            let err = open_err(&dir, 0, 8192);
            assert_corrupt(&err, &seg, &format!("offset {at}"));
            assert!(
                err.to_string().contains("followed by a valid frame"),
                "{err}"
            );
            // Refusing did not touch the file.
            assert_eq!(fs::read(&seg).unwrap(), bytes);
        }
    }

    #[test]
    fn wal_valid_frame_after_a_zero_header_is_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (last, mut bytes) = pristine_log(dir, 6, 8192);
        let (at, len) = frame_offsets(&bytes)[2];
        bytes[at..at + FRAME_HEADER_LEN].fill(0);
        fs::write(&last, &bytes).unwrap();
        let err = open_err(dir, 0, 8192);
        assert_corrupt(&err, &last, &format!("follows at offset {}", at + len));
    }

    #[test]
    fn wal_damage_in_an_older_segment_is_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut wal, _) = open_plain(dir, 0, SMALL);
        append_range(&mut wal, 1, 60);
        // A frame too big for what is left of the segment goes to a new
        // one, so that the older segment ends in zeros.
        let older = &wal.segments.back().unwrap().path.clone();
        let big = wal.append(&[3u8; 3000]).unwrap();
        assert_eq!(wal.segments.back().unwrap().first_lsn, big);
        drop(wal);
        let mut bytes = fs::read(older).unwrap();
        let (at, len) = *frame_offsets(&bytes).last().unwrap();
        // Its last frame torn, as it could be in the last segment.
        bytes[at + FRAME_HEADER_LEN + 2] ^= 0xff;
        fs::write(older, &bytes).unwrap();
        let err = open_err(dir, 0, SMALL);
        assert_corrupt(&err, older, &format!("offset {at}"));
        assert!(err.to_string().contains("not the last"), "{err}");

        // Garbage after its frames is refused too.
        bytes[at + FRAME_HEADER_LEN + 2] ^= 0xff;
        let stray = bytes.len() - 16;
        assert!(stray >= at + len);
        bytes[stray] = 1;
        fs::write(older, &bytes).unwrap();
        let err = open_err(dir, 0, SMALL);
        assert_corrupt(&err, older, &format!("offset {stray}"));
    }

    #[test]
    fn wal_damaged_segment_header_is_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (last, pristine) = pristine_log(dir, 40, SMALL);
        let first = segment_files(dir)[0].clone();
        let first_bytes = fs::read(&first).unwrap();
        for (path, bytes) in [(&first, &first_bytes), (&last, &pristine)] {
            for bit in [0usize, 8 * 8, 17 * 8 + 3, 40 * 8, 61 * 8] {
                let mut damaged = bytes.clone();
                damaged[bit / 8] ^= 1 << (bit % 8);
                fs::write(path, &damaged).unwrap();
                let err = open_err(dir, 0, SMALL);
                assert_corrupt(&err, path, "");
            }
            fs::write(path, bytes).unwrap();
        }
        // Another version (the unreleased 1, or one from the future),
        // checksummed properly.
        for version in [1u32, FORMAT_VERSION + 1] {
            let mut other = pristine.clone();
            other[8..12].copy_from_slice(&version.to_le_bytes());
            let crc = crc32c::crc32c(&other[..SEGMENT_CRC_AT]);
            other[SEGMENT_CRC_AT..SEGMENT_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
            fs::write(&last, &other).unwrap();
            let err = open_err(dir, 0, SMALL);
            assert_corrupt(&err, &last, &format!("version {version}"));
        }
        // A stray byte between the header and the first frame.
        let mut stray = pristine.clone();
        stray[300] = 1;
        fs::write(&last, &stray).unwrap();
        let err = open_err(dir, 0, SMALL);
        assert_corrupt(&err, &last, "offset 300 between the segment header");
        fs::write(&last, &pristine).unwrap();
        let (_, frames) = open_plain(dir, 0, SMALL);
        assert_frames(&frames, 1, 40);
    }

    #[test]
    fn wal_segment_name_must_match_header() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        pristine_log(dir, 40, SMALL);
        let last = segment_files(dir).pop().unwrap();
        let renamed = dir.join("00000000000000099999.wal");
        fs::rename(&last, &renamed).unwrap();
        assert_corrupt(&open_err(dir, 0, SMALL), &renamed, "header says");
        fs::rename(&renamed, &last).unwrap();

        let odd = dir.join("segment.wal");
        fs::write(&odd, b"").unwrap();
        assert_corrupt(&open_err(dir, 0, SMALL), &odd, "20-digit");
    }

    #[test]
    fn wal_missing_middle_segment_is_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        pristine_log(dir, 80, SMALL);
        let files = segment_files(dir);
        assert!(files.len() >= 4);
        fs::remove_file(&files[2]).unwrap();
        assert_corrupt(&open_err(dir, 0, SMALL), &files[3], "previous segment");
        // Not even a checkpoint past the hole makes it acceptable.
        assert_corrupt(&open_err(dir, 75, SMALL), &files[3], "previous segment");
    }

    #[test]
    fn wal_missing_newest_segments_is_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        pristine_log(dir, 80, SMALL);
        let mut files = segment_files(dir);
        fs::remove_file(files.pop().unwrap()).unwrap();
        let err = open_err(dir, 80, SMALL);
        assert_corrupt(&err, files.last().unwrap(), "newer segments are missing");
    }

    #[test]
    fn wal_foreign_file_named_like_a_segment_is_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let foreign = dir.join("00000000000000000001.wal");
        fs::write(&foreign, vec![b'x'; 8192]).unwrap();
        assert_corrupt(&open_err(dir, 0, SMALL), &foreign, "bad magic");
        fs::write(&foreign, b"GANTRY").unwrap();
        assert_corrupt(&open_err(dir, 0, SMALL), &foreign, "shorter");
        // And the foreign file is left alone.
        assert_eq!(fs::read(&foreign).unwrap(), b"GANTRY");
    }

    #[test]
    fn wal_leftover_tmp_files_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        pristine_log(dir, 5, SMALL);
        fs::write(dir.join("00000000000000000006.wal.tmp"), vec![0u8; 100]).unwrap();
        fs::write(dir.join(SPARE_NAME), vec![0u8; 100]).unwrap();
        fs::write(dir.join("notes.txt"), b"kept").unwrap();
        let (mut wal, frames) = open_plain(dir, 0, SMALL);
        assert_frames(&frames, 1, 5);
        assert!(tmp_files(dir).is_empty(), "{:?}", tmp_files(dir));
        assert!(dir.join("notes.txt").exists());
        append_range(&mut wal, 6, 8);
    }

    #[test]
    fn wal_write_failure_poisons() {
        let cases = [true, false].into_iter().flat_map(|direct_io| {
            [
                (direct_io, FaultPoint::Write),
                (direct_io, FaultPoint::Sync),
            ]
        });
        for (direct_io, point) in cases {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            let options = WalOptions {
                segment_size: SMALL,
                direct_io,
            };
            let (mut wal, _) = Wal::open_with(dir, 0, options, false).unwrap();
            append_range(&mut wal, 1, 3);
            wal.fault = Some(point);
            let err = wal.append(b"lost").unwrap_err();
            assert!(matches!(err, StoreError::Io { .. }), "{err}");
            let seg = segment_path(dir, 1);
            for _ in 0..2 {
                match wal.append(b"later") {
                    Err(StoreError::Closed(message)) => assert_eq!(
                        message,
                        format!(
                            "write-ahead log {} failed earlier: {}; restart the store",
                            seg.display(),
                            io::Error::from_raw_os_error(libc::EIO)
                        )
                    ),
                    other => panic!("expected closed, got {other:?}"),
                }
            }
            assert_eq!(wal.next_lsn(), 4);
            drop(wal);
            // After a restart, the log holds every acknowledged frame and
            // possibly the one whose sync failed, never anything else.
            let (mut wal, frames) = open_plain(dir, 0, SMALL);
            match point {
                FaultPoint::Write => assert_frames(&frames, 1, 3),
                FaultPoint::Sync => {
                    assert_eq!(frames.len(), 4);
                    assert_eq!(frames[3].payload, b"lost");
                }
            }
            assert_eq!(wal.append(b"x").unwrap(), frames.len() as u64 + 1);
        }
    }

    /// Whether this process runs as root, from `/proc/self/status`.
    fn is_root() -> bool {
        fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("Uid:"))
                    .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
            })
            .unwrap_or(false)
    }

    /// Runs `program` with `args`, returning its standard output, or says
    /// why it failed.
    fn run(program: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// A file system mounted for one test, unmounted on drop even when the
    /// test panics.
    struct TestMount {
        /// The mount point.
        path: PathBuf,
    }

    impl TestMount {
        /// Runs `mount <args> <path>`, or says why it failed.
        fn mount(args: &[&str], path: &Path) -> Result<TestMount, String> {
            let mut all = args.to_vec();
            all.push(path.to_str().ok_or("mount point is not UTF-8")?);
            run("mount", &all)?;
            Ok(TestMount {
                path: path.to_path_buf(),
            })
        }
    }

    impl Drop for TestMount {
        /// Unmounts, lazily if something still holds the file system.
        fn drop(&mut self) {
            let ok = Command::new("umount")
                .arg(&self.path)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(&self.path).status();
            }
        }
    }

    #[test]
    fn wal_full_disk_then_space_freed() {
        if !is_root() {
            eprintln!("note: wal_full_disk_then_space_freed skipped: needs root to mount a tmpfs");
            return;
        }
        // Buffered writes, as where the file system refuses direct ones (as
        // tmpfs does on older kernels), and direct writes, which recent
        // kernels' tmpfs takes.
        full_disk_then_space_freed(false);
        full_disk_then_space_freed(true);
    }

    /// [`wal_full_disk_then_space_freed`] with or without direct writes.
    fn full_disk_then_space_freed(direct_io: bool) {
        let tmp = tempfile::tempdir().unwrap();
        let mnt = tmp.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        // Declared before the log, so it is dropped (unmounted) after it.
        let _mount = match TestMount::mount(&["-t", "tmpfs", "-o", "size=256k", "tmpfs"], &mnt) {
            Ok(mount) => mount,
            Err(why) => {
                eprintln!("note: wal_full_disk_then_space_freed skipped: mount failed: {why}");
                return;
            }
        };
        let dir = mnt.join("wal");
        let segment = 16 * 1024;
        let options = WalOptions {
            segment_size: segment,
            direct_io,
        };
        let (mut wal, _) = Wal::open(&dir, 0, options).unwrap();
        let data = |lsn: u64| vec![(lsn % 251) as u8; 1000];
        let mut lsn = 1;
        assert!(wal.spare.as_mut().unwrap().wait());
        assert_eq!(wal.append(&data(lsn)).unwrap(), lsn);
        // Whether tmpfs takes direct writes depends on the kernel; turned
        // off, they are never used.
        assert!(direct_io || !wal.writes_direct());
        lsn += 1;
        // Have a spare ready, so that the first rollover on the full disk
        // succeeds and the second finds neither spare nor room.
        assert!(wal.spare.as_mut().unwrap().wait());

        let filler = mnt.join("filler");
        {
            let mut file = File::create(&filler).unwrap();
            let chunk = vec![1u8; 4096];
            let err = loop {
                if let Err(err) = file.write_all(&chunk) {
                    break err;
                }
            };
            assert!(crate::error::is_no_space(&err), "{err}");
        }

        let err = loop {
            match wal.append(&data(lsn)) {
                Ok(got) => {
                    assert_eq!(got, lsn);
                    lsn += 1;
                    assert!(lsn < 100, "the disk never filled up");
                }
                Err(err) => break err,
            }
        };
        assert!(matches!(err, StoreError::NoSpace { .. }), "{err}");
        assert!(lsn > 16, "the ready spare was not used: {lsn}");
        // Nothing half-prepared is left, and the failure consumed no lsn.
        assert!(!wal.spare.as_mut().unwrap().wait());
        assert!(tmp_files(&dir).is_empty(), "{:?}", tmp_files(&dir));
        assert_eq!(wal.next_lsn(), lsn);
        assert!(matches!(
            wal.append(&data(lsn)),
            Err(StoreError::NoSpace { .. })
        ));
        assert_eq!(wal.next_lsn(), lsn);

        fs::remove_file(&filler).unwrap();
        let resumed = lsn;
        while lsn < resumed + 40 {
            assert_eq!(wal.append(&data(lsn)).unwrap(), lsn);
            lsn += 1;
        }
        assert!(direct_io || !wal.writes_direct());
        drop(wal);
        let (_, frames) = Wal::open(&dir, 0, options).unwrap();
        assert_eq!(frames.len() as u64, lsn - 1);
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(frame.lsn, i as u64 + 1);
            assert_eq!(frame.payload, data(frame.lsn));
        }
    }

    #[test]
    fn wal_aligned_buf_is_aligned() {
        let mut buf = AlignedBuf::new(100);
        for len in [0, 1, 100, 512, 5000, 100, 1 << 20, 7] {
            buf.prepare(len).fill(0xa5);
            assert_eq!(buf.as_slice().len(), len);
            assert_eq!(buf.as_slice().as_ptr().addr() % BUF_ALIGN, 0, "{len}");
            assert!(buf.as_slice().iter().all(|b| *b == 0xa5));
        }
    }

    #[test]
    fn wal_frames_start_on_sectors_and_appends_leave_earlier_frames_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut wal, _) = open_plain(dir, 0, 8192);
        // Payloads around the sector sizes, and frames of several sectors.
        let sizes = [0usize, 1, 300, 487, 488, 489, 1000, 2000, 3000, 5];
        let mut expected = Vec::new();
        let prefix = |path: &Path, len: u64| {
            let bytes = fs::read(path).unwrap();
            crc32c::crc32c(&bytes[..len as usize])
        };
        for i in 0..60 {
            let data: Vec<u8> = (0..sizes[i % sizes.len()])
                .map(|j| (i * 13 + j) as u8 | 1)
                .collect();
            let before = wal.active.as_ref().map(|a| (a.path.clone(), a.write_pos));
            let prefix_before = before.as_ref().map(|(path, end)| prefix(path, *end));
            let lsn = wal.append(&data).unwrap();
            expected.push(RecoveredFrame { lsn, payload: data });

            let (segment, written) = wal.frame_writes.last().unwrap().clone();
            let active = wal.active.as_ref().unwrap();
            assert_eq!(segment, active.first_lsn);
            // Whole sectors, from the first sector after the header's on.
            assert_eq!(written.start % 512, 0, "{written:?}");
            assert_eq!(written.end % 512, 0, "{written:?}");
            assert!(written.start >= FIRST_FRAME_AT as u64, "{written:?}");
            // Nothing earlier in the segment was written, and its bytes are
            // as they were.
            let earlier = wal.frame_writes[..wal.frame_writes.len() - 1]
                .iter()
                .filter(|(s, _)| *s == segment);
            for (_, range) in earlier {
                assert!(range.end <= written.start, "{range:?} then {written:?}");
            }
            if let (Some((path, end)), Some(crc)) = (before, prefix_before)
                && path == active.path
            {
                assert_eq!(written.start, end);
                assert_eq!(
                    prefix(&path, end),
                    crc,
                    "frame {lsn} changed what came before it"
                );
            }
        }
        drop(wal);
        for file in segment_files(dir) {
            let bytes = fs::read(&file).unwrap();
            for (at, len) in frame_offsets(&bytes) {
                assert_eq!(at % 512, 0);
                assert_eq!(len % 512, 0);
            }
        }
        let (_, frames) = open_plain(dir, 0, 8192);
        assert_eq!(frames, expected);
    }

    #[test]
    fn wal_direct_writes_are_recovered() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let dir = tmp.path();
        let (mut wal, _) = open_plain(dir, 0, 8192);
        append_range(&mut wal, 1, 3);
        if !wal.writes_direct() {
            eprintln!(
                "note: wal_direct_writes_are_recovered skipped: /var/tmp refuses direct writes"
            );
            return;
        }
        // Segments were written with buffered zeros, and opening read them
        // through the page cache; appends after that go around it.
        append_range(&mut wal, 4, 40);
        assert!(wal.writes_direct());
        assert!(wal.segments.len() > 2);
        // While the log is open, a buffered read sees what was written.
        let last = wal.segments.back().unwrap().path.clone();
        let bytes = fs::read(&last).unwrap();
        assert_eq!(
            scan_frames(&bytes, wal.active.as_ref().unwrap().first_lsn).next_lsn,
            41
        );
        drop(wal);

        // Recovery reads through the page cache too; then appends go on
        // directly after the recovered frames, also after a torn tail.
        let (mut wal, frames) = open_plain(dir, 0, 8192);
        assert_frames(&frames, 1, 40);
        assert!(wal.writes_direct());
        append_range(&mut wal, 41, 45);
        drop(wal);
        // Tear frame 45 and leave garbage past it, where direct writes go
        // next (as far as the segment has room).
        let last = segment_files(dir).pop().unwrap();
        let mut bytes = fs::read(&last).unwrap();
        let (at, len) = *frame_offsets(&bytes).last().unwrap();
        let garbage_end = (at + len + 700).min(bytes.len());
        bytes[at + 30..garbage_end].fill(0x77);
        fs::write(&last, &bytes).unwrap();
        let (mut wal, frames) = open_plain(dir, 0, 8192);
        assert_frames(&frames, 1, 44);
        assert!(wal.writes_direct());
        append_range(&mut wal, 45, 50);
        drop(wal);
        let (_, frames) = open_plain(dir, 0, 8192);
        assert_frames(&frames, 1, 50);
    }

    #[test]
    fn wal_buffered_writes_when_turned_off() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let options = buffered(SMALL);
        let (mut wal, _) = Wal::open(dir, 0, options).unwrap();
        append_range(&mut wal, 1, 30);
        assert!(!wal.writes_direct());
        drop(wal);
        let (mut wal, frames) = Wal::open(dir, 0, options).unwrap();
        assert_frames(&frames, 1, 30);
        assert!(!wal.writes_direct());
        append_range(&mut wal, 31, 35);
        drop(wal);
        // A log written either way reads the same and can go on the other.
        let (mut wal, frames) = open(dir, 0, SMALL);
        assert_frames(&frames, 1, 35);
        append_range(&mut wal, 36, 40);
        drop(wal);
        let (_, frames) = Wal::open(dir, 0, options).unwrap();
        assert_frames(&frames, 1, 40);
    }

    #[test]
    fn wal_falls_back_where_direct_open_is_refused() {
        if !is_root() {
            eprintln!("note: wal_falls_back_where_direct_open_is_refused skipped: needs root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let mnt = tmp.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        // ramfs refuses `O_DIRECT` when the file is opened.
        let _mount = match TestMount::mount(&["-t", "ramfs", "ramfs"], &mnt) {
            Ok(mount) => mount,
            Err(why) => {
                eprintln!("note: wal_falls_back_where_direct_open_is_refused skipped: {why}");
                return;
            }
        };
        refused_direct_writes_fall_back(&mnt.join("wal"));
    }

    #[test]
    fn wal_falls_back_where_direct_writes_of_a_sector_are_refused() {
        let name = "wal_falls_back_where_direct_writes_of_a_sector_are_refused";
        if !is_root() {
            eprintln!("note: {name} skipped: needs root");
            return;
        }
        // ext4 on a loop device with 4096-byte logical sectors: it opens
        // files with `O_DIRECT` but refuses writes of 512 bytes.
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let image = tmp.path().join("disk.img");
        File::create(&image).unwrap().set_len(32 << 20).unwrap();
        let image = image.to_str().unwrap();
        let device = match run(
            "losetup",
            &["--find", "--show", "--sector-size", "4096", image],
        ) {
            Ok(device) => LoopDevice { device },
            Err(why) => {
                eprintln!("note: {name} skipped: {why}");
                return;
            }
        };
        if let Err(why) = run("mkfs.ext4", &["-q", &device.device]) {
            eprintln!("note: {name} skipped: {why}");
            return;
        }
        let mnt = tmp.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let _mount = match TestMount::mount(&[&device.device], &mnt) {
            Ok(mount) => mount,
            Err(why) => {
                eprintln!("note: {name} skipped: {why}");
                return;
            }
        };
        refused_direct_writes_fall_back(&mnt.join("wal"));
    }

    /// A loop device, detached on drop even when the test panics.
    struct LoopDevice {
        /// Its path, `/dev/loopN`.
        device: String,
    }

    impl Drop for LoopDevice {
        /// Detaches the device.
        fn drop(&mut self) {
            let _ = run("losetup", &["-d", &self.device]);
        }
    }

    /// Checks a log in `dir`, on a file system that refuses the log's direct
    /// writes, falls back to buffered ones: when it starts its first
    /// segment, when it rolls over and when it reopens its last segment.
    fn refused_direct_writes_fall_back(dir: &Path) {
        let (mut wal, _) = open(dir, 0, SMALL);
        append_range(&mut wal, 1, 30);
        assert!(!wal.writes_direct());
        assert!(!wal.direct_io);
        drop(wal);
        let (mut wal, frames) = open(dir, 0, SMALL);
        assert_frames(&frames, 1, 30);
        assert!(!wal.direct_io);
        append_range(&mut wal, 31, 40);
        assert!(!wal.writes_direct());
        drop(wal);
        let (_, frames) = open(dir, 0, SMALL);
        assert_frames(&frames, 1, 40);
    }

    /// The environment variable that turns `wal_crash_child` into the
    /// appending process of `wal_survives_sigkill`.
    const CRASH_DIR_ENV: &str = "GANTRY_WAL_CRASH_DIR";

    #[test]
    #[ignore = "run by wal_survives_sigkill as a child process"]
    fn wal_crash_child() {
        let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
            return;
        };
        let (mut wal, _) = open(Path::new(&dir), 0, SMALL);
        loop {
            let lsn = wal.next_lsn();
            wal.append(&payload(lsn)).unwrap();
            // Printed only once the append is durable.
            println!("acked {lsn}");
        }
    }

    #[test]
    fn wal_survives_sigkill() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut before = 0;
        let mut segments_seen = 0;
        for round in 0..8 {
            let mut child = Command::new(&exe)
                .args([
                    "--exact",
                    "embedded::wal::tests::wal_crash_child",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CRASH_DIR_ENV, tmp.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let acked = Arc::new(Mutex::new(before));
            let reader = {
                let acked = Arc::clone(&acked);
                std::thread::spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        if let Some(lsn) = line.strip_prefix("acked ") {
                            *acked.lock().unwrap() = lsn.parse().unwrap();
                        }
                    }
                })
            };
            // Let the child get going (so that the test cannot pass without
            // it appending anything), then kill it at a random moment.
            let started = Instant::now();
            while *acked.lock().unwrap() < before + 5 {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "round {round}: the child process appends nothing"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_micros(rng.random_range(0..100_000)));
            child.kill().unwrap();
            child.wait().unwrap();
            reader.join().unwrap();
            let acked = *acked.lock().unwrap();

            let (wal, frames) = open_plain(tmp.path(), 0, SMALL);
            let last = frames.last().map_or(0, |f| f.lsn);
            assert!(
                last >= acked,
                "round {round}: acked {acked} but recovered {last}"
            );
            assert_frames(&frames, 1, last);
            assert_eq!(wal.next_lsn(), last + 1);
            before = last;
            segments_seen = wal.segments.len();
        }
        // The kills landed across many rollovers.
        assert!(segments_seen > 8, "{segments_seen} segments");
    }

    /// Appends `rounds` frames of 300 bytes to each log in turn, the two
    /// taking turns at going first so that the disk's moods hit both alike,
    /// and prints each one's latency quantiles.
    fn measure_appends(direct: &mut Wal, buffered: &mut Wal, rounds: usize, what: &str) {
        let data = vec![0x5au8; 300];
        let mut samples = [Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
        for round in 0..rounds {
            for turn in 0..2 {
                let which = (round + turn) % 2;
                let wal = if which == 0 {
                    &mut *direct
                } else {
                    &mut *buffered
                };
                let start = Instant::now();
                wal.append(&data).unwrap();
                samples[which].push(start.elapsed());
            }
        }
        println!("wal append, 300-byte payload, {rounds} appends each on /var/tmp, {what}:");
        for (name, samples) in ["O_DIRECT|O_DSYNC pwrite", "pwrite + fdatasync"]
            .iter()
            .zip(&mut samples)
        {
            samples.sort();
            let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
            println!(
                "  {name:<24} median {:>9.1?}  p90 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}",
                at(0.5),
                at(0.9),
                at(0.99),
                samples[samples.len() - 1]
            );
        }
    }

    #[test]
    #[ignore = "measurement; run with --ignored --nocapture"]
    fn wal_append_latency() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let segment_size = WalOptions::default().segment_size;
        let open_as = |name: &str, direct_io: bool| {
            let options = WalOptions {
                segment_size,
                direct_io,
            };
            Wal::open(&tmp.path().join(name), 0, options).unwrap().0
        };
        let mut direct = open_as("direct", true);
        let mut buffered = open_as("buffered", false);
        // The first append prepares the first 64 MiB segment; then the spare
        // threads write the next ones, which compete with the appends for
        // the disk until they are done.
        direct.append(b"first").unwrap();
        buffered.append(b"first").unwrap();
        if !direct.writes_direct() {
            println!("note: /var/tmp refuses direct writes; both logs write buffered");
        }
        measure_appends(
            &mut direct,
            &mut buffered,
            1000,
            "while the spare segments are being written",
        );
        direct.spare.as_mut().unwrap().wait();
        buffered.spare.as_mut().unwrap().wait();
        measure_appends(
            &mut direct,
            &mut buffered,
            3000,
            "spares ready (steady state)",
        );
    }
}
