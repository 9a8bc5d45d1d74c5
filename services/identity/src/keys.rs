//! Signing keys: Ed25519 private keys read from the files the config lists, the JWKS that
//! publishes their public halves, and signing with the active one.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keel_kernel::Error;

use crate::settings::SigningSettings;

/// One Ed25519 key pair under its `kid`.
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    public: [u8; 32],
}

impl SigningKey {
    /// Read a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) Ed25519 key.
    pub fn from_pem(kid: &str, pem: &str) -> Result<SigningKey, String> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("-----"))
            .collect();
        if !pem.contains("-----BEGIN PRIVATE KEY-----") {
            return Err("is not a PKCS#8 PEM private key (BEGIN PRIVATE KEY)".into());
        }
        let der = STANDARD
            .decode(body)
            .map_err(|_| "PEM body is not base64".to_owned())?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_der(&der).map_err(|_| {
            "is not an Ed25519 private key (openssl genpkey -algorithm ed25519)".to_owned()
        })?;
        Ok(SigningKey {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ed_der(&der),
            public: key.verifying_key().to_bytes(),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK (RFC 8037 OKP).
    pub fn jwk(&self) -> Jwk {
        keel_kernel::auth::ed25519_jwk(&self.kid, &self.public)
    }
}

/// Every configured key; the active one signs, all are published.
pub struct KeyRing {
    keys: Vec<SigningKey>,
    active: usize,
}

impl KeyRing {
    /// Load every key file listed in `app.signing.keys`. Errors name the config key at fault.
    pub fn load(settings: &SigningSettings) -> Result<KeyRing, Error> {
        let mut keys = Vec::with_capacity(settings.keys.len());
        for (i, entry) in settings.keys.iter().enumerate() {
            let pem = read(&entry.private_key_file).map_err(|why| {
                Error::internal(anyhow::anyhow!(
                    "config key `app.signing.keys[{i}].private_key_file`: {why}"
                ))
            })?;
            let key = SigningKey::from_pem(&entry.kid, &pem).map_err(|why| {
                Error::internal(anyhow::anyhow!(
                    "config key `app.signing.keys[{i}].private_key_file`: {} {why}",
                    entry.private_key_file.display()
                ))
            })?;
            keys.push(key);
        }
        KeyRing::new(keys, &settings.active_kid)
    }

    pub fn new(keys: Vec<SigningKey>, active_kid: &str) -> Result<KeyRing, Error> {
        let active = keys
            .iter()
            .position(|key| key.kid == active_kid)
            .ok_or_else(|| {
                Error::internal(anyhow::anyhow!(
                    "config key `app.signing.active_kid`: no key has kid {active_kid}"
                ))
            })?;
        Ok(KeyRing { keys, active })
    }

    pub fn active_kid(&self) -> &str {
        &self.keys[self.active].kid
    }

    /// The published key set: every configured key, the active one first.
    pub fn jwks(&self) -> JwkSet {
        let mut keys = vec![self.keys[self.active].jwk()];
        keys.extend(
            self.keys
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != self.active)
                .map(|(_, key)| key.jwk()),
        );
        JwkSet { keys }
    }

    /// Sign `claims` with the active key (EdDSA, `kid` in the header).
    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, Error> {
        let key = &self.keys[self.active];
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|err| Error::internal(anyhow::anyhow!("signing a token failed: {err}")))
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
}
