//! Outgoing email: printed to the log by default (Django's console backend), sent over SMTP when
//! configured, or kept in memory for tests (Django's locmem backend).

use std::sync::Arc;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use parking_lot::Mutex;

use crate::config::{Config, EmailBackend};

#[derive(Clone, Debug)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[derive(Clone)]
pub enum Mailer {
    Console,
    Memory(Arc<Mutex<Vec<Email>>>),
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
}

impl Mailer {
    pub fn from_config(config: &Config) -> anyhow::Result<Mailer> {
        Ok(match config.email_backend {
            EmailBackend::Console => Mailer::Console,
            EmailBackend::Memory => Mailer::Memory(Arc::default()),
            EmailBackend::Smtp => {
                let host = config.smtp_host.as_deref().unwrap_or("localhost");
                let mut builder = match config.smtp_security.as_str() {
                    "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
                    "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
                    _ => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
                }
                .port(config.smtp_port);
                if let (Some(user), Some(pass)) = (&config.smtp_username, &config.smtp_password) {
                    builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
                }
                let from = config
                    .email_from
                    .parse()
                    .map_err(|e| anyhow::anyhow!("invalid setting `email_from`: {e}"))?;
                Mailer::Smtp {
                    transport: builder.build(),
                    from,
                }
            }
        })
    }

    /// Sends in the background: a slow mail server must not hold up the HTTP answer, and the
    /// answer must not reveal whether an address exists.
    pub fn send(&self, email: Email) {
        match self {
            Mailer::Console => {
                tracing::info!(to = %email.to, subject = %email.subject, "email (console backend)\n{}", email.body);
                println!(
                    "---- email to {} ----\nSubject: {}\n\n{}\n---- end of email ----",
                    email.to, email.subject, email.body
                );
            }
            Mailer::Memory(outbox) => outbox.lock().push(email),
            Mailer::Smtp { transport, from } => {
                let transport = transport.clone();
                let from = from.clone();
                tokio::spawn(async move {
                    let to: Mailbox = match email.to.parse() {
                        Ok(to) => to,
                        Err(err) => return tracing::warn!(%err, "cannot send email: bad recipient"),
                    };
                    let message = Message::builder()
                        .from(from)
                        .to(to)
                        .subject(email.subject)
                        .body(email.body);
                    match message {
                        Ok(message) => {
                            if let Err(err) = transport.send(message).await {
                                tracing::warn!(%err, "SMTP send failed");
                            }
                        }
                        Err(err) => tracing::warn!(%err, "cannot build email"),
                    }
                });
            }
        }
    }

    /// Mail kept by the memory backend (empty for the others).
    pub fn outbox(&self) -> Vec<Email> {
        match self {
            Mailer::Memory(outbox) => outbox.lock().clone(),
            _ => Vec::new(),
        }
    }
}
