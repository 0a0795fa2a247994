//! Argon2id password hashing, run off the async threads (it is deliberately slow).
//!
//! Hashes run on a small pool of dedicated threads, not on tokio's blocking pool: each
//! hash takes 19 MiB, and the allocator keeps that memory per thread, so a few long-lived
//! threads keep the API's memory bounded (and a burst of logins cannot take every core).
//! In front of them is a bounded queue (`PASSWORD_HASH_QUEUE`): past it a hash is refused
//! at once ([`HashQueueFull`], answered `503` with `Retry-After`) instead of waiting behind
//! a burst, and a hash whose caller went away (its request dropped) is skipped.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// The minimum password length, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// New hashes: OWASP's Argon2id baseline, 19 MiB, 2 passes, 1 lane. Verifying reads the
/// algorithm, version and parameters from the stored string instead.
fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Threads that hash passwords.
const HASH_THREADS: usize = 2;

/// A hash refused because `PASSWORD_HASH_QUEUE` hashes are already waiting or running.
#[derive(Debug, thiserror::Error)]
#[error("too many passwords are being checked; try again shortly")]
pub struct HashQueueFull;

/// The most hashes the process holds, waiting or running (`PASSWORD_HASH_QUEUE`).
static QUEUE_LIMIT: AtomicUsize = AtomicUsize::new(32);
/// Hashes waiting or running now.
static QUEUED: AtomicUsize = AtomicUsize::new(0);

/// Sets how many hashes the process holds, waiting or running, before it refuses more
/// (`PASSWORD_HASH_QUEUE`; the queue is the process's, like its hashing threads).
pub fn set_queue_limit(limit: usize) {
    QUEUE_LIMIT.store(limit.max(1), Ordering::Relaxed);
}

/// A place in the queue, given back when the hash is done or dropped.
struct Place;

impl Place {
    fn take() -> Result<Self, HashQueueFull> {
        let limit = QUEUE_LIMIT.load(Ordering::Relaxed);
        QUEUED
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map(|_| Self)
            .map_err(|_| HashQueueFull)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        QUEUED.fetch_sub(1, Ordering::AcqRel);
    }
}

type Work = Box<dyn FnOnce() + Send>;

/// The process-wide hashing threads (a resource of the process, like its cores).
fn pool() -> Option<&'static mpsc::Sender<Work>> {
    static POOL: OnceLock<Option<mpsc::Sender<Work>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Work>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..HASH_THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let next = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match next {
                            Ok(work) => work(),
                            Err(_) => return,
                        }
                    }
                });
            if spawned.is_ok() {
                started += 1;
            }
        }
        (started > 0).then_some(tx)
    })
    .as_ref()
}

/// Runs `f` on the hashing threads (or tokio's blocking pool if they could not start), or
/// refuses it with [`HashQueueFull`] when the queue is full.
async fn on_hash_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let place = Place::take()?;
    let Some(pool) = pool() else {
        return tokio::task::spawn_blocking(move || {
            let done = f();
            drop(place);
            done
        })
        .await
        .context("password hashing task");
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool.send(Box::new(move || {
        // Nobody waits for this hash any more (the request was dropped: the client went
        // away or its deadline passed): skip its 19 MiB and tens of milliseconds.
        if tx.is_closed() {
            return;
        }
        let done = f();
        // The place is free before its caller hears back, so the caller's next request
        // never finds it still taken.
        drop(place);
        let _ = tx.send(done);
    }))
    .map_err(|_| anyhow::anyhow!("the password hashing threads stopped"))?;
    rx.await.context("password hashing thread")
}

/// Hashes a password into a PHC string.
pub async fn hash(password: String) -> anyhow::Result<String> {
    on_hash_thread(move || {
        let salt = SaltString::generate(&mut OsRng);
        let argon = argon2();
        let output = compute(
            &argon,
            password.as_bytes(),
            salt.as_salt(),
            Params::DEFAULT_OUTPUT_LEN,
        )?;
        let phc = PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(argon.params()).context("argon2 params")?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    })
    .await?
}

/// Checks a password against a stored PHC string, with the algorithm, version and parameters
/// that the string names (read by the crate's `PasswordHash`). With `None`, checks against a
/// dummy hash so that an unknown e-mail takes as long as a wrong password.
pub async fn verify(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    on_hash_thread(move || {
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed = PasswordHash::new(&stored).context("stored hash")?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            // The crate's verifier treats a hash without them as a wrong password.
            return Ok(false);
        };
        let algorithm = Algorithm::try_from(parsed.algorithm).context("stored hash")?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .context("stored hash")?
            .unwrap_or_default();
        let params = Params::try_from(&parsed).context("stored hash")?;
        let argon = Argon2::new(algorithm, version, params);
        let output = compute(&argon, password.as_bytes(), salt, expected.len())?;
        // `Output` compares in constant time.
        Ok(output == expected)
    })
    .await?
}

thread_local! {
    /// Each hashing thread keeps its Argon2 memory (19 MiB for new hashes) instead of
    /// allocating it per hash: the crate's `hash_password`/`verify_password` allocate and
    /// free it every time, and glibc then keeps such blocks in per-thread heaps, so the API
    /// grew by about 17 MB per registration (measured: 27 → 165 MB after 8).
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

fn compute(
    argon: &Argon2<'_>,
    password: &[u8],
    salt: Salt<'_>,
    len: usize,
) -> anyhow::Result<Output> {
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf).context("salt")?;
    BLOCKS.with(|cell| {
        let mut blocks = cell.borrow_mut();
        blocks.resize(argon.params().block_count(), Block::default());
        Output::init_with(len, |out| {
            argon
                .hash_password_into_with_memory(password, salt, out, &mut blocks[..])
                .map_err(Into::into)
        })
        .context("hashing a password")
    })
}

/// Argon2id hash of a random string nobody knows.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$5qsTYnA4wG0VqoPzaAJ1Je8dWc7jMgVAtVXlRybWeoQ";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse battery".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(
            verify("correct horse battery".into(), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify("wrong horse battery".into(), Some(stored))
                .await
                .unwrap()
        );
        assert!(!verify("anything".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_new_hash_uses_owasps_argon2id_parameters() {
        let stored = hash("correct horse battery".into()).await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
    }

    #[tokio::test]
    async fn a_stored_hash_is_checked_with_the_algorithm_version_and_parameters_it_names() {
        // Made by the reference implementation (`argon2 othersaltvalue16 -i -v 10 -m 8 -t 3
        // -p 2 -e`, then `-l 16`): Argon2i, version 0x10, 256 KiB, 3 passes, 2 lanes, and a
        // 16-byte output; none of them our defaults.
        for stored in [
            "$argon2i$v=16$m=256,t=3,p=2$b3RoZXJzYWx0dmFsdWUxNg$/nm9yGoxYQT89+DG/ySCn7fuxcOpjVDcqwyH+Glqyao",
            "$argon2i$v=16$m=256,t=3,p=2$b3RoZXJzYWx0dmFsdWUxNg$QTUpJBIDqwV2dwBa2rBcgg",
        ] {
            assert!(
                verify("correct horse battery".into(), Some(stored.into()))
                    .await
                    .unwrap(),
                "{stored}"
            );
            assert!(
                !verify("wrong horse battery".into(), Some(stored.into()))
                    .await
                    .unwrap(),
                "{stored}"
            );
        }
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_work_nobody_waits_for_is_skipped() {
        set_queue_limit(HASH_THREADS + 1);
        // Both threads busy until released.
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Arc::new(Mutex::new(released));
        let busy: Vec<_> = (0..HASH_THREADS)
            .map(|_| {
                let released = released.clone();
                tokio::spawn(on_hash_thread(move || {
                    let _ = released.lock().map(|r| r.recv());
                }))
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // The last place: queued, then its caller gives up before a thread is free.
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        let given_up = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            on_hash_thread(move || flag.store(true, Ordering::SeqCst)),
        )
        .await;
        assert!(given_up.is_err(), "still queued behind the busy threads");
        // Its place is held until a thread drops the work, so the queue is full now.
        let refused = on_hash_thread(|| ()).await.unwrap_err();
        assert!(
            refused.downcast_ref::<HashQueueFull>().is_some(),
            "{refused}"
        );

        for _ in 0..HASH_THREADS {
            release.send(()).unwrap();
        }
        for task in busy {
            task.await.unwrap().unwrap();
        }
        // Served again once the queue drains; the abandoned work never ran.
        assert_eq!(on_hash_thread(|| 7).await.unwrap(), 7);
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_stored_hash_that_does_not_parse_is_an_error_not_a_wrong_password() {
        assert!(
            verify("anything".into(), Some("not a PHC string".into()))
                .await
                .is_err()
        );
    }
}
