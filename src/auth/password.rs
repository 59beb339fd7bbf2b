//! Password hashing: argon2id for everything we write; Django's `pbkdf2_sha256$…` accepted on
//! read so users imported from Django keep their password (and are re-hashed at next login).
//!
//! Hashing is deliberately slow, so it always runs on threads of its own at the lowest
//! scheduling class, never on the async workers that carry sockets.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use subtle::ConstantTimeEq;

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid { needs_rehash: bool },
    Invalid,
}

/// Hashing threads: half the cores, so a login storm queues for hashing instead of taking
/// every core from the workers that deliver messages (and each argon2 run holds 19 MiB, so the
/// thread count also bounds memory). Their own threads, not tokio's blocking pool, because their
/// scheduling class is lowered for good (see [`yield_cpu_to_everything_else`]).
struct HashingThreads {
    jobs: mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

fn hashing_threads() -> &'static HashingThreads {
    static THREADS: OnceLock<HashingThreads> = OnceLock::new();
    THREADS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..(cores / 2).max(1) {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("causerie-hash-{i}"))
                .spawn(move || {
                    yield_cpu_to_everything_else();
                    loop {
                        // The lock is held only while waiting for the next job.
                        let next = queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).recv();
                        let Ok(job) = next else { return };
                        // A panicking job drops its answer channel (the caller sees an error);
                        // the thread lives on.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "could not start a password-hashing thread");
            }
        }
        HashingThreads { jobs }
    })
}

async fn on_hashing_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    hashing_threads()
        .jobs
        .send(Box::new(move || {
            let _ = answer.send(work());
        }))
        .map_err(|_| anyhow::anyhow!("no password-hashing thread is running"))?;
    answered.await.map_err(|_| anyhow::anyhow!("password hashing failed"))
}

/// Hashing threads run under SCHED_IDLE: they get a core only when nothing else wants it, and
/// any other thread that wakes up takes the core from them at once. Under nice 19 a waking
/// socket or database thread could wait for the hash's time slice to end (measured: message
/// p99 2.3–2.9× higher during a 16-login storm; see docs/benchmarks.md). Failing that, nice 19.
fn yield_cpu_to_everything_else() {
    let idle = thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        thread_priority::ThreadPriority::Min,
        thread_priority::ThreadSchedulePolicy::Normal(thread_priority::NormalThreadSchedulePolicy::Idle),
    );
    if idle.is_err() {
        // On Linux a thread id names the thread alone; failure only means normal priority.
        let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
    }
}

/// Hashes with argon2id on a hashing thread.
pub async fn hash(password: String) -> anyhow::Result<String> {
    on_hashing_thread(move || hash_now(&password)).await?
}

pub fn hash_now(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

/// Verifies on the blocking pool. `None` as the stored hash still spends the time of a real
/// check, so a login for an unknown email takes as long as one with a wrong password.
pub async fn verify(password: String, stored: Option<String>) -> anyhow::Result<Verdict> {
    on_hashing_thread(move || match stored {
        Some(stored) => verify_now(&password, &stored),
        None => {
            let _ = verify_now(&password, dummy_hash());
            Verdict::Invalid
        }
    })
    .await
}

pub fn verify_now(password: &str, stored: &str) -> Verdict {
    if let Some(rest) = stored.strip_prefix("pbkdf2_sha256$") {
        return match verify_django_pbkdf2(password, rest) {
            true => Verdict::Valid { needs_rehash: true },
            false => Verdict::Invalid,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        // Unusable hashes (Django's "!…" for set_unusable_password) never match.
        return Verdict::Invalid;
    };
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Verdict::Valid {
            needs_rehash: parsed.algorithm.as_str() != "argon2id",
        },
        Err(_) => Verdict::Invalid,
    }
}

/// `iterations$salt$base64(hash)`, as Django's PBKDF2PasswordHasher writes it.
fn verify_django_pbkdf2(password: &str, encoded: &str) -> bool {
    let mut parts = encoded.splitn(3, '$');
    let (Some(iterations), Some(salt), Some(expected)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(iterations) = iterations.parse::<u32>() else {
        return false;
    };
    if iterations == 0 || iterations > 10_000_000 {
        return false;
    }
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(expected) else {
        return false;
    };
    if expected.is_empty() || expected.len() > 64 {
        return false;
    }
    let mut derived = vec![0u8; expected.len()];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut derived);
    derived.ct_eq(&expected).into()
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_now("causerie-timing-equaliser").expect("argon2 hashes a constant"))
}

/// Writes a Django-format hash; used by tests and by the import path to prove compatibility.
pub fn django_pbkdf2_hash(password: &str, salt: &str, iterations: u32) -> String {
    let mut derived = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut derived);
    let encoded = base64::engine::general_purpose::STANDARD.encode(derived);
    format!("pbkdf2_sha256${iterations}${salt}${encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip() {
        let h = hash_now("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert_eq!(verify_now("correct horse", &h), Verdict::Valid { needs_rehash: false });
        assert_eq!(verify_now("wrong horse", &h), Verdict::Invalid);
    }

    #[test]
    fn django_hash_verifies_and_asks_for_rehash() {
        // Computed independently with Python's hashlib.pbkdf2_hmac in Django's format
        // (Django 5's default of 870000 iterations).
        let h = "pbkdf2_sha256$870000$abcdefghijkl$quFbYu0ZbdV8K89CPDeY3fbmhgpY9ujctKZZezZuffk=";
        assert_eq!(verify_now("s3cret-pass", h), Verdict::Valid { needs_rehash: true });
        assert_eq!(verify_now("other", h), Verdict::Invalid);
        assert_eq!(verify_now("x", "pbkdf2_sha256$bad"), Verdict::Invalid);
        assert_eq!(verify_now("x", "!unusable"), Verdict::Invalid);
    }

    #[test]
    fn pbkdf2_known_vector() {
        // RFC 7914 §11 PBKDF2-HMAC-SHA256 test vector: P="passwd", S="salt", c=1, dkLen=64 (first 32 bytes).
        let h = django_pbkdf2_hash("passwd", "salt", 1);
        let want = base64::engine::general_purpose::STANDARD
            .encode(hex::decode("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc").unwrap());
        assert_eq!(h, format!("pbkdf2_sha256$1$salt${want}"));
    }
}
