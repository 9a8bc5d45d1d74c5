mod email;
mod inbox;
mod isolation;
mod preferences;
mod support;
