//! The methods callable without a token. (To be replaced by the proto's method options.)

pub const PUBLIC_METHODS: &[&str] = &[
    "/identity.v1.AuthService/Register",
    "/identity.v1.AuthService/Login",
    "/identity.v1.AuthService/Refresh",
    "/identity.v1.AuthService/VerifyEmail",
    "/identity.v1.AuthService/GetJwks",
    // The secret is the credential; the gateway has no token of its own to present.
    "/identity.v1.AuthService/ExchangeApiKey",
];
