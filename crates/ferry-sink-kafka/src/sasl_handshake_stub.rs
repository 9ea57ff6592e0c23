//! Test only: a loopback listener that answers **only the Kafka SASL handshake** and captures
//! OAUTHBEARER tokens. It is not a broker: after a login it closes the connection, so
//! librdkafka connects and logs in again (with whatever token it holds then), which shows
//! which tokens reached "the broker" and when. No broker that accepts OAUTHBEARER runs here
//! (librdkafka's mock cluster implements no SASL; tansu 0.6 offers SCRAM and PLAIN only), so
//! delivery through OAUTHBEARER is not tested.
//!
//! Requests handled: ApiVersions (any version up to 3), SaslHandshake v0-1, SaslAuthenticate
//! v0-1 (the versions advertised, so librdkafka uses no flexible SASL requests).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

const API_VERSIONS: i16 = 18;
const SASL_HANDSHAKE: i16 = 17;
const SASL_AUTHENTICATE: i16 = 36;
const METADATA: i16 = 3;

/// The listener and the tokens it has seen, in order.
pub(crate) struct SaslHandshakeStub {
    pub(crate) address: String,
    pub(crate) tokens: Arc<Mutex<Vec<String>>>,
}

impl SaslHandshakeStub {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let tokens = Arc::new(Mutex::new(Vec::new()));
        let seen = tokens.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &seen);
                });
            }
        });
        Self { address, tokens }
    }

    pub(crate) fn tokens(&self) -> Vec<String> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One connection: answers until a login, then closes it.
fn serve(mut stream: TcpStream, seen: &Mutex<Vec<String>>) -> std::io::Result<()> {
    loop {
        let mut size = [0; 4];
        stream.read_exact(&mut size)?;
        let mut request = vec![0; usize::try_from(i32::from_be_bytes(size)).unwrap_or(0)];
        stream.read_exact(&mut request)?;
        let api_key = i16::from_be_bytes([request[0], request[1]]);
        let version = i16::from_be_bytes([request[2], request[3]]);
        let correlation = &request[4..8];
        // Request header v1: client id (nullable string) follows; SASL requests here are
        // not flexible, so the body starts right after it.
        let client_id_len = i16::from_be_bytes([request[8], request[9]]);
        let body = &request[10 + usize::try_from(client_id_len.max(0)).unwrap_or(0)..];
        let mut response = correlation.to_vec();
        match api_key {
            API_VERSIONS => api_versions(version, &mut response),
            SASL_HANDSHAKE => {
                response.extend(0i16.to_be_bytes());
                response.extend(1i32.to_be_bytes());
                put_string(&mut response, "OAUTHBEARER");
            }
            SASL_AUTHENTICATE => {
                let len =
                    usize::try_from(i32::from_be_bytes([body[0], body[1], body[2], body[3]])).unwrap_or(0);
                let message = String::from_utf8_lossy(&body[4..4 + len]).into_owned();
                // RFC 7628: "n,,\x01auth=Bearer <token>\x01...\x01\x01".
                if let Some(token) = message
                    .split('\u{1}')
                    .find_map(|part| part.strip_prefix("auth=Bearer "))
                {
                    seen.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(token.to_owned());
                }
                response.extend(0i16.to_be_bytes()); // error code
                response.extend((-1i16).to_be_bytes()); // error message: null
                response.extend(0i32.to_be_bytes()); // auth bytes: empty
                if version >= 1 {
                    response.extend(0i64.to_be_bytes()); // session lifetime: none
                }
                write_frame(&mut stream, &response)?;
                // Logged in: hang up, so librdkafka logs in again later.
                return Ok(());
            }
            _ => return Ok(()),
        }
        write_frame(&mut stream, &response)?;
    }
}

fn api_versions(version: i16, response: &mut Vec<u8>) {
    let apis = [
        (METADATA, 0i16, 1i16),
        (SASL_HANDSHAKE, 0, 1),
        (API_VERSIONS, 0, 3),
        (SASL_AUTHENTICATE, 0, 1),
    ];
    response.extend(0i16.to_be_bytes());
    if version >= 3 {
        // Flexible body (the response header stays v0 for ApiVersions).
        response.push(u8::try_from(apis.len() + 1).unwrap_or(0));
        for (key, min, max) in apis {
            response.extend(key.to_be_bytes());
            response.extend(min.to_be_bytes());
            response.extend(max.to_be_bytes());
            response.push(0); // tagged fields
        }
        response.extend(0i32.to_be_bytes()); // throttle time
        response.push(0); // tagged fields
    } else {
        response.extend(i32::try_from(apis.len()).unwrap_or(0).to_be_bytes());
        for (key, min, max) in apis {
            response.extend(key.to_be_bytes());
            response.extend(min.to_be_bytes());
            response.extend(max.to_be_bytes());
        }
        if version >= 1 {
            response.extend(0i32.to_be_bytes());
        }
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend(i16::try_from(s.len()).unwrap_or(0).to_be_bytes());
    out.extend(s.as_bytes());
}

fn write_frame(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    stream.write_all(&i32::try_from(payload.len()).unwrap_or(0).to_be_bytes())?;
    stream.write_all(payload)
}
