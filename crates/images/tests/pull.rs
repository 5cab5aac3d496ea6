//! Pulls from a real registry (Debian's docker-registry, started by each
//! test on a free loopback port): anonymous, basic and token auth, HTTP and
//! HTTPS, OCI and Docker media types, indexes, digests, and the errors a
//! user sees.

use std::net::{Ipv4Addr, TcpListener};

use images::{Credential, ImageError, ImageStore, PullOptions, credentials_from_docker_config};
use testkit::images::{TestImage, busybox, image_index, layered};
use testkit::{ManifestFormat, Registry, RegistryAuth, RegistryOptions};

/// A store in a fresh directory.
fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::Builder::new()
        .prefix("gantry-images-pull-")
        .tempdir()
        .unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    (dir, store)
}

fn credential(registry: &Registry, user: &str, password: &str) -> PullOptions {
    PullOptions {
        credentials: vec![Credential {
            registry: registry.host(),
            username: user.to_owned(),
            password: password.to_owned(),
        }],
        insecure_registries: Vec::new(),
    }
}

/// Pushes busybox to `registry` as `library/busybox:1.36`.
async fn push_busybox(registry: &Registry) -> TestImage {
    let image = busybox().unwrap();
    registry
        .push_image(&image, "library/busybox:1.36", ManifestFormat::Oci)
        .await
        .unwrap();
    image
}

#[tokio::test]
async fn pulls_anonymously_over_http() {
    let registry = Registry::start().unwrap();
    let image = push_busybox(&registry).await;
    let (_dir, store) = store();
    let reference = registry.reference("library/busybox:1.36");
    let pulled = store
        .pull(&reference, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(pulled.id, image.id());
    assert_eq!(pulled.names, std::slice::from_ref(&reference));
    assert_eq!(
        pulled.repo_digests,
        [format!(
            "{}@{}",
            registry.reference("library/busybox"),
            image.manifest.digest
        )]
    );
    assert_eq!(pulled.config.cmd, ["sh"]);
    let layers = store.layers(&pulled).unwrap();
    assert!(layers[0].join("bin/busybox").is_file());
    assert_eq!(store.get(&reference), Some(pulled.clone()));

    // By digest, which the store already has: found under both.
    let by_digest = registry.reference(&format!("library/busybox@{}", image.manifest.digest));
    let again = store
        .pull(&by_digest, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(again.id, image.id());
    assert_eq!(again.names, [reference]);
    assert_eq!(store.get(&by_digest).unwrap().id, image.id());
    assert_eq!(store.list().len(), 1);
}

#[tokio::test]
async fn pulls_docker_media_types_and_picks_this_platform_from_an_index() {
    let registry = Registry::start().unwrap();
    let busybox = busybox().unwrap();
    let other = layered().unwrap();
    registry
        .push_image(&busybox, "library/docker:1", ManifestFormat::Docker)
        .await
        .unwrap();
    let (_dir, store) = store();
    let pulled = store
        .pull(
            &registry.reference("library/docker:1"),
            &PullOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(pulled.id, busybox.id(), "same config, so the same image");

    // An index with another image for arm64 and busybox for this machine.
    registry
        .push_image(&other, "library/multi:arm64", ManifestFormat::Oci)
        .await
        .unwrap();
    registry
        .push_image(&busybox, "library/multi:amd64", ManifestFormat::Oci)
        .await
        .unwrap();
    let arch = testkit::images::host_architecture();
    let foreign = if arch == "arm64" { "amd64" } else { "arm64" };
    let index = image_index(&[
        (&other.manifest, "linux", foreign),
        (&busybox.manifest, "linux", arch),
    ])
    .unwrap();
    registry
        .push_manifest("library/multi:1", &index)
        .await
        .unwrap();
    let pulled = store
        .pull(
            &registry.reference("library/multi:1"),
            &PullOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(pulled.id, busybox.id());
    assert!(
        pulled.repo_digests.contains(&format!(
            "{}@{}",
            registry.reference("library/multi"),
            index.digest
        )),
        "the repo digest is the index's: {:?}",
        pulled.repo_digests
    );

    // An index without this machine's platform.
    let foreign_only = image_index(&[(&other.manifest, "linux", foreign)]).unwrap();
    registry
        .push_manifest("library/multi:foreign", &foreign_only)
        .await
        .unwrap();
    let err = store
        .pull(
            &registry.reference("library/multi:foreign"),
            &PullOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("no manifest for linux/{arch}")),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_images_and_silent_registries_read_well() {
    let registry = Registry::start().unwrap();
    push_busybox(&registry).await;
    let (_dir, store) = store();

    let unknown_tag = registry.reference("library/busybox:9.9");
    let err = store
        .pull(&unknown_tag, &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("image {unknown_tag} not found")),
        "{err}"
    );

    let unknown_repo = registry.reference("library/nope:1");
    let err = store
        .pull(&unknown_repo, &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");

    // A port nobody listens on.
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let silent = format!("127.0.0.1:{port}/library/busybox:1.36");
    let err = store
        .pull(&silent, &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot reach registry 127.0.0.1:{port} to pull {silent}"
        )),
        "{err}"
    );

    let err = store
        .pull("Not A Reference", &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::InvalidReference { .. }), "{err}");
    assert!(store.list().is_empty());
}

#[tokio::test]
async fn basic_auth_needs_the_right_credentials() {
    let registry = Registry::start_with(RegistryOptions {
        auth: RegistryAuth::Basic(vec![("alice".into(), "wonderland".into())]),
        tls: false,
    })
    .unwrap();
    let image = push_busybox(&registry).await;
    let (_dir, store) = store();
    let reference = registry.reference("library/busybox:1.36");

    let err = store
        .pull(&reference, &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string().contains("no pull secret matches it"),
        "{err}"
    );

    let err = store
        .pull(&reference, &credential(&registry, "alice", "looking-glass"))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string().contains("user \"alice\" were refused"),
        "{err}"
    );

    // The credentials as a dockerconfigjson secret holds them.
    let secret = format!(
        r#"{{"auths": {{"{}": {{"username": "alice", "password": "wonderland"}}}}}}"#,
        registry.host()
    );
    let options = PullOptions {
        credentials: credentials_from_docker_config(secret.as_bytes()).unwrap(),
        insecure_registries: Vec::new(),
    };
    let pulled = store.pull(&reference, &options).await.unwrap();
    assert_eq!(pulled.id, image.id());
}

#[tokio::test]
async fn token_auth_gets_a_token_for_the_right_credentials() {
    let registry = Registry::start_with(RegistryOptions {
        auth: RegistryAuth::Token(vec![("bob".into(), "builder".into())]),
        tls: false,
    })
    .unwrap();
    let image = push_busybox(&registry).await;
    let (_dir, store) = store();
    let reference = registry.reference("library/busybox:1.36");

    let err = store
        .pull(&reference, &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");

    let err = store
        .pull(&reference, &credential(&registry, "bob", "wrong"))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("token server"), "{err}");

    let issued = registry.tokens_issued();
    let pulled = store
        .pull(&reference, &credential(&registry, "bob", "builder"))
        .await
        .unwrap();
    assert_eq!(pulled.id, image.id());
    assert!(registry.tokens_issued() > issued, "the pull used a token");
}

#[tokio::test]
async fn pulls_over_https_from_a_loopback_registry() {
    let registry = Registry::start_with(RegistryOptions {
        auth: RegistryAuth::Anonymous,
        tls: true,
    })
    .unwrap();
    assert!(registry.certificate_pem().is_some());
    let image = push_busybox(&registry).await;
    let (_dir, store) = store();
    // The registry speaks only TLS, so this pull went over HTTPS (a
    // loopback registry's self-signed certificate is accepted, as Docker
    // does).
    let pulled = store
        .pull(
            &registry.reference("library/busybox:1.36"),
            &PullOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(pulled.id, image.id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_reference_share_the_work() {
    let registry = Registry::start().unwrap();
    let image = push_busybox(&registry).await;
    let (dir, store) = store();
    let reference = registry.reference("library/busybox:1.36");
    let options = PullOptions::default();
    let pulls = (0..4).map(|_| store.pull(&reference, &options));
    let results = futures::future::join_all(pulls).await;
    for result in results {
        assert_eq!(result.unwrap().id, image.id());
    }
    assert_eq!(
        std::fs::read_dir(dir.path().join("images/layers"))
            .unwrap()
            .count(),
        1
    );
    assert_eq!(store.list().len(), 1);
}
