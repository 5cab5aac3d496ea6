//! Certificates for the HTTPS listener: a Secret's PEM made into a key rustls signs with,
//! the self-signed certificate answered when no Ingress names the host (ingress-nginx's
//! "fake certificate"), and the resolver that picks one by SNI from the routing table.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::proxy::TableHandle;

/// The subject of the certificate served when no Ingress has one for the name asked
/// for, in ingress-nginx's words.
const FAKE_SUBJECT: &str = "Kubernetes Ingress Controller Fake Certificate";

/// A certificate chain and its private key, both PEM (a `kubernetes.io/tls` Secret's
/// `tls.crt` and `tls.key`), as rustls serves them. The message says what is wrong,
/// for the Ingress' event.
pub(crate) fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let chain = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.crt: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| format!("tls.key: {e}"))?
        .ok_or_else(|| "tls.key holds no private key".to_owned())?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("tls.key: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err("tls.key is not the key of the certificate in tls.crt".into())
        }
        // A key type whose public half rustls cannot compare: served as given.
        Err(_) => Ok(certified),
    }
}

/// A fresh self-signed certificate for clients whose server name no Ingress covers.
pub(crate) fn fake_certificate() -> Result<CertifiedKey, String> {
    let mut params = rcgen::CertificateParams::new(vec!["ingress.local".to_owned()])
        .map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Acme Co");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, FAKE_SUBJECT);
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    certified_key(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
}

/// Picks the certificate for a TLS handshake: the one the routing table holds for the
/// server name the client sent (SNI), else the fake certificate, so a client without SNI
/// or for an unknown name still completes the handshake and gets a 404.
#[derive(Debug)]
pub(crate) struct SniResolver {
    pub(crate) table: TableHandle,
    pub(crate) fallback: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = hello
            .server_name()
            .and_then(|name| self.table.load().certificate(name));
        Some(found.unwrap_or_else(|| Arc::clone(&self.fallback)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        let pem = a.cert.pem();
        assert!(certified_key(pem.as_bytes(), a.signing_key.serialize_pem().as_bytes()).is_ok());
        let err =
            certified_key(pem.as_bytes(), b.signing_key.serialize_pem().as_bytes()).unwrap_err();
        assert!(err.contains("not the key"), "{err}");
        assert!(certified_key(b"junk", b"junk").is_err());
        assert!(fake_certificate().is_ok());
    }
}
