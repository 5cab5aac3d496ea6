//! Service account tokens: JWTs signed with the cluster's signing key
//! (ES256), carrying Kubernetes' claims (`sub` =
//! `system:serviceaccount:<namespace>:<name>`, and under `kubernetes.io` the
//! namespace, the service account and the object the token is bound to).
//!
//! A token authenticates only while its service account (and bound object)
//! still exists with the uid it names, as Kubernetes checks bound tokens.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::auth::User;

/// The issuer and default audience of the tokens, as on a kubeadm cluster.
pub(crate) const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// An object a token names: its name and uid.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjectRef {
    pub(crate) name: String,
    pub(crate) uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KubernetesClaims {
    pub(crate) namespace: String,
    pub(crate) serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) secret: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) node: Option<ObjectRef>,
}

/// A token's claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub(crate) aud: Vec<String>,
    pub(crate) exp: i64,
    pub(crate) iat: i64,
    pub(crate) nbf: i64,
    pub(crate) iss: String,
    pub(crate) jti: String,
    pub(crate) sub: String,
    #[serde(rename = "kubernetes.io")]
    pub(crate) kubernetes: KubernetesClaims,
}

impl Claims {
    /// The user the token stands for.
    pub(crate) fn user(&self) -> User {
        let ns = &self.kubernetes.namespace;
        User {
            name: self.sub.clone(),
            uid: self.kubernetes.serviceaccount.uid.clone(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
        }
    }
}

/// Signs and verifies service account tokens.
pub(crate) struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Signer {
    /// A signer from the cluster's signing key.
    pub(crate) fn new(key: &pki::SigningKey) -> Result<Self, String> {
        let encoding = EncodingKey::from_ec_pem(key.private_pem.as_bytes())
            .map_err(|e| format!("service account signing key: {e}"))?;
        let decoding = DecodingKey::from_ec_pem(key.public_pem.as_bytes())
            .map_err(|e| format!("service account public key: {e}"))?;
        Ok(Self { encoding, decoding })
    }

    /// A signed token with `claims`.
    pub(crate) fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &self.encoding)
            .expect("signing with a valid EC key cannot fail")
    }

    /// The claims of a token this cluster signed, if its signature, issuer,
    /// lifetime and audience (one of `audiences`) check out.
    pub(crate) fn verify(&self, token: &str, audiences: &[&str]) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(audiences);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|d| d.claims)
    }
}

/// Whether a bearer token looks like a JWT (three dot-separated parts).
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_in: i64) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            aud: vec![ISSUER.into()],
            exp: now + exp_in,
            iat: now,
            nbf: now,
            iss: ISSUER.into(),
            jti: "j".into(),
            sub: "system:serviceaccount:default:builder".into(),
            kubernetes: KubernetesClaims {
                namespace: "default".into(),
                serviceaccount: ObjectRef {
                    name: "builder".into(),
                    uid: "u1".into(),
                },
                ..KubernetesClaims::default()
            },
        }
    }

    #[test]
    fn tokens_verify_only_with_their_key_audience_and_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::new(&pki::SigningKey::load_or_create(dir.path()).unwrap()).unwrap();
        let token = signer.sign(&claims(600));
        assert!(looks_like_jwt(&token));
        let back = signer.verify(&token, &[ISSUER]).unwrap();
        assert_eq!(back.user().name, "system:serviceaccount:default:builder");
        assert!(
            back.user()
                .groups
                .contains(&"system:serviceaccounts:default".to_owned())
        );
        assert!(signer.verify(&token, &["other"]).is_none());
        assert!(
            signer
                .verify(&signer.sign(&claims(-10)), &[ISSUER])
                .is_none()
        );
        let other = tempfile::tempdir().unwrap();
        let stranger =
            Signer::new(&pki::SigningKey::load_or_create(other.path()).unwrap()).unwrap();
        assert!(stranger.verify(&token, &[ISSUER]).is_none());
        // The key survives a restart.
        let again = Signer::new(&pki::SigningKey::load_or_create(dir.path()).unwrap()).unwrap();
        assert!(again.verify(&token, &[ISSUER]).is_some());
    }
}
