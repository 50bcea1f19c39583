//! `tikaconf keygen`: a new Ed25519 key pair for signed updates.
//!
//! The secret is 32 bytes from the operating system's generator (through `rand`),
//! printed as the 64 hex digits `--signing-key` files hold.

use tikaconf::SigningKey;

use crate::failure::Failure;

pub fn run() -> Result<(), Failure> {
    let seed: [u8; 32] = rand::random();
    let key = SigningKey::from_seed(seed);
    let secret: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    println!("secret: {secret}");
    println!("public: {}", key.public_key().to_hex());
    Ok(())
}
