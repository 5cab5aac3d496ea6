//! Bad files and bad disks: the embedded store refuses damaged or foreign
//! files with an error naming them, and survives a full disk.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::fast_options;
use store::*;

async fn open(dir: &Path) -> Result<EmbeddedStore> {
    EmbeddedStore::open(dir, fast_options()).await
}

/// A store in `dir` holding `n` keys of about 1 KiB, closed again.
async fn populated(dir: &Path, n: usize) {
    let s = open(dir).await.unwrap();
    for i in 0..n {
        s.put(PutRequest::new(
            format!("k/{i:05}"),
            vec![b'a' + (i % 26) as u8; 1000],
        ))
        .await
        .unwrap();
    }
}

fn expect_corrupt(err: StoreError, file: &str) {
    match &err {
        StoreError::Corrupt { path, .. } => assert!(
            path.to_string_lossy().contains(file),
            "error names {} instead of {file}: {err}",
            path.display()
        ),
        other => panic!("expected a corrupt-file error naming {file}, got {other}"),
    }
    eprintln!("as expected: {err}");
}

fn overwrite(path: &Path, at: u64, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

#[tokio::test]
async fn foreign_database_file_is_refused_by_name() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::write(
        dir.path().join("state.redb"),
        "SQLite format 3\0 this is not ours",
    )
    .unwrap();
    expect_corrupt(open(dir.path()).await.unwrap_err(), "state.redb");
    // Nothing was changed by the refusal.
    let left = std::fs::read(dir.path().join("state.redb")).unwrap();
    assert!(left.starts_with(b"SQLite format 3"));
}

#[tokio::test]
async fn damaged_database_file_is_refused_by_name() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    populated(dir.path(), 2000).await;
    let db = dir.path().join("state.redb");
    let len = std::fs::metadata(&db).unwrap().len();
    // Scribble over a stretch in the middle, where the versions live.
    overwrite(&db, len / 2, &vec![0x5a; 64 << 10]);
    expect_corrupt(open(dir.path()).await.unwrap_err(), "state.redb");
}

#[tokio::test]
async fn damaged_database_header_is_refused_by_name() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    populated(dir.path(), 10).await;
    overwrite(&dir.path().join("state.redb"), 0, b"garbage!");
    expect_corrupt(open(dir.path()).await.unwrap_err(), "state.redb");
}

#[tokio::test]
async fn damaged_log_is_refused_by_name() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    populated(dir.path(), 200).await;
    let segment = first_segment(&dir.path().join("wal"));
    // Damage the first frame: valid frames follow it, so this is not a torn
    // tail but lost data, and the store must not start.
    overwrite(&segment, 200, b"\xff\xff\xff\xff");
    expect_corrupt(open(dir.path()).await.unwrap_err(), ".wal");
}

#[tokio::test]
async fn missing_database_with_a_log_is_refused() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    populated(dir.path(), 10).await;
    std::fs::remove_file(dir.path().join("state.redb")).unwrap();
    expect_corrupt(open(dir.path()).await.unwrap_err(), "state.redb");
}

#[tokio::test]
async fn a_directory_is_opened_by_one_store_at_a_time() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let first = open(dir.path()).await.unwrap();
    let err = open(dir.path()).await.unwrap_err();
    assert_eq!(err.kind(), "locked", "{err}");
    drop(first);
    open(dir.path()).await.unwrap();
}

fn first_segment(wal: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    segments.into_iter().next().expect("a WAL segment")
}

/// A small tmpfs mounted for one test and always unmounted.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipping: mounting a small disk needs root (CI runs as root)");
            return None;
        }
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "gantry-test"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs failed");
        Some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_fails_writes_and_recovers() {
    let Some(disk) = SmallDisk::mount("8m") else {
        return;
    };
    let store_dir = disk.path().join("store");
    let filler = disk.path().join("filler");
    let s = open(&store_dir).await.unwrap();
    // Leave little room.
    let free = nix::sys::statvfs::statvfs(disk.path()).unwrap();
    let room = free.blocks_available() * free.fragment_size();
    std::fs::write(&filler, vec![0u8; (room - (900 << 10)) as usize]).unwrap();

    let value = vec![b'v'; 4000];
    let mut acked = Vec::new();
    let mut failure = None;
    for i in 0..5000 {
        match s
            .put(PutRequest::new(format!("k/{i}"), value.clone()))
            .await
        {
            Ok(r) => acked.push((i, r.revision)),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let err = failure.expect("the disk never filled up");
    assert_eq!(err.kind(), "no-space", "{err}");
    eprintln!("as expected after {} writes: {err}", acked.len());
    // Still usable: reads work, and writes keep failing cleanly.
    let count = s.range(RangeRequest::prefix("k/")).await.unwrap().count;
    assert_eq!(count as usize, acked.len());
    let again = s
        .put(PutRequest::new("more", value.clone()))
        .await
        .unwrap_err();
    assert_eq!(again.kind(), "no-space");

    // Space comes back: writes work again, nothing lost.
    std::fs::remove_file(&filler).unwrap();
    let after = s.put(PutRequest::new("more", value.clone())).await.unwrap();
    assert_eq!(after.revision, acked.last().unwrap().1 + 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    let s = open(&store_dir).await.unwrap();
    assert_eq!(
        s.range(RangeRequest::prefix("k/")).await.unwrap().count as usize,
        acked.len()
    );
    assert_eq!(s.current_revision().await.unwrap(), after.revision);
}
