//! The CLI's HTTP client for the management API and function calls.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;

use hearth_api::{ErrorBody, ErrorDetail};

pub const DEFAULT_ADDR: &str = "127.0.0.1:7700";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the hearth daemon at {addr} ({reason}); start it with `hearth serve`, or point --addr / HEARTH_ADDR at a running daemon")]
    Unreachable { addr: String, reason: String },
    #[error("{}", describe(.0))]
    Api(Box<ErrorDetail>),
    #[error("the daemon at {addr} answered {status} with a body that is not hearth's JSON: {body}; is something else listening there?")]
    BadResponse {
        addr: String,
        status: StatusCode,
        body: String,
    },
    #[error("invalid daemon address \"{0}\"; use HOST:PORT, for example 127.0.0.1:7700, or https://HOST:PORT")]
    BadAddr(String),
    #[error("cannot read the CA certificate {path} (HEARTH_CA_CERT): {reason}; give a PEM file")]
    BadCa { path: String, reason: String },
}

fn describe(e: &ErrorDetail) -> String {
    let mut out = e.message.clone();
    if let Some(d) = &e.details {
        if !d.traceback.trim().is_empty() {
            out.push_str("\n\n");
            out.push_str(d.traceback.trim_end());
            out.push('\n');
        }
    }
    if !e.hint.is_empty() {
        out.push_str(&format!("\nhint: {}", e.hint));
    }
    out
}

impl ClientError {
    pub fn detail(&self) -> Option<&ErrorDetail> {
        match self {
            ClientError::Api(d) => Some(d),
            _ => None,
        }
    }
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub struct Client {
    addr: String,
    base: String,
    /// Sent as `Authorization: Bearer` (the daemon names the actor of a
    /// release after the token).
    token: Option<String>,
    /// Where the token came from, or files that could not be read.
    token_note: String,
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// The TLS roots the CLI trusts: the system's, and the PEM certificates in
/// HEARTH_CA_CERT (for a daemon with a certificate of its own making).
fn tls_config(https: bool) -> Result<rustls::ClientConfig, ClientError> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    if https {
        for cert in rustls_native_certs_or_empty() {
            let _ = roots.add(cert);
        }
    }
    let ca = std::env::var_os("HEARTH_CA_CERT").filter(|p| https && !p.is_empty());
    if let Some(path) = ca {
        let bad = |reason: String| ClientError::BadCa {
            path: std::path::Path::new(&path).display().to_string(),
            reason,
        };
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(&path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(e.to_string()))?;
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::BadCa {
            path: String::new(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

fn rustls_native_certs_or_empty() -> Vec<rustls_pki_types::CertificateDer<'static>> {
    rustls_native_certs::load_native_certs().certs
}

impl Client {
    pub fn new(addr: &str) -> Result<Client, ClientError> {
        let trimmed = addr.trim().trim_end_matches('/');
        let (scheme, host) = match trimmed.strip_prefix("https://") {
            Some(host) => ("https", host),
            None => ("http", trimmed.strip_prefix("http://").unwrap_or(trimmed)),
        };
        if host.is_empty() || host.contains('/') || !host.contains(':') {
            return Err(ClientError::BadAddr(addr.to_owned()));
        }
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(scheme == "https")?)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Client {
            addr: host.to_owned(),
            base: format!("{scheme}://{host}"),
            token: None,
            token_note: String::new(),
            http: HyperClient::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Send `token` with every request; `note` says where it came from
    /// (or, with no token, where none could be read).
    pub fn with_token(mut self, token: Option<String>, note: String) -> Client {
        self.token = token;
        self.token_note = note;
        self
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ClientError> {
        self.send_with(method, path, body, &[]).await
    }

    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Response, ClientError> {
        let resp = self.request(method, path, body, headers).await?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| ClientError::Unreachable {
                addr: self.addr.clone(),
                reason: format!("connection lost while reading the answer: {e}"),
            })?
            .to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Send one request (JSON body, the caller's name) and return the
    /// answer with its body still to read.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|_| ClientError::BadAddr(self.addr.clone()))?;
        self.http
            .request(req)
            .await
            .map_err(|e| ClientError::Unreachable {
                addr: self.addr.clone(),
                reason: root_cause(&e),
            })
    }

    /// Turn a non-2xx answer into the daemon's error.
    pub fn check(&self, resp: Response) -> Result<Response, ClientError> {
        if resp.status.is_success() {
            return Ok(resp);
        }
        match serde_json::from_slice::<ErrorBody>(&resp.body) {
            Ok(mut e) => {
                if e.error.code == "unauthorized" && !self.token_note.is_empty() {
                    e.error.hint = format!("{} ({})", e.error.hint, self.token_note);
                }
                Err(ClientError::Api(Box::new(e.error)))
            }
            Err(_) => Err(self.bad_response(&resp)),
        }
    }

    /// Read a whole answer that is not a stream and turn a non-2xx into the
    /// daemon's error.
    async fn check_whole(
        &self,
        status: StatusCode,
        body: hyper::body::Incoming,
    ) -> Result<(), ClientError> {
        let bytes = body
            .collect()
            .await
            .map_err(|e| ClientError::Unreachable {
                addr: self.addr.clone(),
                reason: e.to_string(),
            })?
            .to_bytes();
        self.check(Response {
            status,
            headers: HeaderMap::new(),
            body: bytes,
        })?;
        Ok(())
    }

    fn bad_response(&self, resp: &Response) -> ClientError {
        ClientError::BadResponse {
            addr: self.addr.clone(),
            status: resp.status,
            body: String::from_utf8_lossy(&resp.body)
                .chars()
                .take(200)
                .collect(),
        }
    }

    fn decode<T: DeserializeOwned>(&self, resp: Response) -> Result<T, ClientError> {
        let resp = self.check(resp)?;
        serde_json::from_slice(&resp.body).map_err(|_| self.bad_response(&resp))
    }

    /// POST and read the answer as newline-delimited JSON, handing each
    /// line to `on_line` as it arrives (deploy progress). Returns the
    /// status of the response.
    pub async fn post_lines<B: Serialize>(
        &self,
        path: &str,
        body: &B,
        mut on_line: impl FnMut(serde_json::Value),
    ) -> Result<StatusCode, ClientError> {
        let bytes =
            serde_json::to_vec(body).map_err(|_| ClientError::BadAddr(self.addr.clone()))?;
        let unreachable = |reason: String| ClientError::Unreachable {
            addr: self.addr.clone(),
            reason,
        };
        let resp = self
            .request(
                Method::POST,
                path,
                Some(bytes),
                &[(hyper::header::ACCEPT.as_str(), "application/x-ndjson")],
            )
            .await?;
        let status = resp.status();
        let streaming = resp
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/x-ndjson"));
        let mut body = resp.into_body();
        if !streaming {
            self.check_whole(status, body).await?;
            return Ok(status);
        }
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| unreachable(format!("connection lost during the deploy: {e}")))?;
            if let Some(data) = frame.data_ref() {
                pending.extend_from_slice(data);
                while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=pos).collect();
                    if let Ok(value) = serde_json::from_slice(&line) {
                        on_line(value);
                    }
                }
            }
        }
        Ok(status)
    }

    /// GET a stream of server-sent events, handing each event's id and
    /// data to `on_event` as it arrives; `on_open` runs once the stream is
    /// open. Returns when the daemon ends the stream.
    pub async fn get_events(
        &self,
        path: &str,
        last_event_id: Option<u64>,
        on_open: impl FnOnce(),
        mut on_event: impl FnMut(Option<u64>, &str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let id = last_event_id.map(|i| i.to_string());
        let mut headers = vec![(hyper::header::ACCEPT.as_str(), "text/event-stream")];
        if let Some(id) = &id {
            headers.push(("last-event-id", id.as_str()));
        }
        let resp = self.request(Method::GET, path, None, &headers).await?;
        let status = resp.status();
        let unreachable = |reason: String| ClientError::Unreachable {
            addr: self.addr.clone(),
            reason,
        };
        let mut body = resp.into_body();
        if !status.is_success() {
            self.check_whole(status, body).await?;
            return Ok(());
        }
        on_open();
        let mut pending: Vec<u8> = Vec::new();
        let (mut event_id, mut data) = (None::<u64>, String::new());
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| unreachable(format!("connection lost: {e}")))?;
            let Some(chunk) = frame.data_ref() else {
                continue;
            };
            pending.extend_from_slice(chunk);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\n', '\r']);
                if line.is_empty() {
                    if !data.is_empty() {
                        on_event(event_id, &data)?;
                    }
                    data.clear();
                } else if let Some(v) = line.strip_prefix("id:") {
                    event_id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
        }
        Ok(())
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self.send(Method::GET, path, None).await?;
        self.decode(resp)
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self.send(Method::DELETE, path, None).await?;
        self.decode(resp)
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send_json(Method::PUT, path, body).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send_json(Method::POST, path, body).await
    }

    /// A request with a JSON body, its JSON answer decoded.
    async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes =
            serde_json::to_vec(body).map_err(|_| ClientError::BadAddr(self.addr.clone()))?;
        let resp = self.send(method, path, Some(bytes)).await?;
        self.decode(resp)
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
