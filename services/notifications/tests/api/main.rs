mod email;
mod inbox;
mod isolation;
mod preferences;
mod support;
mod webhooks;
mod webhooks_support;
