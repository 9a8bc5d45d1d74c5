mod email;
mod inbox;
mod isolation;
mod languages;
mod preferences;
mod support;
mod webhooks;
mod webhooks_support;
