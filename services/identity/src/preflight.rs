//! Start checks that need no network, run by `--check-config` and at start (see
//! `keel_kernel::cli`): every signing key file listed in `app.signing.keys` reads and parses as an
//! Ed25519 PKCS#8 key, so a config whose Secret is missing or wrong is refused before it ships.

use keel_kernel::config::ConfigError;

use crate::keys::SigningKey;
use crate::settings::SigningSettings;

/// Read and parse every configured signing key; the error names the entry at fault.
pub fn signing_key_files(settings: &SigningSettings) -> Result<(), ConfigError> {
    for (i, entry) in settings.keys.iter().enumerate() {
        let key = format!("app.signing.keys[{i}].private_key_file");
        let path = entry.private_key_file.display();
        let pem = std::fs::read_to_string(&entry.private_key_file)
            .map_err(|err| ConfigError::invalid(&key, format!("cannot read {path}: {err}")))?;
        SigningKey::from_pem(&entry.kid, &pem)
            .map_err(|why| ConfigError::invalid(&key, format!("{path} {why}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::settings::SigningKeyFile;

    fn settings(file: PathBuf) -> SigningSettings {
        SigningSettings {
            active_kid: "k1".into(),
            keys: vec![SigningKeyFile {
                kid: "k1".into(),
                private_key_file: file,
            }],
        }
    }

    #[test]
    fn a_missing_key_file_names_its_entry() {
        let err = signing_key_files(&settings("/nonexistent/k1.pem".into())).unwrap_err();
        assert!(
            err.to_string()
                .contains("app.signing.keys[0].private_key_file"),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_not_an_ed25519_key_names_its_entry() {
        let path =
            std::env::temp_dir().join(format!("keel-preflight-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&path, "not a key").expect("write");
        let err = signing_key_files(&settings(path.clone())).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(
            err.to_string()
                .contains("app.signing.keys[0].private_key_file"),
            "{err}"
        );
    }
}
