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
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
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
    /// A certificate signing request could not be parsed, or its signature
    /// does not match its public key.
    #[error("certificate signing request: {0}")]
    Request(rcgen::Error),
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

    /// Signs a client certificate for user `user` in `groups` over the
    /// public key of `request`. What the request asks for beyond its key
    /// (subject, extensions) is ignored: the CA decides who the holder is.
    pub fn sign_client_request(
        &self,
        request: &SigningRequest,
        user: &str,
        groups: &[&str],
    ) -> Result<String> {
        let mut params = leaf_params(user, groups)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign_request(request, params)
    }

    /// Signs a serving certificate for `dns` and `ips` over the public key
    /// of `request`; the caller decides which of the names the request
    /// asks for ([`SigningRequest::dns_names`], [`SigningRequest::ip_addresses`])
    /// to grant.
    pub fn sign_server_request(
        &self,
        request: &SigningRequest,
        common_name: &str,
        dns: &[String],
        ips: &[IpAddr],
    ) -> Result<String> {
        let mut params = leaf_params(common_name, &[])?;
        params.subject_alt_names = dns
            .iter()
            .map(|d| Ok(SanType::DnsName(d.clone().try_into()?)))
            .collect::<Result<Vec<_>, rcgen::Error>>()?;
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign_request(request, params)
    }

    fn sign_request(&self, request: &SigningRequest, params: CertificateParams) -> Result<String> {
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?;
        let signed = CertificateSigningRequestParams {
            params,
            public_key: request.0.public_key.clone(),
        }
        .signed_by(&issuer)?;
        Ok(signed.pem())
    }

    fn still_good(&self, cert_pem: &str, dns: &[String], ips: &[IpAddr]) -> bool {
        // The file is a chain ending with the CA that issued the leaf; a
        // leaf from an earlier CA must be reissued.
        if !cert_pem.trim_end().ends_with(self.cert_pem.trim_end()) {
            return false;
        }
        covers_for(cert_pem, dns, ips, RENEW_BEFORE_DAYS)
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

/// A parsed certificate signing request (PKCS#10) whose signature was
/// checked against its own public key, so its sender holds the private key.
#[derive(Clone, Debug)]
pub struct SigningRequest(CertificateSigningRequestParams);

impl SigningRequest {
    /// Parses a PEM `CERTIFICATE REQUEST` and verifies its signature.
    pub fn from_pem(pem: &str) -> Result<Self> {
        CertificateSigningRequestParams::from_pem(pem)
            .map(Self)
            .map_err(PkiError::Request)
    }

    /// The DNS names the request asks for.
    pub fn dns_names(&self) -> Vec<String> {
        self.0
            .params
            .subject_alt_names
            .iter()
            .filter_map(|san| match san {
                SanType::DnsName(name) => Some(name.as_str().to_owned()),
                _ => None,
            })
            .collect()
    }

    /// The IP addresses the request asks for.
    pub fn ip_addresses(&self) -> Vec<IpAddr> {
        self.0
            .params
            .subject_alt_names
            .iter()
            .filter_map(|san| match san {
                SanType::IpAddress(ip) => Some(*ip),
                _ => None,
            })
            .collect()
    }
}

/// A new private key and a certificate signing request for it, made where
/// the key is to stay (a joining node), so that only the request travels.
#[derive(Clone, Debug)]
pub struct NewRequest {
    /// The request, PEM (`CERTIFICATE REQUEST`).
    pub csr_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
}

impl NewRequest {
    /// Generates a key and a request for `common_name` with the given
    /// subject alternative names (none for a client certificate).
    pub fn generate(common_name: &str, dns: &[String], ips: &[IpAddr]) -> Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name, &[]);
        params.subject_alt_names = dns
            .iter()
            .map(|d| Ok(SanType::DnsName(d.clone().try_into()?)))
            .collect::<Result<Vec<_>, rcgen::Error>>()?;
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let csr = params.serialize_request(&key)?;
        Ok(Self {
            csr_pem: csr.pem()?,
            key_pem: key.serialize_pem(),
        })
    }
}

/// The SHA-256 of `pem`'s bytes, in lowercase hex: how a join token pins
/// the cluster CA (the bytes the API server serves at `/cacerts`).
pub fn fingerprint(pem: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(pem.as_bytes()))
}

/// The certificates of a PEM bundle, DER-encoded, in order; an error when
/// there is none or one cannot be read.
pub fn certificates_der(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| format!("not PEM: {e}"))?;
        if block.label == "CERTIFICATE" {
            out.push(block.contents);
        }
    }
    if out.is_empty() {
        return Err("no certificate in the PEM text".into());
    }
    Ok(out)
}

/// When the first certificate of a PEM chain expires, in seconds since the
/// epoch; `None` when it cannot be read.
pub fn expires_at(cert_pem: &str) -> Option<i64> {
    LeafFacts::parse(cert_pem).map(|leaf| leaf.not_after)
}

/// Whether the first certificate of a PEM chain names exactly these DNS
/// names and addresses and is valid for more than `days` days.
pub fn covers_for(cert_pem: &str, dns: &[String], ips: &[IpAddr], days: i64) -> bool {
    let Some(leaf) = LeafFacts::parse(cert_pem) else {
        return false;
    };
    let mut want: Vec<String> = dns.to_vec();
    want.extend(ips.iter().map(|ip| ip.to_string()));
    want.sort();
    let renew_at = OffsetDateTime::now_utc() + Duration::days(days);
    leaf.not_after > renew_at.unix_timestamp() && leaf.names == want
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

/// Writes a private key (or a file holding one) with mode 0600, through a
/// temporary file and a rename.
pub fn write_key(path: &Path, pem: &str) -> Result<()> {
    write_private(path, pem)
}

/// Writes a certificate with mode 0644, through a temporary file and a
/// rename.
pub fn write_cert(path: &Path, pem: &str) -> Result<()> {
    write_public(path, pem)
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
    fn requests_are_signed_over_their_key_with_the_names_the_ca_grants() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = Ca::load_or_create(dir.path()).unwrap();
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let req = NewRequest::generate("asked-for", &["node-b".into()], &[ip]).unwrap();
        let parsed = SigningRequest::from_pem(&req.csr_pem).unwrap();
        assert_eq!(parsed.dns_names(), ["node-b"]);
        assert_eq!(parsed.ip_addresses(), [ip]);

        // A client certificate names whom the CA says, not the request.
        let client = ca
            .sign_client_request(&parsed, "system:node:node-b", &["system:nodes"])
            .unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(client.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "system:node:node-b");
        let org = cert.subject().iter_organization().next().unwrap();
        assert_eq!(org.as_str().unwrap(), "system:nodes");
        assert!(cert.subject_alternative_name().unwrap().is_none());
        // Over the requester's key, which never left it.
        let key = KeyPair::from_pem(&req.key_pem).unwrap();
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
        assert!(expires_at(&client).unwrap() > OffsetDateTime::now_utc().unix_timestamp());

        let serving = ca
            .sign_server_request(&parsed, "node-b", &["node-b".into()], &[ip])
            .unwrap();
        assert!(covers_for(&serving, &["node-b".into()], &[ip], 30));
        assert!(!covers_for(&serving, &["node-b".into()], &[], 30));
        assert!(!covers_for(&serving, &["node-b".into()], &[ip], 400));
    }

    #[test]
    fn a_request_whose_signature_does_not_match_is_refused() {
        let req = NewRequest::generate("n", &["a".into()], &[]).unwrap();
        let other = NewRequest::generate("n", &["b".into()], &[]).unwrap();
        // Splice the second request's key into the first: the signature no
        // longer verifies.
        let der = |pem: &str| {
            x509_parser::pem::parse_x509_pem(pem.as_bytes())
                .unwrap()
                .1
                .contents
        };
        let mut first = der(&req.csr_pem);
        let second = der(&other.csr_pem);
        let key_of = |d: &[u8]| {
            use x509_parser::prelude::FromDer;
            let (_, csr) =
                x509_parser::certification_request::X509CertificationRequest::from_der(d).unwrap();
            csr.certification_request_info
                .subject_pki
                .subject_public_key
                .data
                .to_vec()
        };
        let (k1, k2) = (key_of(&first), key_of(&second));
        let at = first.windows(k1.len()).position(|w| w == k1).unwrap();
        first[at..at + k1.len()].copy_from_slice(&k2);
        let pem = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64::engine::general_purpose::STANDARD.encode(&first)
        );
        let err = SigningRequest::from_pem(&pem).unwrap_err();
        assert!(err.to_string().contains("signing request"), "{err}");
        assert!(SigningRequest::from_pem("garbage").is_err());
    }

    #[test]
    fn bundles_split_into_der_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = Ca::load_or_create(dir.path()).unwrap();
        let leaf = ca.issue_client("x", &[]).unwrap();
        let chain = format!("{}{}", leaf.cert_pem, ca.cert_pem());
        let ders = certificates_der(&chain).unwrap();
        assert_eq!(ders.len(), 2);
        assert!(x509_parser::parse_x509_certificate(&ders[1]).is_ok());
        assert!(certificates_der("hello").is_err());
        assert!(certificates_der(&leaf.key_pem).is_err());
    }

    #[test]
    fn fingerprints_are_sha256_hex() {
        assert_eq!(
            fingerprint("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
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
