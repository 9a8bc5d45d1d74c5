//! The command line every service binary shares: `--config <path>` to run, and
//! `--check-config <path>` to load a configuration the way a start would (the same types, the
//! `KEEL__*` environment overrides, validation and the start checks that need no network), print
//! `ok` and exit 0, or print the fault (naming the key) and exit 2, without connecting to anything.
//! Deployment checks run it over every rendered ConfigMap, so a config the binary rejects never
//! ships.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::config::{self, Config, ConfigError, Validate};

/// Exit status of `--check-config` when the configuration is rejected (or the flag is misused).
pub const CHECK_FAILED: i32 = 2;

/// A service's whole configuration as its binary loads it at start. Implemented for every
/// [`Config`]; the edge gateway implements it for its own configuration type.
pub trait ServiceConfig: Sized {
    /// Read `path` (with environment overrides), validate it, and run the start checks that need
    /// no network. Errors name the key at fault.
    fn load_checked(path: &Path) -> Result<Self, ConfigError>;
}

impl<S: DeserializeOwned + Validate + Default> ServiceConfig for Config<S> {
    fn load_checked(path: &Path) -> Result<Self, ConfigError> {
        let config = Config::<S>::load(path)?;
        config.app.preflight()?;
        Ok(config)
    }
}

/// What the command line asks of a service binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Load this config and serve.
    Run(PathBuf),
    /// Check this config and exit.
    CheckConfig(PathBuf),
}

/// Read the service's command line: `--check-config <path>` (or `--check-config=<path>`) wins;
/// otherwise the config path of [`config::path_from`].
pub fn command(service: &str, args: &[String]) -> Result<Command, String> {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--check-config" {
            return match rest.next() {
                Some(path) if !path.starts_with("--") => Ok(Command::CheckConfig(path.into())),
                _ => Err("--check-config needs the path of a config file".into()),
            };
        }
        if let Some(path) = arg.strip_prefix("--check-config=") {
            if path.is_empty() {
                return Err("--check-config needs the path of a config file".into());
            }
            return Ok(Command::CheckConfig(path.into()));
        }
    }
    Ok(Command::Run(config::path_from(
        service,
        args.iter().cloned(),
    )))
}

/// Check the configuration at `path` as `C` would be loaded at start; nothing is connected to.
pub fn check_config<C: ServiceConfig>(path: &Path) -> Result<(), ConfigError> {
    C::load_checked(path).map(drop)
}

/// What every service's `main` calls first. With `--check-config <path>` it checks that file,
/// prints `ok` (exit 0) or the fault (exit 2), and never returns; otherwise it loads the config
/// to run with, with the same checks.
pub fn load_config<C: ServiceConfig>(service: &str) -> Result<C, ConfigError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match command(service, &args) {
        Ok(Command::Run(path)) => C::load_checked(&path),
        Ok(Command::CheckConfig(path)) => match check_config::<C>(&path) {
            Ok(()) => {
                println!("ok");
                std::process::exit(0)
            }
            Err(err) => {
                eprintln!("{service}: {err}");
                std::process::exit(CHECK_FAILED)
            }
        },
        Err(usage) => {
            eprintln!("{service}: {usage}");
            std::process::exit(CHECK_FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NoSettings;

    const GOOD: &str = r#"
service: demo
database: { url: "postgres://demo:pw@127.0.0.1:5432/keel", schema: demo }
nats: { url: "nats://127.0.0.1:4222" }
auth: { jwks_url: "http://127.0.0.1:1/jwks", issuer: keel, audience: keel }
"#;

    /// A config file of its own under the temp dir, removed when dropped.
    struct TempConfig(PathBuf);

    impl TempConfig {
        fn new(text: &str) -> TempConfig {
            let path = std::env::temp_dir().join(format!("keel-cli-{}.yaml", uuid::Uuid::new_v4()));
            std::fs::write(&path, text).expect("write temp config");
            TempConfig(path)
        }
    }

    impl Drop for TempConfig {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Settings whose start check reads a file, as identity's signing keys do.
    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct WithKeyFile {
        key_file: PathBuf,
    }

    impl Validate for WithKeyFile {
        fn preflight(&self) -> Result<(), ConfigError> {
            std::fs::metadata(&self.key_file)
                .map(drop)
                .map_err(|err| ConfigError::invalid("app.key_file", err.to_string()))
        }
    }

    #[test]
    fn a_good_config_passes_the_check() {
        let file = TempConfig::new(GOOD);
        check_config::<Config<NoSettings>>(&file.0).expect("a good config");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let file = TempConfig::new(&format!("{GOOD}grpc: {{ listn: \"0.0.0.0:1\" }}\n"));
        let err = check_config::<Config<NoSettings>>(&file.0).unwrap_err();
        assert!(err.to_string().contains("grpc.listn"), "{err}");
    }

    #[test]
    fn a_bad_value_is_named() {
        let file = TempConfig::new(&format!("{GOOD}outbox: {{ batch_size: 0 }}\n"));
        let err = check_config::<Config<NoSettings>>(&file.0).unwrap_err();
        assert!(err.to_string().contains("outbox.batch_size"), "{err}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let err =
            check_config::<Config<NoSettings>>(Path::new("/nonexistent/keel.yaml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/keel.yaml"), "{err}");
    }

    #[test]
    fn the_start_checks_of_the_service_run_too() {
        let missing = TempConfig::new(&format!(
            "{GOOD}app: {{ key_file: /nonexistent/key.pem }}\n"
        ));
        let err = check_config::<Config<WithKeyFile>>(&missing.0).unwrap_err();
        assert!(err.to_string().contains("app.key_file"), "{err}");

        let key = TempConfig::new("a key");
        let present = TempConfig::new(&format!("{GOOD}app: {{ key_file: {} }}\n", key.0.display()));
        check_config::<Config<WithKeyFile>>(&present.0).expect("the key file exists");
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn check_config_takes_the_next_argument_or_an_equals_form() {
        assert_eq!(
            command("demo", &args(&["--check-config", "a.yaml"])),
            Ok(Command::CheckConfig("a.yaml".into()))
        );
        assert_eq!(
            command("demo", &args(&["--check-config=b.yaml"])),
            Ok(Command::CheckConfig("b.yaml".into()))
        );
    }

    #[test]
    fn check_config_without_a_path_is_a_usage_error() {
        assert!(command("demo", &args(&["--check-config"])).is_err());
        assert!(command("demo", &args(&["--check-config="])).is_err());
        assert!(command("demo", &args(&["--check-config", "--config"])).is_err());
    }

    #[test]
    fn without_the_flag_the_service_runs_with_its_config_path() {
        assert_eq!(
            command("demo", &args(&["--config", "c.yaml"])),
            Ok(Command::Run("c.yaml".into()))
        );
    }
}
