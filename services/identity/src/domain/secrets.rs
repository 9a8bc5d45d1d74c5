//! Opaque secrets (refresh tokens, verification tokens, API keys): random, shown once, stored
//! only as SHA-256. A fast hash is right here, unlike for passwords: these have 256 bits of
//! entropy, so there is nothing to brute-force.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::ApiKeyId;

const REFRESH_PREFIX: &str = "keel_rt_";
const API_KEY_PREFIX: &str = "keel_ak_";
/// How much of the key id the displayed prefix shows.
const API_KEY_PREFIX_HEX: usize = 8;

/// 32 random bytes, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database stores for a secret.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

pub fn new_refresh_token() -> String {
    format!("{REFRESH_PREFIX}{}", random_token())
}

/// A new API key secret for `id`: `keel_ak_<key id hex>_<random>`. The id inside lets the exchange
/// find the key's tenant without scanning every tenant.
pub fn new_api_key_secret(id: ApiKeyId) -> String {
    format!(
        "{API_KEY_PREFIX}{}_{}",
        id.as_uuid().simple(),
        random_token()
    )
}

/// The public start of a key's secret, shown in listings so people can tell keys apart.
pub fn api_key_prefix(id: ApiKeyId) -> String {
    let hex = id.as_uuid().simple().to_string();
    format!("{API_KEY_PREFIX}{}", &hex[..API_KEY_PREFIX_HEX])
}

/// The key id inside an API key secret, if it has the right shape.
pub fn api_key_id(secret: &str) -> Option<ApiKeyId> {
    let rest = secret.strip_prefix(API_KEY_PREFIX)?;
    let (hex, random) = rest.split_once('_')?;
    if hex.len() != 32 || random.is_empty() {
        return None;
    }
    uuid::Uuid::try_parse(hex).ok().map(ApiKeyId::from_uuid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_key_secret_names_its_key_and_starts_with_its_prefix() {
        let id = ApiKeyId::new();
        let secret = new_api_key_secret(id);
        assert_eq!(api_key_id(&secret), Some(id));
        assert!(secret.starts_with(&api_key_prefix(id)));
        assert_eq!(api_key_id("keel_ak_nothex_abc"), None);
        assert_eq!(api_key_id("Bearer x"), None);
    }

    #[test]
    fn secrets_are_unique_and_hash_to_32_bytes() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(hash(&a).len(), 32);
    }
}
