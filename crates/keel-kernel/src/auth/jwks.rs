//! Turning a JWKS into verification keys, each pinned to exactly one algorithm.
//!
//! Pinning is what defeats algorithm confusion: the algorithm comes from the key we trust, never
//! from the token. A token whose header names another algorithm than its key's is refused before
//! any signature check, so an RSA or Ed25519 public key can never be used as an HMAC secret.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

/// RSA keys shorter than this are refused (NIST's floor since 2015).
const MIN_RSA_MODULUS_BYTES: usize = 2048 / 8;

/// The only algorithms the platform signs with. Everything else (`none`, HS*, ES*, PS*, RS384...)
/// is refused by name before a key is even looked up.
pub(crate) fn accepted_algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "EdDSA" => Some(Algorithm::EdDSA),
        "RS256" => Some(Algorithm::RS256),
        _ => None,
    }
}

/// A verification key and the one algorithm it may verify.
pub(crate) struct PinnedKey {
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

/// Usable keys by `kid`.
#[derive(Default, Clone)]
pub(crate) struct KeySet {
    keys: HashMap<String, Arc<PinnedKey>>,
}

impl KeySet {
    /// Keep every usable key; skip (and log, by `kid` only) the rest, so one odd key published by
    /// mistake does not take the whole platform's authentication down.
    pub(crate) fn from_jwks<'a>(jwks: impl IntoIterator<Item = &'a Jwk>) -> KeySet {
        let mut keys = HashMap::new();
        for jwk in jwks {
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            match pin(jwk) {
                Ok(pinned) if !kid.is_empty() => {
                    // Two keys under one kid would make verification depend on order: keep the first.
                    match keys.entry(kid) {
                        Entry::Occupied(first) => {
                            tracing::warn!(
                                kid = first.key(),
                                "JWKS has a duplicate kid; keeping the first key"
                            );
                        }
                        Entry::Vacant(slot) => {
                            slot.insert(Arc::new(pinned));
                        }
                    }
                }
                Ok(_) => tracing::warn!("JWKS key without kid skipped"),
                Err(reason) => tracing::warn!(kid, reason, "JWKS key skipped"),
            }
        }
        KeySet { keys }
    }

    /// Parse a JWKS document key by key, so that a key type this crate cannot even parse is
    /// skipped like any other unusable key instead of failing the whole set.
    pub(crate) fn from_json(body: &[u8]) -> Result<KeySet, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let raw: RawSet = serde_json::from_slice(body)?;
        let mut parsed = Vec::with_capacity(raw.keys.len());
        for value in raw.keys {
            match serde_json::from_value::<Jwk>(value) {
                Ok(jwk) => parsed.push(jwk),
                Err(err) => tracing::warn!(error = %err, "JWKS key not understood; skipped"),
            }
        }
        Ok(KeySet::from_jwks(&parsed))
    }

    pub(crate) fn from_set(jwks: &JwkSet) -> KeySet {
        KeySet::from_jwks(&jwks.keys)
    }

    pub(crate) fn get(&self, kid: &str) -> Option<Arc<PinnedKey>> {
        self.keys.get(kid).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// The pinned key for one JWK, or why it cannot be used.
fn pin(jwk: &Jwk) -> Result<PinnedKey, &'static str> {
    if matches!(&jwk.common.public_key_use, Some(usage) if *usage != PublicKeyUse::Signature) {
        return Err("key is not for signatures");
    }
    if matches!(&jwk.common.key_operations, Some(ops) if !ops.contains(&KeyOperations::Verify)) {
        return Err("key_ops does not allow verify");
    }
    let declared = jwk.common.key_algorithm;
    match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(okp) => {
            if okp.curve != EllipticCurve::Ed25519 {
                return Err("OKP key is not Ed25519");
            }
            if !matches!(declared, None | Some(KeyAlgorithm::EdDSA)) {
                return Err("Ed25519 key declares another algorithm than EdDSA");
            }
            // An Ed25519 public key is exactly 32 bytes; checking here also keeps a short key
            // from ever reaching the verifier.
            match URL_SAFE_NO_PAD.decode(okp.x.trim_end_matches('=')) {
                Ok(x) if x.len() == 32 => {}
                _ => return Err("Ed25519 x is not 32 base64url bytes"),
            }
            let key =
                DecodingKey::from_ed_components(&okp.x).map_err(|_| "Ed25519 key unreadable")?;
            Ok(PinnedKey {
                algorithm: Algorithm::EdDSA,
                key,
            })
        }
        AlgorithmParameters::RSA(rsa) => {
            if !matches!(declared, None | Some(KeyAlgorithm::RS256)) {
                return Err("RSA key declares another algorithm than RS256");
            }
            let modulus = URL_SAFE_NO_PAD
                .decode(rsa.n.trim_end_matches('='))
                .map_err(|_| "RSA modulus is not base64url")?;
            let significant = modulus.iter().skip_while(|byte| **byte == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                return Err("RSA key shorter than 2048 bits");
            }
            let key = DecodingKey::from_rsa_components(&rsa.n, &rsa.e)
                .map_err(|_| "RSA key unreadable")?;
            Ok(PinnedKey {
                algorithm: Algorithm::RS256,
                key,
            })
        }
        AlgorithmParameters::EllipticCurve(_) => Err("EC keys are not accepted"),
        AlgorithmParameters::OctetKey(_) => Err("symmetric keys are never accepted"),
    }
}
