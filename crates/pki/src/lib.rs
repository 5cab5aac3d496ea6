//! The cluster's certificates.
//!
//! At first start the API server creates a certificate authority in
//! `<data-dir>/pki/`; from it come the API server's serving certificate and
//! the admin's client certificate (user `admin`, group `system:masters`),
//! which `admin.kubeconfig` carries. Later starts reuse the CA and reissue a
//! serving certificate only when its names changed or it nears expiry.
//!
//! Keys are ECDSA P-256, which every client Kubernetes users have accepts.
//! Private keys are written with mode 0600.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// What can go wrong with certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key on disk could not be parsed.
    #[error("{path}: not a usable certificate or key: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// Generating or signing failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Shorthand for results in this crate.
pub type Result<T, E = PkiError> = std::result::Result<T, E>;

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const CA_VALIDITY_DAYS: i64 = 3650;
const LEAF_VALIDITY_DAYS: i64 = 365;
/// Reissue a serving certificate that expires sooner than this.
const RENEW_BEFORE_DAYS: i64 = 30;

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
}

/// The key service account tokens are signed with (ES256), shared by every
/// API server of a cluster like the CA.
#[derive(Clone)]
pub struct SigningKey {
    /// The private key, PEM (PKCS#8).
    pub private_pem: String,
    /// The public key, PEM (SubjectPublicKeyInfo).
    pub public_pem: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").finish_non_exhaustive()
    }
}

const SA_KEY: &str = "sa.key";

impl SigningKey {
    /// Loads the signing key from `dir/sa.key`, or creates it.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        let path = dir.join(SA_KEY);
        let key = if path.exists() {
            let pem = read(&path)?;
            KeyPair::from_pem(&pem).map_err(|e| PkiError::Invalid {
                path: path.clone(),
                detail: e.to_string(),
            })?
        } else {
            create_dir(dir)?;
            let key = KeyPair::generate()?;
            write_private(&path, &key.serialize_pem())?;
            key
        };
        Ok(Self {
            private_pem: key.serialize_pem(),
            public_pem: key.public_key_pem(),
        })
    }
}

/// The cluster's certificate authority.
pub struct Ca {
    dir: PathBuf,
    cert_pem: String,
    key: KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("dir", &self.dir).finish()
    }
}

impl Ca {
    /// Loads the CA from `dir`, or creates it there if it does not exist.
    /// Returns the CA and whether it was just created.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool)> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        if cert_path.exists() && key_path.exists() {
            let cert_pem = read(&cert_path)?;
            let key_pem = read(&key_path)?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::Invalid {
                path: key_path.clone(),
                detail: e.to_string(),
            })?;
            // Fail now, naming the file, rather than when the first
            // certificate is signed.
            Issuer::from_ca_cert_pem(&cert_pem, &key).map_err(|e| PkiError::Invalid {
                path: cert_path.clone(),
                detail: e.to_string(),
            })?;
            return Ok((
                Self {
                    dir: dir.to_owned(),
                    cert_pem,
                    key,
                },
                false,
            ));
        }
        create_dir(dir)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("gantry-ca", &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        write_private(&key_path, &key.serialize_pem())?;
        write_public(&cert_path, &cert_pem)?;
        Ok((
            Self {
                dir: dir.to_owned(),
                cert_pem,
                key,
            },
            true,
        ))
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The directory the CA lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Issues a serving certificate for the given DNS names and addresses.
    pub fn issue_server(
        &self,
        common_name: &str,
        dns: &[String],
        ips: &[IpAddr],
    ) -> Result<Issued> {
        let mut params = leaf_params(common_name, &[])?;
        params.subject_alt_names = dns
            .iter()
            .map(|d| Ok(SanType::DnsName(d.clone().try_into()?)))
            .collect::<Result<Vec<_>, rcgen::Error>>()?;
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// Issues a client certificate for user `user` in `groups`; Kubernetes
    /// reads the user from the common name and groups from organizations.
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> Result<Issued> {
        let mut params = leaf_params(user, groups)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    /// Loads the serving certificate `<dir>/<name>.crt` if it was issued by
    /// this CA for exactly these names and is not about to expire; issues
    /// and writes a new one otherwise. Its `cert_pem` is the chain: the
    /// leaf, then the CA.
    pub fn server_cert(&self, name: &str, dns: &[String], ips: &[IpAddr]) -> Result<Issued> {
        let cert_path = self.dir.join(format!("{name}.crt"));
        let key_path = self.dir.join(format!("{name}.key"));
        if let (Ok(cert_pem), Ok(key_pem)) = (read(&cert_path), read(&key_path))
            && self.still_good(&cert_pem, dns, ips)
        {
            return Ok(Issued { cert_pem, key_pem });
        }
        let mut issued = self.issue_server(name, dns, ips)?;
        issued.cert_pem.push_str(&self.cert_pem);
        write_private(&key_path, &issued.key_pem)?;
        write_public(&cert_path, &issued.cert_pem)?;
        Ok(issued)
    }

    fn still_good(&self, cert_pem: &str, dns: &[String], ips: &[IpAddr]) -> bool {
        // The file is a chain ending with the CA that issued the leaf; a
        // leaf from an earlier CA must be reissued.
        if !cert_pem.trim_end().ends_with(self.cert_pem.trim_end()) {
            return false;
        }
        let Some(leaf) = LeafFacts::parse(cert_pem) else {
            return false;
        };
        let mut want: Vec<String> = dns.to_vec();
        want.extend(ips.iter().map(|ip| ip.to_string()));
        want.sort();
        let renew_at = OffsetDateTime::now_utc() + Duration::days(RENEW_BEFORE_DAYS);
        leaf.not_after > renew_at.unix_timestamp() && leaf.names == want
    }

    fn sign(&self, params: CertificateParams) -> Result<Issued> {
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// What `still_good` needs to know about a certificate on disk.
struct LeafFacts {
    /// Subject alternative names, DNS names and IP addresses as text, sorted.
    names: Vec<String>,
    /// Expiry, seconds since the epoch.
    not_after: i64,
}

impl LeafFacts {
    /// Reads the first certificate of a PEM chain.
    fn parse(pem: &str) -> Option<Self> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
        let cert = pem.parse_x509().ok()?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::DNSName(d) => names.push((*d).to_owned()),
                    x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                        let ip = match bytes.len() {
                            4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?),
                            16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?),
                            _ => return None,
                        };
                        names.push(ip.to_string());
                    }
                    _ => {}
                }
            }
        }
        names.sort();
        Some(Self {
            names,
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

fn leaf_params(common_name: &str, groups: &[&str]) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name, groups);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(LEAF_VALIDITY_DAYS);
    Ok(params)
}

fn name(common_name: &str, organizations: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for org in organizations {
        dn.push(DnType::OrganizationName, *org);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Writes a kubeconfig that reaches `server` trusting `ca_pem`, as the
/// holder of `client`.
pub fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca_pem: &str,
    user: &str,
    client: &Issued,
) -> Result<()> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let text = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: gantry\n  \
           cluster:\n    \
             server: {server}\n    \
             certificate-authority-data: {ca}\n\
         users:\n\
         - name: {user}\n  \
           user:\n    \
             client-certificate-data: {cert}\n    \
             client-key-data: {key}\n\
         contexts:\n\
         - name: gantry\n  \
           context:\n    \
             cluster: gantry\n    \
             user: {user}\n\
         current-context: gantry\n",
        ca = b64(ca_pem),
        cert = b64(&client.cert_pem),
        key = b64(&client.key_pem),
    );
    // The file holds a private key.
    write_private(path, &text)
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_owned(),
        source,
    })
}

fn write_public(path: &Path, text: &str) -> Result<()> {
    write_mode(path, text, 0o644)
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    write_mode(path, text, 0o600)
}

/// Writes through a temporary file and a rename, so a crash never leaves a
/// half-written certificate or key.
fn write_mode(path: &Path, text: &str, mode: u32) -> Result<()> {
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_once_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, created) = Ca::load_or_create(dir.path()).unwrap();
        assert!(created);
        let mode = fs::metadata(dir.path().join(CA_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = Ca::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(again.cert_pem(), ca.cert_pem());
    }

    #[test]
    fn serving_certificates_are_reused_until_their_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = Ca::load_or_create(dir.path()).unwrap();
        let dns = vec!["localhost".to_owned(), "kubernetes.default.svc".to_owned()];
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
        let first = ca.server_cert("apiserver", &dns, &ips).unwrap();
        let second = ca.server_cert("apiserver", &dns, &ips).unwrap();
        assert_eq!(first.cert_pem, second.cert_pem);
        let more: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "10.0.0.1".parse().unwrap()];
        let third = ca.server_cert("apiserver", &dns, &more).unwrap();
        assert_ne!(first.cert_pem, third.cert_pem);
        let parsed = LeafFacts::parse(&third.cert_pem).unwrap();
        assert_eq!(
            parsed.names,
            [
                "10.0.0.1",
                "127.0.0.1",
                "kubernetes.default.svc",
                "localhost"
            ]
        );
        assert!(third.cert_pem.ends_with(ca.cert_pem()));
        // A new CA makes the old serving certificate stale.
        fs::remove_file(dir.path().join(CA_CERT)).unwrap();
        let (new_ca, created) = Ca::load_or_create(dir.path()).unwrap();
        assert!(created);
        let fourth = new_ca.server_cert("apiserver", &dns, &more).unwrap();
        assert_ne!(third.cert_pem, fourth.cert_pem);
        assert!(fourth.cert_pem.ends_with(new_ca.cert_pem()));
    }

    #[test]
    fn a_damaged_ca_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        Ca::load_or_create(dir.path()).unwrap();
        fs::write(dir.path().join(CA_CERT), "not a certificate").unwrap();
        let err = Ca::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
    }

    #[test]
    fn kubeconfig_embeds_everything() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = Ca::load_or_create(dir.path()).unwrap();
        let admin = ca.issue_client("admin", &["system:masters"]).unwrap();
        let path = dir.path().join("admin.kubeconfig");
        write_kubeconfig(
            &path,
            "https://127.0.0.1:6443",
            ca.cert_pem(),
            "admin",
            &admin,
        )
        .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("server: https://127.0.0.1:6443"));
        assert!(text.contains("current-context: gantry"));
        assert!(text.contains("client-key-data: "));
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
