//! The gateway's configuration as its binary loads it (see `keel_kernel::cli`): the main file
//! with `KEEL__*` overrides, the route table it names, and every route compiled against the
//! built-in descriptors, so `--check-config` refuses a route to a method that does not exist.
//! Nothing is connected to.

use std::path::Path;

use keel_kernel::cli::ServiceConfig;
use keel_kernel::config::ConfigError;

use crate::config::Loaded;
use crate::descriptors;
use crate::router::Router;

impl ServiceConfig for Loaded {
    fn load_checked(path: &Path) -> Result<Self, ConfigError> {
        let loaded = Loaded::load(path)?;
        let pool = descriptors::pool(&[]).map_err(|err| ConfigError::File {
            path: path.to_owned(),
            message: format!("the built-in descriptors do not load: {err}"),
        })?;
        Router::build(&pool, &loaded.routes, &loaded.routes_source)?;
        keel_kernel::JwtVerifier::new(&loaded.config.auth)
            .map_err(|err| ConfigError::invalid("auth", err.to_string()))?;
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_config(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config")
            .join(name)
    }

    #[test]
    fn the_make_run_config_passes_the_check() {
        keel_kernel::cli::check_config::<Loaded>(&repo_config("edge-gateway.yaml"))
            .expect("config/edge-gateway.yaml is accepted");
    }

    #[test]
    fn a_route_to_a_service_missing_from_the_descriptors_is_refused() {
        let dir = std::env::temp_dir().join(format!("keel-gw-check-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let routes = std::fs::read_to_string(repo_config("routes.yaml")).expect("routes.yaml");
        let main = std::fs::read_to_string(repo_config("edge-gateway.yaml")).expect("main file");
        std::fs::write(
            dir.join("routes.yaml"),
            routes.replace("tenancy.v1.TenantService:", "tenancy.v1.TenantServise:"),
        )
        .expect("write routes");
        std::fs::write(dir.join("edge-gateway.yaml"), main).expect("write main file");
        let err =
            keel_kernel::cli::check_config::<Loaded>(&dir.join("edge-gateway.yaml")).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(err.to_string().contains("TenantServise"), "{err}");
    }
}
