//! The first-start hints: the lines an operator pastes into Prosody or
//! ejabberd when upslot generated the shared secret.

use std::path::Path;

use crate::config::Config;

/// The base URL clients will use, for the hints.
fn public_base_url(config: &Config) -> String {
    if !config.server.public_url.is_empty() {
        return config.server.public_url.trim_end_matches('/').to_string();
    }
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let addr = config
        .listen_addrs()
        .ok()
        .and_then(|addrs| addrs.first().copied())
        .map_or_else(|| "127.0.0.1:5050".to_string(), |a| a.to_string());
    format!(
        "{scheme}://{addr}{}",
        config.server.base_path.trim_end_matches('/')
    )
}

/// The configuration lines an operator pastes into Prosody or ejabberd.
pub fn hints(config: &Config, secret_path: &Path, secret: &str) -> String {
    let base = public_base_url(config);
    format!(
        r#"upslot generated a shared secret and saved it in {path}.
Paste one of these into your XMPP server's configuration (replace
upload.example.org with your upload component's name, and the URL with the
public HTTPS URL of this service if it sits behind a proxy):

-- Prosody 0.12+, built-in mod_http_file_share (recommended):
Component "upload.example.org" "http_file_share"
    http_file_share_base_url = "{base}/"
    http_file_share_secret = "{secret}"

-- Prosody, mod_http_upload_external from prosody-modules:
Component "upload.example.org" "http_upload_external"
    http_upload_external_base_url = "{base}/"
    http_upload_external_secret = "{secret}"
    http_upload_external_protocol = "v2"

# ejabberd, mod_http_upload:
modules:
  mod_http_upload:
    put_url: "{base}"
    get_url: "{base}"
    external_secret: "{secret}"
"#,
        path = secret_path.display(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn hints_name_the_url_and_secret() {
        let config = Config::load(None, &BTreeMap::new()).unwrap();
        let text = hints(&config, Path::new("/data/keys/upload.secret"), "abc123");
        assert!(text.contains("http_file_share_base_url = \"http://127.0.0.1:5050/\""));
        assert!(text.contains("http_upload_external_base_url = \"http://127.0.0.1:5050/\""));
        assert!(text.contains("put_url: \"http://127.0.0.1:5050\""));
        assert!(text.contains("external_secret: \"abc123\""));
    }
}
