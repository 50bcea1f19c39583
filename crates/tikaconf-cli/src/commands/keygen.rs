//! `tikaconf keygen`: a new Ed25519 key pair for signed updates.
//!
//! The secret is 32 bytes from the operating system's generator (through `rand`),
//! printed as the 64 hex digits `--signing-key` files hold.

use tikaconf::SigningKey;

use crate::cli::Global;
use crate::failure::Failure;
use crate::output;

/// `keygen`: `secret: HEX` and `public: HEX` lines, or with `--json`
/// `{"public":HEX,"secret":HEX}`.
pub fn run(global: &Global) -> Result<(), Failure> {
    let seed: [u8; 32] = rand::random();
    let key = SigningKey::from_seed(seed);
    let secret: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let public = key.public_key().to_hex();
    if global.json {
        return output::json(&serde_json::json!({"public": public, "secret": secret}));
    }
    output::line(format!("secret: {secret}"))?;
    output::line(format!("public: {public}"))
}
