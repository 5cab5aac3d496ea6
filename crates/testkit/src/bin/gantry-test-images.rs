//! `gantry-test-images OUTDIR`: writes the offline test images
//! (`busybox.tar`, `nginx.tar`, OCI image layouts named like the public
//! images) into OUTDIR, for `gantry image import` and the end-to-end suite.

use std::path::PathBuf;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(outdir), None) = (args.next(), args.next()) else {
        eprintln!("usage: gantry-test-images OUTDIR");
        std::process::exit(2);
    };
    let outdir = PathBuf::from(outdir);
    let written = testkit::images::write_all(&outdir)
        .with_context(|| format!("cannot write the test images into {}", outdir.display()))?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}
