//! `GET /v1/password/policy`

use axum::extract::State;
use serde::Serialize;

use crate::extract::ApiJson;
use crate::state::AppState;

/// The password rules in force, so a client can show them before the user types.
#[derive(Debug, Serialize, utoipa::ToSchema)]
// Independent on/off rules, each a documented setting: not a state machine.
#[allow(clippy::struct_excessive_bools)]
pub struct PasswordPolicyBody {
    /// Fewest characters (Unicode scalar values after NFKC normalization).
    pub min_length: usize,
    /// Most characters.
    pub max_length: usize,
    /// Lowest accepted zxcvbn score, 0–4 (0: no strength rule).
    pub min_strength: u8,
    /// A lower-case letter is required.
    pub require_lowercase: bool,
    /// An upper-case letter is required.
    pub require_uppercase: bool,
    /// A digit is required.
    pub require_digit: bool,
    /// A symbol is required.
    pub require_symbol: bool,
    /// Recent passwords (the current one included) that cannot be reused.
    pub history: u32,
    /// Passwords found in known breaches are refused.
    pub breach_check: bool,
    /// Normalization applied before counting and hashing: always `NFKC`.
    #[schema(example = "NFKC")]
    pub normalization: &'static str,
}

/// The active password rules.
#[utoipa::path(get, path = "/v1/password/policy", tag = "auth",
    responses((status = 200, description = "The rules a new password must pass", body = PasswordPolicyBody)))]
pub async fn policy(State(state): State<AppState>) -> ApiJson<PasswordPolicyBody> {
    let p = &state.services.passwords.policy();
    ApiJson(PasswordPolicyBody {
        min_length: p.min_length,
        max_length: p.max_length,
        min_strength: p.min_strength,
        require_lowercase: p.require_lowercase,
        require_uppercase: p.require_uppercase,
        require_digit: p.require_digit,
        require_symbol: p.require_symbol,
        history: p.history,
        breach_check: p.breach_check,
        normalization: "NFKC",
    })
}
