//! Who a container's process runs as: Kubernetes' runAsUser/runAsGroup over the image's
//! `USER`, resolved against the container's own `/etc/passwd` and `/etc/group`.

use std::io::Read;
use std::path::Path;

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

/// The user a container runs as, before it is resolved in the container's files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSpec {
    /// The image's `USER`: empty (root), `name`, `uid`, `name:group`, `uid:gid`, ...
    /// Used when [`UserSpec::uid`] is `None`.
    pub image_user: String,
    /// Kubernetes' `runAsUser`: replaces the image's user (and its group) when set.
    pub uid: Option<u32>,
    /// Kubernetes' `runAsGroup`: the primary group, over whatever the user implies.
    pub gid: Option<u32>,
    /// Kubernetes' `supplementalGroups`, added to the groups `/etc/group` lists the user in.
    pub supplemental_groups: Vec<u32>,
}

/// Numeric ids, ready for config.json.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 4 && !line.starts_with('#')).then_some(())?;
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
        })
    })
}

/// `(name, gid, members)` for each line of an `/etc/group` file.
fn group_entries(group: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    group.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 3 && !line.starts_with('#')).then_some(())?;
        let members = f
            .get(3)
            .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        Some((f[0], f[2].parse().ok()?, members))
    })
}

/// Resolves `user` against the texts of the container's `/etc/passwd` and `/etc/group`
/// (empty when the files are missing). Errors read like runc's and Docker's.
pub(crate) fn resolve(user: &UserSpec, passwd: &str, group: &str) -> Result<ResolvedUser, String> {
    let (user_part, group_part) = match user.uid {
        Some(uid) => (uid.to_string(), None),
        None => match user.image_user.split_once(':') {
            Some((u, g)) => (u.to_owned(), Some(g.to_owned())),
            None => (user.image_user.clone(), None),
        },
    };
    let (uid, entry) = if user_part.is_empty() {
        (0, passwd_entries(passwd).find(|e| e.uid == 0))
    } else if let Ok(uid) = user_part.parse::<u32>() {
        (uid, passwd_entries(passwd).find(|e| e.uid == uid))
    } else {
        let entry = passwd_entries(passwd)
            .find(|e| e.name == user_part)
            .ok_or_else(|| {
                format!("unable to find user {user_part}: no matching entries in passwd file")
            })?;
        (entry.uid, Some(entry))
    };
    let gid = match (user.gid, group_part.as_deref()) {
        (Some(gid), _) => gid,
        (None, Some(g)) if !g.is_empty() => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(group)
                .find(|(name, _, _)| *name == g)
                .map(|(_, gid, _)| gid)
                .ok_or_else(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        },
        _ => entry.as_ref().map_or(0, |e| e.gid),
    };
    let mut additional_gids = Vec::new();
    if let Some(e) = &entry {
        for (_, g, members) in group_entries(group) {
            if members.contains(&e.name) && g != gid && !additional_gids.contains(&g) {
                additional_gids.push(g);
            }
        }
    }
    for g in &user.supplemental_groups {
        if *g != gid && !additional_gids.contains(g) {
            additional_gids.push(*g);
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

/// Reads a file of the container (`/etc/passwd`) with every path component resolved
/// inside `rootfs`, so an image's symlink cannot point the read at the host's files.
/// A missing or unreadable file reads as empty, as runc treats it.
pub(crate) fn read_in_root(rootfs: &Path, path: &str) -> String {
    let Ok(root) = std::fs::File::open(rootfs) else {
        return String::new();
    };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let Ok(fd) = openat2(&root, path.trim_start_matches('/'), how) else {
        return String::new();
    };
    let mut text = String::new();
    let _ = std::fs::File::from(fd)
        .take(4 << 20)
        .read_to_string(&mut text);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n";
    const GROUP: &str =
        "root:x:0:\nwheel:x:10:app,root\napp:x:1001:\naudio:x:29:app\nnogroup:x:65534:\n";

    fn resolve_str(
        image_user: &str,
        uid: Option<u32>,
        gid: Option<u32>,
        extra: &[u32],
    ) -> Result<ResolvedUser, String> {
        let user = UserSpec {
            image_user: image_user.to_owned(),
            uid,
            gid,
            supplemental_groups: extra.to_vec(),
        };
        resolve(&user, PASSWD, GROUP)
    }

    #[test]
    fn empty_user_is_root_with_roots_groups() {
        let r = resolve_str("", None, None, &[]).unwrap();
        assert_eq!((r.uid, r.gid, r.additional_gids), (0, 0, vec![10]));
    }

    #[test]
    fn names_resolve_through_passwd_and_group() {
        let r = resolve_str("app", None, None, &[]).unwrap();
        assert_eq!(
            (r.uid, r.gid, r.additional_gids),
            (1000, 1001, vec![10, 29])
        );
        let r = resolve_str("app:nogroup", None, None, &[]).unwrap();
        assert_eq!((r.uid, r.gid), (1000, 65534));
        let r = resolve_str("1000:5", None, None, &[7]).unwrap();
        assert_eq!(
            (r.uid, r.gid, r.additional_gids),
            (1000, 5, vec![10, 29, 7])
        );
    }

    #[test]
    fn unknown_numeric_user_gets_group_zero() {
        let r = resolve_str("4242", None, None, &[]).unwrap();
        assert_eq!((r.uid, r.gid, r.additional_gids), (4242, 0, vec![]));
    }

    #[test]
    fn run_as_user_and_group_override_the_image() {
        let r = resolve_str("app:audio", Some(65534), None, &[]).unwrap();
        assert_eq!((r.uid, r.gid), (65534, 65534));
        let r = resolve_str("app", None, Some(3000), &[2000, 3000]).unwrap();
        assert_eq!(
            (r.uid, r.gid, r.additional_gids),
            (1000, 3000, vec![10, 29, 2000])
        );
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(
            resolve_str("ghost", None, None, &[])
                .unwrap_err()
                .contains("unable to find user ghost")
        );
        assert!(
            resolve_str("app:ghosts", None, None, &[])
                .unwrap_err()
                .contains("unable to find group ghosts")
        );
    }
}
