//! Image garbage collection, as the kubelet's image manager does it: when
//! the file system holding the images is more than 85% used, images no pod
//! on the node uses are removed, least recently used first, until usage is
//! back under 80%; an image stored or used less than two minutes ago stays.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::pods::Context;

/// Usage above which collection starts (the kubelet's
/// `imageGCHighThresholdPercent`).
const HIGH_PERCENT: u64 = 85;
/// Usage collection brings the file system down to
/// (`imageGCLowThresholdPercent`).
const LOW_PERCENT: u64 = 80;
/// How long an image stays after it was stored or last used, whatever the
/// usage (the kubelet's `imageMinimumGCAge`): one imported or pulled for a
/// pod not yet started must not go before the pod uses it.
const MINIMUM_AGE: Duration = Duration::from_secs(120);
/// How often usage is checked (the kubelet checks every five minutes; a
/// small node fills faster).
const CHECK: Duration = Duration::from_secs(60);

/// How many bytes to free on a file system of `total` bytes with `free`
/// available: none below the high mark, else down to the low mark.
pub(crate) fn bytes_to_free(total: u64, free: u64) -> Option<u64> {
    if total == 0 {
        return None;
    }
    let used = total.saturating_sub(free);
    if used * 100 <= total * HIGH_PERCENT {
        return None;
    }
    Some(used - total * LOW_PERCENT / 100)
}

/// Checks usage every minute and collects when it is over the mark.
pub(crate) async fn run(ctx: Arc<Context>, images_dir: std::path::PathBuf) {
    loop {
        tokio::time::sleep(CHECK).await;
        let Ok(stat) = nix::sys::statvfs::statvfs(&images_dir) else {
            continue;
        };
        let frag = stat.fragment_size();
        let Some(want) = bytes_to_free(stat.blocks() * frag, stat.blocks_available() * frag) else {
            continue;
        };
        let in_use: HashSet<String> = ctx
            .registry
            .images()
            .into_iter()
            .map(|i| images::normalize(&i).unwrap_or(i))
            .collect();
        let store = ctx.images.clone();
        let result =
            tokio::task::spawn_blocking(move || store.collect_garbage(&in_use, want, MINIMUM_AGE))
                .await;
        match result {
            Ok(Ok(report)) => tracing::info!(
                freed = report.bytes_freed,
                wanted = want,
                removed = report.removed.len(),
                "image garbage collection"
            ),
            Ok(Err(e)) => tracing::warn!(error = %e, "image garbage collection failed"),
            Err(e) => tracing::warn!(error = %e, "image garbage collection failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_only_over_the_high_mark_down_to_the_low_one() {
        assert_eq!(bytes_to_free(1000, 200), None, "80% used");
        assert_eq!(bytes_to_free(1000, 150), None, "85% used");
        assert_eq!(bytes_to_free(1000, 100), Some(100), "90% used: down to 80%");
        assert_eq!(bytes_to_free(0, 0), None);
    }
}
