//! Why the CA service could not be set up from its config.

use std::path::PathBuf;

/// A config that parsed but cannot run: each names the setting to fix.
/// The sources carry the details (`jit-ssh-ca` prints the whole chain).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("public_url {0} has no host")]
    NoHost(url::Url),
    #[error("WebAuthn relying party for {url}")]
    Webauthn {
        url: url::Url,
        #[source]
        source: webauthn_rs::prelude::WebauthnError,
    },
    #[error("publish_ca_keys: reading {}", path.display())]
    PublishedKey {
        path: PathBuf,
        #[source]
        source: ssh_key::Error,
    },
}
