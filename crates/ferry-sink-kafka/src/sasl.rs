//! `sasl.*`: which keys each mechanism needs, and the librdkafka properties they become.
//!
//! | mechanism | keys | librdkafka |
//! |---|---|---|
//! | `SCRAM-SHA-256/512`, `PLAIN` | `username`, `password` | `sasl.username`, `sasl.password` |
//! | `OAUTHBEARER` + `token_endpoint_url` | `client_id`, `client_secret`, `scope`, `extensions` | librdkafka's own OIDC client (`sasl.oauthbearer.method=oidc`) fetches and refreshes the token |
//! | `OAUTHBEARER` + `token_file` | | the sink reads the file in librdkafka's token refresh callback |
//! | `AWS_MSK_IAM` | `region`, `role_arn`, `role_session_name` | the sink signs an MSK IAM token in the same callback |

use ferry_core::ConfigIssue;
use rdkafka::ClientConfig;

use crate::config::{SaslConfig, SaslMechanism};

/// The mechanisms, as the user writes them (for error messages).
const MECHANISMS: &str = "SCRAM-SHA-256, SCRAM-SHA-512, PLAIN, OAUTHBEARER, AWS_MSK_IAM";

impl SaslConfig {
    /// The keys that are set, by name, for "does not belong here" checks.
    fn set_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut add = |set: bool, key| {
            if set {
                keys.push(key);
            }
        };
        add(self.username.is_some(), "username");
        add(self.password.is_some(), "password");
        add(self.token_endpoint_url.is_some(), "token_endpoint_url");
        add(self.client_id.is_some(), "client_id");
        add(self.client_secret.is_some(), "client_secret");
        add(self.scope.is_some(), "scope");
        add(!self.extensions.is_empty(), "extensions");
        add(self.token_file.is_some(), "token_file");
        add(self.region.is_some(), "region");
        add(self.role_arn.is_some(), "role_arn");
        add(self.role_session_name.is_some(), "role_session_name");
        keys
    }

    /// The keys `mechanism` may use.
    fn allowed_keys(mechanism: SaslMechanism, oidc: bool) -> &'static [&'static str] {
        match mechanism {
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 | SaslMechanism::Plain => {
                &["username", "password"]
            }
            SaslMechanism::OAuthBearer if oidc => &[
                "token_endpoint_url",
                "client_id",
                "client_secret",
                "scope",
                "extensions",
            ],
            SaslMechanism::OAuthBearer => &["token_file"],
            SaslMechanism::AwsMskIam => &["region", "role_arn", "role_session_name"],
        }
    }

    /// Problems with the `sasl` table, each naming its key.
    pub(crate) fn check(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let set = self.set_keys();
        if !self.enabled {
            if self.mechanism.is_some() || !set.is_empty() {
                issues.push(ConfigIssue::new(
                    "sasl.enabled",
                    "is false but other sasl.* keys are set: set sasl.enabled = true to use them",
                ));
            }
            return issues;
        }
        let Some(mechanism) = self.mechanism else {
            issues.push(ConfigIssue::new(
                "sasl.mechanism",
                format!("is required with sasl.enabled: one of {MECHANISMS}"),
            ));
            return issues;
        };
        let name = match mechanism {
            SaslMechanism::OAuthBearer if self.token_file.is_some() => "OAUTHBEARER with sasl.token_file",
            other => mechanism_name(other),
        };
        let mut require = |present: bool, key: &str, why: &str| {
            if !present {
                issues.push(ConfigIssue::new(format!("sasl.{key}"), why.to_owned()));
            }
        };
        let oidc = self.token_endpoint_url.is_some();
        match mechanism {
            m if m.uses_password() => {
                require(
                    self.username.is_some(),
                    "username",
                    "is required with sasl.enabled",
                );
                require(
                    self.password.is_some(),
                    "password",
                    "is required with sasl.enabled",
                );
            }
            SaslMechanism::OAuthBearer => match (oidc, self.token_file.is_some()) {
                (false, false) => require(
                    false,
                    "token_endpoint_url",
                    "or sasl.token_file is required with mechanism OAUTHBEARER",
                ),
                (true, true) => require(
                    false,
                    "token_file",
                    "and sasl.token_endpoint_url are two ways to get a token: set one",
                ),
                (true, false) => {
                    let why = "is required with sasl.token_endpoint_url";
                    require(self.client_id.is_some(), "client_id", why);
                    require(self.client_secret.is_some(), "client_secret", why);
                    if !cfg!(feature = "oidc") {
                        require(
                            false,
                            "token_endpoint_url",
                            "needs a ferry built with the `kafka-oidc` feature (librdkafka with libcurl); \
                             use sasl.token_file instead",
                        );
                    }
                }
                (false, true) => {}
            },
            SaslMechanism::AwsMskIam => {
                if !cfg!(feature = "aws-msk-iam") {
                    require(
                        false,
                        "mechanism",
                        "AWS_MSK_IAM needs a ferry built with the `kafka-aws-msk-iam` feature",
                    );
                }
                if self.role_session_name.is_some() && self.role_arn.is_none() {
                    require(
                        false,
                        "role_arn",
                        "is required when sasl.role_session_name is set",
                    );
                }
            }
            _ => {}
        }
        let allowed = Self::allowed_keys(mechanism, oidc);
        // Both OAUTHBEARER ways' keys together already have their own message above.
        let both_ways = mechanism == SaslMechanism::OAuthBearer && oidc && self.token_file.is_some();
        for key in set {
            let belongs = allowed.contains(&key) || (both_ways && key == "token_file");
            if !belongs {
                issues.push(ConfigIssue::new(
                    format!("sasl.{key}"),
                    format!("is not used with mechanism {name}{}", where_it_belongs(key)),
                ));
            }
        }
        issues
    }

    /// Sets the `sasl.*` librdkafka properties (the caller sets `security.protocol`).
    pub(crate) fn apply(&self, cc: &mut ClientConfig) {
        let Some(mechanism) = self.mechanism else { return };
        cc.set("sasl.mechanism", mechanism.librdkafka_name());
        if let Some(username) = &self.username {
            cc.set("sasl.username", username);
        }
        if let Some(password) = &self.password {
            cc.set("sasl.password", password.expose());
        }
        if mechanism != SaslMechanism::OAuthBearer {
            return;
        }
        if let Some(url) = &self.token_endpoint_url {
            cc.set("sasl.oauthbearer.method", "oidc");
            cc.set("sasl.oauthbearer.token.endpoint.url", url);
            if let Some(id) = &self.client_id {
                cc.set("sasl.oauthbearer.client.id", id);
            }
            if let Some(secret) = &self.client_secret {
                cc.set("sasl.oauthbearer.client.secret", secret.expose());
            }
            if let Some(scope) = &self.scope {
                cc.set("sasl.oauthbearer.scope", scope);
            }
            if !self.extensions.is_empty() {
                let extensions: Vec<String> =
                    self.extensions.iter().map(|(k, v)| format!("{k}={v}")).collect();
                cc.set("sasl.oauthbearer.extensions", extensions.join(","));
            }
        }
    }
}

fn mechanism_name(mechanism: SaslMechanism) -> &'static str {
    match mechanism {
        SaslMechanism::AwsMskIam => "AWS_MSK_IAM",
        other => other.librdkafka_name(),
    }
}

fn where_it_belongs(key: &str) -> &'static str {
    match key {
        "username" | "password" => " (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN)",
        "token_endpoint_url" | "client_id" | "client_secret" | "scope" | "extensions" => {
            " (OAUTHBEARER with sasl.token_endpoint_url)"
        }
        "token_file" => " (OAUTHBEARER)",
        _ => " (AWS_MSK_IAM)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sasl(toml_text: &str) -> SaslConfig {
        toml::from_str(toml_text).expect("valid sasl table")
    }

    fn keys(issues: &[ConfigIssue]) -> Vec<String> {
        issues
            .iter()
            .map(|i| format!("{}: {}", i.key, i.message))
            .collect()
    }

    #[test]
    fn oidc_maps_onto_librdkafkas_own_client() {
        let config = sasl(
            r#"
            enabled = true
            mechanism = "OAUTHBEARER"
            token_endpoint_url = "https://login.example.com/oauth2/token"
            client_id = "ferry"
            client_secret = "s3cr3t"
            scope = "kafka"
            extensions = { logicalCluster = "lkc-1", identityPoolId = "pool-2" }
            "#,
        );
        if cfg!(feature = "oidc") {
            assert!(config.check().is_empty(), "{:?}", keys(&config.check()));
        }
        let mut cc = ClientConfig::new();
        config.apply(&mut cc);
        let get = |k: &str| cc.get(k).map(str::to_owned);
        assert_eq!(get("sasl.mechanism").as_deref(), Some("OAUTHBEARER"));
        assert_eq!(get("sasl.oauthbearer.method").as_deref(), Some("oidc"));
        assert_eq!(
            get("sasl.oauthbearer.token.endpoint.url").as_deref(),
            Some("https://login.example.com/oauth2/token")
        );
        assert_eq!(get("sasl.oauthbearer.client.id").as_deref(), Some("ferry"));
        assert_eq!(get("sasl.oauthbearer.client.secret").as_deref(), Some("s3cr3t"));
        assert_eq!(get("sasl.oauthbearer.scope").as_deref(), Some("kafka"));
        assert_eq!(
            get("sasl.oauthbearer.extensions").as_deref(),
            Some("identityPoolId=pool-2,logicalCluster=lkc-1")
        );
        // The secret never shows in the config's Debug form (what errors and logs print).
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cr3t") && shown.contains("***"), "{shown}");
    }

    #[test]
    fn token_file_and_msk_iam_leave_the_token_to_the_callback() {
        let mut tables = vec!["enabled = true\nmechanism = \"OAUTHBEARER\"\ntoken_file = \"/var/run/token\""];
        if cfg!(feature = "aws-msk-iam") {
            tables.push("enabled = true\nmechanism = \"AWS_MSK_IAM\"\nregion = \"eu-west-1\"");
        }
        for table in tables {
            let config = sasl(table);
            assert!(config.check().is_empty(), "{table}: {:?}", keys(&config.check()));
            let mut cc = ClientConfig::new();
            config.apply(&mut cc);
            assert_eq!(cc.get("sasl.mechanism"), Some("OAUTHBEARER"));
            assert_eq!(cc.get("sasl.oauthbearer.method"), None, "{table}");
        }
    }

    #[test]
    fn missing_and_misplaced_keys_are_named() {
        let issues = keys(&sasl("enabled = true\nmechanism = \"OAUTHBEARER\"").check());
        assert_eq!(
            issues,
            ["sasl.token_endpoint_url: or sasl.token_file is required with mechanism OAUTHBEARER"]
        );
        let issues = keys(
            &sasl("enabled = true\nmechanism = \"OAUTHBEARER\"\ntoken_endpoint_url = \"https://x\"").check(),
        );
        assert_eq!(
            issues[..2],
            [
                "sasl.client_id: is required with sasl.token_endpoint_url",
                "sasl.client_secret: is required with sasl.token_endpoint_url",
            ]
        );
        assert_eq!(issues.len(), if cfg!(feature = "oidc") { 2 } else { 3 });
        let issues = keys(
            &sasl(
                "enabled = true\nmechanism = \"OAUTHBEARER\"\ntoken_file = \"/t\"\n\
                 token_endpoint_url = \"https://x\"\nclient_id = \"a\"\nclient_secret = \"b\"",
            )
            .check(),
        );
        assert_eq!(
            issues,
            ["sasl.token_file: and sasl.token_endpoint_url are two ways to get a token: set one"]
        );
        let issues = keys(
            &sasl("enabled = true\nmechanism = \"OAUTHBEARER\"\ntoken_file = \"/t\"\nusername = \"u\"\nclient_secret = \"x\"")
                .check(),
        );
        assert_eq!(
            issues,
            [
                "sasl.username: is not used with mechanism OAUTHBEARER with sasl.token_file (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN)",
                "sasl.client_secret: is not used with mechanism OAUTHBEARER with sasl.token_file (OAUTHBEARER with sasl.token_endpoint_url)",
            ]
        );
        let issues = keys(&sasl("enabled = true\nmechanism = \"SCRAM-SHA-256\"").check());
        assert_eq!(
            issues,
            [
                "sasl.username: is required with sasl.enabled",
                "sasl.password: is required with sasl.enabled",
            ]
        );
        let issues = keys(&sasl("token_file = \"/t\"").check());
        assert_eq!(issues.len(), 1);
        assert!(issues[0].starts_with("sasl.enabled: is false"), "{issues:?}");
    }

    #[test]
    fn a_build_without_a_feature_names_it() {
        let oidc = keys(
            &sasl(
                "enabled = true\nmechanism = \"OAUTHBEARER\"\ntoken_endpoint_url = \"https://x\"\n\
                 client_id = \"a\"\nclient_secret = \"b\"",
            )
            .check(),
        );
        let msk = keys(&sasl("enabled = true\nmechanism = \"AWS_MSK_IAM\"").check());
        if cfg!(feature = "oidc") {
            assert!(oidc.is_empty(), "{oidc:?}");
        } else {
            assert_eq!(
                oidc,
                [
                    "sasl.token_endpoint_url: needs a ferry built with the `kafka-oidc` feature (librdkafka with \
                  libcurl); use sasl.token_file instead"
                ]
            );
        }
        if cfg!(feature = "aws-msk-iam") {
            assert!(msk.is_empty(), "{msk:?}");
        } else {
            assert_eq!(
                msk,
                ["sasl.mechanism: AWS_MSK_IAM needs a ferry built with the `kafka-aws-msk-iam` feature"]
            );
        }
    }

    #[test]
    fn disabled_sasl_with_keys_is_named() {
        let issues = keys(&sasl("token_file = \"/t\"").check());
        assert_eq!(issues.len(), 1);
        assert!(issues[0].starts_with("sasl.enabled: is false"), "{issues:?}");
    }
}
