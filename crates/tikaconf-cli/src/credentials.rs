//! Keys and certificates from the global options: what a deployment that does not
//! trust its network (signed updates, `rediss://` with a private CA) needs.

use std::path::Path;

use tikaconf::{PublicKey, SigningKey, TrustSet};

use crate::cli::Global;
use crate::failure::Failure;

/// The trust set, signing key and TLS CA the options name.
#[derive(Debug, Default)]
pub struct Credentials {
    pub trust: TrustSet,
    pub signing_key: Option<SigningKey>,
    pub tls_ca_pem: Option<Vec<u8>>,
}

impl Credentials {
    pub fn from_options(global: &Global) -> Result<Credentials, Failure> {
        let both = keys(&global.trust_keys, "--trust-key")?;
        let mut writers = keys(&global.trust_writer_keys, "--trust-writer-key")?;
        let mut storage = keys(&global.trust_storage_keys, "--trust-storage-key")?;
        writers.extend(both.iter().copied());
        storage.extend(both);
        let signing_key = match &global.signing_key {
            None => None,
            Some(path) => {
                let text = read(path, "--signing-key")?;
                let text = String::from_utf8_lossy(&text);
                Some(SigningKey::from_hex(&text).map_err(|e| {
                    Failure::bad_input(e).context(format!("bad key in {}", path.display()))
                })?)
            }
        };
        let tls_ca_pem = match &global.tls_ca {
            None => None,
            Some(path) => Some(read(path, "--tls-ca")?),
        };
        Ok(Credentials {
            trust: TrustSet::with_roles(writers, storage),
            signing_key,
            tls_ca_pem,
        })
    }
}

fn keys(hex: &[String], option: &str) -> Result<Vec<PublicKey>, Failure> {
    hex.iter()
        .map(|k| {
            PublicKey::from_hex(k.trim())
                .map_err(|e| Failure::bad_input(e).context(format!("bad {option} {k:?}")))
        })
        .collect()
}

fn read(path: &Path, option: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|e| Failure::bad_input(e).context(format!("{option} {}", path.display())))
}
