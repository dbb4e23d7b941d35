//! Requests to a running [`Upslot`], one per thing a client or an XMPP
//! server does: a signed PUT of every token family, GET and HEAD,
//! Metronome's signed DELETE, the admin erase and the admin access report.
//! Paths are given as they travel in the URL (`wire`, without the leading
//! `/`); where the MAC covers something else (percent-escapes, a base
//! prefix) the test says so with [`Put::decoded`].

use reqwest::{Client, RequestBuilder, Response, StatusCode, header};

use super::tokens::{v1_mac, v2_mac};
use super::{SECRET, Upslot, client};

/// How a PUT proves it may fill its slot: one variant per token family.
#[derive(Debug, Clone)]
pub enum Family {
    /// `?v=`: the MAC of `path + " " + size` (Prosody's default, ejabberd).
    V1,
    /// `?v2=`: the MAC of `path \0 size \0 content-type`.
    V2,
    /// `?token=`: Metronome, the v2 message.
    Token,
    /// `Authorization: Bearer` with this JWT (Prosody's mod_http_file_share).
    Bearer(String),
}

/// A signed PUT being put together; [`Put::request`] builds it,
/// [`Put::send`] and [`Put::status`] also send it.
#[derive(Debug, Clone)]
pub struct Put {
    family: Family,
    wire: String,
    decoded: Option<String>,
    body: Vec<u8>,
    content_type: Option<String>,
    signed_size: Option<u64>,
    secret: String,
    http: Option<Client>,
}

impl Put {
    /// A PUT of `body` to `wire`, signed as `family` with the test secret
    /// for the same path, the body's length and no Content-Type.
    pub fn new(family: Family, wire: &str, body: impl Into<Vec<u8>>) -> Put {
        Put {
            family,
            wire: wire.to_string(),
            decoded: None,
            body: body.into(),
            content_type: None,
            signed_size: None,
            secret: SECRET.to_string(),
            http: None,
        }
    }

    /// A v1-signed PUT of `body` to `wire`.
    pub fn v1(wire: &str, body: impl Into<Vec<u8>>) -> Put {
        Put::new(Family::V1, wire, body)
    }

    /// A v2-signed PUT of `body` to `wire`.
    pub fn v2(wire: &str, body: impl Into<Vec<u8>>) -> Put {
        Put::new(Family::V2, wire, body)
    }

    /// A Metronome `token=` PUT of `body` to `wire`.
    pub fn token(wire: &str, body: impl Into<Vec<u8>>) -> Put {
        Put::new(Family::Token, wire, body)
    }

    /// A PUT of `body` to `wire` carrying the JWT `token` as a Bearer token.
    pub fn bearer(wire: &str, token: &str, body: impl Into<Vec<u8>>) -> Put {
        Put::new(Family::Bearer(token.to_string()), wire, body)
    }

    /// The path the MAC covers, when it is not `wire` itself: `wire`
    /// percent-decoded once, with the base prefix removed (or, to test a
    /// refusal, another path altogether).
    pub fn decoded(mut self, decoded: &str) -> Put {
        self.decoded = Some(decoded.to_string());
        self
    }

    /// Sends `Content-Type: content_type`; v2 and `token=` sign it (without
    /// it they sign `application/octet-stream`).
    pub fn content_type(mut self, content_type: &str) -> Put {
        self.content_type = Some(content_type.to_string());
        self
    }

    /// Signs for `size` bytes whatever the body's length.
    pub fn signed_size(mut self, size: u64) -> Put {
        self.signed_size = Some(size);
        self
    }

    /// Signs with `secret` instead of the test secret.
    pub fn secret(mut self, secret: &str) -> Put {
        self.secret = secret.to_string();
        self
    }

    /// Sends through `http` (another source address, HTTP/2…) instead of [`client`].
    pub fn via(mut self, http: &Client) -> Put {
        self.http = Some(http.clone());
        self
    }

    /// The query key and the MAC it carries; `None` for a Bearer token.
    fn signature(&self) -> Option<(&'static str, String)> {
        let decoded = self.decoded.as_deref().unwrap_or(&self.wire);
        let size = self.signed_size.unwrap_or(self.body.len() as u64);
        let content_type = self
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        match &self.family {
            Family::V1 => Some(("v", v1_mac(&self.secret, decoded, size))),
            Family::V2 => Some(("v2", v2_mac(&self.secret, decoded, size, content_type))),
            Family::Token => Some(("token", v2_mac(&self.secret, decoded, size, content_type))),
            Family::Bearer(_) => None,
        }
    }

    /// The MAC this PUT carries, hex (panics for a Bearer token).
    pub fn mac(&self) -> String {
        self.signature().expect("a Bearer PUT carries no MAC").1
    }

    /// The signed query, `v=HEX`, `v2=HEX` or `token=HEX`; empty for a Bearer token.
    pub fn query(&self) -> String {
        self.signature()
            .map(|(key, mac)| format!("{key}={mac}"))
            .unwrap_or_default()
    }

    /// The request, not sent yet (for more headers or another body).
    pub fn request(self, server: &Upslot) -> RequestBuilder {
        let query = self.query();
        let url = if query.is_empty() {
            server.url(&self.wire)
        } else {
            server.url(&format!("{}?{query}", self.wire))
        };
        let http = self.http.unwrap_or_else(client);
        let mut request = http.put(url);
        if let Family::Bearer(token) = &self.family {
            request = request.bearer_auth(token);
        }
        if let Some(content_type) = &self.content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        request.body(self.body)
    }

    /// Sends the request; the answer.
    pub async fn send(self, server: &Upslot) -> Response {
        self.request(server).send().await.expect("PUT")
    }

    /// Sends the request; the answer's status.
    pub async fn status(self, server: &Upslot) -> StatusCode {
        self.send(server).await.status()
    }
}

/// A PUT of `body` to `path` with a v1 token, not sent yet (for more headers).
pub fn put_request(server: &Upslot, path: &str, body: impl Into<Vec<u8>>) -> RequestBuilder {
    Put::v1(path, body).request(server)
}

/// PUTs `body` to `path` with a v1 token; the status of the answer.
pub async fn put(server: &Upslot, path: &str, body: impl Into<Vec<u8>>) -> StatusCode {
    Put::v1(path, body).status(server).await
}

/// A GET of `wire` on the public listener, not sent yet (for `Range` and conditionals).
pub fn get_request(server: &Upslot, wire: &str) -> RequestBuilder {
    client().get(server.url(wire))
}

/// GETs `wire` on the public listener; the answer.
pub async fn get(server: &Upslot, wire: &str) -> Response {
    get_request(server, wire).send().await.expect("GET")
}

/// GETs `wire` on the public listener with extra `headers` (`Range`,
/// conditionals, `Origin`…); the answer.
pub async fn get_with<const N: usize>(
    server: &Upslot,
    wire: &str,
    headers: [(header::HeaderName, &str); N],
) -> Response {
    let mut request = get_request(server, wire);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.expect("GET")
}

/// A HEAD of `wire` on the public listener, not sent yet.
pub fn head_request(server: &Upslot, wire: &str) -> RequestBuilder {
    client().head(server.url(wire))
}

/// HEADs `wire` on the public listener; the answer.
pub async fn head(server: &Upslot, wire: &str) -> Response {
    head_request(server, wire).send().await.expect("HEAD")
}

/// Metronome's signed DELETE through `http` of the file at `wire` whose
/// decoded path is `decoded`: `?token=` [`delete_mac`](super::delete_mac)`(decoded, delete_secret)`.
pub fn signed_delete(
    http: &Client,
    server: &Upslot,
    wire: &str,
    decoded: &str,
    delete_secret: &str,
) -> RequestBuilder {
    let mac = super::tokens::delete_mac(decoded, delete_secret);
    http.delete(server.url(&format!("{wire}?token={mac}")))
}

/// `DELETE /owners/{jid_on_wire}?ts={ts}&sig={sig}` on the admin listener,
/// not sent: `jid_on_wire` as it stands in the path (raw or
/// percent-encoded), `sig` usually [`erase_sig`](super::erase_sig) of the decoded JID and `ts`.
pub fn erase_request(server: &Upslot, jid_on_wire: &str, ts: i64, sig: &str) -> RequestBuilder {
    client().delete(format!(
        "{}/owners/{jid_on_wire}?ts={ts}&sig={sig}",
        server.admin_url
    ))
}

/// `GET /owners/{jid_on_wire}?ts={ts}&sig={sig}` on the admin listener (the
/// right-of-access report), not sent: `sig` usually
/// [`access_sig`](super::access_sig) of the decoded JID and `ts`.
pub fn access_request(server: &Upslot, jid_on_wire: &str, ts: i64, sig: &str) -> RequestBuilder {
    client().get(format!(
        "{}/owners/{jid_on_wire}?ts={ts}&sig={sig}",
        server.admin_url
    ))
}
