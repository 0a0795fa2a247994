//! Argon2id password hashing, run off the async threads (it is deliberately slow).
//!
//! Hashes run on a small pool of dedicated threads, not on tokio's blocking pool: each
//! hash takes 19 MiB, and the allocator keeps that memory per thread, so a few long-lived
//! threads keep the API's memory bounded (and a burst of logins cannot take every core).

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use std::cell::RefCell;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// The minimum password length, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;

fn argon2() -> Argon2<'static> {
    // OWASP's Argon2id baseline: 19 MiB, 2 passes, 1 lane.
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Threads that hash passwords.
const HASH_THREADS: usize = 2;

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

/// Runs `f` on the hashing threads (or tokio's blocking pool if they could not start).
async fn on_hash_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let Some(pool) = pool() else {
        return tokio::task::spawn_blocking(f)
            .await
            .context("password hashing task");
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool.send(Box::new(move || {
        let _ = tx.send(f());
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
            params: ParamsString::try_from(argon.params())
                .map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    })
    .await?
}

/// Checks a password against a stored PHC string. With `None`, checks against a dummy hash
/// so that an unknown e-mail takes as long as a wrong password.
pub async fn verify(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    on_hash_thread(move || {
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed = PasswordHash::new(&stored).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        let algorithm = Algorithm::try_from(parsed.algorithm)
            .map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        let params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            anyhow::bail!("stored hash has no salt or output");
        };
        let argon = Argon2::new(algorithm, Version::V0x13, params);
        let output = compute(&argon, password.as_bytes(), salt, expected.len())?;
        // `Output` compares in constant time.
        Ok(output == expected)
    })
    .await?
}

thread_local! {
    /// Each hashing thread keeps its 19 MiB of Argon2 memory instead of allocating it per hash.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

fn compute(
    argon: &Argon2<'_>,
    password: &[u8],
    salt: Salt<'_>,
    len: usize,
) -> anyhow::Result<Output> {
    let mut salt_buf = [0u8; 64];
    let salt = salt
        .decode_b64(&mut salt_buf)
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    BLOCKS.with(|cell| {
        let mut blocks = cell.borrow_mut();
        blocks.resize(argon.params().block_count(), Block::default());
        Output::init_with(len, |out| {
            argon
                .hash_password_into_with_memory(password, salt, out, &mut blocks[..])
                .map_err(Into::into)
        })
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
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
}
