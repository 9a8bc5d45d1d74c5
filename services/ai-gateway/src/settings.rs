//! The ai-gateway's own settings: the `app` section of `config/ai-gateway.yaml`.
//!
//! Providers are named endpoints (`kind`, `base_url`, the NAME of the environment variable holding
//! the API key: a key never appears in the file); models map a public model name to an ordered
//! list of deployments (a provider, the upstream model, its prices and timeouts), tried in order.

use std::collections::BTreeMap;

use keel_kernel::TenantId;
use keel_kernel::config::{ConfigError, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The model a request without `model` gets.
    pub default_model: String,
    /// `max_tokens` of a request that sets none.
    pub default_max_tokens: u32,
    /// The largest `max_tokens` a request may ask for.
    pub max_tokens_limit: u32,
    /// Tokens per period for tenants billing has not told us about (-1: unlimited).
    pub default_period_tokens: i64,
    /// A reservation older than this is released by the sweeper (a crashed call).
    pub reservation_ttl_secs: u64,
    /// ISO 4217 code of every price and cost.
    pub currency: String,
    /// How many memories a completion with `memory_namespace` draws on.
    pub memory_top_k: u32,
    pub breaker: BreakerSettings,
    pub providers: BTreeMap<String, ProviderSettings>,
    pub models: BTreeMap<String, ModelSettings>,
    pub guardrails: GuardrailSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Consecutive failures that open a deployment's circuit.
    pub failure_threshold: u32,
    /// How long an open circuit refuses calls before one probe is let through.
    pub cooldown_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failure_threshold: 5,
            cooldown_ms: 30_000,
        }
    }
}

/// The wire protocol of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The built-in deterministic development provider (no network, no model).
    Local,
    /// OpenAI-compatible chat completions (OpenAI, vLLM, Ollama, llama.cpp, LM Studio, OpenRouter).
    Openai,
    /// Anthropic's messages API.
    Anthropic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    pub kind: ProviderKind,
    /// e.g. `https://api.openai.com/v1`, `http://127.0.0.1:11434/v1` (Ollama); unused by `local`.
    #[serde(default)]
    pub base_url: String,
    /// The NAME of the environment variable holding the API key (never the key itself). Empty:
    /// no key is sent (Ollama, a local vLLM).
    #[serde(default)]
    pub api_key_env: String,
    /// Time allowed to connect.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_connect_timeout_ms() -> u64 {
    2_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// Tried in order; the next one is tried when one fails before its first streamed byte.
    pub deployments: Vec<DeploymentSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSettings {
    /// A key of `providers`.
    pub provider: String,
    /// The provider's own model name.
    pub model: String,
    /// Price of a million prompt tokens, in micros of `currency`.
    #[serde(default)]
    pub input_micros_per_million: i64,
    /// Price of a million completion tokens, in micros of `currency`.
    #[serde(default)]
    pub output_micros_per_million: i64,
    /// Time allowed until the first generated text arrives.
    #[serde(default = "default_first_byte_timeout_ms")]
    pub first_byte_timeout_ms: u64,
    /// Time allowed between two pieces of a stream (a stalled stream fails after it).
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
}

fn default_first_byte_timeout_ms() -> u64 {
    30_000
}

fn default_idle_timeout_ms() -> u64 {
    30_000
}

/// The guardrails every tenant gets, and per-tenant overrides of single rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardrailSettings {
    pub defaults: GuardrailRules,
    /// Keyed by tenant id; a rule left out keeps the default.
    pub tenants: BTreeMap<String, GuardrailOverride>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardrailRules {
    pub redact_emails: bool,
    pub redact_phones: bool,
    /// Card numbers that pass the Luhn check.
    pub redact_cards: bool,
    /// IBANs that pass the mod-97 check.
    pub redact_ibans: bool,
    /// Case-insensitive; a prompt containing one is blocked.
    pub blocked_terms: Vec<String>,
    /// A prompt larger than this (after memories are added) is blocked.
    pub max_prompt_tokens: u32,
    /// Check the generated text too, at every streamed chunk: a blocked term or personal data in
    /// the output ends the call as CONTENT_FILTER.
    pub check_output: bool,
}

impl Default for GuardrailRules {
    fn default() -> Self {
        GuardrailRules {
            redact_emails: true,
            redact_phones: true,
            redact_cards: true,
            redact_ibans: true,
            blocked_terms: Vec::new(),
            max_prompt_tokens: 16_000,
            check_output: false,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardrailOverride {
    pub redact_emails: Option<bool>,
    pub redact_phones: Option<bool>,
    pub redact_cards: Option<bool>,
    pub redact_ibans: Option<bool>,
    pub blocked_terms: Option<Vec<String>>,
    pub max_prompt_tokens: Option<u32>,
    pub check_output: Option<bool>,
}

impl GuardrailSettings {
    /// The rules in force for `tenant`.
    pub fn for_tenant(&self, tenant: TenantId) -> GuardrailRules {
        let mut rules = self.defaults.clone();
        if let Some(o) = self.tenants.get(&tenant.to_string()) {
            let o = o.clone();
            rules.redact_emails = o.redact_emails.unwrap_or(rules.redact_emails);
            rules.redact_phones = o.redact_phones.unwrap_or(rules.redact_phones);
            rules.redact_cards = o.redact_cards.unwrap_or(rules.redact_cards);
            rules.redact_ibans = o.redact_ibans.unwrap_or(rules.redact_ibans);
            rules.blocked_terms = o.blocked_terms.unwrap_or(rules.blocked_terms);
            rules.max_prompt_tokens = o.max_prompt_tokens.unwrap_or(rules.max_prompt_tokens);
            rules.check_output = o.check_output.unwrap_or(rules.check_output);
        }
        rules
    }
}

impl Settings {
    /// How long a reservation may stay unsettled before the sweeper releases it.
    pub fn reservation_ttl(&self) -> chrono::Duration {
        // Validated to at most a week, so it fits.
        chrono::Duration::seconds(i64::try_from(self.reservation_ttl_secs).unwrap_or(i64::MAX / 2))
    }
}

/// The model `local-default` on the built-in `local` provider: what `make run` answers with.
pub const LOCAL_MODEL: &str = "local-default";
pub const LOCAL_PROVIDER: &str = "local";

impl Default for Settings {
    fn default() -> Self {
        let providers = BTreeMap::from([(
            LOCAL_PROVIDER.to_owned(),
            ProviderSettings {
                kind: ProviderKind::Local,
                base_url: String::new(),
                api_key_env: String::new(),
                connect_timeout_ms: default_connect_timeout_ms(),
            },
        )]);
        let models = BTreeMap::from([(
            LOCAL_MODEL.to_owned(),
            ModelSettings {
                deployments: vec![DeploymentSettings {
                    provider: LOCAL_PROVIDER.to_owned(),
                    model: "local-extractive".to_owned(),
                    input_micros_per_million: 0,
                    output_micros_per_million: 0,
                    first_byte_timeout_ms: default_first_byte_timeout_ms(),
                    idle_timeout_ms: default_idle_timeout_ms(),
                }],
            },
        )]);
        Settings {
            default_model: LOCAL_MODEL.to_owned(),
            default_max_tokens: 512,
            max_tokens_limit: 32_768,
            default_period_tokens: 1_000_000,
            reservation_ttl_secs: 900,
            currency: "USD".to_owned(),
            memory_top_k: 3,
            breaker: BreakerSettings::default(),
            providers,
            models,
            guardrails: GuardrailSettings::default(),
        }
    }
}

impl Validate for Settings {
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.models.contains_key(&self.default_model) {
            return Err(ConfigError::invalid(
                "app.default_model",
                format!("`{}` is not a key of app.models", self.default_model),
            ));
        }
        if self.default_max_tokens == 0 || self.default_max_tokens > self.max_tokens_limit {
            return Err(ConfigError::invalid(
                "app.default_max_tokens",
                "must be between 1 and app.max_tokens_limit",
            ));
        }
        if self.default_period_tokens < -1 {
            return Err(ConfigError::invalid(
                "app.default_period_tokens",
                "must be -1 (unlimited) or a number of tokens",
            ));
        }
        if !(1..=7 * 24 * 3600).contains(&self.reservation_ttl_secs) {
            return Err(ConfigError::invalid(
                "app.reservation_ttl_secs",
                "must be between 1 and a week",
            ));
        }
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(ConfigError::invalid(
                "app.currency",
                "must be an ISO 4217 code such as USD",
            ));
        }
        if self.memory_top_k > 50 {
            return Err(ConfigError::invalid(
                "app.memory_top_k",
                "must be at most 50",
            ));
        }
        if self.breaker.failure_threshold == 0 {
            return Err(ConfigError::invalid(
                "app.breaker.failure_threshold",
                "must be at least 1",
            ));
        }
        for (name, provider) in &self.providers {
            let key = |field: &str| format!("app.providers.{name}.{field}");
            if provider.kind != ProviderKind::Local {
                let url = provider.base_url.as_str();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::invalid(
                        key("base_url"),
                        "must be an http:// or https:// URL",
                    ));
                }
            }
            let env = provider.api_key_env.as_str();
            if !env
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(ConfigError::invalid(
                    key("api_key_env"),
                    "must be the NAME of an environment variable (A-Z, 0-9, _), never a key",
                ));
            }
        }
        for (name, model) in &self.models {
            if model.deployments.is_empty() {
                return Err(ConfigError::invalid(
                    format!("app.models.{name}.deployments"),
                    "must list at least one deployment",
                ));
            }
            for (i, deployment) in model.deployments.iter().enumerate() {
                let key = |field: &str| format!("app.models.{name}.deployments[{i}].{field}");
                if !self.providers.contains_key(&deployment.provider) {
                    return Err(ConfigError::invalid(
                        key("provider"),
                        format!("`{}` is not a key of app.providers", deployment.provider),
                    ));
                }
                if deployment.input_micros_per_million < 0 {
                    return Err(ConfigError::invalid(
                        key("input_micros_per_million"),
                        "must not be negative",
                    ));
                }
                if deployment.output_micros_per_million < 0 {
                    return Err(ConfigError::invalid(
                        key("output_micros_per_million"),
                        "must not be negative",
                    ));
                }
                if deployment.first_byte_timeout_ms == 0 || deployment.idle_timeout_ms == 0 {
                    return Err(ConfigError::invalid(
                        key("idle_timeout_ms"),
                        "timeouts must be above 0",
                    ));
                }
            }
        }
        for tenant in self.guardrails.tenants.keys() {
            TenantId::parse_field("tenant", tenant).map_err(|_| {
                ConfigError::invalid(
                    format!("app.guardrails.tenants.{tenant}"),
                    "must be a tenant id (UUID)",
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_settings_are_valid_and_answer_locally() {
        let settings = Settings::default();
        settings.validate().expect("valid");
        assert_eq!(settings.default_model, LOCAL_MODEL);
    }

    #[test]
    fn an_api_key_pasted_into_the_file_is_refused_naming_the_key() {
        let mut settings = Settings::default();
        settings.providers.insert(
            "openai".into(),
            ProviderSettings {
                kind: ProviderKind::Openai,
                base_url: "https://api.openai.com/v1".into(),
                api_key_env: "sk-live-123".into(),
                connect_timeout_ms: 1000,
            },
        );
        let err = settings.validate().expect_err("refused");
        assert!(
            err.to_string().contains("app.providers.openai.api_key_env"),
            "{err}"
        );
    }

    #[test]
    fn a_deployment_on_an_unknown_provider_is_refused_naming_the_key() {
        let mut settings = Settings::default();
        if let Some(model) = settings.models.get_mut(LOCAL_MODEL) {
            model.deployments[0].provider = "nope".into();
        }
        let err = settings.validate().expect_err("refused");
        assert!(
            err.to_string()
                .contains("app.models.local-default.deployments[0].provider"),
            "{err}"
        );
    }
}
