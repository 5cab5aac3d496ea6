//! `src/generated.rs` is what the generator makes of the k8s-pb this
//! workspace locks and the kinds' definitions. `UPDATE_EXPECT=1` rewrites it.

mod protogen;

#[test]
fn generated_table_is_up_to_date() {
    let Some((src, version)) = protogen::k8spb::locate() else {
        eprintln!("skipped: cargo metadata cannot locate k8s-pb's source");
        return;
    };
    let pb = protogen::k8spb::read(&src).unwrap_or_else(|e| panic!("{e}"));
    let generated = protogen::generate(&pb, &version).unwrap_or_else(|e| panic!("{e}"));
    let path = protogen::k8spb::package_dir().join("src/generated.rs");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        if current != generated.source {
            std::fs::write(&path, &generated.source).expect("writing src/generated.rs");
        }
        eprintln!(
            "wrote {} ({} messages, {} kinds)",
            path.display(),
            generated.messages,
            generated.kinds
        );
        return;
    }
    assert!(
        current == generated.source,
        "src/generated.rs is stale: regenerate with UPDATE_EXPECT=1 cargo test -p protobuf --test generated"
    );
}
