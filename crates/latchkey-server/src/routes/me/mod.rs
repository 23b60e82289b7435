//! The signed-in user's own resources under `/v1/me`.

pub mod email;
pub mod event_stream;
pub mod events;
pub mod mfa;
pub mod password;
pub mod profile;
pub mod security;
pub mod sessions;
pub mod webauthn;
