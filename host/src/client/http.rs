//! The HTTP side of the client: one `reqwest` client with a timeout on every
//! request, the bearer token, and the mapping of transport failures and API
//! error bodies to [`ClientError`].

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

use super::error::ClientError;
use super::tls::TlsFiles;

/// A connection to one server.
pub struct Client {
    base: String,
    token: Option<String>,
    timeout: Duration,
    http: reqwest::Client,
}

impl Client {
    /// `server` is the base URL, e.g. `http://127.0.0.1:8080`.
    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `tls`: the CA an `https://` server must chain to (instead of the
    /// system's roots) and a client certificate to show it.
    pub fn new(
        server: &str,
        token: Option<String>,
        timeout: Duration,
        tls: TlsFiles<'_>,
    ) -> Result<Client, ClientError> {
        let base = server.trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| ClientError::input(format!("invalid --server URL `{base}`: {e}")))?;
        if parsed.scheme() != "http" && parsed.scheme() != "https" {
            return Err(ClientError::input(format!(
                "invalid --server URL `{base}`: use http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)));
        let http = super::tls::configure(http, tls)?;
        let http = http
            .build()
            .map_err(|e| ClientError::input(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            base,
            token: token.filter(|t| !t.is_empty()),
            timeout,
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (which starts with `/`), with the token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends `req` and returns the JSON body of a 2xx answer (`null` for an
    /// empty one, e.g. 204), or the API's error.
    pub async fn send(&self, req: RequestBuilder) -> Result<Value, ClientError> {
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        self.json_of(resp).await
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.request(Method::GET, path)).await
    }

    /// Every item of the list at `path` (its array `field`), following
    /// `next_after` across pages; answers `{field: [...]}`.
    pub async fn get_all(&self, path: &str, field: &str) -> Result<Value, ClientError> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut req = self.request(Method::GET, path).query(&[("limit", "10000")]);
            if let Some(a) = &after {
                req = req.query(&[("after", a.as_str())]);
            }
            let mut page = self.send(req).await?;
            if let Some(arr) = page.get_mut(field).and_then(Value::as_array_mut) {
                items.append(arr);
            }
            match page.get("next_after").and_then(Value::as_str) {
                Some(next) if Some(next) != after.as_deref() => after = Some(next.to_string()),
                _ => break,
            }
        }
        let mut out = serde_json::Map::new();
        out.insert(field.to_string(), Value::Array(items));
        Ok(Value::Object(out))
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(self.request(Method::PATCH, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.request(Method::DELETE, path)).await
    }

    async fn json_of(&self, resp: Response) -> Result<Value, ClientError> {
        let status = resp.status();
        let url = resp.url().to_string();
        let text = resp.text().await.map_err(|e| self.transport(e))?;
        let body: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return match body {
                Some(v) => Ok(v),
                None if text.trim().is_empty() => Ok(Value::Null),
                None => Err(ClientError::BadResponse {
                    url,
                    status: status.as_u16(),
                    detail: format!("not JSON: {}", snippet(&text)),
                }),
            };
        }
        match body.as_ref().and_then(|b| b.get("error")) {
            Some(err) => Err(ClientError::Api {
                status: status.as_u16(),
                code: err["code"].as_str().unwrap_or("unknown").to_string(),
                message: err["message"].as_str().unwrap_or("(no message)").to_string(),
            }),
            None => Err(ClientError::BadResponse {
                url,
                status: status.as_u16(),
                detail: if text.trim().is_empty() {
                    "empty body (is this a sluice server?)".to_string()
                } else {
                    snippet(&text)
                },
            }),
        }
    }

    /// Maps a reqwest failure: refused/unresolvable → unreachable, slow →
    /// timeout, anything else → transport.
    fn transport(&self, e: reqwest::Error) -> ClientError {
        let url = self.base.clone();
        if e.is_timeout() {
            return ClientError::Timeout {
                url,
                after: self.timeout,
            };
        }
        let reason = root_cause(&e);
        if e.is_connect() {
            ClientError::Unreachable { url, reason }
        } else {
            ClientError::Transport { url, reason }
        }
    }
}

/// The innermost cause, worded for people ("connection refused").
fn root_cause(e: &reqwest::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    let mut io_kind = None;
    while let Some(next) = cur.source() {
        if let Some(io) = next.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        cur = next;
    }
    match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_string(),
        Some(std::io::ErrorKind::ConnectionReset) => "connection reset".to_string(),
        _ => cur.to_string(),
    }
}

fn snippet(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

/// Percent-encodes one path segment (stream, plugin and pipeline names).
pub fn seg(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("orders-1.v2"), "orders-1.v2");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn only_http_and_https_urls() {
        let t = Duration::from_secs(1);
        assert!(Client::new("http://127.0.0.1:1/", None, t, TlsFiles::default()).is_ok());
        assert!(Client::new("https://x", None, t, TlsFiles::default()).is_ok());
        assert!(matches!(
            Client::new("ftp://x", None, t, TlsFiles::default()),
            Err(ClientError::Input(_))
        ));
        assert!(matches!(
            Client::new("not a url", None, t, TlsFiles::default()),
            Err(ClientError::Input(_))
        ));
        let missing = std::path::Path::new("/nonexistent/ca.pem");
        assert!(matches!(
            Client::new(
                "https://x",
                None,
                t,
                TlsFiles {
                    ca: Some(missing),
                    ..TlsFiles::default()
                }
            ),
            Err(ClientError::Input(_))
        ));
    }
}
