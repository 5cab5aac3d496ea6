//! The image store against real archives of the offline test images, on a
//! real file system: import, lookups, overlay mounts of the unpacked
//! layers, garbage collection, concurrency, and nginx running from its
//! image. Needs root (device nodes, ownership, overlayfs, namespaces), as CI
//! has.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use images::{ImageError, ImageStore};
use sha2::{Digest, Sha256};
use testkit::images::{
    BUSYBOX_NAMES, Compression, LAYERED_NAME, Layer, NGINX_NAMES, TestImage, busybox, layered,
    nginx, write_docker_archive, write_oci_archive,
};

/// A store in a fresh directory, and a directory for archives.
struct Fixture {
    dir: tempfile::TempDir,
    store: ImageStore,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("gantry-images-test-")
            .tempdir()
            .unwrap();
        let store = ImageStore::open(&dir.path().join("images")).unwrap();
        Self { dir, store }
    }

    /// Writes `images` as an OCI archive named `name`.
    fn oci(&self, name: &str, images: &[&TestImage], compression: Compression) -> PathBuf {
        let path = self.dir.path().join(name);
        write_oci_archive(images, &path, compression).unwrap();
        path
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("images")
    }

    /// The numbered layer directories present on disk.
    fn layer_dirs(&self) -> usize {
        std::fs::read_dir(self.root().join("layers"))
            .unwrap()
            .count()
    }
}

/// An overlay mount, unmounted on drop.
struct Overlay {
    target: PathBuf,
}

impl Overlay {
    fn mount(lower: &[PathBuf], target: &Path) -> Self {
        let lowerdir: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
        nix::mount::mount(
            Some("overlay"),
            target,
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY,
            Some(format!("lowerdir={}", lowerdir.join(":")).as_str()),
        )
        .unwrap();
        Self {
            target: target.to_owned(),
        }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.target, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[tokio::test]
async fn imports_an_oci_layout_and_finds_the_image_every_way() {
    let fixture = Fixture::new();
    let busybox = busybox().unwrap();
    let archive = fixture.oci("busybox.tar.gz", &[&busybox], Compression::Gzip);
    let imported = fixture.store.import(&archive).await.unwrap();
    assert_eq!(imported.len(), 1);
    let image = &imported[0];
    assert_eq!(image.id, busybox.id());
    assert_eq!(image.names, BUSYBOX_NAMES);
    assert_eq!(
        image.repo_digests,
        [format!(
            "docker.io/library/busybox@{}",
            busybox.manifest.digest
        )]
    );
    assert_eq!(image.config.cmd, ["sh"]);
    assert!(image.config.env[0].starts_with("PATH="));
    assert!(
        image.size > 1_000_000,
        "busybox is about 2 MB: {}",
        image.size
    );

    let hex = busybox.id().trim_start_matches("sha256:");
    for lookup in [
        "busybox",
        "busybox:1.36",
        "library/busybox:latest",
        "docker.io/library/busybox:1.36",
        busybox.id(),
        hex,
        &format!("busybox@{}", busybox.manifest.digest),
    ] {
        assert_eq!(
            fixture.store.get(lookup).as_ref(),
            Some(image),
            "lookup {lookup}"
        );
    }
    assert!(fixture.store.get("busybox:1.35").is_none());
    assert!(fixture.store.get("nginx").is_none());
    assert_eq!(fixture.store.list(), imported);

    let layers = fixture.store.layers(image).unwrap();
    assert_eq!(layers.len(), 1);
    let root = &layers[0];
    assert!(root.starts_with(fixture.root().join("layers")));
    assert!(root.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.contains("root:x:0:0") && passwd.contains("nobody:x:65534"));
    let tmp_mode = std::fs::metadata(root.join("tmp"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(tmp_mode & 0o7777, 0o1777);

    // Importing again changes nothing on disk.
    let again = fixture.store.import(&archive).await.unwrap();
    assert_eq!(again, imported);
    assert_eq!(fixture.layer_dirs(), 1);
}

#[tokio::test]
async fn imports_docker_archives_with_the_same_ids_and_shared_layers() {
    let fixture = Fixture::new();
    let busybox = busybox().unwrap();
    let nginx = nginx().unwrap();
    let archive = fixture.dir.path().join("docker.tar");
    write_docker_archive(&[&busybox, &nginx], &archive).unwrap();
    let imported = fixture.store.import(&archive).await.unwrap();
    let ids: Vec<&str> = imported.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, [busybox.id(), nginx.id()]);
    assert_eq!(imported[1].names, NGINX_NAMES);
    assert_eq!(imported[1].config.exposed_ports, ["80/tcp"]);
    assert_eq!(imported[1].config.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(imported[1].config.cmd, ["nginx", "-g", "daemon off;"]);

    // nginx sits on busybox's layer, unpacked once.
    let busybox_layers = fixture.store.layers(&imported[0]).unwrap();
    let nginx_layers = fixture.store.layers(&imported[1]).unwrap();
    assert_eq!(nginx_layers.len(), 2);
    assert_eq!(nginx_layers[1], busybox_layers[0], "bottom layer shared");
    assert!(nginx_layers[0].join("usr/sbin/nginx").is_file());
    assert_eq!(fixture.layer_dirs(), 2);
}

#[tokio::test]
async fn overlay_of_the_layers_hides_whiteouts_and_opaque_directories() {
    let fixture = Fixture::new();
    let image = layered().unwrap();
    let archive = fixture.oci("layered.tar", &[&image], Compression::None);
    let imported = fixture.store.import(&archive).await.unwrap();
    let layers = fixture.store.layers(&imported[0]).unwrap();
    assert_eq!(layers.len(), 3);
    // Each layer alone still has what the one above hides.
    assert!(layers[1].join("data/gone").is_file());
    assert!(layers[1].join("opq/lower-a").is_file());

    let merged = fixture.dir.path().join("merged");
    std::fs::create_dir(&merged).unwrap();
    let _overlay = Overlay::mount(&layers, &merged);
    assert!(
        merged.join("bin/busybox").is_file(),
        "busybox from the bottom"
    );
    assert_eq!(std::fs::read(merged.join("data/keep")).unwrap(), b"kept\n");
    assert_eq!(
        std::fs::read(merged.join("data/added")).unwrap(),
        b"added\n"
    );
    assert!(
        !merged.join("data/gone").exists(),
        "the whiteout deletes /data/gone"
    );
    let mut opq: Vec<String> = std::fs::read_dir(merged.join("opq"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    opq.sort();
    assert_eq!(opq, ["upper-c"], "the opaque /opq hides the lower entries");
}

#[tokio::test]
async fn reopening_keeps_everything_and_refuses_a_second_opener() {
    let fixture = Fixture::new();
    let archive = fixture.oci("busybox.tar", &[&busybox().unwrap()], Compression::None);
    let imported = fixture.store.import(&archive).await.unwrap();
    let layers = fixture.store.layers(&imported[0]).unwrap();

    let err = ImageStore::open(&fixture.root()).unwrap_err();
    assert!(matches!(err, ImageError::Locked { .. }), "{err}");

    let Fixture { dir, store } = fixture;
    drop(store);
    // Leftovers of a crash are cleared at open, and a lost layer is
    // unpacked again from its blob.
    std::fs::write(dir.path().join("images/tmp/blob-leftover"), b"x").unwrap();
    std::fs::remove_dir_all(&layers[0]).unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    assert_eq!(store.list(), imported);
    let restored = store.layers(&imported[0]).unwrap();
    assert!(restored[0].join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_dir(dir.path().join("images/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_damaged_state_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("refs.json"), b"{\"version\": 1, \"refs\": ").unwrap();
    let err = ImageStore::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains(&dir.path().join("refs.json").display().to_string()),
        "{err}"
    );
    assert!(err.contains("damaged"), "{err}");
}

#[tokio::test]
async fn refuses_blobs_and_layers_that_do_not_match_their_digests() {
    let fixture = Fixture::new();

    // A layer blob whose bytes are not those of its digest.
    let mut tampered = busybox().unwrap();
    let last = tampered.layers[0].gzip.data.len() - 20;
    tampered.layers[0].gzip.data[last] ^= 0xff;
    let archive = fixture.oci("tampered.tar", &[&tampered], Compression::None);
    let err = fixture.store.import(&archive).await.unwrap_err();
    assert!(matches!(err, ImageError::Invalid { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&tampered.layers[0].gzip.digest),
        "{message}"
    );
    assert!(message.contains("does not match its digest"), "{message}");

    // A layer whose content is not the diff_id its config lists.
    let real = busybox().unwrap().layers.remove(0);
    let mut other = testkit::images::LayerBuilder::new();
    other.file("x", 0o644, b"x").unwrap();
    let lying = Layer {
        tar: other.finish().unwrap().tar,
        gzip: real.gzip.clone(),
    };
    let image =
        TestImage::new(&["gantry.test/lying:1"], vec![lying], serde_json::json!({})).unwrap();
    let archive = fixture.oci("lying.tar", &[&image], Compression::None);
    let err = fixture
        .store
        .import(&archive)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("but the image config says"), "{err}");
    assert!(fixture.store.list().is_empty());
    assert_eq!(fixture.layer_dirs(), 0, "nothing half-unpacked is kept");

    let not_an_archive = fixture.dir.path().join("empty.tar");
    std::fs::write(&not_an_archive, vec![0u8; 1024]).unwrap();
    let err = fixture
        .store
        .import(&not_an_archive)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("neither an OCI image layout"), "{err}");
}

#[tokio::test]
async fn removes_names_then_images_and_their_content() {
    let fixture = Fixture::new();
    let busybox = busybox().unwrap();
    let archive = fixture.oci("busybox.tar", &[&busybox], Compression::None);
    fixture.store.import(&archive).await.unwrap();
    assert!(fixture.store.usage().unwrap() > 0);

    fixture.store.remove("busybox:latest").unwrap();
    let image = fixture.store.get("busybox:1.36").unwrap();
    assert_eq!(image.names, ["docker.io/library/busybox:1.36"]);
    assert!(fixture.store.get("busybox").is_none());

    fixture.store.remove("busybox:1.36").unwrap();
    assert!(fixture.store.get(busybox.id()).is_none());
    assert_eq!(fixture.store.usage().unwrap(), 0);
    assert_eq!(fixture.layer_dirs(), 0);

    let err = fixture.store.remove("busybox:1.36").unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "image docker.io/library/busybox:1.36 not found: not in the image store"
    );
}

#[tokio::test]
async fn a_tag_moved_away_leaves_the_old_image_nameless() {
    let fixture = Fixture::new();
    let old = busybox().unwrap();
    fixture
        .store
        .import(&fixture.oci("old.tar", &[&old], Compression::None))
        .await
        .unwrap();
    // A different image under both of busybox's names.
    let mut new = layered().unwrap();
    new.names = BUSYBOX_NAMES.iter().map(|n| (*n).to_owned()).collect();
    fixture
        .store
        .import(&fixture.oci("new.tar", &[&new], Compression::None))
        .await
        .unwrap();
    assert_eq!(fixture.store.get("busybox").unwrap().id, new.id());
    let orphan = fixture
        .store
        .get(old.id())
        .expect("kept for its containers");
    assert!(orphan.names.is_empty() && orphan.repo_digests.is_empty());
    assert_eq!(fixture.store.list().len(), 2);
    fixture.store.remove(old.id()).unwrap();
    assert_eq!(fixture.store.list().len(), 1);
}

#[tokio::test]
async fn garbage_collection_frees_least_recently_used_images_first() {
    let fixture = Fixture::new();
    let (busybox, nginx, layered) = (busybox().unwrap(), nginx().unwrap(), layered().unwrap());
    for (name, image) in [("l.tar", &layered), ("b.tar", &busybox), ("n.tar", &nginx)] {
        fixture
            .store
            .import(&fixture.oci(name, &[image], Compression::None))
            .await
            .unwrap();
    }
    // Just stored, none is old enough to go.
    let report = fixture
        .store
        .collect_garbage(&HashSet::new(), u64::MAX, Duration::from_secs(3600))
        .unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
    assert_eq!(fixture.store.list().len(), 3);

    // Use order, oldest first: nginx, layered, busybox.
    fixture.store.touch("nginx");
    fixture.store.touch(layered.id());
    fixture.store.touch("busybox:1.36");

    // Nothing unused to free, and in-use images are never candidates.
    let everything: HashSet<String> = ["nginx:1.13.1", LAYERED_NAME, busybox.id()]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let report = fixture
        .store
        .collect_garbage(&everything, u64::MAX, Duration::ZERO)
        .unwrap();
    assert!(
        report.removed.is_empty() && report.bytes_freed == 0,
        "{report:?}"
    );

    // nginx is the least recently used, but in use: layered goes first.
    let in_use: HashSet<String> = [NGINX_NAMES[1].to_owned()].into();
    let before = fixture.store.usage().unwrap();
    let report = fixture
        .store
        .collect_garbage(&in_use, 1, Duration::ZERO)
        .unwrap();
    assert_eq!(report.removed, [layered.id()]);
    assert!(report.bytes_freed > 0);
    assert_eq!(fixture.store.usage().unwrap(), before - report.bytes_freed);
    assert!(fixture.store.get(LAYERED_NAME).is_none());
    let busybox_image = fixture.store.get("busybox").unwrap();
    let base = fixture.store.layers(&busybox_image).unwrap().remove(0);
    assert!(base.join("bin/busybox").is_file(), "the shared layer stays");
    assert_eq!(fixture.layer_dirs(), 2, "layered's own two layers are gone");

    // Asking for everything takes busybox but still not nginx, nor the
    // layer nginx shares with busybox.
    let report = fixture
        .store
        .collect_garbage(&in_use, u64::MAX, Duration::ZERO)
        .unwrap();
    assert_eq!(report.removed, [busybox.id()]);
    let nginx_image = fixture.store.get("nginx").unwrap();
    let nginx_layers = fixture.store.layers(&nginx_image).unwrap();
    assert_eq!(nginx_layers[1], base);
    assert!(base.join("bin/busybox").is_file());

    // nginx, last used a while ago, goes once the minimum age is shorter.
    std::thread::sleep(Duration::from_millis(300));
    let report = fixture
        .store
        .collect_garbage(&HashSet::new(), u64::MAX, Duration::from_secs(3600))
        .unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
    let report = fixture
        .store
        .collect_garbage(&HashSet::new(), u64::MAX, Duration::from_millis(200))
        .unwrap();
    assert_eq!(report.removed, [nginx.id()]);
    assert_eq!(fixture.store.usage().unwrap(), 0);
    assert_eq!(fixture.layer_dirs(), 0);
    assert!(fixture.store.list().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_imports_of_the_same_images_agree() {
    let fixture = Fixture::new();
    let nginx = nginx().unwrap();
    let busybox = busybox().unwrap();
    let a = fixture.oci("a.tar", &[&nginx], Compression::Gzip);
    let b = fixture.oci("b.tar", &[&nginx], Compression::None);
    let c = fixture.oci("c.tar", &[&busybox], Compression::None);
    let (ra, rb, rc) = tokio::join!(
        fixture.store.import(&a),
        fixture.store.import(&b),
        fixture.store.import(&c)
    );
    let (ra, rb, rc) = (ra.unwrap(), rb.unwrap(), rc.unwrap());
    assert_eq!(ra, rb);
    assert_eq!(ra[0].id, nginx.id());
    assert_eq!(rc[0].id, busybox.id());
    // Each layer unpacked once, each blob whole.
    assert_eq!(fixture.layer_dirs(), 2);
    for entry in std::fs::read_dir(fixture.root().join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let content = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&content)),
            entry.file_name().to_string_lossy()
        );
    }
    // A later open sees one consistent state.
    let Fixture { dir, store } = fixture;
    drop(store);
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    assert_eq!(store.list().len(), 2);
}

#[tokio::test]
async fn nginx_from_its_image_serves_the_welcome_page() {
    let fixture = Fixture::new();
    let archive = fixture.oci("nginx.tar", &[&nginx().unwrap()], Compression::None);
    let image = fixture.store.import(&archive).await.unwrap().remove(0);
    let layers = fixture.store.layers(&image).unwrap();
    let lowerdir: Vec<String> = layers.iter().map(|p| p.display().to_string()).collect();
    let work = fixture.dir.path().join("run");
    for dir in ["upper", "work", "merged"] {
        std::fs::create_dir_all(work.join(dir)).unwrap();
    }
    // Everything happens in new mount, network and PID namespaces: the
    // overlay, /proc and /dev mounts, and nginx itself, all go when the
    // shell (PID 1 there) exits, whatever the outcome.
    let script = format!(
        r#"set -e
M={merged}
mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} $M
mount -t proc proc $M/proc
mount --rbind /dev $M/dev
ip link set lo up
chroot $M nginx -t
chroot $M nginx -g 'daemon off;' &
for i in $(seq 1 100); do
  if curl -sf http://127.0.0.1:80/ -o $M/tmp/page; then break; fi
  sleep 0.1
done
cat $M/tmp/page
chroot $M wget -qO- http://127.0.0.1/50x.html
"#,
        merged = work.join("merged").display(),
        lower = lowerdir.join(":"),
        upper = work.join("upper").display(),
        work = work.join("work").display(),
    );
    let output = Command::new("timeout")
        .args(["60", "unshare", "--mount", "--net", "--pid", "--fork"])
        .args(["--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "status {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(stdout.contains("<h1>Welcome to nginx!</h1>"), "{stdout}");
    assert!(stdout.contains("An error occurred."), "{stdout}");
    assert!(stderr.contains("test is successful"), "{stderr}");
}
