//! TLS for health checks made from this machine: rustls with the bundled
//! web roots, or with `health.ca`, which may name authorities to trust or
//! the server's own certificate (self-signed, `CA:TRUE` or not): that one
//! is accepted exactly, for the names it carries and while it is valid,
//! and nothing else is. A refused certificate is recorded as a `Refusal`,
//! worded here, so no library's text reaches the user.

use std::sync::{Arc, Mutex};

use super::certificate;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

/// Why a certificate was refused, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Expired {
        on: String,
    },
    NotYetValid {
        from: String,
    },
    /// Issued for other names than the host checked.
    WrongName {
        host: String,
        names: Vec<String>,
    },
    /// Signed by itself, and not the one `health.ca` names.
    SelfSigned,
    /// Signed by an authority not trusted here.
    UnknownIssuer,
    /// Any other refusal, already in words.
    Other(&'static str),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Expired { on } => write!(f, "the site's certificate expired on {on}: renew it"),
            Refusal::NotYetValid { from } => write!(
                f,
                "the site's certificate is valid only from {from}: check this machine's clock, or the certificate's dates"
            ),
            Refusal::WrongName { host, names } if names.is_empty() => write!(
                f,
                "the site's certificate is not issued for `{host}`: check `deploy.health.url`, or issue one for that name"
            ),
            Refusal::WrongName { host, names } => write!(
                f,
                "the site's certificate is issued for {}, not `{host}`: check `deploy.health.url`, or issue one for that name",
                names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            ),
            Refusal::SelfSigned => f.write_str(
                "the site's certificate is self-signed: set `deploy.health.ca` to that certificate (PEM) to trust exactly it",
            ),
            Refusal::UnknownIssuer => f.write_str(
                "the site's certificate is signed by an issuer this check does not trust: set `deploy.health.ca` to your authority's certificate (PEM)",
            ),
            Refusal::Other(why) => write!(f, "the site's certificate was refused: {why}"),
        }
    }
}

/// Where a check's verifier leaves its refusal, read after a failed GET.
pub type Slot = Arc<Mutex<Option<Refusal>>>;

/// The connector of a check's agent: TCP, then TLS with `Verifier`.
pub fn connector(
    ca: Option<&[CertificateDer<'static>]>,
    slot: Slot,
) -> Result<impl Connector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match ca {
        Some(certs) => {
            roots.add_parsable_certificates(certs.iter().cloned());
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    // A file of only end-entity certificates has no anchor: they are pinned.
    let chains = (!roots.is_empty())
        .then(|| {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()
        })
        .transpose()
        .map_err(|e| format!("the certificates to trust cannot be used: {e}"))?;
    let verifier = Verifier {
        chains,
        pinned: ca.map(<[_]>::to_vec).unwrap_or_default(),
        provider: provider.clone(),
        slot,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS cannot be set up: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(
        ().chain(ureq::unversioned::transport::TcpConnector::default())
            .chain(Tls {
                config: Arc::new(config),
            }),
    )
}

#[derive(Debug)]
struct Verifier {
    /// Chains to the roots (`health.ca`'s, or the web's).
    chains: Option<Arc<WebPkiServerVerifier>>,
    /// `health.ca`'s certificates: one presented as it is is accepted.
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
    slot: Slot,
}

impl Verifier {
    fn refuse(&self, refusal: Refusal) -> rustls::Error {
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some(refusal);
        }
        rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
    }

    /// The pinned certificate, presented: its names and dates decide.
    fn pinned(
        &self,
        end_entity: &CertificateDer<'_>,
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| self.refuse(Refusal::Other("it cannot be read")))?;
        if let Err(e) = cert.verify_is_valid_for_subject_name(name) {
            let names = match e {
                webpki::Error::CertNotValidForName(context) => plain_names(context.presented),
                _ => Vec::new(),
            };
            return Err(self.refuse(Refusal::WrongName {
                host: name.to_str().into_owned(),
                names,
            }));
        }
        let Some(fields) = certificate::fields(end_entity) else {
            return Err(self.refuse(Refusal::Other("its dates cannot be read")));
        };
        let now = now.as_secs() as i64;
        if now > fields.not_after {
            return Err(self.refuse(Refusal::Expired {
                on: day(fields.not_after),
            }));
        }
        if now < fields.not_before {
            return Err(self.refuse(Refusal::NotYetValid {
                from: day(fields.not_before),
            }));
        }
        Ok(ServerCertVerified::assertion())
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return self.pinned(end_entity, name, now);
        }
        let self_signed = certificate::fields(end_entity).is_some_and(|f| f.issuer == f.subject);
        let Some(chains) = &self.chains else {
            return Err(self.refuse(if self_signed {
                Refusal::SelfSigned
            } else {
                Refusal::UnknownIssuer
            }));
        };
        chains
            .verify_server_cert(end_entity, intermediates, name, ocsp, now)
            .map_err(|e| {
                let refusal = match e {
                    rustls::Error::InvalidCertificate(c) => refusal(c, name, self_signed),
                    _ => Refusal::Other("the TLS library could not check it"),
                };
                self.refuse(refusal)
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A refusal of the chain's check, in words.
fn refusal(e: CertificateError, name: &ServerName<'_>, self_signed: bool) -> Refusal {
    let at = |t: UnixTime| day(t.as_secs() as i64);
    match e {
        CertificateError::ExpiredContext { not_after, .. } => {
            Refusal::Expired { on: at(not_after) }
        }
        CertificateError::NotValidYetContext { not_before, .. } => Refusal::NotYetValid {
            from: at(not_before),
        },
        CertificateError::Expired => Refusal::Expired {
            on: "a past date".into(),
        },
        CertificateError::NotValidYet => Refusal::NotYetValid {
            from: "a later date".into(),
        },
        CertificateError::NotValidForNameContext { presented, .. } => Refusal::WrongName {
            host: name.to_str().into_owned(),
            names: plain_names(presented),
        },
        CertificateError::NotValidForName => Refusal::WrongName {
            host: name.to_str().into_owned(),
            names: Vec::new(),
        },
        _ if self_signed => Refusal::SelfSigned,
        CertificateError::UnknownIssuer => Refusal::UnknownIssuer,
        CertificateError::BadSignature => Refusal::Other("its signature does not verify"),
        CertificateError::Revoked => Refusal::Other("it was revoked"),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            Refusal::Other("it is not for a TLS server")
        }
        _ => Refusal::Other("it is not valid for this site"),
    }
}

/// The DNS names and addresses of a certificate as the TLS library lists
/// them (`DnsName("a.example")`, `IpAddress(127.0.0.1)`), as plain names;
/// other kinds are left out.
fn plain_names(presented: Vec<String>) -> Vec<String> {
    presented
        .iter()
        .filter_map(|p| {
            let inner = p
                .strip_prefix("DnsName(")
                .or_else(|| p.strip_prefix("IpAddress("))?
                .strip_suffix(')')?;
            Some(inner.trim_matches('"').to_string())
        })
        .collect()
}

/// A day, as `2026-12-03`.
fn day(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| "an unreadable date".into())
}

/// TLS over the chained TCP transport, with the check's own config.
#[derive(Debug)]
struct Tls {
    config: Arc<ClientConfig>,
}

impl<In: Transport> Connector<In> for Tls {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details.uri.host().unwrap_or_default();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let name = ServerName::try_from(host)
            .map_err(|_| ureq::Error::Tls("the URL's host is not a name TLS can check"))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        use std::io::Write;
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        use std::io::Read;
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_in_words() {
        let all = [
            Refusal::Expired {
                on: "2020-01-02".into(),
            },
            Refusal::NotYetValid {
                from: "2031-01-01".into(),
            },
            Refusal::WrongName {
                host: "127.0.0.1".into(),
                names: vec!["other.example".into()],
            },
            Refusal::WrongName {
                host: "127.0.0.1".into(),
                names: Vec::new(),
            },
            Refusal::SelfSigned,
            Refusal::UnknownIssuer,
            Refusal::Other("it was revoked"),
        ];
        assert_eq!(
            plain_names(vec![
                "DnsName(\"a.example\")".into(),
                "IpAddress(127.0.0.1)".into(),
                "DirectoryName".into()
            ]),
            ["a.example", "127.0.0.1"]
        );
        let text: Vec<String> = all.iter().map(Refusal::to_string).collect();
        insta::assert_snapshot!(text.join("\n"), @r"
        the site's certificate expired on 2020-01-02: renew it
        the site's certificate is valid only from 2031-01-01: check this machine's clock, or the certificate's dates
        the site's certificate is issued for `other.example`, not `127.0.0.1`: check `deploy.health.url`, or issue one for that name
        the site's certificate is not issued for `127.0.0.1`: check `deploy.health.url`, or issue one for that name
        the site's certificate is self-signed: set `deploy.health.ca` to that certificate (PEM) to trust exactly it
        the site's certificate is signed by an issuer this check does not trust: set `deploy.health.ca` to your authority's certificate (PEM)
        the site's certificate was refused: it was revoked
        ");
    }
}
