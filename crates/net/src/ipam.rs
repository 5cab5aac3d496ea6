//! Host-local address allocation: one file per allocated address.
//!
//! `<dir>/<ip>` holds the owner (a pod uid). A file comes into being whole and only once:
//! it is written under a temporary name and then hard-linked to its address, and `link(2)`
//! fails when the name exists, just as an `O_EXCL` create would. So two allocators (threads
//! or processes) never hand out the same address, and a crash never leaves an address file
//! without an owner. `<dir>/last_reserved_ip` remembers the last address handed out; the
//! search starts after it and wraps, so a freed address is reused only after every other
//! one has been tried (as CNI's host-local does), which keeps a departed pod's address away
//! from a newcomer for as long as possible. Nothing is flushed to disk: a crash of the
//! machine that could lose an allocation also ends every pod it was for.
//!
//! An allocator keeps an index of the owners it knows: read from the directory when it
//! opens, then kept by its own allocations and releases. So finding a pod's address reads
//! one file (to confirm it is still the pod's) rather than every allocation, twice per pod
//! start. The index assumes one allocator per owner, as one agent handles a pod; separate
//! allocators of one directory still never share an address, which `link(2)` decides.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use ipnet::Ipv4Net;

use crate::NetError;

/// The file remembering the last address handed out.
const LAST_RESERVED: &str = "last_reserved_ip";
/// The prefix of temporary files; they never parse as addresses.
const TMP_PREFIX: &str = ".tmp-";
/// Temporary files older than this are leftovers of a crash.
const STALE_TMP: Duration = Duration::from_secs(60);

/// Tells temporary files of one process apart.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The addresses of a pod range a pod may get: all but the network address, the gateway
/// (the first host address) and the broadcast address, in order.
pub(crate) fn usable(range: Ipv4Net) -> impl Iterator<Item = Ipv4Addr> {
    let first = u32::from(range.network()) + 2;
    let last = u32::from(range.broadcast()).saturating_sub(1);
    (first..=last).map(Ipv4Addr::from)
}

/// The order in which to try addresses: those after `last` first, then from the start of
/// the range up to `last` itself.
pub(crate) fn candidates(range: Ipv4Net, last: Option<Ipv4Addr>) -> Vec<Ipv4Addr> {
    let all: Vec<Ipv4Addr> = usable(range).collect();
    let start = last
        .and_then(|last| all.iter().position(|ip| *ip == last))
        .map_or(0, |at| at + 1);
    let mut order = all[start..].to_vec();
    order.extend_from_slice(&all[..start]);
    order
}

/// The allocator over one directory.
pub(crate) struct Ipam {
    dir: PathBuf,
    range: Ipv4Net,
    /// The owners this allocator knows and their addresses (see the module's notes). Its lock
    /// serializes find-or-allocate within this process, so that two attaches of the same pod
    /// cannot both miss the other's file and take two addresses.
    owners: Mutex<HashMap<String, Ipv4Addr>>,
}

impl Ipam {
    /// Opens (creating) the directory and removes temporary files a crash left behind.
    pub(crate) fn open(dir: PathBuf, range: Ipv4Net) -> Result<Self, NetError> {
        fs::create_dir_all(&dir).map_err(|e| NetError::io(&dir, e))?;
        let mut ipam = Ipam {
            dir,
            range,
            owners: Mutex::new(HashMap::new()),
        };
        ipam.remove_stale_tmp()?;
        let mut owners = HashMap::new();
        for (owner, ip) in ipam.allocations()? {
            // In address order: an owner listed twice keeps its lowest address.
            owners.entry(owner).or_insert(ip);
        }
        ipam.owners = Mutex::new(owners);
        Ok(ipam)
    }

    /// The address recorded for `owner`, allocating one if there is none. The flag says
    /// whether the address is new.
    pub(crate) fn allocate(&self, owner: &str) -> Result<(Ipv4Addr, bool), NetError> {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&ip) = owners.get(owner) {
            // Still the owner's, unless its file went behind this allocator's back.
            let path = self.dir.join(ip.to_string());
            match fs::read_to_string(&path) {
                Ok(who) if who.trim() == owner => return Ok((ip, false)),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(NetError::io(path, e)),
            }
            owners.remove(owner);
        }
        let order = candidates(self.range, self.last_reserved());
        let usable = order.len();
        let tmp = self.write_tmp(owner)?;
        let result = self.claim_first(&tmp, &order);
        // The temporary name is only a way to the final one; it goes in every case.
        let _ = fs::remove_file(&tmp);
        match result? {
            Some(ip) => {
                owners.insert(owner.to_owned(), ip);
                self.remember(ip)?;
                Ok((ip, true))
            }
            None => Err(NetError::AddressesExhausted {
                cidr: self.range,
                used: self.allocations()?.len(),
                usable,
            }),
        }
    }

    /// Links `tmp` to the first free address of `order`.
    fn claim_first(&self, tmp: &Path, order: &[Ipv4Addr]) -> Result<Option<Ipv4Addr>, NetError> {
        for ip in order {
            let path = self.dir.join(ip.to_string());
            match fs::hard_link(tmp, &path) {
                Ok(()) => return Ok(Some(*ip)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(NetError::io(path, e)),
            }
        }
        Ok(None)
    }

    /// The address recorded for `owner`, if any, as the directory says.
    #[cfg(test)]
    pub(crate) fn find(&self, owner: &str) -> Result<Option<Ipv4Addr>, NetError> {
        Ok(self
            .allocations()?
            .into_iter()
            .find(|(who, _)| who == owner)
            .map(|(_, ip)| ip))
    }

    /// Removes every address recorded for `owner` and returns them.
    pub(crate) fn release(&self, owner: &str) -> Result<Vec<Ipv4Addr>, NetError> {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        // The directory, not the index, says what the owner holds: all of it goes.
        let mut released = Vec::new();
        for (who, ip) in self.allocations()? {
            if who != owner {
                continue;
            }
            let path = self.dir.join(ip.to_string());
            match fs::remove_file(&path) {
                Ok(()) => released.push(ip),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(NetError::io(path, e)),
            }
        }
        owners.remove(owner);
        Ok(released)
    }

    /// Every recorded (owner, address), in address order.
    pub(crate) fn allocations(&self) -> Result<Vec<(String, Ipv4Addr)>, NetError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| NetError::io(&self.dir, e))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| NetError::io(&self.dir, e))?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let path = entry.path();
            match fs::read_to_string(&path) {
                Ok(owner) => found.push((owner.trim().to_string(), ip)),
                // Released between the listing and the read.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(NetError::io(path, e)),
            }
        }
        found.sort_by_key(|(_, ip)| *ip);
        Ok(found)
    }

    /// The last address handed out, if it is remembered and readable.
    fn last_reserved(&self) -> Option<Ipv4Addr> {
        fs::read_to_string(self.dir.join(LAST_RESERVED))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Remembers `ip` as the last address handed out (written whole through a rename; a
    /// lost update only moves where the next search starts).
    fn remember(&self, ip: Ipv4Addr) -> Result<(), NetError> {
        let tmp = self.write_tmp(&ip.to_string())?;
        let path = self.dir.join(LAST_RESERVED);
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            NetError::io(path, e)
        })
    }

    /// Writes `content` durably to a new temporary file of the directory.
    fn write_tmp(&self, content: &str) -> Result<PathBuf, NetError> {
        let name = format!(
            "{TMP_PREFIX}{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.dir.join(name);
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut file| file.write_all(content.as_bytes()));
        match written {
            Ok(()) => Ok(path),
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(NetError::io(path, e))
            }
        }
    }

    /// Removes temporary files old enough not to belong to an allocation in progress.
    fn remove_stale_tmp(&self) -> Result<(), NetError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| NetError::io(&self.dir, e))?;
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let is_tmp = entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(TMP_PREFIX));
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age > STALE_TMP);
            if is_tmp && old {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn usable_skips_network_gateway_and_broadcast() {
        let all: Vec<_> = usable(net("10.1.0.0/29")).collect();
        let want: Vec<_> = (2..=6).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect();
        assert_eq!(all, want);
        assert_eq!(
            usable(net("10.1.0.0/30")).collect::<Vec<_>>(),
            [ip("10.1.0.2")]
        );
        assert_eq!(usable(net("10.244.0.0/24")).count(), 253);
    }

    #[test]
    fn candidates_start_after_the_last_and_wrap() {
        let range = net("10.1.0.0/29");
        let order = candidates(range, Some(ip("10.1.0.4")));
        assert_eq!(
            order,
            ["10.1.0.5", "10.1.0.6", "10.1.0.2", "10.1.0.3", "10.1.0.4"].map(ip)
        );
        // Unknown or absent last: from the start.
        assert_eq!(candidates(range, None)[0], ip("10.1.0.2"));
        assert_eq!(
            candidates(range, Some(ip("192.168.0.1")))[0],
            ip("10.1.0.2")
        );
        assert_eq!(candidates(range, Some(ip("10.1.0.6")))[0], ip("10.1.0.2"));
    }

    #[test]
    fn allocate_is_stable_per_owner_and_round_robin() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path().join("ipam"), net("10.1.0.0/29")).unwrap();
        assert_eq!(ipam.allocate("a").unwrap(), (ip("10.1.0.2"), true));
        assert_eq!(ipam.allocate("a").unwrap(), (ip("10.1.0.2"), false));
        assert_eq!(ipam.allocate("b").unwrap(), (ip("10.1.0.3"), true));
        assert_eq!(ipam.release("a").unwrap(), [ip("10.1.0.2")]);
        assert!(ipam.release("a").unwrap().is_empty());
        // The freed .2 comes last: .4, .5, .6 first.
        assert_eq!(ipam.allocate("c").unwrap().0, ip("10.1.0.4"));
        assert_eq!(ipam.allocate("d").unwrap().0, ip("10.1.0.5"));
        assert_eq!(ipam.allocate("e").unwrap().0, ip("10.1.0.6"));
        assert_eq!(ipam.allocate("f").unwrap().0, ip("10.1.0.2"));
        let err = ipam.allocate("g").unwrap_err();
        assert!(
            matches!(
                err,
                NetError::AddressesExhausted {
                    used: 5,
                    usable: 5,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "no free address left in pod range 10.1.0.0/29 (5 of 5 allocated)"
        );
        let owners: Vec<_> = ipam
            .allocations()
            .unwrap()
            .into_iter()
            .map(|(o, _)| o)
            .collect();
        assert_eq!(owners, ["f", "b", "c", "d", "e"]);
        // Nothing but address files and the last-reserved marker is left.
        let mut names: Vec<_> = fs::read_dir(dir.path().join("ipam"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "10.1.0.2",
                "10.1.0.3",
                "10.1.0.4",
                "10.1.0.5",
                "10.1.0.6",
                LAST_RESERVED
            ]
        );
    }

    #[test]
    fn state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipam");
        let first = Ipam::open(path.clone(), net("10.2.0.0/24")).unwrap();
        first.allocate("a").unwrap();
        first.allocate("b").unwrap();
        first.release("a").unwrap();
        drop(first);
        let again = Ipam::open(path, net("10.2.0.0/24")).unwrap();
        assert_eq!(again.find("b").unwrap(), Some(ip("10.2.0.3")));
        assert_eq!(again.allocate("b").unwrap(), (ip("10.2.0.3"), false));
        // Round robin continues after the remembered .3, not at the freed .2.
        assert_eq!(again.allocate("c").unwrap().0, ip("10.2.0.4"));
    }

    #[test]
    fn an_address_whose_file_went_is_not_handed_out_from_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipam");
        let ipam = Ipam::open(path.clone(), net("10.4.0.0/29")).unwrap();
        assert_eq!(ipam.allocate("a").unwrap(), (ip("10.4.0.2"), true));
        // Removed behind the allocator's back: "a" gets an address it holds again.
        fs::remove_file(path.join("10.4.0.2")).unwrap();
        assert_eq!(ipam.allocate("a").unwrap(), (ip("10.4.0.3"), true));
        assert_eq!(ipam.find("a").unwrap(), Some(ip("10.4.0.3")));
        // Handed to another owner behind its back: "a" does not share it.
        fs::write(path.join("10.4.0.3"), "b").unwrap();
        let (again, new) = ipam.allocate("a").unwrap();
        assert!(new && again != ip("10.4.0.3"), "{again}");
        assert_eq!(ipam.release("a").unwrap(), [again]);
        assert_eq!(
            ipam.allocations().unwrap(),
            [("b".to_owned(), ip("10.4.0.3"))]
        );
    }

    #[test]
    fn concurrent_allocators_never_share_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipam");
        // Separate allocators over one directory, as separate processes would be: only the
        // file system keeps them apart.
        let got: Vec<Ipv4Addr> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|t| {
                    let path = path.clone();
                    s.spawn(move || {
                        let ipam = Ipam::open(path, net("10.3.0.0/26")).unwrap();
                        (0..7)
                            .map(|i| ipam.allocate(&format!("pod-{t}-{i}")).unwrap().0)
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        let mut unique = got.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 56, "duplicates in {got:?}");
        let ipam = Ipam::open(path, net("10.3.0.0/26")).unwrap();
        assert_eq!(ipam.allocations().unwrap().len(), 56);
    }
}
