//! The top-level `[api]` table: where the HTTP endpoint (`/metrics`, `/health`) listens.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

/// The address the endpoint listens on when `[api]` sets none.
pub const DEFAULT_API_ADDRESS: &str = "127.0.0.1:8686";

/// `[api]`: present means the endpoint runs; absent means no server at all.
///
/// ```toml
/// [api]
/// address = "127.0.0.1:8686"
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// An IP address and port (`0.0.0.0:8686`, `[::1]:8686`); no host names, so the address
    /// the server binds to is the one written here.
    #[serde(default = "default_address", deserialize_with = "socket_address")]
    pub address: SocketAddr,
}

fn default_address() -> SocketAddr {
    // A constant that parses: checked by the test below.
    DEFAULT_API_ADDRESS
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8686)))
}

fn socket_address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "expected an IP address and a port such as `127.0.0.1:8686` or `[::]:8686`, found `{text}`"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_address_parses() {
        assert_eq!(default_address().to_string(), DEFAULT_API_ADDRESS);
    }
}
