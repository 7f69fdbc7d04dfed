//! `basic_auth_users`: password hashes, and checking credentials against them without letting
//! a burst of logins stall the server.
//!
//! bcrypt is deliberately slow, so results are cached: the cache key is a SHA-256 digest of
//! the length-prefixed user name, stored hash and password (so no two different triples can
//! share a key, the flaw behind CVE-2022-46146, and no password is kept in memory), and the
//! value is whether they matched. Checks run on blocking threads, at most one per CPU at a
//! time, and concurrent checks of the same credentials share one computation. A user that does
//! not exist is checked against a dummy hash of the same cost as the real ones, so that the
//! answer takes as long as for a wrong password.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OnceCell, Semaphore};

use super::WebConfigError;

/// Results remembered at once; beyond that the oldest are forgotten.
const CACHE_CAPACITY: usize = 1024;

/// The configured users and their password hashes.
#[derive(Debug)]
pub struct Users {
    hashes: HashMap<String, String>,
    /// Checked for unknown users, so that they take as long as known ones.
    dummy: String,
}

impl Users {
    pub fn none() -> Users {
        Users {
            hashes: HashMap::new(),
            dummy: String::new(),
        }
    }

    /// Validates every hash (in user name order, as the file is read).
    pub fn parse(users: &BTreeMap<String, String>) -> Result<Users, WebConfigError> {
        let mut costs: BTreeMap<u32, usize> = BTreeMap::new();
        for (user, hash) in users {
            let cost = bcrypt_cost(hash).map_err(|reason| WebConfigError::PasswordHash {
                user: user.clone(),
                reason,
            })?;
            *costs.entry(cost).or_default() += 1;
        }
        if users.is_empty() {
            return Ok(Users::none());
        }
        // The most common cost (the lower one on a tie) stands for a typical user.
        let cost = costs
            .iter()
            .max_by_key(|(cost, count)| (**count, std::cmp::Reverse(**cost)))
            .map_or(bcrypt::DEFAULT_COST, |(cost, _)| *cost);
        let dummy = bcrypt::hash("not a password anyone has", cost).map_err(|e| {
            WebConfigError::Tls(format!("cannot make the dummy password hash: {e}"))
        })?;
        Ok(Users {
            hashes: users.clone().into_iter().collect(),
            dummy,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// The cost of a bcrypt hash, or why it is not one (Go's `bcrypt.Cost` messages).
fn bcrypt_cost(hash: &str) -> Result<u32, String> {
    if hash.len() < 59 {
        return Err("crypto/bcrypt: hashedSecret too short to be a bcrypted password".into());
    }
    if !hash.starts_with('$') {
        let first = hash.chars().next().unwrap_or_default();
        return Err(format!(
            "crypto/bcrypt: bcrypt hashes must start with '$', but hashedSecret started with '{first}'"
        ));
    }
    let parts = bcrypt::HashParts::from_str(hash).map_err(|e| format!("crypto/bcrypt: {e}"))?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!(
            "crypto/bcrypt: cost {cost} is outside allowed range (4,31)"
        ));
    }
    Ok(cost)
}

/// Checks credentials, remembering results across configuration reloads (a changed hash makes
/// a different key, so nothing stale is ever used).
pub struct Authenticator {
    cache: Mutex<Cache>,
    permits: Arc<Semaphore>,
}

#[derive(Default)]
struct Cache {
    results: HashMap<[u8; 32], Arc<OnceCell<bool>>>,
    order: VecDeque<[u8; 32]>,
}

impl Default for Authenticator {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Authenticator {
            cache: Mutex::default(),
            permits: Arc::new(Semaphore::new(cpus)),
        }
    }
}

impl Authenticator {
    /// Whether `user` with `password` is one of `users`.
    pub async fn check(&self, users: &Users, user: &str, password: &str) -> bool {
        let (hash, known) = match users.hashes.get(user) {
            Some(hash) => (hash.as_str(), true),
            None => (users.dummy.as_str(), false),
        };
        let key = cache_key(user, hash, password);
        let cell = self.cell(key);
        let permits = self.permits.clone();
        let matched = *cell
            .get_or_init(|| async {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return false;
                };
                let password = password.to_string();
                let hash = hash.to_string();
                tokio::task::spawn_blocking(move || {
                    bcrypt::verify(password, &hash).unwrap_or(false)
                })
                .await
                .unwrap_or(false)
            })
            .await;
        matched && known
    }

    fn cell(&self, key: [u8; 32]) -> Arc<OnceCell<bool>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cell) = cache.results.get(&key) {
            return cell.clone();
        }
        while cache.results.len() >= CACHE_CAPACITY {
            let Some(oldest) = cache.order.pop_front() else {
                break;
            };
            cache.results.remove(&oldest);
        }
        let cell = Arc::new(OnceCell::new());
        cache.results.insert(key, cell.clone());
        cache.order.push_back(key);
        cell
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.cache.lock().unwrap().results.len()
    }
}

fn cache_key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [user, hash, password] {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part.as_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

/// Reads `Authorization: Basic ...` as Go's `Request.BasicAuth` does: the scheme in any case,
/// standard base64, user and password split at the first `:`. Anything else is no credentials.
pub fn basic_credentials(headers: &http::HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case("basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(pairs: &[(&str, &str)]) -> Users {
        let map = pairs
            .iter()
            .map(|(u, p)| (u.to_string(), bcrypt::hash(p, 4).unwrap()))
            .collect();
        Users::parse(&map).unwrap()
    }

    #[test]
    fn hash_format_errors_are_gos() {
        let bad: BTreeMap<String, String> = [("john".to_string(), "doe".to_string())].into();
        assert_eq!(
            Users::parse(&bad).unwrap_err().to_string(),
            "crypto/bcrypt: hashedSecret too short to be a bcrypted password"
        );
        assert_eq!(bcrypt_cost(&bcrypt::hash("x", 5).unwrap()), Ok(5));
        assert!(bcrypt_cost(&format!("x{}", &bcrypt::hash("x", 4).unwrap()[1..])).is_err());
    }

    #[tokio::test]
    async fn right_wrong_and_unknown() {
        let users = users(&[("alice", "alice123")]);
        let auth = Authenticator::default();
        assert!(auth.check(&users, "alice", "alice123").await);
        assert!(!auth.check(&users, "alice", "alice1234").await);
        assert!(!auth.check(&users, "bob", "alice123").await);
        assert!(auth.check(&users, "alice", "alice123").await, "cached");
        assert_eq!(auth.cached(), 3);
    }

    #[tokio::test]
    async fn cache_keys_cannot_collide_by_concatenation() {
        // CVE-2022-46146: "alice" + hash + "...fakepassword" must not equal
        // "alice$2y$..." + hash + "fakepassword".
        let users = users(&[("alice", "alice123")]);
        let auth = Authenticator::default();
        assert!(
            !auth
                .check(&users, &format!("alice{}", users.dummy), "fakepassword")
                .await
        );
        assert!(
            !auth
                .check(&users, "alice", &format!("{}fakepassword", users.dummy))
                .await
        );
        assert!(
            !auth
                .check(&users, "fakeuser", "not a password anyone has")
                .await,
            "the dummy password never passes"
        );
    }

    #[tokio::test]
    async fn concurrent_logins_agree_and_the_cache_stays_bounded() {
        let users = Arc::new(users(&[("alice", "alice123")]));
        let auth = Arc::new(Authenticator::default());
        let mut tasks = Vec::new();
        for i in 0..100 {
            let (users, auth) = (users.clone(), auth.clone());
            tasks.push(tokio::spawn(async move {
                let good = i % 2 == 0;
                let password = if good { "alice123" } else { "wrong" };
                (good, auth.check(&users, "alice", password).await)
            }));
        }
        for task in tasks {
            let (good, result) = task.await.unwrap();
            assert_eq!(good, result);
        }
        for i in 0..(CACHE_CAPACITY + 10) {
            auth.cell(cache_key("u", "h", &i.to_string()));
        }
        assert_eq!(auth.cached(), CACHE_CAPACITY);
    }

    #[test]
    fn basic_credentials_parsing() {
        let header = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
            basic_credentials(&h)
        };
        assert_eq!(
            header("Basic ZGF2ZTpkYXZlMTIz"),
            Some(("dave".into(), "dave123".into()))
        );
        assert_eq!(
            header("basic ZGF2ZTpkYXZlMTIz"),
            Some(("dave".into(), "dave123".into()))
        );
        assert_eq!(header("Basic dTpwOnE="), Some(("u".into(), "p:q".into())));
        assert_eq!(header("Bearer ZGF2ZTpkYXZlMTIz"), None);
        assert_eq!(header("Basic !!!"), None);
        assert_eq!(header("Basic ZGF2ZQ=="), None);
    }
}
